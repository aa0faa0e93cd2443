package control

import (
	"fmt"
	"slices"
	"strings"
)

// The executor does not take a service's word for what it has done: the
// zero-loss guarantee rests on "applied" being true, so every claim it can
// check against what it gave the service or sent to it is checked, and a
// false one is a protocol error (see docs/control-protocol.md, §5).

// wildcardHost reports whether h, from a bind address, means every interface.
func wildcardHost(h string) bool { return h == "*" || h == "0.0.0.0" || h == "::" }

// checkGates checks the gates a service declares in a hello or gates message
// against the ones it was given (want, as in its environment): each must be
// one of them, with the same direction and pattern, and an in-gate's bound
// address must be on the port it was assigned (any port if it was assigned
// port 0) and on the host it was assigned or on every interface. A service
// may declare fewer gates than it was given (it opens them as it goes).
func checkGates(typ string, want []GateSpec, got []GateInfo) error {
	for i, g := range got {
		at := fmt.Sprintf("%s.gates[%d]", typ, i)
		j := slices.IndexFunc(want, func(w GateSpec) bool { return w.Name == g.Name })
		if j < 0 {
			return fmt.Errorf("%s.name %q: not a gate of this task (%s)", at, g.Name, givenGates(want))
		}
		w := want[j]
		switch {
		case g.Dir != w.Dir:
			return fmt.Errorf("%s.dir %q: gate %q was given as an %s-gate (%s=%s)", at, g.Dir, g.Name, w.Dir, EnvName(w.Name), w.Value())
		case g.Pattern != w.Pattern:
			return fmt.Errorf("%s.pattern %q: gate %q was given as %s (%s=%s)", at, g.Pattern, g.Name, w.Pattern, EnvName(w.Name), w.Value())
		case g.Bound == "":
			continue
		case w.Dir == Out:
			return fmt.Errorf("%s.bound %q: gate %q is an out-gate; only in-gates report a bound address", at, g.Bound, g.Name)
		}
		if err := checkBound(w, g.Bound); err != nil {
			return fmt.Errorf("%s.bound %q: %w", at, g.Bound, err)
		}
	}
	return nil
}

// checkBound checks an in-gate's reported listening address against its
// assigned bind address.
func checkBound(w GateSpec, bound string) error {
	got, err := ParseBindEndpoint(bound)
	if err != nil {
		return err // the parser has already refused this; kept for safety
	}
	want, err := ParseBindEndpoint(w.Bind)
	if err != nil {
		return fmt.Errorf("gate %q has no valid assigned address %q", w.Name, w.Bind)
	}
	if want.Port != 0 && got.Port != want.Port {
		return fmt.Errorf("gate %q was assigned port %d", w.Name, want.Port)
	}
	// Peers are told the agent's address and the assigned port: a service
	// listening on one other interface (say 127.0.0.1) would be unreachable.
	if !wildcardHost(got.Host) && (wildcardHost(want.Host) || want.Host == "" || got.Host != want.Host) {
		where := "every interface (0.0.0.0, [::] or *)"
		if !wildcardHost(want.Host) && want.Host != "" {
			where = want.Host + " or every interface"
		}
		return fmt.Errorf("gate %q must listen on %s as assigned (%s=%s), not on host %s", w.Name, where, EnvName(w.Name), w.Value(), got.Host)
	}
	return nil
}

func givenGates(want []GateSpec) string {
	if len(want) == 0 {
		return "it was given no gates"
	}
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = w.Name
	}
	return "its gates: " + strings.Join(names, ", ")
}

// maxUnapplied bounds how many versions sent since the latest applied one
// the server remembers; an older one is then refused as never sent.
const maxUnapplied = 1024

// ledger is what the server has sent a service and what it has accepted as
// applied: the ground truth an "applied" claim is checked against.
type ledger struct {
	applied uint64   // latest version accepted as applied
	sent    []uint64 // versions written to a connection since then, ascending
}

// sent records that snapshot v was written to the service.
func (l *ledger) wrote(v uint64) {
	if v <= l.applied || slices.Contains(l.sent, v) {
		return
	}
	l.sent = append(l.sent, v)
	if len(l.sent) > maxUnapplied {
		l.sent = slices.Delete(l.sent, 0, len(l.sent)-maxUnapplied)
	}
}

// apply checks the claim field = v ("applied.version" or "status.applied")
// and, if it holds, records it. Repeating the latest applied version is
// fine (a service re-sends it after every reconnect); an older one is a
// false claim in an applied message, and a stale heartbeat in a status one
// (stale says so: a status may have been taken before the applied was sent).
func (l *ledger) apply(field string, v uint64, stale bool) error {
	switch {
	case v == l.applied:
		return nil
	case v < l.applied && stale:
		return nil
	case v < l.applied:
		return fmt.Errorf("%s %d: older than version %d, already applied (applied versions only increase)", field, v, l.applied)
	case !slices.Contains(l.sent, v):
		return fmt.Errorf("%s %d: version %d was never sent to this service (%s)", field, v, v, l.describeSent())
	}
	l.applied = v
	l.sent = slices.DeleteFunc(l.sent, func(s uint64) bool { return s <= v })
	return nil
}

func (l *ledger) describeSent() string {
	if len(l.sent) == 0 {
		return fmt.Sprintf("no version above %d was sent", l.applied)
	}
	parts := make([]string, 0, min(len(l.sent), 5))
	for _, s := range l.sent[max(0, len(l.sent)-5):] {
		parts = append(parts, fmt.Sprint(s))
	}
	return "versions sent and not yet applied: " + strings.Join(parts, ", ")
}
