package scheduler

import (
	"context"
	"errors"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/mesossession"
)

// MasterSource tells where the leading Mesos master is (see
// mesossession.MasterSource).
type MasterSource = mesossession.MasterSource

// StaticMaster is a master at a fixed URL (see mesossession.StaticMaster).
type StaticMaster = mesossession.StaticMaster

// mesosSession is the loop's link to Mesos (mesossession.Session): the
// subscription's events come in on Events; the calls of a step go out with
// Send, batch by batch, never waiting; what became of them comes back
// through the Reporter the session was opened with.
type mesosSession interface {
	Events() <-chan mesossession.Event
	Send(batch []*scheduler.Call)
	Close() error
}

// openSession opens the Mesos session for s, reporting to its loop.
func (s *Scheduler) openSession(ctx context.Context) mesosSession {
	c := &s.cfg
	return mesossession.Open(ctx, mesossession.Config{
		Master: c.Master, Info: s.frameworkInfo, FrameworkID: s.frameworkID,
		FrameworkName: c.FrameworkName, Codec: c.Codec,
		Principal: c.Principal, Secret: c.Secret, TLS: c.TLS,
		CallTimeout:         c.CallTimeout,
		SubscribeBackoffMin: c.SubscribeBackoffMin, SubscribeBackoffMax: c.SubscribeBackoffMax,
		MissedHeartbeats: c.MissedHeartbeats, HeartbeatFallback: c.HeartbeatFallback,
		Report: (*outboxReports)(s), Through: c.wrapCaller, Logger: s.log,
	})
}

// frameworkID is the ID the outbox's calls carry (nil until known).
func (s *Scheduler) frameworkID() *mesos.FrameworkID {
	if id := s.fwID.Load(); id != nil {
		return &mesos.FrameworkID{Value: *id}
	}
	return nil
}

// outboxReports is the Scheduler as the session's Reporter: it counts
// every call, and hands the loop what it must repair (core.CallFailed) and
// when a batch is out (core.Flushed) through the reports mailbox, which
// never waits. The loop repairs what its own mechanisms would not: ACKs
// are re-driven by the agent's retries, MESSAGEs by resends and KILLs by
// re-kills anyway, but a failed ACCEPT's tasks are reconciled, and a
// failed REVIVE, SUPPRESS or DECLINE is made again.
type outboxReports Scheduler

func (r *outboxReports) Called(call *scheduler.Call, err error) {
	r.metrics.calls.WithLabelValues(call.Type.String(), resultLabel(err)).Inc()
	if err != nil {
		r.reports.Put(core.CallFailed{Call: call})
	}
}

func (r *outboxReports) Flushed() { r.reports.Put(core.Flushed{At: r.cfg.Now()}) }

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, mesossession.ErrNotSubscribed):
		return "not_subscribed"
	}
	return "error"
}
