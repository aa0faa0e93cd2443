package core

import (
	"errors"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/linkspec"
)

// onFailure: an executor exited, or an agent was lost. The task's
// terminal update follows from the agent, so there is nothing to decide.
func (m *Machine) onFailure(f Failure) {
	if f.ExecutorID != "" {
		// A clean exit is what every kill and drain ends with; only
		// another one is worth a warning.
		level := LevelInfo
		if f.Status != 0 {
			level = LevelWarn
		}
		m.logf(level, "executor exited", "executor_id", f.ExecutorID, "agent_id", f.AgentID, "status", f.Status)
		m.event("executor_exited", map[string]any{"executor_id": f.ExecutorID, "status": f.Status})
	} else if f.AgentID != "" {
		m.logf(LevelWarn, "agent failed", "agent_id", f.AgentID)
		m.event("agent_failed", map[string]any{"agent_id": f.AgentID})
	}
}

func (m *Machine) onSubscribed(sub Subscribed, now time.Time) error {
	id, leader := sub.FrameworkID, sub.Master
	if m.st.frameworkID != id {
		if m.st.frameworkID != "" {
			// Mesos gave a different ID although we asked for ours. Taking
			// it would orphan every recorded task; stop instead.
			return fmt.Errorf("master %s subscribed us as framework %s, but the stored framework ID is %s; "+
				"refusing to switch (its tasks would be orphaned). See docs/operations.md, 'Framework ID lost'", leader, id, m.st.frameworkID)
		}
		m.st.frameworkID = id
		m.st.dirty[keyFrameworkID] = true
		m.newFwID = true
	}
	m.subscribed = true
	m.suppressed = false
	m.leader = leader
	m.offers = nil
	m.forgetInverse()
	clear(m.redeclined)
	t := true
	m.out.Metrics.Subscribed = &t
	m.viewDirty = true
	m.out.Metrics.Subscriptions++
	m.logf(LevelInfo, "subscribed", "framework_id", id, "master", leader)
	m.event("subscribed", map[string]any{"framework_id": id, "master": leader})
	// Reconcile what we know, then implicitly; and re-send every link
	// table: framework messages sent while away may be lost.
	m.recon.start(m, now)
	m.antiEntropy(now)
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
func (m *Machine) onUpdate(st mesos.TaskStatus, now time.Time) {
	id := st.TaskID.Value
	state := st.GetState()
	inc(&m.out.Metrics.Updates, state.String(), 1)
	defer m.ack(st)
	if st.GetReason() == mesos.REASON_RECONCILIATION {
		m.recon.done(id)
	}
	t := m.st.tasks[id]
	if t == nil {
		// Not ours (any more). A live task we do not know is killed, never
		// adopted: its ID is ours only if we recorded the intent.
		if _, live := phaseOf(state); live && state != mesos.TASK_UNKNOWN && state != mesos.TASK_UNREACHABLE && st.AgentID != nil {
			m.logf(LevelWarn, "killing an unknown task", "task_id", id, "agent_id", st.AgentID.Value, "state", state.String())
			m.queue(calls.Kill(id, st.AgentID.Value))
			m.out.Metrics.UnknownKilled++
			m.event("unknown_task_killed", map[string]any{"task_id": id, "state": state.String()})
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
			r := m.st.meta.Restarts[t.Service]
			r.Failures++
			r.Last = now
			m.st.meta.Restarts[t.Service] = r
			m.st.touchMeta()
			m.planner.SetRestarts(t.Service, r)
			inc(&m.out.Metrics.Failures, t.Service, 1)
			why := fmt.Sprintf("%s %s", id, state)
			if t.Reason != "" {
				why += " (" + t.Reason + ")"
			}
			m.lastFail[t.Service] = why + ": " + t.Message
			m.logf(LevelWarn, "task failed", "task_id", id, "state", state.String(), "reason", t.Reason, "message", t.Message, "failures", r.Failures)
		} else {
			m.logf(LevelInfo, "task ended", "task_id", id, "state", state.String(), "reason", t.Reason, "message", t.Message)
		}
		m.countFinalDrops(t, st)
		m.forget(t, state.String()+": "+t.Message)
		return
	}
	old := t.Phase
	if state == mesos.TASK_KILLING && t.Phase != phaseKilling {
		// Killed by someone else: the agent, for DRAIN_AGENT. It leaves
		// every table now and a replacement is planned; the KILL we would
		// repeat waits, as the agent gives it its grace period.
		t.KillSent = now
		if st.GetReason() == mesos.REASON_AGENT_DRAINING && t.AgentID != "" {
			m.onDraining(t, now)
		}
	}
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
		m.event("task_"+t.Phase, map[string]any{"task_id": id, "state": state.String(), "host": t.Host, "ports": t.Ports})
		if t.Phase == linkspec.Running.String() {
			m.out.Metrics.Running++
		}
	}
	m.touch(t)
	m.observe(t)
}

// ack acknowledges an update that carries a uuid; master-made updates
// (no uuid) are never acknowledged.
func (m *Machine) ack(st mesos.TaskStatus) {
	if len(st.UUID) == 0 || st.AgentID == nil {
		m.out.Metrics.NoUUID++
		return
	}
	m.queue(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
	m.out.Metrics.Acked++
}

// onExecutorMessage handles acks and status reports from executors.
func (m *Machine) onExecutorMessage(em Message, now time.Time) {
	msg, err := contract.Decode(em.Data)
	if err == nil && msg.Type == contract.TypeLinks {
		err = errors.New("a links message travels to executors, not from them")
	}
	if err != nil {
		m.out.Metrics.BadMessages++
		m.logf(LevelWarn, "ignoring a malformed executor message", "executor_id", em.ExecutorID, "agent_id", em.AgentID, "err", err)
		return
	}
	t := m.st.tasks[msg.TaskID]
	if t == nil || t.executorID() != em.ExecutorID {
		m.out.Metrics.BadMessages++
		m.logf(LevelWarn, "ignoring a message about an unknown task", "task_id", msg.TaskID, "executor_id", em.ExecutorID)
		return
	}
	switch msg.Type {
	case contract.TypeAck:
		m.onAck(t, msg.Version, now)
	case contract.TypeNack:
		// The service refused a table (e.g. a peer it cannot parse). It
		// keeps its last good one; the refusal is a bug to surface, and the
		// version is not re-sent until the next change or anti-entropy.
		m.out.Metrics.Nacks++
		m.logf(LevelError, "a service refused its link table", "task_id", t.ID, "version", msg.Version, "err", msg.Error)
		m.event("links_refused", map[string]any{"task_id": t.ID, "version": msg.Version, "error": msg.Error})
		if l := m.links[t.ID]; l != nil && l.sent == msg.Version {
			l.sentAt, l.attempts = now, 64
		}
	case contract.TypeStatus:
		// A new value, never changed in place: views share it.
		m.status[t.ID] = &TaskStatus{At: now, Version: msg.Version, Gates: msg.Gates, Counters: msg.Counters}
		m.viewDirty = true
		if msg.Version > 0 {
			m.onAck(t, msg.Version, now)
		}
	}
}

// countFinalDrops adds what an ended task's gates dropped to the metrics, so
// that the loss outlives the task: from the final counters its executor put
// in the terminal update (what closing its out-gates dropped at the stop
// included), else from its last periodic report.
func (m *Machine) countFinalDrops(t *taskRecord, st mesos.TaskStatus) {
	var gates map[string]control.GateCounters
	if s := m.status[t.ID]; s != nil {
		gates = s.Gates
	}
	if len(st.Data) > 0 {
		msg, err := contract.Decode(st.Data)
		switch {
		case err != nil || msg.Type != contract.TypeStatus || msg.TaskID != t.ID:
			m.logf(LevelWarn, "ignoring the final counters of an ended task: not a status of the task", "task_id", t.ID, "err", err)
		default:
			gates = msg.Gates
		}
	}
	for name, g := range gates {
		if g.Dropped > 0 {
			inc(&m.out.Metrics.GateDropped, t.Service+"\x00"+name, int(g.Dropped))
		}
	}
}
