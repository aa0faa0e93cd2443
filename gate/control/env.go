package control

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// The environment the executor sets for a service (see docs/control-protocol.md).
const (
	// EnvControl is the control socket, unix:///absolute/path. Absent: static mode.
	EnvControl = "TILTAI_CONTROL"
	// EnvTaskID and EnvService name the task and its service (for logs and hello).
	EnvTaskID  = "TILTAI_TASK_ID"
	EnvService = "TILTAI_SERVICE"
	// EnvGatePrefix starts one variable per gate: TILTAI_GATE_<NAME>, NAME being
	// the gate name upper-cased with '-' written as '_'.
	EnvGatePrefix = "TILTAI_GATE_"
	// EnvTLSCert, EnvTLSKey and EnvTLSCA name PEM files; all three or none turn
	// on mutual TLS for every gate connection of the service.
	EnvTLSCert = "TILTAI_TLS_CERT"
	EnvTLSKey  = "TILTAI_TLS_KEY"
	EnvTLSCA   = "TILTAI_TLS_CA"
)

// GateSpec declares one gate: its name, direction and pattern, and either the
// address an in-gate binds or the static peers of an out-gate.
type GateSpec struct {
	Name    string
	Dir     Direction
	Pattern Pattern
	// Bind is an in-gate's bind address, tcp://host:port (port 0: any).
	Bind string
	// Peers are an out-gate's static peers (static mode only), sorted.
	Peers []string
}

// Env is everything a service reads from its TILTAI_* environment.
type Env struct {
	Control string // unix:///abs/path, or "" in static mode
	TaskID  string
	Service string
	Gates   []GateSpec // sorted by name
	TLS     TLSFiles
}

// TLSFiles names the PEM files for mutual TLS; all empty means no TLS.
type TLSFiles struct {
	Cert, Key, CA string
}

// Enabled reports whether TLS files are set.
func (t TLSFiles) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// EnvName returns the variable that declares gate name: TILTAI_GATE_ then the
// name upper-cased with '-' as '_'. Gate names have no '_', so this is
// reversible.
func EnvName(gate string) string {
	return EnvGatePrefix + strings.ReplaceAll(strings.ToUpper(gate), "-", "_")
}

// Value returns the variable's value: pattern@bind for an in-gate,
// pattern>peer,peer for an out-gate.
func (g GateSpec) Value() string {
	if g.Dir == In {
		return string(g.Pattern) + "@" + g.Bind
	}
	return string(g.Pattern) + ">" + strings.Join(g.Peers, ",")
}

// ParseGate parses the value of TILTAI_GATE_<NAME> for gate name:
//
//	pull@tcp://0.0.0.0:31001           an in-gate binding that address
//	push>tcp://10.0.0.5:31001,tcp://…  an out-gate with static peers
//	push>                              an out-gate whose peers come from the control socket
func ParseGate(name, value string) (GateSpec, error) {
	if err := ValidName(name); err != nil {
		return GateSpec{}, err
	}
	i := strings.IndexAny(value, "@>")
	if i < 0 {
		return GateSpec{}, fmt.Errorf("gate %q: value %q: want pattern@tcp://host:port (in-gate) or pattern>tcp://host:port,… (out-gate)", name, value)
	}
	p, err := ParsePattern(value[:i])
	if err != nil {
		return GateSpec{}, fmt.Errorf("gate %q: %w", name, err)
	}
	g := GateSpec{Name: name, Pattern: p}
	rest := value[i+1:]
	if value[i] == '@' {
		g.Dir = In
		if !p.ValidFor(In) {
			return GateSpec{}, fmt.Errorf("gate %q: %q binds, so it must be an in-gate pattern (pull, sub, rep or pair)", name, p)
		}
		ep, err := ParseBindEndpoint(rest)
		if err != nil {
			return GateSpec{}, fmt.Errorf("gate %q: %w", name, err)
		}
		g.Bind = ep.String()
		return g, nil
	}
	g.Dir = Out
	if !p.ValidFor(Out) {
		return GateSpec{}, fmt.Errorf("gate %q: %q connects, so it must be an out-gate pattern (push, pub, req or pair)", name, p)
	}
	if rest == "" {
		return g, nil
	}
	var errs []error
	for j, s := range strings.Split(rest, ",") {
		ep, err := ParseEndpoint(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("gate %q peer %d: %w", name, j, err))
			continue
		}
		g.Peers = append(g.Peers, ep.String())
	}
	if len(g.Peers) > MaxPeers {
		errs = append(errs, fmt.Errorf("gate %q: %d peers (at most %d)", name, len(g.Peers), MaxPeers))
	}
	slices.Sort(g.Peers)
	g.Peers = slices.Compact(g.Peers)
	if p == Pair && len(g.Peers) > 1 {
		errs = append(errs, fmt.Errorf("gate %q: a pair gate has at most one peer, got %d", name, len(g.Peers)))
	}
	if err := errors.Join(errs...); err != nil {
		return GateSpec{}, err
	}
	return g, nil
}

// ParseEnv reads the TILTAI_* variables from environ (as os.Environ returns
// it) and reports every problem at once. Other variables are ignored.
func ParseEnv(environ []string) (Env, error) {
	var (
		env  Env
		errs []error
		seen = map[string]bool{}
	)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "TILTAI_") {
			continue
		}
		switch k {
		case EnvControl:
			if err := checkControlAddr(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
			env.Control = v
		case EnvTaskID:
			env.TaskID = v
		case EnvService:
			env.Service = v
		case EnvTLSCert:
			env.TLS.Cert = v
		case EnvTLSKey:
			env.TLS.Key = v
		case EnvTLSCA:
			env.TLS.CA = v
		default:
			suffix, ok := strings.CutPrefix(k, EnvGatePrefix)
			if !ok {
				continue // other TILTAI_ variables belong to other components
			}
			name := strings.ReplaceAll(strings.ToLower(suffix), "_", "-")
			if EnvName(name) != k {
				errs = append(errs, fmt.Errorf("%s: gate variables are TILTAI_GATE_ then the gate name in upper case with '_' for '-'", k))
				continue
			}
			g, err := ParseGate(name, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
				continue
			}
			if seen[name] {
				errs = append(errs, fmt.Errorf("%s: gate %q declared twice", k, name))
				continue
			}
			seen[name] = true
			env.Gates = append(env.Gates, g)
		}
	}
	if t := env.TLS; t.Enabled() && (t.Cert == "" || t.Key == "" || t.CA == "") {
		errs = append(errs, fmt.Errorf("mutual TLS needs all of %s, %s and %s", EnvTLSCert, EnvTLSKey, EnvTLSCA))
	}
	if env.Control != "" {
		for _, g := range env.Gates {
			if len(g.Peers) > 0 {
				errs = append(errs, fmt.Errorf("%s: static peers are not allowed when %s is set (peers come from the control socket); write %s>", EnvName(g.Name), EnvControl, g.Pattern))
			}
		}
	}
	slices.SortFunc(env.Gates, func(a, b GateSpec) int { return strings.Compare(a.Name, b.Name) })
	if err := errors.Join(errs...); err != nil {
		return Env{}, fmt.Errorf("invalid tiltai environment: %w", err)
	}
	return env, nil
}

// Environ renders env as KEY=value lines, the inverse of ParseEnv.
func (e Env) Environ() []string {
	var out []string
	add := func(k, v string) {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	add(EnvControl, e.Control)
	add(EnvTaskID, e.TaskID)
	add(EnvService, e.Service)
	add(EnvTLSCert, e.TLS.Cert)
	add(EnvTLSKey, e.TLS.Key)
	add(EnvTLSCA, e.TLS.CA)
	for _, g := range e.Gates {
		out = append(out, EnvName(g.Name)+"="+g.Value())
	}
	return out
}

// ControlAddr returns the value of TILTAI_CONTROL for a socket at path, which
// must be absolute.
func ControlAddr(path string) string { return "unix://" + path }

// ControlPath returns the socket path of a TILTAI_CONTROL value.
func ControlPath(addr string) (string, error) {
	if err := checkControlAddr(addr); err != nil {
		return "", err
	}
	return strings.TrimPrefix(addr, "unix://"), nil
}

func checkControlAddr(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "unix" || u.Host != "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" || u.Fragment != "" || "unix://"+u.Path != v {
		return fmt.Errorf("control address %q: want unix:///absolute/path/to/control.sock", v)
	}
	return nil
}
