package master

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// Faults injects failures into a running cluster, for tests. The zero
// configuration injects nothing. All methods are safe for concurrent use.
type Faults struct {
	mu          sync.Mutex
	rng         *rand.Rand
	msg         MessageFaults
	blackHole   bool
	redirect    string
	unavailable bool

	dropped, duplicated, delayed, swallowed atomic.Int64
}

// MessageFaults applies to every framework message (scheduler MESSAGE to an
// executor and executor MESSAGE to the scheduler), each decided at random.
// Status updates are not affected: they are retried until acknowledged.
type MessageFaults struct {
	Drop      float64       // probability a message is lost
	Duplicate float64       // probability a message is delivered twice
	Delay     float64       // probability a message is held back
	DelayBy   time.Duration // how long a delayed message is held
}

// NewFaults returns an injector that injects nothing yet; seed seeds its
// random choices (0: time-based).
func NewFaults(seed int64) *Faults {
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &Faults{rng: rand.New(rand.NewSource(seed))}
}

// SetMessageFaults replaces the framework-message faults.
func (f *Faults) SetMessageFaults(m MessageFaults) {
	f.mu.Lock()
	f.msg = m
	f.mu.Unlock()
}

// StopHeartbeats makes every scheduler event stream half-open: the TCP
// connection stays up but nothing more arrives on it, heartbeats included.
// Streams subscribed after ResumeHeartbeats are healthy again.
func (f *Faults) StopHeartbeats() { f.setBlackHole(true) }

// ResumeHeartbeats ends StopHeartbeats.
func (f *Faults) ResumeHeartbeats() { f.setBlackHole(false) }

func (f *Faults) setBlackHole(v bool) {
	f.mu.Lock()
	f.blackHole = v
	f.mu.Unlock()
}

func (f *Faults) blackHoled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blackHole {
		f.swallowed.Add(1)
	}
	return f.blackHole
}

// Redirect makes the scheduler API answer every call with 307 Temporary
// Redirect to location (as a non-leading Mesos master does, e.g.
// "//127.0.0.1:5050"); "" ends it.
func (f *Faults) Redirect(location string) {
	f.mu.Lock()
	f.redirect = location
	f.mu.Unlock()
}

// Unavailable makes the scheduler API answer 503 (no leading master) while on.
func (f *Faults) Unavailable(on bool) {
	f.mu.Lock()
	f.unavailable = on
	f.mu.Unlock()
}

func (f *Faults) httpFault() (redirect string, unavailable bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redirect, f.unavailable
}

// decide returns how many copies of a framework message to deliver (0, 1 or
// 2) and how long to hold them.
func (f *Faults) decide() (copies int, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msg
	if m.Drop > 0 && f.rng.Float64() < m.Drop {
		f.dropped.Add(1)
		return 0, 0
	}
	copies = 1
	if m.Duplicate > 0 && f.rng.Float64() < m.Duplicate {
		f.duplicated.Add(1)
		copies = 2
	}
	if m.Delay > 0 && m.DelayBy > 0 && f.rng.Float64() < m.Delay {
		f.delayed.Add(1)
		delay = m.DelayBy
	}
	return copies, delay
}

// FaultCounts says what the injected faults did so far.
type FaultCounts struct {
	MessagesDropped, MessagesDuplicated, MessagesDelayed int64
	// EventsBlackHoled counts scheduler events swallowed by StopHeartbeats.
	EventsBlackHoled int64
}

// Counts returns the fault counters.
func (f *Faults) Counts() FaultCounts {
	return FaultCounts{
		MessagesDropped:    f.dropped.Load(),
		MessagesDuplicated: f.duplicated.Load(),
		MessagesDelayed:    f.delayed.Load(),
		EventsBlackHoled:   f.swallowed.Load(),
	}
}
