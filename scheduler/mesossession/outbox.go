package mesossession

import (
	"context"
	"errors"
	"sync"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Reporter hears what became of the outbox's calls. Its methods are called
// from the outbox's goroutines and must not block: the scheduler's puts
// the news in a mailbox for its loop.
type Reporter interface {
	// Called: call returned, with err nil if it was made. Every call is
	// reported, also while the session closes.
	Called(call *scheduler.Call, err error)
	// Flushed: every call of a batch has returned.
	Flushed()
}

// Workers bounds concurrent calls of one batch: a link change for a
// thousand tasks is a thousand MESSAGE calls, which one connection at a
// time would send in sequence.
const Workers = 16

// runOutbox makes the calls sent, batch by batch (a batch is what one step
// of the scheduler decided, after it was stored). A call that fails is not
// retried here; the Reporter is told, and the scheduler repairs what its
// own mechanisms would not.
func (c *Session) runOutbox(ctx context.Context, caller Caller) {
	sem := make(chan struct{}, Workers)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.outbox.Notify():
		}
		for _, batch := range c.outbox.Take() {
			c.sendBatch(ctx, caller, sem, batch)
			if ctx.Err() != nil {
				return
			}
			// Resends are timed from here, not from when the calls were
			// queued (a thousand calls take a while).
			c.cfg.Report.Flushed()
		}
	}
}

// sendBatch makes one batch's calls, Workers at a time.
func (c *Session) sendBatch(ctx context.Context, caller Caller, sem chan struct{}, batch []*scheduler.Call) {
	fw := c.cfg.FrameworkID()
	var wg sync.WaitGroup
	for _, call := range batch {
		call.FrameworkID = fw
		sem <- struct{}{}
		wg.Add(1)
		go func(call *scheduler.Call) {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
			err := caller.Call(cctx, call)
			cancel()
			if err != nil && ctx.Err() == nil {
				lvl := c.log.Warn
				if errors.Is(err, ErrNotSubscribed) {
					lvl = c.log.Debug
				}
				lvl("mesos call failed", "call", call.Type.String(), "err", err)
			}
			c.cfg.Report.Called(call, err)
		}(call)
	}
	wg.Wait()
}
