package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/linkvocab"
)

// Defaults for the durations a TaskData may leave out. They match the link
// spec's defaults (docs/linkspec.md).
const (
	DefaultReadyTimeout    = 60 * time.Second
	DefaultLivenessTimeout = 30 * time.Second
	DefaultKillGracePeriod = 5 * time.Second
)

// Bounds on a TaskData, so a confused scheduler cannot make the executor hold
// or pass on unbounded state.
const (
	MaxTaskDataBytes = 256 << 10
	MaxGates         = linkvocab.MaxGates
	MaxArgs          = 1024
	MaxEnv           = 1024
	MaxTimeout       = 24 * time.Hour
	MaxGracePeriod   = time.Hour
)

// TaskData is what the scheduler puts in TaskInfo.data (JSON): the service to
// run and its gates. Example:
//
//	{"service":"encryptor","command":"tiltai","args":["demo","encryptor"],
//	 "env":{"K":"V"},
//	 "gates":[{"name":"plaintext","pattern":"pull","port":31001},
//	          {"name":"ciphertext","pattern":"push"}],
//	 "health":{"ready_timeout":"60s","liveness_timeout":"30s"},
//	 "kill_grace_period":"10s"}
type TaskData struct {
	// Service names the service (for TILTAI_SERVICE and logs).
	Service string `json:"service"`
	// Command is run directly, without a shell: looked up on the service's
	// PATH (which starts with a directory holding `tiltai`) unless it
	// contains a '/', in which case a relative path is taken from the sandbox.
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Env is added to the service's environment. It may not set the
	// variables the executor owns (TILTAI_CONTROL, TILTAI_TASK_ID,
	// TILTAI_SERVICE, TILTAI_GATE_*); PATH is kept, with the executor's
	// directory put first.
	Env map[string]string `json:"env,omitempty"`
	// Image is the container image the executor and the service run in
	// ("" for none). With one, the service starts in the executor's working
	// directory, which the agent set to the image's WorkingDir, as Docker
	// would; without, in the sandbox.
	Image string `json:"image,omitempty"`
	// Gates the service opens. In-gates (pull, sub, rep, or pair with a port)
	// carry the port they bind on 0.0.0.0; out-gates (push, pub, req, or pair
	// without a port) have none.
	Gates []Gate `json:"gates,omitempty"`
	// Health bounds readiness and liveness; absent fields take the defaults.
	Health Health `json:"health,omitzero"`
	// KillGracePeriod is the time from a KILL to SIGKILL (default 5s). A
	// kill_policy on the TaskInfo or the KILL event overrides it.
	KillGracePeriod *Duration `json:"kill_grace_period,omitempty"`
}

// Gate declares one gate of the service.
type Gate struct {
	Name    string          `json:"name"`
	Pattern control.Pattern `json:"pattern"`
	// Port is the port an in-gate binds (from the offer); 0 for an out-gate.
	Port int `json:"port,omitempty"`
}

// Health says how the executor judges the service.
type Health struct {
	// ReadyTimeout bounds the time from start until every in-gate is bound
	// (default 60s).
	ReadyTimeout *Duration `json:"ready_timeout,omitempty"`
	// LivenessTimeout is how long the service may go without a heartbeat on
	// the control socket before it is declared hung (default 30s; "0s" turns
	// the check off).
	LivenessTimeout *Duration `json:"liveness_timeout,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("10s", "1m30s", "250ms").
type Duration time.Duration

// D returns a pointer to d as a Duration, for the optional TaskData fields.
func D(d time.Duration) *Duration { x := Duration(d); return &x }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%.40q is not a duration (write e.g. \"10s\", \"1m30s\" or \"250ms\")", b)
	}
	*d = Duration(v)
	return nil
}

// In reports whether g is an in-gate (it binds a port).
func (g Gate) In() bool {
	if g.Pattern == control.Pair {
		return g.Port != 0
	}
	return g.Pattern.ValidFor(control.In)
}

// Dir returns the gate's direction.
func (g Gate) Dir() control.Direction {
	if g.In() {
		return control.In
	}
	return control.Out
}

// ReadyTimeout returns the effective ready timeout.
func (d TaskData) ReadyTimeout() time.Duration {
	if d.Health.ReadyTimeout == nil {
		return DefaultReadyTimeout
	}
	return d.Health.ReadyTimeout.Std()
}

// LivenessTimeout returns the effective liveness timeout (0: no check).
func (d TaskData) LivenessTimeout() time.Duration {
	if d.Health.LivenessTimeout == nil {
		return DefaultLivenessTimeout
	}
	return d.Health.LivenessTimeout.Std()
}

// GracePeriod returns the effective kill grace period.
func (d TaskData) GracePeriod() time.Duration {
	if d.KillGracePeriod == nil {
		return DefaultKillGracePeriod
	}
	return d.KillGracePeriod.Std()
}

// InGates returns the in-gates, in declaration order.
func (d TaskData) InGates() []Gate {
	var in []Gate
	for _, g := range d.Gates {
		if g.In() {
			in = append(in, g)
		}
	}
	return in
}

// GateSpecs returns the gates as the service's environment declares them:
// in-gates binding tcp://0.0.0.0:PORT, out-gates with no static peers (they
// come from the control socket).
func (d TaskData) GateSpecs() []control.GateSpec {
	specs := make([]control.GateSpec, 0, len(d.Gates))
	for _, g := range d.Gates {
		s := control.GateSpec{Name: g.Name, Dir: g.Dir(), Pattern: g.Pattern}
		if g.In() {
			s.Bind = control.Endpoint{Host: "0.0.0.0", Port: g.Port}.String()
		}
		specs = append(specs, s)
	}
	slices.SortFunc(specs, func(a, b control.GateSpec) int { return strings.Compare(a.Name, b.Name) })
	return specs
}

// Validate lists every problem with d, each naming the field.
func (d TaskData) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	text := func(field, v string, max int) {
		switch {
		case !utf8.ValidString(v):
			add("%s is not valid UTF-8", field)
		case len(v) > max:
			add("%s is %d bytes long (at most %d)", field, len(v), max)
		case strings.ContainsRune(v, 0):
			add("%s contains a NUL byte", field)
		}
	}
	if d.Service == "" {
		add("service is empty (name the service, e.g. \"encryptor\")")
	}
	text("service", d.Service, 253)
	if d.Command == "" {
		add("command is empty (name the program to run, e.g. \"tiltai\")")
	}
	text("command", d.Command, 4096)
	text("image", d.Image, 4096)
	if len(d.Args) > MaxArgs {
		add("args has %d entries (at most %d)", len(d.Args), MaxArgs)
	}
	for i, a := range d.Args {
		text(fmt.Sprintf("args[%d]", i), a, 64<<10)
	}
	if len(d.Env) > MaxEnv {
		add("env has %d entries (at most %d)", len(d.Env), MaxEnv)
	}
	for _, k := range slices.Sorted(maps.Keys(d.Env)) {
		if err := ValidEnvKey(k); err != nil {
			add("env %q: %v", k, err)
		}
		text(fmt.Sprintf("env %q", k), d.Env[k], 64<<10)
	}
	if len(d.Gates) > MaxGates {
		add("gates has %d entries (at most %d)", len(d.Gates), MaxGates)
	}
	names, ports := map[string]int{}, map[int]string{}
	for i, g := range d.Gates {
		where := fmt.Sprintf("gates[%d]", i)
		if g.Name != "" {
			where = fmt.Sprintf("gates[%d] %q", i, g.Name)
		}
		if err := control.ValidName(g.Name); err != nil {
			add("%s: %v", where, err)
		} else if j, dup := names[g.Name]; dup {
			add("%s: gate name already used by gates[%d]", where, j)
		} else {
			names[g.Name] = i
		}
		if _, err := control.ParsePattern(string(g.Pattern)); err != nil {
			add("%s: %v", where, err)
			continue
		}
		switch {
		case g.Port < 0 || g.Port > 65535:
			add("%s: port %d is not in 1..65535", where, g.Port)
		case g.In() && g.Port == 0:
			add("%s: in-gate pattern %q needs the port it binds (from the offer's ports)", where, g.Pattern)
		case !g.In() && g.Port != 0:
			add("%s: out-gate pattern %q connects to its peers and takes no port", where, g.Pattern)
		case g.In():
			if other, dup := ports[g.Port]; dup {
				add("%s: port %d already bound by gate %q", where, g.Port, other)
			}
			ports[g.Port] = g.Name
		}
	}
	dur := func(field string, v *Duration, min, max time.Duration) {
		if v == nil {
			return
		}
		if v.Std() < min || v.Std() > max {
			add("%s %s is not in %s..%s", field, v.Std(), min, max)
		}
	}
	dur("health.ready_timeout", d.Health.ReadyTimeout, time.Millisecond, MaxTimeout)
	dur("health.liveness_timeout", d.Health.LivenessTimeout, 0, MaxTimeout)
	if v := d.Health.LivenessTimeout; v != nil && v.Std() > 0 && v.Std() < 50*time.Millisecond {
		add("health.liveness_timeout %s is below 50ms (use 0s to turn the check off)", v.Std())
	}
	dur("kill_grace_period", d.KillGracePeriod, 0, MaxGracePeriod)
	return errors.Join(errs...)
}

// ValidEnvKey reports why k cannot be set in the service's environment.
func ValidEnvKey(k string) error {
	if k == "" {
		return errors.New("empty variable name")
	}
	if strings.ContainsAny(k, "=\x00") {
		return errors.New("a variable name cannot contain '=' or NUL")
	}
	switch k {
	case control.EnvControl, control.EnvTaskID, control.EnvService:
		return errors.New("set by the executor; remove it from env")
	}
	if strings.HasPrefix(k, control.EnvGatePrefix) {
		return errors.New("gate variables are set by the executor from gates; declare the gate in gates instead")
	}
	return nil
}

// EncodeTaskData validates d and renders it as TaskInfo.data.
func EncodeTaskData(d TaskData) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("cannot encode task data: %w", err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("cannot encode task data: %w", err)
	}
	return b, nil
}

// DecodeTaskData parses and validates TaskInfo.data, listing every problem.
// Unknown fields are problems too: the scheduler and the executor ship
// together, so a field this executor does not know is a mismatch worth
// failing loudly on.
func DecodeTaskData(b []byte) (TaskData, error) {
	if len(b) == 0 {
		return TaskData{}, errors.New("task data is empty: the scheduler must put the service's TaskData JSON in TaskInfo.data")
	}
	if len(b) > MaxTaskDataBytes {
		return TaskData{}, fmt.Errorf("task data is %d bytes (at most %d)", len(b), MaxTaskDataBytes)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return TaskData{}, fmt.Errorf("task data is not a JSON object: %w", err)
	}
	var errs []error
	known := map[string]bool{"service": true, "command": true, "args": true, "env": true, "image": true, "gates": true, "health": true, "kill_grace_period": true}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !known[k] {
			errs = append(errs, fmt.Errorf("unknown field %q (is the executor older than the scheduler?)", k))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d TaskData
	if err := dec.Decode(&d); err != nil {
		return TaskData{}, fmt.Errorf("task data is not valid TaskData JSON: %w", errors.Join(append(errs, err)...))
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return TaskData{}, fmt.Errorf("invalid task data: %w", err)
	}
	return d, nil
}
