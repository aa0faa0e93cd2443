package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/scheduler/mesossession"
)

// crash is a kill -9 at a chosen point, made of fakes around the store
// and the Mesos caller: once it happens, nothing more is stored (the next
// write fails, which stops the scheduler before it acts) and no call more
// reaches the master. The store keeps what was written before.
type crash struct {
	once    sync.Once
	crashed chan struct{}
}

var errCrashed = errors.New("crashed (test)")

func newCrash() *crash { return &crash{crashed: make(chan struct{})} }

func (c *crash) now() { c.once.Do(func() { close(c.crashed) }) }

func (c *crash) happened() bool {
	select {
	case <-c.crashed:
		return true
	default:
		return false
	}
}

// crashStore writes through to Store; after the crash, every write fails.
// crashAfter, if set, crashes right after a batch it matches is written.
type crashStore struct {
	Store
	c          *crash
	crashAfter func(batch map[string][]byte) bool
}

func (s *crashStore) Apply(ctx context.Context, batch map[string][]byte) error {
	if s.c.happened() {
		return errCrashed
	}
	if err := s.Store.Apply(ctx, batch); err != nil {
		return err
	}
	if s.crashAfter != nil && s.crashAfter(batch) {
		s.c.now()
		return errCrashed // stored; the scheduler stops before its calls
	}
	return nil
}

// crashCaller makes calls through next; after the crash, none. before may
// fail a call (as a 5xx would); after may crash right after a call made.
type crashCaller struct {
	next   mesossession.Caller
	c      *crash
	before func(*scheduler.Call) error
	after  func(*scheduler.Call) bool
}

func (f *crashCaller) Call(ctx context.Context, call *scheduler.Call) error {
	if f.c.happened() {
		return errCrashed
	}
	if f.before != nil {
		if err := f.before(call); err != nil {
			return err
		}
	}
	err := f.next.Call(ctx, call)
	if err == nil && f.after != nil && f.after(call) {
		f.c.now()
	}
	return err
}

// launchedRecord: the batch stores a task in phase launched (what an
// ACCEPT depends on).
func launchedRecord(batch map[string][]byte) bool {
	for k, v := range batch {
		if strings.HasPrefix(k, "tasks/") && strings.Contains(string(v), `"phase":"launched"`) {
			return true
		}
	}
	return false
}
