package scheduler

import "context"

// Store keeps the scheduler's state across restarts: the framework ID, the
// accepted spec, the launch serial and link versions, and one record per
// task. The scheduler writes before it acts (an intent is stored before the
// ACCEPT that carries it), so after a crash nothing it did is unknown to it.
// The stores are package store (a bbolt file, memory) and, under HA, the
// leader's fenced ZooKeeper store (internal/zkha).
type Store interface {
	// Load returns every key under prefix ("" for all).
	Load(ctx context.Context, prefix string) (map[string][]byte, error)
	// Apply writes a batch: puts (nil value: delete). A backend that can
	// makes the batch atomic; every backend applies it in key order and
	// returns only once it is durable.
	Apply(ctx context.Context, batch map[string][]byte) error
	Close() error
}
