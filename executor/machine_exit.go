package executor

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
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
	// The service's last counters travel with the terminal update (its
	// data: a status message), so the scheduler counts what its gates
	// dropped after the last periodic report, at the stop above all.
	final := m.finalStatus()
	dropped := stopDropped(t.svc.Status)
	k := t.kill
	if k == nil {
		switch {
		case st.Signal == 0 && st.Code == 0:
			m.update(t.id, mesos.TASK_FINISHED, "service exited with status 0"+dropped, final)
		default:
			msg := "service " + st.String()
			if in.StderrTail != "" {
				msg += "; last line of its stderr: " + in.StderrTail
			}
			m.update(t.id, mesos.TASK_FAILED, msg+dropped, final)
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
	msg := k.why + "; " + how + dropped
	switch k.cause {
	case causeHung:
		m.update(t.id, mesos.TASK_FAILED, msg, withHealthy(false), final)
	case causeNotReady, causeFalseClaim:
		m.update(t.id, mesos.TASK_FAILED, msg, final)
	case causeAgentGone:
		m.update(t.id, mesos.TASK_FAILED, msg, withReason(mesos.REASON_AGENT_DISCONNECTED), final)
	default:
		m.update(t.id, mesos.TASK_KILLED, msg, final)
	}
}

// finalStatus puts the service's last reported counters, as a status
// message, in the terminal update's data; nothing if it never reported.
func (m *machine) finalStatus() statusOpt {
	if m.task.svc.Status == nil {
		return func(*mesos.TaskStatus) {}
	}
	b, err := contract.Encode(m.statusMessage())
	if err != nil {
		m.log(slog.LevelError, "cannot encode the final counters", "error", err)
		return func(*mesos.TaskStatus) {}
	}
	return func(s *mesos.TaskStatus) { s.Data = b }
}

// stopDropped says what the service's out-gates dropped when they closed
// (no peer took it before the stop deadline), from its last report; "" if
// nothing.
func stopDropped(st *control.Status) string {
	if st == nil {
		return ""
	}
	var total uint64
	var per []string
	for _, name := range slices.Sorted(maps.Keys(st.Gates)) {
		if n := st.Gates[name].StopDropped; n > 0 {
			total += n
			per = append(per, fmt.Sprintf("%s %d", name, n))
		}
	}
	if total == 0 {
		return ""
	}
	noun, them := "messages", "them"
	if total == 1 {
		noun, them = "message", "it"
	}
	return fmt.Sprintf("; its gates dropped %d %s at stop (no peer took %s before the deadline: %s)", total, noun, them, strings.Join(per, ", "))
}
