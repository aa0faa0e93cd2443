package scheduler

import (
	"context"
	"errors"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/scheduler/core"
)

// mesosCaller makes one call on the current subscription.
type mesosCaller interface {
	Call(ctx context.Context, call *scheduler.Call) error
}

// outboxWorkers bounds concurrent calls of one batch: a link change for a
// thousand tasks is a thousand MESSAGE calls, which one connection at a
// time would send in sequence.
const outboxWorkers = 16

// runOutbox makes the loop's calls, batch by batch (a batch is what one
// loop step decided, after it was stored). A call that fails is not
// retried here; the loop is told (core.CallFailed) and repairs what its own
// mechanisms would not: ACKs are re-driven by the agent's retries,
// MESSAGEs by resends and KILLs by re-kills anyway, but a failed ACCEPT's
// tasks are reconciled, and a failed REVIVE, SUPPRESS or DECLINE is made
// again.
func (s *Scheduler) runOutbox(ctx context.Context) {
	sem := make(chan struct{}, outboxWorkers)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.outbox.notify:
		}
		for _, batch := range s.outbox.take() {
			s.send(ctx, sem, batch)
			if ctx.Err() != nil {
				return
			}
			// Tell the loop the batch is out: resends are timed from here,
			// not from when the calls were queued (a thousand calls take a
			// while).
			s.reports.put(core.Flushed{At: s.cfg.Now()})
		}
	}
}

// send makes one batch's calls, outboxWorkers at a time.
func (s *Scheduler) send(ctx context.Context, sem chan struct{}, batch []*scheduler.Call) {
	var fw *mesos.FrameworkID
	if id := s.fwID.Load(); id != nil {
		fw = &mesos.FrameworkID{Value: *id}
	}
	var wg sync.WaitGroup
	for _, call := range batch {
		call.FrameworkID = fw
		sem <- struct{}{}
		wg.Add(1)
		go func(call *scheduler.Call) {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			err := s.caller.Call(cctx, call)
			cancel()
			s.metrics.calls.WithLabelValues(call.Type.String(), resultLabel(err)).Inc()
			if err != nil && ctx.Err() == nil {
				lvl := s.log.Warn
				if errors.Is(err, errNotSubscribed) {
					lvl = s.log.Debug
				}
				lvl("mesos call failed", "call", call.Type.String(), "err", err)
				s.reports.put(core.CallFailed{Call: call})
			}
		}(call)
	}
	wg.Wait()
}

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errNotSubscribed):
		return "not_subscribed"
	}
	return "error"
}
