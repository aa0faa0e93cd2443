package executor

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
)

// --- the service's control socket ---

func (m *machine) serviceState(st control.State) {
	t := m.task
	if !t.alive() {
		return
	}
	prev := t.svc
	t.svc = st
	if st.Connected && (!prev.Connected || st.Connections != prev.Connections) {
		if !t.helloed {
			m.log(slog.LevelInfo, "service connected to the control socket", "pid", st.Hello.PID)
		}
		t.helloed = true
		t.lastBeat = m.now
	}
	if st.Status != nil && st.Status != prev.Status {
		t.lastBeat = m.now
	}
	if st.Violation != "" && !t.distrusted {
		// A service that lies about its gates or about what it applied
		// cannot be trusted to have drained anything: its acks would let
		// the scheduler stop tasks with messages still in flight to them.
		t.distrusted = true
		why := "service broke the control protocol: " + st.Violation
		m.log(slog.LevelError, "service made a false claim on its control socket; stopping it", "reason", st.Violation)
		m.stop(causeFalseClaim, why, t.data.GracePeriod())
	}
	m.checkReady()
	if st.Applied > t.ackedVer && !t.distrusted {
		t.ackedVer = st.Applied
		m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: st.Applied})
	}
	if st.Rejected > t.nacked && st.Rejected > st.Applied {
		t.nacked = st.Rejected
		m.count.LinksRefused++
		m.log(slog.LevelWarn, "service refused a link snapshot", "version", st.Rejected, "error", st.RejectErr)
		m.send(contract.Message{Type: contract.TypeNack, TaskID: t.id, Version: st.Rejected, Error: "service refused it: " + st.RejectErr})
	}
	if k := t.kill; k != nil && st.Drained && !prev.Drained {
		m.log(slog.LevelInfo, "service drained its in-gates", "after", m.now.Sub(k.start).String())
	}
}

func readyMessage(d contract.TaskData, st control.State, pid int) string {
	var bound []string
	for _, g := range d.InGates() {
		addr := ""
		for _, gi := range st.Gates {
			if gi.Name == g.Name {
				addr = gi.Bound
			}
		}
		if addr == "" {
			addr = control.Endpoint{Host: "0.0.0.0", Port: g.Port}.String()
		}
		bound = append(bound, g.Name+" on "+addr)
	}
	return fmt.Sprintf("service ready (pid %d): in-gates bound (%s)", pid, strings.Join(bound, ", "))
}

// unbound lists the task's in-gates the service has not reported bound on
// their own port: peers are told that port, so any other is no good.
func unbound(d contract.TaskData, st control.State) []string {
	var missing []string
	for _, g := range d.InGates() {
		i := slices.IndexFunc(st.Gates, func(gi control.GateInfo) bool { return gi.Name == g.Name })
		switch {
		case i < 0 || st.Gates[i].Bound == "":
			missing = append(missing, fmt.Sprintf("%s (port %d)", g.Name, g.Port))
		default:
			ep, err := control.ParseBindEndpoint(st.Gates[i].Bound)
			if err != nil || ep.Port != g.Port {
				missing = append(missing, fmt.Sprintf("%s (bound on %s, not on its port %d)", g.Name, st.Gates[i].Bound, g.Port))
			}
		}
	}
	return missing
}

// notReadyWhy says what the service still lacks at the ready timeout.
func notReadyWhy(t *task) string {
	to := t.data.ReadyTimeout()
	if !t.helloed {
		return fmt.Sprintf("service not ready within %s: it never connected to its control socket (a service with in-gates must open them with the gate library)", to)
	}
	missing := unbound(t.data, t.svc)
	if len(missing) == 0 {
		return fmt.Sprintf("service not ready within %s: it has not reported its in-gates bound", to)
	}
	return fmt.Sprintf("service not ready within %s: in-gates not bound: %s", to, strings.Join(missing, ", "))
}
