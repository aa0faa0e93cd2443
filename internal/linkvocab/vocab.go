package linkvocab

import (
	"errors"
	"fmt"
)

// Pattern is a gate's messaging pattern (ZeroMQ's names).
type Pattern string

// The patterns. Out-gates (senders, which connect) use Push, Pub, Req or
// Pair; in-gates (receivers, which bind) use Pull, Sub, Rep or Pair. A pair
// gate is an out-gate where it is a link's source and an in-gate where it is
// a link's target.
const (
	Push Pattern = "push"
	Pull Pattern = "pull"
	Pub  Pattern = "pub"
	Sub  Pattern = "sub"
	Req  Pattern = "req"
	Rep  Pattern = "rep"
	Pair Pattern = "pair"
)

// Patterns lists every pattern, in documentation order.
var Patterns = []Pattern{Push, Pull, Pub, Sub, Req, Rep, Pair}

// ParsePattern returns the pattern named s (lower case) or an error listing
// the valid names.
func ParsePattern(s string) (Pattern, error) {
	if p := Pattern(s); p.Valid() {
		return p, nil
	}
	return "", fmt.Errorf("unknown pattern %q (want push, pull, pub, sub, req, rep or pair)", s)
}

// Valid reports whether p is a known pattern.
func (p Pattern) Valid() bool {
	switch p {
	case Push, Pull, Pub, Sub, Req, Rep, Pair:
		return true
	}
	return false
}

// Sends reports whether a gate of this pattern can be a link's source (an
// out-gate).
func (p Pattern) Sends() bool { return p == Push || p == Pub || p == Req || p == Pair }

// Receives reports whether a gate of this pattern can be a link's target
// (an in-gate).
func (p Pattern) Receives() bool { return p == Pull || p == Sub || p == Rep || p == Pair }

// Peer is the pattern of the gate at the other end of a link: push↔pull,
// pub↔sub, req↔rep, pair↔pair; "" for an unknown pattern, which has no
// peer.
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
	case Pair:
		return Pair
	}
	return ""
}

// Direction says whether a gate connects to its peers (Out) or binds and
// lets them connect (In).
type Direction string

// The directions.
const (
	In  Direction = "in"
	Out Direction = "out"
)

// ValidFor reports whether p may be used by a gate of direction d.
func (p Pattern) ValidFor(d Direction) bool {
	switch d {
	case Out:
		return p.Sends()
	case In:
		return p.Receives()
	}
	return false
}

// MaxNameLen is the longest gate name: a DNS label.
const MaxNameLen = 63

// ValidName reports why name is not a valid gate name, or nil. Gate names
// are DNS labels: 1 to 63 characters of a-z, 0-9 and '-', not starting or
// ending with '-'. A loop, not a regexp: it says which byte is wrong.
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

// IsDNSLabel reports whether s is a DNS label: the rule for gate names,
// which linkspec applies to service names too.
func IsDNSLabel(s string) bool { return ValidName(s) == nil }

// Limits on gates and peers.
const (
	// MaxGates bounds the gates of one service (a spec's, a task's).
	MaxGates = 64
	// MaxReach bounds the instances one out-gate of a valid spec reaches
	// through all its links: the longest peer list a spec can give it.
	MaxReach = 10000
	// MaxPeers bounds one out-gate's peer list in a snapshot or a static
	// TILTAI_GATE_* list. It is above MaxReach, so a valid spec never makes
	// a snapshot a gate refuses.
	MaxPeers = 16384
)

// MaxPeers must not be below MaxReach: this fails to compile if it is.
var _ [MaxPeers - MaxReach]struct{}
