package linkspec

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"net"
	"strconv"
)

// Table is one service's link table: for each out-gate, its pattern and the
// complete sorted list of peer endpoints. Every task of a service has the same
// table (peers depend only on the links and on which target tasks run), so the
// planner builds one per service and tasks share it. Tables are immutable once
// built.
type Table struct {
	Out    map[string]OutGate `json:"out"`
	digest string
}

// OutGate is an out-gate's peers.
type OutGate struct {
	Pattern Pattern  `json:"pattern"`
	Peers   []string `json:"peers"`
}

// Digest identifies the table's content; equal content, equal digest.
func (t *Table) Digest() string {
	if t == nil {
		return ""
	}
	if t.digest == "" {
		t.digest = tableDigest(t)
	}
	return t.digest
}

func tableDigest(t *Table) string {
	h := fnv.New64a()
	for _, g := range sortedKeys(t.Out) {
		og := t.Out[g]
		h.Write([]byte(g))
		h.Write([]byte{0})
		h.Write([]byte(og.Pattern))
		h.Write([]byte{0})
		for _, p := range og.Peers {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// Equal reports whether two tables have the same content.
func (t *Table) Equal(o *Table) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil || len(t.Out) != len(o.Out) || t.Digest() != o.Digest() {
		return false
	}
	for g, a := range t.Out {
		b, ok := o.Out[g]
		if !ok || a.Pattern != b.Pattern || len(a.Peers) != len(b.Peers) {
			return false
		}
		for i := range a.Peers {
			if a.Peers[i] != b.Peers[i] {
				return false
			}
		}
	}
	return true
}

// Endpoint is the address a connecting gate dials to reach a bound in-gate.
func Endpoint(host string, port uint32) string {
	return "tcp://" + net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// ServiceDigest identifies what a task of the service runs: a change in it
// means running tasks are outdated and get replaced. Instances, backoff and
// the kill grace period are left out: they change without a relaunch. Which
// gates bind is included: a pair gate that becomes a link's target needs a port.
// The image reference (as written) and volumes are included; force_pull is not:
// it says how the next launch pulls, and a moved tag is rolled out by
// changing the reference (best: to a digest).
func (spec *Spec) ServiceDigest(name string) string {
	s := spec.Services[name]
	if s == nil {
		return ""
	}
	h := sha256.New()
	field := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(strconv.Itoa(len(p))))
			h.Write([]byte{':'})
			h.Write([]byte(p))
		}
		h.Write([]byte{';'})
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	d := func(v Duration) string { return strconv.FormatInt(int64(v), 10) }
	field("command", s.Command)
	if s.Image != "" {
		// Only when set, so the digests of services without an image, and
		// so their running tasks, stay as they were.
		field("image", s.Image)
		for _, v := range s.Volumes {
			field("volume", v.HostPath, v.ContainerPath, string(v.Mode))
		}
	}
	field(append([]string{"args"}, s.Args...)...)
	for _, k := range sortedKeys(s.Env) {
		field("env", k, s.Env[k])
	}
	for _, u := range s.URIs {
		field("uri", u.Value, strconv.FormatBool(u.Executable), strconv.FormatBool(u.Extract), u.OutputFile)
	}
	field("res", f(s.CPUs), f(s.Mem), f(s.Disk))
	field("health", d(s.Health.ReadyTimeout), d(s.Health.LivenessTimeout))
	for _, g := range sortedKeys(s.Gates) {
		field("gate", g, string(s.Gates[g]))
	}
	field(append([]string{"binds"}, spec.InGates(name)...)...)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
