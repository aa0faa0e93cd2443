package linkspec

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tiltai/tiltai/internal/linkvocab"
)

// FormatVersion is the only link-spec format version this package reads.
const FormatVersion = 1

// Limits the validator enforces. They bound what one spec can ask of a cluster
// and of this process (a spec is parsed on every submission).
const (
	MaxInstances   = 10000
	MaxCPUs        = 1024.0
	MaxMemMiB      = 1 << 20 // 1 TiB
	MaxDiskMiB     = 1 << 24 // 16 TiB
	MaxGracePeriod = time.Hour
	MaxSpecBytes   = 1 << 20
	MaxServices    = 1000
	MaxGates       = linkvocab.MaxGates // per service
	MaxLinks       = 10000
	// MaxReach bounds the instances one out-gate reaches through all its
	// links (its peer list); gates refuse longer lists.
	MaxReach = linkvocab.MaxReach
	// DefaultMaxTasks bounds the sum of a spec's instances unless a
	// scheduler is configured otherwise (ParseOptions.MaxTasks, --max_tasks).
	DefaultMaxTasks = 20000
	maxCommandBytes = 64 << 10
)

// Defaults applied to fields a spec leaves out.
const (
	DefaultInstances       = 1
	DefaultCPUs            = 0.1
	DefaultMemMiB          = 32.0
	DefaultGracePeriod     = 5 * time.Second
	DefaultReadyTimeout    = 60 * time.Second
	DefaultLivenessTimeout = 30 * time.Second
	DefaultBackoffInitial  = time.Second
	DefaultBackoffFactor   = 1.15
	DefaultBackoffMax      = 5 * time.Minute
)

// Spec is a parsed, normalised link spec: services by name and links sorted.
type Spec struct {
	Version  int                 `json:"version"`
	Services map[string]*Service `json:"services"`
	Links    []Link              `json:"links"`

	// file is the name the spec was parsed from, for problem locations.
	file string
	// locs maps a field path ("services.feeder.instances", "links[2].from")
	// to where it was written, so problems found after parsing are located.
	locs map[string]Pos
}

// Service is one kind of task: what runs, how many, and its gates.
type Service struct {
	Name            string             `json:"-"`
	Command         string             `json:"command"`
	Image           string             `json:"image,omitempty"`
	ForcePull       bool               `json:"force_pull,omitempty"`
	Volumes         []Volume           `json:"volumes,omitempty"`
	Args            []string           `json:"args,omitempty"`
	Env             map[string]string  `json:"env,omitempty"`
	URIs            []URI              `json:"uris,omitempty"`
	Instances       int                `json:"instances"`
	CPUs            float64            `json:"cpus"`
	Mem             float64            `json:"mem"`
	Disk            float64            `json:"disk"`
	KillGracePeriod Duration           `json:"kill_grace_period"`
	Health          Health             `json:"health"`
	Backoff         Backoff            `json:"backoff"`
	Gates           map[string]Pattern `json:"gates"`
}

// URI is something the Mesos fetcher puts into the task's sandbox.
type URI struct {
	Value      string `json:"uri"`
	Executable bool   `json:"executable,omitempty"`
	Extract    bool   `json:"extract"`
	OutputFile string `json:"output_file,omitempty"`
}

// Volume mounts a directory of the agent's host into a service's image.
type Volume struct {
	HostPath      string     `json:"host_path"`
	ContainerPath string     `json:"container_path"`
	Mode          VolumeMode `json:"mode"`
}

// VolumeMode says whether a service may write to a volume.
type VolumeMode string

// Volume modes. Read-only is the default: a host directory is shared with
// the agent and whatever else runs there.
const (
	ReadOnly  VolumeMode = "ro"
	ReadWrite VolumeMode = "rw"
)

// Health says how the executor judges a service.
type Health struct {
	// ReadyTimeout bounds the wait for every in-gate to be bound; a task that
	// is not ready in time fails.
	ReadyTimeout Duration `json:"ready_timeout"`
	// LivenessTimeout is how long the service may go without a heartbeat on
	// its control socket before it is declared hung; 0 disables the check.
	LivenessTimeout Duration `json:"liveness_timeout"`
}

// Backoff delays relaunches of a crashing service: Initial × Factor^(n-1)
// after the n-th consecutive failure, at most Max (Marathon's scheme).
type Backoff struct {
	Initial Duration `json:"initial"`
	Factor  float64  `json:"factor"`
	Max     Duration `json:"max"`
}

// Delay is the wait before relaunching after the given number of consecutive
// failures (0 → no wait).
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := float64(b.Initial)
	for i := 1; i < failures && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	if d > float64(b.Max) {
		return time.Duration(b.Max)
	}
	return time.Duration(d)
}

// Link joins an out-gate of one service to an in-gate of another.
type Link struct {
	From GateRef `json:"from"`
	To   GateRef `json:"to"`
}

func (l Link) String() string { return l.From.String() + " -> " + l.To.String() }

// GateRef names a gate of a service: "service.gate".
type GateRef struct {
	Service string
	Gate    string
}

func (r GateRef) String() string { return r.Service + "." + r.Gate }

// MarshalText writes "service.gate".
func (r GateRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads "service.gate".
func (r *GateRef) UnmarshalText(b []byte) error {
	ref, err := ParseGateRef(string(b))
	if err != nil {
		return err
	}
	*r = ref
	return nil
}

// ParseGateRef reads "service.gate".
func ParseGateRef(s string) (GateRef, error) {
	svc, gate, ok := strings.Cut(s, ".")
	if !ok || svc == "" || gate == "" || strings.Contains(gate, ".") {
		return GateRef{}, fmt.Errorf("%q is not service.gate", s)
	}
	return GateRef{Service: svc, Gate: gate}, nil
}

// Pattern is a gate's messaging pattern. The patterns, their methods
// (Valid, Sends, Receives, Peer) and the gate-name rule are the ones the
// gates use (internal/linkvocab), so the spec and the gates cannot
// disagree.
type Pattern = linkvocab.Pattern

// The patterns. Out-gates (senders) connect; in-gates (receivers) bind. A
// pair gate is an out-gate where it is a link's source and an in-gate where it
// is a link's target.
const (
	Push = linkvocab.Push
	Pull = linkvocab.Pull
	Pub  = linkvocab.Pub
	Sub  = linkvocab.Sub
	Req  = linkvocab.Req
	Rep  = linkvocab.Rep
	Pair = linkvocab.Pair
)

// Patterns lists every pattern, in documentation order.
var Patterns = linkvocab.Patterns

// Duration is a time.Duration written as a Go duration string ("5s", "1m30s").
type Duration time.Duration

// MarshalText writes the duration as "5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// UnmarshalText reads a Go duration string, so a spec written as JSON (GET
// /v1/spec) decodes back into a Spec.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"5s\"", b)
	}
	*d = Duration(v)
	return nil
}

// InGates returns the service's gates that bind (are some link's target, or
// have a receiving pattern), sorted. Each needs one port.
func (s *Spec) InGates(service string) []string {
	svc := s.Services[service]
	if svc == nil {
		return nil
	}
	var in []string
	for name, p := range svc.Gates {
		if s.binds(service, name, p) {
			in = append(in, name)
		}
	}
	sortStrings(in)
	return in
}

// OutGates returns the service's gates that connect, sorted.
func (s *Spec) OutGates(service string) []string {
	svc := s.Services[service]
	if svc == nil {
		return nil
	}
	var out []string
	for name, p := range svc.Gates {
		if !s.binds(service, name, p) {
			out = append(out, name)
		}
	}
	sortStrings(out)
	return out
}

// binds reports whether a gate binds: receiving patterns always do; a pair gate
// does when it is the target of a link.
func (s *Spec) binds(service, gate string, p Pattern) bool {
	if p != Pair {
		return p.Receives()
	}
	for _, l := range s.Links {
		if l.To.Service == service && l.To.Gate == gate {
			return true
		}
	}
	return false
}

// ServiceNames returns the service names, sorted.
func (s *Spec) ServiceNames() []string {
	names := make([]string, 0, len(s.Services))
	for n := range s.Services {
		names = append(names, n)
	}
	sortStrings(names)
	return names
}

// Clone returns a deep copy of s (positions included), so a caller can change
// it (e.g. scale a service) without touching a spec others hold.
func (s *Spec) Clone() *Spec {
	c := &Spec{Version: s.Version, Services: make(map[string]*Service, len(s.Services)), Links: append([]Link(nil), s.Links...)}
	for n, svc := range s.Services {
		cp := *svc
		cp.Args = append([]string(nil), svc.Args...)
		cp.URIs = append([]URI(nil), svc.URIs...)
		cp.Volumes = append([]Volume(nil), svc.Volumes...)
		cp.Env = cloneMap(svc.Env)
		cp.Gates = cloneMap(svc.Gates)
		c.Services[n] = &cp
	}
	if s.locs != nil {
		c.locs = cloneMap(s.locs)
	}
	c.file = s.file
	return c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func sortRefs(refs []GateRef) {
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Service != refs[j].Service {
			return refs[i].Service < refs[j].Service
		}
		return refs[i].Gate < refs[j].Gate
	})
}
