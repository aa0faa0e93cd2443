package httpapi

import (
	"sync"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// Bus fans events out to subscribers (it is an Events). A subscriber that
// cannot keep up loses the oldest events it has not read, and the loss is
// counted and told to it (a "dropped" event), never silent; Publish never
// blocks.
type Bus struct {
	queue  int
	mu     sync.Mutex
	seq    uint64
	subs   map[*busSub]struct{}
	closed bool
}

type busSub struct {
	b       *Bus
	mu      sync.Mutex
	queue   []apitypes.Event
	dropped uint64
	notify  chan struct{}
	done    chan struct{}
}

// NewBus returns a bus whose subscribers each queue at most queue events
// (default 1024).
func NewBus(queue int) *Bus {
	if queue <= 0 {
		queue = 1024
	}
	return &Bus{queue: queue, subs: map[*busSub]struct{}{}}
}

// Publish sends an event to every subscriber, numbered in order.
func (b *Bus) Publish(typ string, data map[string]any, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	ev := apitypes.Event{Seq: b.seq, Time: now.UTC(), Type: typ, Data: data}
	for s := range b.subs {
		s.mu.Lock()
		if len(s.queue) >= b.queue {
			s.queue = s.queue[1:]
			s.dropped++
		}
		s.queue = append(s.queue, ev)
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// Subscribe implements Events. After Close, the subscription is done at
// once.
func (b *Bus) Subscribe() Subscription {
	s := &busSub{b: b, notify: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.done)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Close ends every subscription and refuses new ones.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.done)
	}
}

func (s *busSub) Notify() <-chan struct{} { return s.notify }
func (s *busSub) Done() <-chan struct{}   { return s.done }

func (s *busSub) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		close(s.done)
	}
}

func (s *busSub) Take() ([]apitypes.Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, d := s.queue, s.dropped
	s.queue, s.dropped = nil, 0
	return q, d
}

// Seq is the number of the last event published.
func (b *Bus) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Backlog is the longest queue of any subscriber, and the events dropped
// for that one and not yet told to it: a subscriber whose queue stays full
// is one the server cannot write to (docs/reliability.md F22's test).
func (b *Bus) Backlog() (queued int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		if len(s.queue) > queued || len(s.queue) == queued && s.dropped > dropped {
			queued, dropped = len(s.queue), s.dropped
		}
		s.mu.Unlock()
	}
	return queued, dropped
}
