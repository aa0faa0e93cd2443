package scheduler

import "sync"

// mailbox hands values from one goroutine to another without either ever
// waiting for the other: put appends under a mutex and signals notify
// without blocking (a signal already pending covers the new value); the
// receiver waits on notify, then takes everything queued.
type mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{}
}

func newMailbox[T any]() *mailbox[T] { return &mailbox[T]{notify: make(chan struct{}, 1)} }

func (b *mailbox[T]) put(v T) {
	b.mu.Lock()
	b.items = append(b.items, v)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// take returns everything queued, oldest first.
func (b *mailbox[T]) take() []T {
	b.mu.Lock()
	items := b.items
	b.items = nil
	b.mu.Unlock()
	return items
}
