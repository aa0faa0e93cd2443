package link

import "sync"

// Mailbox is the unbounded inbox of a component's state goroutine. Posting
// never blocks, so the master and an agent can message each other without
// deadlock; the owner drains it in batches.
type Mailbox struct {
	mu     sync.Mutex
	q      []any
	closed bool
	notify chan struct{}
}

// NewMailbox returns an empty, open mailbox.
func NewMailbox() *Mailbox { return &Mailbox{notify: make(chan struct{}, 1)} }

// Post queues m; it reports false once the mailbox is closed.
func (b *Mailbox) Post(m any) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	b.q = append(b.q, m)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return true
}

// Take returns the queued messages, oldest first, and empties the queue.
func (b *Mailbox) Take() []any {
	b.mu.Lock()
	q := b.q
	b.q = nil
	b.mu.Unlock()
	return q
}

// Close drops the queue; later posts are refused.
func (b *Mailbox) Close() {
	b.mu.Lock()
	b.closed = true
	b.q = nil
	b.mu.Unlock()
}

// Notify is signalled (without blocking) when messages are posted.
func (b *Mailbox) Notify() <-chan struct{} { return b.notify }

// Size is how many messages wait in the mailbox.
func (b *Mailbox) Size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)
}
