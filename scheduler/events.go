package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/linkspec"
)

// onEvent applies one event from the master.
func (s *Scheduler) onEvent(ev *scheduler.Event, leader string) error {
	now := s.cfg.Now()
	switch ev.Type {
	case scheduler.Event_SUBSCRIBED:
		return s.onSubscribed(ev.Subscribed, leader, now)
	case scheduler.Event_OFFERS:
		for i := range ev.Offers.Offers {
			s.offers = append(s.offers, &ev.Offers.Offers[i])
		}
		s.metrics.offers.Add(float64(len(ev.Offers.Offers)))
	case scheduler.Event_RESCIND:
		id := ev.Rescind.OfferID.Value
		for i, o := range s.offers {
			if o.ID.Value == id {
				s.offers = append(s.offers[:i], s.offers[i+1:]...)
				break
			}
		}
	case scheduler.Event_UPDATE:
		s.onUpdate(ev.Update.Status, now)
	case scheduler.Event_MESSAGE:
		s.onExecutorMessage(ev.Message, now)
	case scheduler.Event_FAILURE:
		f := ev.Failure
		if f.ExecutorID != nil {
			// The executor is gone; its task's terminal update follows
			// from the agent.
			// A clean exit is what every kill and drain ends with; only
			// another one is worth a warning.
			level := slog.LevelInfo
			if f.GetStatus() != 0 {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "executor exited", "executor_id", f.ExecutorID.Value, "agent_id", f.GetAgentID().GetValue(), "status", f.GetStatus())
			s.event("executor_exited", map[string]any{"executor_id": f.ExecutorID.Value, "status": f.GetStatus()})
		} else if f.AgentID != nil {
			s.log.Warn("agent failed", "agent_id", f.AgentID.Value)
			s.event("agent_failed", map[string]any{"agent_id": f.AgentID.Value})
		}
	}
	return nil
}

func (s *Scheduler) onSubscribed(sub *scheduler.Event_Subscribed, leader string, now time.Time) error {
	id := sub.FrameworkID.Value
	if s.st.frameworkID != id {
		if s.st.frameworkID != "" {
			// Mesos gave a different ID although we asked for ours. Taking
			// it would orphan every recorded task; stop instead.
			return fmt.Errorf("master %s subscribed us as framework %s, but the stored framework ID is %s; "+
				"refusing to switch (its tasks would be orphaned). See docs/operations.md, 'Framework ID lost'", leader, id, s.st.frameworkID)
		}
		s.st.frameworkID = id
		s.st.dirty[keyFrameworkID] = true
		s.fwID.Store(&id)
	}
	s.subscribed = true
	s.suppressed = false
	s.leader = leader
	s.offers = nil
	clear(s.redeclined)
	s.metrics.subscribed.Set(1)
	s.metrics.subscriptions.Inc()
	s.log.Info("subscribed", "framework_id", id, "master", leader)
	s.event("subscribed", map[string]any{"framework_id": id, "master": leader})
	// Reconcile what we know, then implicitly; and re-send every link
	// table: framework messages sent while away may be lost.
	s.recon.start(s, now)
	s.antiEntropy(now)
	return nil
}

// phaseOf maps a Mesos task state to the planner's phase; ok=false for
// terminal states.
func phaseOf(st mesos.TaskState) (linkspec.Phase, bool) {
	switch st {
	case mesos.TASK_STAGING, mesos.TASK_STARTING:
		return linkspec.Launched, true
	case mesos.TASK_RUNNING:
		return linkspec.Running, true
	case mesos.TASK_KILLING:
		return linkspec.Killing, true
	case mesos.TASK_UNREACHABLE, mesos.TASK_UNKNOWN:
		return linkspec.Unreachable, true
	}
	return 0, false
}

// onUpdate applies a status update. Updates are at-least-once: applying
// one twice changes nothing more. It is acknowledged (when it has a uuid)
// only after the change it caused is stored: commit queues the ACK after
// the write.
func (s *Scheduler) onUpdate(st mesos.TaskStatus, now time.Time) {
	id := st.TaskID.Value
	state := st.GetState()
	s.metrics.updates.WithLabelValues(state.String()).Inc()
	defer s.ack(st)
	if st.GetReason() == mesos.REASON_RECONCILIATION {
		s.recon.done(id)
	}
	t := s.st.tasks[id]
	if t == nil {
		// Not ours (any more). A live task we do not know is killed, never
		// adopted: its ID is ours only if we recorded the intent.
		if _, live := phaseOf(state); live && state != mesos.TASK_UNKNOWN && state != mesos.TASK_UNREACHABLE && st.AgentID != nil {
			s.log.Warn("killing an unknown task", "task_id", id, "agent_id", st.AgentID.Value, "state", state.String())
			s.queue(calls.Kill(id, st.AgentID.Value))
			s.metrics.unknownKilled.Inc()
			s.event("unknown_task_killed", map[string]any{"task_id": id, "state": state.String()})
		}
		return
	}
	t.State = state.String()
	t.Reason = ""
	if st.Reason != nil {
		t.Reason = st.Reason.String()
	}
	t.Message = st.GetMessage()
	if st.AgentID != nil && t.AgentID == "" {
		t.AgentID = st.AgentID.Value
	}
	phase, live := phaseOf(state)
	if !live {
		// Every end we did not ask for counts towards the service's crash
		// backoff, exiting 0 included: a service is long-running, and one
		// that ends at once must not be relaunched in a hot loop.
		failed := t.Phase != linkspec.Killing.String() && t.Retiring.IsZero()
		if failed {
			r := s.st.meta.Restarts[t.Service]
			r.Failures++
			r.Last = now
			s.st.meta.Restarts[t.Service] = r
			s.st.touchMeta()
			s.planner.SetRestarts(t.Service, r)
			s.metrics.failures.WithLabelValues(t.Service).Inc()
			why := fmt.Sprintf("%s %s", id, state)
			if t.Reason != "" {
				why += " (" + t.Reason + ")"
			}
			s.lastFail[t.Service] = why + ": " + t.Message
			s.log.Warn("task failed", "task_id", id, "state", state.String(), "reason", t.Reason, "message", t.Message, "failures", r.Failures)
		} else {
			s.log.Info("task ended", "task_id", id, "state", state.String(), "reason", t.Reason, "message", t.Message)
		}
		s.forget(t, state.String()+": "+t.Message)
		return
	}
	old := t.Phase
	switch {
	case t.Phase == linkspec.Killing.String() && phase != linkspec.Unreachable:
		// A kill is in progress; a late RUNNING does not undo it.
	case phase == linkspec.Running && (t.Phase == linkspec.Unreachable.String() || t.Orphan):
		// Written off and back: killed, never advertised again.
		t.Orphan = true
		t.Phase = phase.String()
	case phase == linkspec.Launched && t.Phase == linkspec.Running.String():
		// A late STARTING after RUNNING (reordered retries): ignore.
	default:
		t.Phase = phase.String()
	}
	if t.Phase != old {
		t.Updated = now
		s.event("task_"+t.Phase, map[string]any{"task_id": id, "state": state.String(), "host": t.Host, "ports": t.Ports})
		if t.Phase == linkspec.Running.String() {
			s.metrics.running.Inc()
		}
	}
	s.st.touchTask(id)
	s.observe(t)
}

// ack acknowledges an update that carries a uuid; master-made updates
// (no uuid) are never acknowledged.
func (s *Scheduler) ack(st mesos.TaskStatus) {
	if len(st.UUID) == 0 || st.AgentID == nil {
		s.metrics.noUUID.Inc()
		return
	}
	s.queue(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
	s.metrics.acked.Inc()
}

// onExecutorMessage handles acks and status reports from executors.
func (s *Scheduler) onExecutorMessage(m *scheduler.Event_Message, now time.Time) {
	msg, err := executor.Decode(m.Data)
	if err == nil && msg.Type == executor.TypeLinks {
		err = errors.New("a links message travels to executors, not from them")
	}
	if err != nil {
		s.metrics.badMessages.Inc()
		s.log.Warn("ignoring a malformed executor message", "executor_id", m.ExecutorID.Value, "agent_id", m.AgentID.Value, "err", err)
		return
	}
	t := s.st.tasks[msg.TaskID]
	if t == nil || t.executorID() != m.ExecutorID.Value {
		s.metrics.badMessages.Inc()
		s.log.Warn("ignoring a message about an unknown task", "task_id", msg.TaskID, "executor_id", m.ExecutorID.Value)
		return
	}
	switch msg.Type {
	case executor.TypeAck:
		s.onAck(t, msg.Version, now)
	case executor.TypeNack:
		// The service refused a table (e.g. a peer it cannot parse). It
		// keeps its last good one; the refusal is a bug to surface, and the
		// version is not re-sent until the next change or anti-entropy.
		s.metrics.nacks.Inc()
		s.log.Error("a service refused its link table", "task_id", t.ID, "version", msg.Version, "err", msg.Error)
		s.event("links_refused", map[string]any{"task_id": t.ID, "version": msg.Version, "error": msg.Error})
		if l := s.links[t.ID]; l != nil && l.sent == msg.Version {
			l.sentAt, l.attempts = now, 64
		}
	case executor.TypeStatus:
		st := s.status[t.ID]
		if st == nil {
			st = &taskStatus{}
			s.status[t.ID] = st
		}
		st.at, st.version, st.gates, st.counters = now, msg.Version, msg.Gates, msg.Counters
		if msg.Version > 0 {
			s.onAck(t, msg.Version, now)
		}
	}
}
