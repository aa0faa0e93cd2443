package scheduler

import (
	"sync"
	"time"
)

// bus fans events out to subscribers. A subscriber that cannot keep up
// loses the oldest events it has not read, and the loss is counted and
// told to it (a "dropped" event), never silent; the loop never blocks.
type bus struct {
	mu     sync.Mutex
	seq    uint64
	subs   map[*sub]struct{}
	closed bool
	size   int // each subscriber's queue (Config.eventQueue)
}

type sub struct {
	mu      sync.Mutex
	queue   []Event
	dropped uint64
	notify  chan struct{}
	done    chan struct{}
}

func newBus(size int) *bus { return &bus{subs: map[*sub]struct{}{}, size: size} }

func (b *bus) publish(typ string, data map[string]any, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	ev := Event{Seq: b.seq, Time: now.UTC(), Type: typ, Data: data}
	for s := range b.subs {
		s.mu.Lock()
		if len(s.queue) >= b.size {
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

func (b *bus) subscribe() *sub {
	s := &sub{notify: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.done)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

func (b *bus) unsubscribe(s *sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.done)
	}
}

func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.done)
	}
}

// take returns what is queued and how many events were lost before it.
func (s *sub) take() ([]Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, d := s.queue, s.dropped
	s.queue, s.dropped = nil, 0
	return q, d
}
