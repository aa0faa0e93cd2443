package executor

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/internal/backoff"
)

// --- the agent ---

func (m *machine) agentEvent(in inAgent) {
	if in.Gen != m.gen || m.conn == connDown {
		m.count.EventsIgnored++
		return // a closed subscription's leftovers
	}
	ev := in.Event
	m.lastEvent = m.now
	if m.conn == connSubscribing && ev.Type != executor.Event_SUBSCRIBED && ev.Type != executor.Event_ERROR {
		m.log(slog.LevelWarn, "agent sent an event before SUBSCRIBED; ignoring it", "event", ev.Type.String())
		m.count.EventsIgnored++
		return
	}
	switch ev.Type {
	case executor.Event_SUBSCRIBED:
		m.subscribed(ev.Subscribed)
	case executor.Event_LAUNCH:
		if ev.Launch == nil {
			m.count.EventsIgnored++
			return
		}
		m.launch(ev.Launch.Task)
	case executor.Event_LAUNCH_GROUP:
		if ev.LaunchGroup == nil {
			m.count.EventsIgnored++
			return
		}
		for _, t := range ev.LaunchGroup.TaskGroup.Tasks {
			m.refuseTask(t, "the Tiltai executor runs single tasks (LAUNCH), not task groups")
		}
	case executor.Event_KILL:
		if ev.Kill == nil {
			m.count.EventsIgnored++
			return
		}
		var grace *time.Duration
		if kp := ev.Kill.KillPolicy; kp != nil && kp.GracePeriod != nil {
			g := time.Duration(kp.GracePeriod.GetNanoseconds())
			grace = &g
		}
		m.killEvent(ev.Kill.TaskID.Value, grace)
	case executor.Event_ACKNOWLEDGED:
		if ev.Acknowledged == nil {
			m.count.EventsIgnored++
			return
		}
		m.acknowledged(ev.Acknowledged.TaskID.Value, ev.Acknowledged.UUID)
	case executor.Event_MESSAGE:
		if ev.Message == nil {
			m.count.EventsIgnored++
			return
		}
		m.message(ev.Message.Data)
	case executor.Event_SHUTDOWN:
		m.log(slog.LevelInfo, "agent asked the executor to shut down")
		m.beginShutdown(causeShutdown, "killed: the agent shut the executor down")
	case executor.Event_ERROR:
		msg := ""
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		m.log(slog.LevelWarn, "agent reported an error; re-subscribing", "error", msg)
		m.reconnect("agent error: " + msg)
	case executor.Event_HEARTBEAT:
		if !m.lastBeat.IsZero() {
			m.beatGap = m.now.Sub(m.lastBeat)
		}
		m.lastBeat = m.now
	default:
		m.count.EventsIgnored++
		m.log(slog.LevelDebug, "ignoring agent event", "event", ev.Type.String())
	}
}

func (m *machine) subscribed(s *executor.Event_Subscribed) {
	m.conn = connUp
	m.lastBeat, m.beatGap = time.Time{}, 0
	m.everSubscribed = true
	m.attempts = 0
	if s != nil {
		m.killingState = slices.ContainsFunc(s.FrameworkInfo.Capabilities, func(c mesos.FrameworkInfo_Capability) bool {
			return c.GetType() == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE
		})
	}
	m.log(slog.LevelInfo, "subscribed to the agent", "unacknowledged_updates", len(m.unacked))
	for i := range m.unacked {
		if !m.unacked[i].sent {
			m.unacked[i].sent = true
			m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: m.unacked[i].status}})})
		}
	}
	if t := m.task; t != nil && t.phase == phaseDone {
		m.doneAt = m.now // the re-sent updates get a fresh ack timeout
	}
	if t := m.task; t.alive() {
		// A lost ack heals without waiting for the scheduler to resend.
		if t.ackedVer > 0 {
			m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: t.ackedVer})
		}
		m.nextStatus = m.now
	}
}

func (m *machine) disconnected(in inDisconnected) {
	if in.Gen != m.gen || m.conn == connDown {
		return
	}
	m.goDown(fmt.Sprintf("subscription ended: %v", in.Err))
}

// reconnect drops the current subscription and schedules a new one.
func (m *machine) reconnect(reason string) {
	if m.conn == connDown {
		return
	}
	m.goDown(reason)
	m.emit(doDisconnect{Gen: m.gen, Reason: reason})
}

func (m *machine) goDown(reason string) {
	wasUp := m.conn == connUp
	m.conn = connDown
	m.gen++ // whatever the old subscription still says is stale
	if wasUp {
		m.downSince = m.now
	}
	switch {
	case wasUp && !m.cfg.Checkpoint:
		m.log(slog.LevelWarn, "lost the agent and the framework does not checkpoint: stopping", "reason", reason)
		m.giveUp("the executor lost its agent and the framework does not checkpoint")
	case m.gaveUp:
	default:
		m.scheduleSubscribe()
		m.log(slog.LevelWarn, "not subscribed to the agent; retrying", "reason", reason, "retry_in", m.nextSubscribe.Sub(m.now).String())
	}
}

// scheduleSubscribe picks the next attempt: exponential from 100ms, capped
// by the backoff max (Mesos: every executor must retry within it), with
// equal jitter (half..all of the step).
func (m *machine) scheduleSubscribe() {
	p := backoff.Policy{Initial: 100 * time.Millisecond, Max: m.cfg.BackoffMax, Factor: 2, Jitter: backoff.Equal}
	m.nextSubscribe = m.now.Add(p.Next(m.attempts, m.cfg.Rand()))
	m.attempts++
}

// subscribeDeadline is when trying to reach the agent stops.
func (m *machine) subscribeDeadline() time.Time {
	switch {
	case m.cfg.Checkpoint:
		return m.downSince.Add(m.cfg.RecoveryTimeout)
	case !m.everSubscribed:
		return m.start.Add(initialSubscribeTimeout)
	}
	return m.downSince // without checkpointing a lost agent is final
}

func (m *machine) giveUp(why string) {
	if m.gaveUp {
		return
	}
	m.gaveUp = true
	if t := m.task; t.alive() {
		m.stop(causeAgentGone, "killed: "+why, t.data.GracePeriod())
	}
}

func (m *machine) subscribeNow() {
	m.gen++
	m.conn = connSubscribing
	m.count.Subscriptions++
	// Empty lists, not absent ones: mesos-go writes a nil slice as null,
	// which is not a JSON array.
	tasks := []mesos.TaskInfo{}
	if t := m.task; t != nil && !t.infoAcked {
		tasks = append(tasks, t.info)
	}
	updates := []executor.Call_Update{}
	for i := range m.unacked {
		m.unacked[i].sent = true
		updates = append(updates, executor.Call_Update{Status: m.unacked[i].status})
	}
	m.emit(doSubscribe{Gen: m.gen, Call: m.call(&executor.Call{
		Type:      executor.Call_SUBSCRIBE,
		Subscribe: &executor.Call_Subscribe{UnacknowledgedTasks: tasks, UnacknowledgedUpdates: updates},
	})})
}

func (m *machine) call(c *executor.Call) *executor.Call {
	c.FrameworkID = mesos.FrameworkID{Value: m.cfg.FrameworkID}
	c.ExecutorID = mesos.ExecutorID{Value: m.cfg.ExecutorID}
	return c
}
