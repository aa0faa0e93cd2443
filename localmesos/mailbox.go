package localmesos

import "sync"

// mailbox is the unbounded inbox of a component's state goroutine. Posting
// never blocks, so the master and an agent can message each other without
// deadlock; the owner drains it in batches.
type mailbox struct {
	mu     sync.Mutex
	q      []any
	closed bool
	notify chan struct{}
}

func newMailbox() *mailbox { return &mailbox{notify: make(chan struct{}, 1)} }

// post queues m; it reports false once the mailbox is closed.
func (b *mailbox) post(m any) bool {
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

func (b *mailbox) take() []any {
	b.mu.Lock()
	q := b.q
	b.q = nil
	b.mu.Unlock()
	return q
}

func (b *mailbox) close() {
	b.mu.Lock()
	b.closed = true
	b.q = nil
	b.mu.Unlock()
}
