package executor

import (
	"fmt"
	"log/slog"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// --- the service exits ---

func (m *machine) serviceExited(in inExited) {
	t := m.task
	if t == nil || !t.alive() {
		return
	}
	st := in.Status
	elapsed := m.now.Sub(t.startedAt).Round(time.Millisecond)
	t.phase = phaseDone
	m.doneAt = m.now
	m.log(slog.LevelInfo, "service exited", "status", st.String(), "pid", t.pid, "ran_for", elapsed.String())
	k := t.kill
	if k == nil {
		switch {
		case st.Signal == 0 && st.Code == 0:
			m.update(t.id, mesos.TASK_FINISHED, "service exited with status 0")
		default:
			msg := "service " + st.String()
			if in.StderrTail != "" {
				msg += "; last line of its stderr: " + in.StderrTail
			}
			m.update(t.id, mesos.TASK_FAILED, msg)
		}
		return
	}
	how := "service " + st.String()
	switch {
	case k.kill:
		how += fmt.Sprintf(" after SIGKILL at the end of the %s grace period", k.grace)
	case k.term:
		how += " after SIGTERM"
	case k.drain && t.svc.Drained:
		how = "service drained and " + st.String()
	case k.drain:
		how += " while draining"
	}
	how += fmt.Sprintf(" (%s after the stop began)", m.now.Sub(k.start).Round(time.Millisecond))
	msg := k.why + "; " + how
	switch k.cause {
	case causeHung:
		m.update(t.id, mesos.TASK_FAILED, msg, withHealthy(false))
	case causeNotReady, causeFalseClaim:
		m.update(t.id, mesos.TASK_FAILED, msg)
	case causeAgentGone:
		m.update(t.id, mesos.TASK_FAILED, msg, withReason(mesos.REASON_AGENT_DISCONNECTED))
	default:
		m.update(t.id, mesos.TASK_KILLED, msg)
	}
}
