package mesossession

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"go.uber.org/goleak"
)

// nowhere is a master that cannot be found.
type nowhere struct{}

func (nowhere) Leader(context.Context) (string, error) { return "", errors.New("no master (test)") }
func (nowhere) Changed() <-chan struct{}               { return nil }

// recorder is a Reporter and a Caller: it records what was called and
// reported, and how many calls were made at once at most.
type recorder struct {
	mu       sync.Mutex
	called   map[scheduler.Call_Type]int
	failed   int
	flushed  int
	fw       []string
	inFlight atomic.Int64
	maxIn    atomic.Int64
}

func (r *recorder) Call(ctx context.Context, call *scheduler.Call) error {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for m := r.maxIn.Load(); n > m && !r.maxIn.CompareAndSwap(m, n); m = r.maxIn.Load() {
	}
	time.Sleep(time.Millisecond)
	r.mu.Lock()
	r.fw = append(r.fw, call.GetFrameworkID().GetValue())
	r.mu.Unlock()
	if call.Type == scheduler.Call_DECLINE {
		return errors.New("injected")
	}
	return nil
}

func (r *recorder) Called(call *scheduler.Call, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.called[call.Type]++
	if err != nil {
		r.failed++
	}
}

func (r *recorder) Flushed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushed++
}

// The outbox makes every call sent, at most Workers at once, with the
// framework ID, reports each and each batch, and Close leaves nothing
// running. Without a master the session reports Disconnected.
func TestOutbox(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := &recorder{called: map[scheduler.Call_Type]int{}}
	s := Open(context.Background(), Config{
		Master: nowhere{}, Info: func() *mesos.FrameworkInfo { return &mesos.FrameworkInfo{} },
		FrameworkID:         func() *mesos.FrameworkID { return &mesos.FrameworkID{Value: "fw-1"} },
		CallTimeout:         time.Second,
		SubscribeBackoffMin: time.Millisecond, SubscribeBackoffMax: 10 * time.Millisecond,
		MissedHeartbeats: 3, HeartbeatFallback: time.Second,
		Report: r, Through: func(Caller) Caller { return r },
	})
	defer s.Close()
	var batch []*scheduler.Call
	for range 100 {
		batch = append(batch, &scheduler.Call{Type: scheduler.Call_MESSAGE})
	}
	s.Send(batch)
	s.Send([]*scheduler.Call{{Type: scheduler.Call_DECLINE}})
	select {
	case ev := <-s.Events():
		if _, ok := ev.(Disconnected); !ok {
			t.Fatalf("first event %#v, want Disconnected", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Disconnected without a master")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		done := r.flushed == 2
		r.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batches were not flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.called[scheduler.Call_MESSAGE] != 100 || r.called[scheduler.Call_DECLINE] != 1 || r.failed != 1 {
		t.Fatalf("reported %v calls, %d failed; want 100 MESSAGEs, 1 DECLINE failed", r.called, r.failed)
	}
	for _, id := range r.fw {
		if id != "fw-1" {
			t.Fatalf("a call carried framework ID %q, want fw-1", id)
		}
	}
	if m := r.maxIn.Load(); m > Workers {
		t.Fatalf("%d calls at once, want at most %d", m, Workers)
	}
}
