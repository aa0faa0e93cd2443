package executor

import (
	"fmt"
	"log/slog"
	"syscall"
	"time"
)

// --- time ---

func (m *machine) timers() {
	now := m.now
	if m.conn != connUp && !m.gaveUp {
		if dl := m.subscribeDeadline(); !now.Before(dl) {
			if m.conn == connSubscribing {
				// Stop the attempt in flight: past the deadline even a
				// success would come too late.
				m.gen++
				m.conn = connDown
				m.emit(doDisconnect{Gen: m.gen, Reason: "recovery timeout"})
			}
			if m.everSubscribed {
				m.log(slog.LevelError, "could not re-subscribe to the agent within the recovery timeout; stopping", "recovery_timeout", m.cfg.RecoveryTimeout.String())
				m.giveUp(fmt.Sprintf("the executor could not reach its agent for %s (MESOS_RECOVERY_TIMEOUT)", m.cfg.RecoveryTimeout))
			} else {
				m.log(slog.LevelError, "could not subscribe to the agent; stopping", "after", now.Sub(m.start).String())
				m.giveUp("the executor could not subscribe to its agent")
			}
		} else if m.conn == connDown && !now.Before(m.nextSubscribe) {
			m.subscribeNow()
		}
	}
	if dl := m.silenceDeadline(); !dl.IsZero() && !now.Before(dl) {
		m.reconnect(fmt.Sprintf("nothing from the agent for %s though it sends heartbeats every %s", now.Sub(m.lastEvent).Round(time.Millisecond), m.beatGap.Round(time.Millisecond)))
	}
	t := m.task
	if t == nil {
		return
	}
	switch t.phase {
	case phaseStarting:
		if !now.Before(t.readyBy) {
			why := notReadyWhy(t)
			m.log(slog.LevelWarn, "service not ready in time", "reason", why)
			m.stop(causeNotReady, why, t.data.GracePeriod())
		}
	}
	if (t.phase == phaseStarting || t.phase == phaseRunning) && t.helloed {
		if lt := t.data.LivenessTimeout(); lt > 0 && !now.Before(t.lastBeat.Add(lt)) {
			why := fmt.Sprintf("service hung: no heartbeat on its control socket for %s", now.Sub(t.lastBeat).Round(time.Millisecond))
			m.log(slog.LevelWarn, "service hung", "reason", why)
			m.stop(causeHung, why, t.data.GracePeriod())
		}
	}
	if k := t.kill; k != nil && t.phase == phaseKilling {
		if !k.term && !now.Before(k.drainBy) && now.Before(k.graceEnd) {
			k.term = true
			m.emit(doSignal{Signal: syscall.SIGTERM})
		}
		if !k.kill && !now.Before(k.graceEnd) {
			k.kill = true
			m.emit(doSignal{Signal: syscall.SIGKILL})
		}
	}
	if m.conn == connUp && t.alive() && t.phase != phaseLaunching && !now.Before(m.nextStatus) {
		m.send(m.statusMessage())
		m.nextStatus = now.Add(m.cfg.StatusInterval)
	}
}

func (m *machine) maybeExit() {
	t := m.task
	if t.alive() {
		return
	}
	exit := func(reason string) {
		m.exited = true
		m.emit(doExit{Code: 0, Reason: reason})
	}
	switch {
	case m.gaveUp && !m.everSubscribed:
		m.exited = true
		m.emit(doExit{Code: 1, Reason: "could not subscribe to the agent"})
	case m.gaveUp:
		exit("lost the agent")
	case t == nil:
		if m.shutdown {
			exit("shut down before any task was launched")
		}
	case len(m.unacked) == 0:
		exit("the task ended and the agent acknowledged its status")
	case m.shutdown && !m.now.Before(m.shutdownBy):
		exit(fmt.Sprintf("shutdown grace period ends; %d status updates unacknowledged", len(m.unacked)))
	case m.conn == connUp && !m.now.Before(m.doneAt.Add(m.cfg.AckTimeout)):
		exit(fmt.Sprintf("the agent did not acknowledge %d status updates within %s", len(m.unacked), m.cfg.AckTimeout))
	}
}

// silenceDeadline is when a subscription that has gone quiet is given up:
// three heartbeat gaps (at least 5s) after the last event.
func (m *machine) silenceDeadline() time.Time {
	if m.conn != connUp || m.beatGap <= 0 {
		return time.Time{}
	}
	return m.lastEvent.Add(max(3*m.beatGap, 5*time.Second))
}

// NextDeadline is when the machine next needs a tick (zero: no deadline).
func (m *machine) NextDeadline() time.Time {
	var next time.Time
	at := func(t time.Time) {
		// A deadline that has passed without effect cannot be helped by
		// ticking again; leaving it out keeps the driver from spinning.
		if t.After(m.now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if m.exited {
		return next
	}
	if m.conn == connDown && !m.gaveUp {
		at(m.nextSubscribe)
	}
	if m.conn != connUp && !m.gaveUp {
		at(m.subscribeDeadline())
	}
	at(m.silenceDeadline())
	if t := m.task; t != nil {
		if t.phase == phaseStarting {
			at(t.readyBy)
		}
		if (t.phase == phaseStarting || t.phase == phaseRunning) && t.helloed && t.data.LivenessTimeout() > 0 {
			at(t.lastBeat.Add(t.data.LivenessTimeout()))
		}
		if k := t.kill; k != nil && t.phase == phaseKilling {
			if !k.term && k.drainBy.Before(k.graceEnd) {
				at(k.drainBy)
			}
			if !k.kill {
				at(k.graceEnd)
			}
		}
		if m.conn == connUp && t.alive() && t.phase != phaseLaunching {
			at(m.nextStatus)
		}
		if t.phase == phaseDone && len(m.unacked) > 0 && m.conn == connUp {
			at(m.doneAt.Add(m.cfg.AckTimeout))
		}
	}
	if m.shutdown && !m.task.alive() {
		at(m.shutdownBy)
	}
	return next
}
