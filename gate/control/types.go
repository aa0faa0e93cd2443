package control

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/tiltai/tiltai/internal/linkvocab"
)

// Pattern is a ZeroMQ messaging pattern as a gate uses it. The patterns,
// directions, gate-name rule and peer limits are the link spec's too
// (internal/linkvocab): one definition, so a spec the validator accepts is
// one the gates take.
type Pattern = linkvocab.Pattern

// The patterns. Out-gates (which connect) use Push, Pub, Req or Pair; in-gates
// (which bind) use Pull, Sub, Rep or Pair.
const (
	Push = linkvocab.Push
	Pull = linkvocab.Pull
	Pub  = linkvocab.Pub
	Sub  = linkvocab.Sub
	Req  = linkvocab.Req
	Rep  = linkvocab.Rep
	Pair = linkvocab.Pair
)

// Direction says whether a gate connects to its peers (Out) or binds and lets
// them connect (In).
type Direction = linkvocab.Direction

// The directions.
const (
	In  = linkvocab.In
	Out = linkvocab.Out
)

// ParsePattern returns the pattern named s (lower case) or an error listing the
// valid names.
func ParsePattern(s string) (Pattern, error) { return linkvocab.ParsePattern(s) }

// MaxNameLen is the longest gate name: a DNS label.
const MaxNameLen = linkvocab.MaxNameLen

// ValidName reports why name is not a valid gate name, or nil. Gate names are
// DNS labels: 1 to 63 characters of a-z, 0-9 and '-', not starting or ending
// with '-'.
func ValidName(name string) error { return linkvocab.ValidName(name) }

// Endpoint is a parsed gate address: only tcp://host:port is supported.
type Endpoint struct {
	Host string // IP or DNS name; "" or "*" only in a bind address
	Port int    // 0 only in a bind address (any free port)
}

// String returns the canonical form tcp://host:port.
func (e Endpoint) String() string {
	return "tcp://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// Addr returns host:port for net.Dial and net.Listen ("*" becomes "").
func (e Endpoint) Addr() string {
	h := e.Host
	if h == "*" {
		h = ""
	}
	return net.JoinHostPort(h, strconv.Itoa(e.Port))
}

// ParseEndpoint parses a peer address "tcp://host:port" (port 1..65535).
func ParseEndpoint(s string) (Endpoint, error) { return parseEndpoint(s, false) }

// ParseBindEndpoint parses a bind address "tcp://host:port"; host may be "*" or
// an IP, and port 0 asks for any free port.
func ParseBindEndpoint(s string) (Endpoint, error) { return parseEndpoint(s, true) }

func parseEndpoint(s string, bind bool) (Endpoint, error) {
	rest, ok := strings.CutPrefix(s, "tcp://")
	if !ok {
		return Endpoint{}, fmt.Errorf("endpoint %q: want tcp://host:port", s)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: want tcp://host:port: %v", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !bind) {
		lo := 1
		if bind {
			lo = 0
		}
		return Endpoint{}, fmt.Errorf("endpoint %q: port %q is not a number in %d..65535", s, port, lo)
	}
	if host == "" || host == "*" {
		if !bind {
			return Endpoint{}, fmt.Errorf("endpoint %q: a peer address needs a host", s)
		}
	} else if err := validHost(host); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %v", s, err)
	}
	return Endpoint{Host: host, Port: n}, nil
}

func validHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
			}
		}
	}
	return nil
}

// OutLink is one out-gate's part of a snapshot: its pattern and its complete,
// sorted peer list.
type OutLink struct {
	Pattern Pattern  `json:"pattern"`
	Peers   []string `json:"peers"`
}

// Snapshot is the complete, versioned set of peers of every out-gate of one
// task. Versions are strictly increasing per task; a service applies a version
// at most once and never an older one. An out-gate absent from Out has no
// peers. The same JSON shape is used on every hop: scheduler → executor →
// service.
type Snapshot struct {
	Version uint64             `json:"version"`
	Out     map[string]OutLink `json:"out"`
}

// MaxPeers bounds one out-gate's peer list in a snapshot. It is above the
// link spec's limit on how many instances one out-gate may reach
// (linkspec.MaxReach), so a valid spec never makes a snapshot a gate refuses.
const MaxPeers = linkvocab.MaxPeers

// Validate lists every problem with s: version 0, bad gate names, patterns not
// valid for an out-gate, bad, unsorted or duplicate peers, more than one peer
// for a pair gate.
func (s Snapshot) Validate() error {
	var errs []error
	if s.Version == 0 {
		errs = append(errs, errors.New("snapshot version is 0 (versions start at 1)"))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Out)) {
		l := s.Out[name]
		if err := ValidName(name); err != nil {
			errs = append(errs, fmt.Errorf("out-gate %q: %w", name, err))
		}
		if !l.Pattern.ValidFor(Out) {
			errs = append(errs, fmt.Errorf("out-gate %q: pattern %q is not an out-gate pattern (push, pub, req or pair)", name, l.Pattern))
		}
		if len(l.Peers) > MaxPeers {
			errs = append(errs, fmt.Errorf("out-gate %q: %d peers (at most %d)", name, len(l.Peers), MaxPeers))
			continue
		}
		if l.Pattern == Pair && len(l.Peers) > 1 {
			errs = append(errs, fmt.Errorf("out-gate %q: a pair gate has at most one peer, got %d", name, len(l.Peers)))
		}
		for i, p := range l.Peers {
			if _, err := ParseEndpoint(p); err != nil {
				errs = append(errs, fmt.Errorf("out-gate %q peer %d: %w", name, i, err))
			}
			if i > 0 && l.Peers[i-1] >= p {
				errs = append(errs, fmt.Errorf("out-gate %q: peers not sorted and unique at %d (%q after %q)", name, i, p, l.Peers[i-1]))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckDeclared reports why s does not fit the gates a task declares: an
// out-gate it names that is not declared, is declared an in-gate, or with
// another pattern. The executor refuses such a snapshot before passing it
// on and a gate hub refuses it on arrival, both with this error, so an
// undeclared out-gate is a nack wherever it is found, never a silent skip.
func (s Snapshot) CheckDeclared(gates []GateSpec) error {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(s.Out)) {
		l := s.Out[name]
		i := slices.IndexFunc(gates, func(g GateSpec) bool { return g.Name == name })
		switch {
		case i < 0:
			problems = append(problems, fmt.Sprintf("out-gate %q is not a gate of this task", name))
		case gates[i].Dir != Out:
			problems = append(problems, fmt.Sprintf("%q is an in-gate of this task, not an out-gate", name))
		case gates[i].Pattern != l.Pattern:
			problems = append(problems, fmt.Sprintf("out-gate %q is %s in the task, %s in the snapshot", name, gates[i].Pattern, l.Pattern))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("link snapshot %d does not fit the task: %s", s.Version, strings.Join(problems, "; "))
	}
	return nil
}

// Normalize returns a copy of s with every peer list sorted and deduplicated,
// as Validate wants it.
func (s Snapshot) Normalize() Snapshot {
	out := Snapshot{Version: s.Version, Out: make(map[string]OutLink, len(s.Out))}
	for name, l := range s.Out {
		peers := slices.Clone(l.Peers)
		slices.Sort(peers)
		out.Out[name] = OutLink{Pattern: l.Pattern, Peers: slices.Compact(peers)}
	}
	return out
}

// Peers returns the peers of out-gate name (nil when absent).
func (s Snapshot) Peers(name string) []string {
	return s.Out[name].Peers
}
