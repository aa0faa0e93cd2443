// Package mailbox hands values from one goroutine to another without either
// ever waiting for the other: Put appends under a mutex and signals Notify
// without blocking (a signal already pending covers the new value); the
// receiver waits on Notify, then takes everything queued. The scheduler's
// loop and its Mesos outbox talk through two of these, so neither can
// block the other.
package mailbox

import "sync"

// Box is a mailbox of T; make one with New.
type Box[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{}
}

// New returns an empty mailbox.
func New[T any]() *Box[T] { return &Box[T]{notify: make(chan struct{}, 1)} }

// Put queues v and signals the receiver; it never waits.
func (b *Box[T]) Put(v T) {
	b.mu.Lock()
	b.items = append(b.items, v)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// Notify is signalled after a Put (one signal may cover several).
func (b *Box[T]) Notify() <-chan struct{} { return b.notify }

// Take returns everything queued, oldest first.
func (b *Box[T]) Take() []T {
	b.mu.Lock()
	items := b.items
	b.items = nil
	b.mu.Unlock()
	return items
}
