package control

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Pattern is a ZeroMQ messaging pattern as a gate uses it.
type Pattern string

// The patterns. Out-gates (which connect) use Push, Pub, Req or Pair; in-gates
// (which bind) use Pull, Sub, Rep or Pair.
const (
	Push Pattern = "push"
	Pull Pattern = "pull"
	Pub  Pattern = "pub"
	Sub  Pattern = "sub"
	Req  Pattern = "req"
	Rep  Pattern = "rep"
	Pair Pattern = "pair"
)

// Direction says whether a gate connects to its peers (Out) or binds and lets
// them connect (In).
type Direction string

// The directions.
const (
	In  Direction = "in"
	Out Direction = "out"
)

// ParsePattern returns the pattern named s (lower case) or an error listing the
// valid names.
func ParsePattern(s string) (Pattern, error) {
	switch p := Pattern(s); p {
	case Push, Pull, Pub, Sub, Req, Rep, Pair:
		return p, nil
	}
	return "", fmt.Errorf("unknown pattern %q (want push, pull, pub, sub, req, rep or pair)", s)
}

// ValidFor reports whether p may be used by a gate of direction d.
func (p Pattern) ValidFor(d Direction) bool {
	switch d {
	case Out:
		return p == Push || p == Pub || p == Req || p == Pair
	case In:
		return p == Pull || p == Sub || p == Rep || p == Pair
	}
	return false
}

// Peer returns the pattern of the gate at the other end of a link: push↔pull,
// pub↔sub, req↔rep, pair↔pair.
func (p Pattern) Peer() Pattern {
	switch p {
	case Push:
		return Pull
	case Pull:
		return Push
	case Pub:
		return Sub
	case Sub:
		return Pub
	case Req:
		return Rep
	case Rep:
		return Req
	}
	return p
}

// MaxNameLen is the longest gate name: a DNS label.
const MaxNameLen = 63

// ValidName reports why name is not a valid gate name, or nil. Gate names are
// DNS labels: 1 to 63 characters of a-z, 0-9 and '-', not starting or ending
// with '-'.
func ValidName(name string) error {
	if name == "" {
		return errors.New("gate name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("gate name %.20q… is %d characters long (at most %d)", name, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			continue
		}
		return fmt.Errorf("gate name %q has %q at offset %d (use a-z, 0-9 and '-')", name, c, i)
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("gate name %q starts or ends with '-'", name)
	}
	return nil
}

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
// link spec's limit on how many instances one out-gate may reach (10000),
// so a valid spec never makes a snapshot a gate refuses.
const MaxPeers = 16384

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
