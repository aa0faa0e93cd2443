package executor

import (
	"log/slog"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// --- kill ---

func (m *machine) killEvent(taskID string, grace *time.Duration) {
	t := m.task
	if t == nil || t.id != taskID {
		m.count.EventsIgnored++
		m.log(slog.LevelWarn, "KILL for a task this executor does not run", "kill_task_id", taskID)
		return
	}
	g := t.data.GracePeriod()
	if grace != nil && *grace >= 0 {
		g = *grace
	}
	if !t.alive() {
		m.log(slog.LevelInfo, "KILL for a task that has already ended")
		return
	}
	m.stop(causeKill, "killed by the scheduler", g)
}

// stop stops the service now, or as soon as it has started.
func (m *machine) stop(cause killCause, why string, grace time.Duration) {
	t := m.task
	switch {
	case t.phase == phaseLaunching && t.pending == nil:
		t.pending = &pendingStop{cause: cause, why: why, grace: grace}
	case t.phase == phaseLaunching:
		t.pending.grace = min(t.pending.grace, grace)
	case t.alive():
		m.startKill(cause, why, grace)
	}
}

func (m *machine) shutdownGrace(t *task) time.Duration {
	s := m.cfg.ShutdownGrace
	reserve := min(max(s/5, 100*time.Millisecond), time.Second)
	return max(0, min(t.data.GracePeriod(), s-reserve))
}

func (m *machine) beginShutdown(cause killCause, why string) {
	if m.shutdown {
		return
	}
	m.shutdown = true
	s := m.cfg.ShutdownGrace
	m.shutdownBy = m.now.Add(s - min(max(s/10, 50*time.Millisecond), 500*time.Millisecond))
	if t := m.task; t.alive() {
		m.stop(cause, why, m.shutdownGrace(t))
	}
}

// drainBudget is the part of the grace period the service gets to drain and
// exit by itself before SIGTERM: all of it but a quarter (at most 2s) kept for
// SIGTERM to work.
func drainBudget(grace time.Duration) time.Duration {
	return grace - min(grace/4, 2*time.Second)
}

// startKill begins (or, with a shorter grace, hastens) stopping the service.
func (m *machine) startKill(cause killCause, why string, grace time.Duration) {
	t := m.task
	if k := t.kill; k != nil {
		if end := m.now.Add(grace); end.Before(k.graceEnd) {
			k.graceEnd = end
			k.grace = end.Sub(k.start)
			if db := m.now.Add(drainBudget(grace)); db.Before(k.drainBy) {
				k.drainBy = db
			}
			m.log(slog.LevelInfo, "kill hastened", "grace", grace.String())
		}
		return
	}
	k := &killState{cause: cause, why: why, start: m.now, grace: grace, graceEnd: m.now.Add(grace)}
	t.kill = k
	t.phase = phaseKilling
	m.log(slog.LevelInfo, "stopping the service", "reason", why, "grace", grace.String())
	if m.killingState && (cause == causeKill || cause == causeShutdown || cause == causeTerminate) {
		m.update(t.id, mesos.TASK_KILLING, "draining the service before stopping it")
	}
	// A hung or never-connected service cannot drain: go straight to SIGTERM.
	// A lying one's "drained" would mean nothing.
	canDrain := t.helloed && cause != causeHung && cause != causeNotReady && cause != causeFalseClaim && grace > 0
	if canDrain {
		k.drain = true
		k.drainBy = m.now.Add(drainBudget(grace))
		m.emit(doDrain{Timeout: (drainBudget(grace) * 2 / 3).Truncate(time.Millisecond), Stop: drainBudget(grace).Truncate(time.Millisecond)})
	} else {
		k.drainBy = m.now
	}
}
