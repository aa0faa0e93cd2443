package executor

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
)

// --- launch ---

func (m *machine) refuseTask(info mesos.TaskInfo, why string) {
	m.log(slog.LevelWarn, "refusing a task", "refused_task_id", info.TaskID.Value, "reason", why)
	m.update(info.TaskID.Value, mesos.TASK_ERROR, why, withReason(mesos.REASON_TASK_INVALID))
}

func (m *machine) launch(info mesos.TaskInfo) {
	id := info.TaskID.Value
	switch {
	case m.task != nil && m.task.id == id:
		m.count.EventsIgnored++
		m.log(slog.LevelInfo, "ignoring a repeated LAUNCH of the task")
		return
	case m.task != nil:
		m.refuseTask(info, fmt.Sprintf("this executor already runs task %q; the Tiltai scheduler gives every task its own executor", m.task.id))
		return
	case m.shutdown || m.gaveUp:
		m.refuseTask(info, "the executor is shutting down")
		return
	}
	t := &task{info: info, id: id}
	m.task = t
	data, err := contract.DecodeTaskData(info.Data)
	if err != nil {
		t.phase = phaseDone
		m.doneAt = m.now
		m.update(id, mesos.TASK_ERROR, err.Error(), withReason(mesos.REASON_TASK_INVALID))
		return
	}
	t.data = data
	if kp := info.KillPolicy; kp != nil && kp.GracePeriod != nil {
		g := contract.Duration(kp.GracePeriod.GetNanoseconds())
		if g >= 0 {
			t.data.KillGracePeriod = &g
		}
	}
	t.phase = phaseLaunching
	m.update(id, mesos.TASK_STARTING, fmt.Sprintf("starting service %q: %s", data.Service, commandLine(data)))
	m.emit(doLaunch{TaskID: id, Data: data, HeartbeatInterval: heartbeatInterval(data.LivenessTimeout())})
}

// heartbeatInterval is what the service is asked to beat at: five beats per
// liveness timeout, at most one a second.
func heartbeatInterval(liveness time.Duration) time.Duration {
	if liveness <= 0 {
		return time.Second
	}
	return min(time.Second, max(liveness/5, 10*time.Millisecond))
}

func commandLine(d contract.TaskData) string {
	parts := append([]string{d.Command}, d.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"\\$") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	s := strings.Join(parts, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (m *machine) started(in inStarted) {
	t := m.task
	if t == nil || t.phase != phaseLaunching {
		return
	}
	t.pid, t.startedAt = in.PID, m.now
	t.phase = phaseStarting
	t.readyBy = m.now.Add(t.data.ReadyTimeout())
	m.log(slog.LevelInfo, "service started", "pid", in.PID)
	if len(t.data.InGates()) == 0 {
		t.phase = phaseRunning
		m.update(t.id, mesos.TASK_RUNNING, fmt.Sprintf("service started (pid %d); it has no in-gates to wait for", in.PID))
	}
	m.checkReady()
	if p := t.pending; p != nil {
		t.pending = nil
		m.startKill(p.cause, p.why, p.grace)
	}
	m.nextStatus = m.now
}

// checkReady moves a starting task to running once the service reports its
// in-gates bound.
func (m *machine) checkReady() {
	t := m.task
	if t.phase == phaseStarting && t.svc.Connected && t.svc.Ready && len(unbound(t.data, t.svc)) == 0 {
		t.phase = phaseRunning
		m.update(t.id, mesos.TASK_RUNNING, readyMessage(t.data, t.svc, t.pid))
	}
}

func (m *machine) startFailed(in inStartFailed) {
	t := m.task
	if t == nil || t.phase != phaseLaunching {
		return
	}
	t.phase = phaseDone
	m.doneAt = m.now
	m.update(t.id, mesos.TASK_FAILED, fmt.Sprintf("cannot start service %q: %v", t.data.Service, in.Err), withReason(mesos.REASON_CONTAINER_LAUNCH_FAILED))
}
