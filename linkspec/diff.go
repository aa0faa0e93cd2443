package linkspec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ChangeKind names one kind of difference between two specs.
type ChangeKind string

// Change kinds.
const (
	ServiceAdded   ChangeKind = "service-added"
	ServiceRemoved ChangeKind = "service-removed"
	ServiceScaled  ChangeKind = "service-scaled"
	ServiceChanged ChangeKind = "service-changed"
	LinkAdded      ChangeKind = "link-added"
	LinkRemoved    ChangeKind = "link-removed"
)

// Change is one difference between two specs, and what it will do.
type Change struct {
	Kind    ChangeKind `json:"kind"`
	Service string     `json:"service,omitempty"`
	Link    *Link      `json:"link,omitempty"`
	// Instances before and after (added, removed, scaled).
	From int `json:"from"`
	To   int `json:"to"`
	// Fields that changed (service-changed), and whether running tasks
	// will be replaced because of it (a rolling, drain-first replacement).
	Fields   []string `json:"fields,omitempty"`
	Replaces bool     `json:"replaces,omitempty"`
	// Image before and after, when it changed ("" for none).
	ImageFrom string `json:"image_from,omitempty"`
	ImageTo   string `json:"image_to,omitempty"`
}

func (c Change) String() string {
	switch c.Kind {
	case ServiceAdded:
		return fmt.Sprintf("+ service %s (%s)", c.Service, plural(c.To, "instance"))
	case ServiceRemoved:
		return fmt.Sprintf("- service %s (%s drained and killed)", c.Service, plural(c.From, "instance"))
	case ServiceScaled:
		verb := "scale up"
		if c.To < c.From {
			verb = "scale down (drain first)"
		}
		return fmt.Sprintf("~ service %s: instances %d -> %d, %s", c.Service, c.From, c.To, verb)
	case ServiceChanged:
		what := "applied without restarting tasks"
		if slices.Contains(c.Fields, "constraints") {
			// A deliberate choice, Marathon's: moving running tasks for a
			// new constraint would be an outage nobody asked for.
			what = "running tasks stay; new tasks are placed by it"
		}
		if c.Replaces {
			what = fmt.Sprintf("%s replaced, rolling, drain first", plural(c.To, "task"))
		}
		return fmt.Sprintf("~ service %s: %s changed; %s%s", c.Service, strings.Join(c.Fields, ", "), what, imageChange(c.ImageFrom, c.ImageTo))
	case LinkAdded:
		return fmt.Sprintf("+ link %s", c.Link)
	case LinkRemoved:
		return fmt.Sprintf("- link %s", c.Link)
	}
	return string(c.Kind)
}

// Diff lists what changes from old to new: services added, removed, scaled
// or changed (and whether that replaces tasks), links added and removed.
// Services come in name order, then links in spec order.
func Diff(old, new *Spec) []Change {
	var out []Change
	names := map[string]bool{}
	for n := range old.Services {
		names[n] = true
	}
	for n := range new.Services {
		names[n] = true
	}
	for _, n := range sortedKeys(names) {
		a, b := old.Services[n], new.Services[n]
		switch {
		case a == nil:
			out = append(out, Change{Kind: ServiceAdded, Service: n, To: b.Instances})
		case b == nil:
			out = append(out, Change{Kind: ServiceRemoved, Service: n, From: a.Instances})
		default:
			if fields := changedFields(a, b); len(fields) > 0 {
				out = append(out, Change{Kind: ServiceChanged, Service: n, From: a.Instances, To: b.Instances, Fields: fields,
					Replaces: old.ServiceDigest(n) != new.ServiceDigest(n)})
				if a.Image != b.Image {
					out[len(out)-1].ImageFrom, out[len(out)-1].ImageTo = a.Image, b.Image
				}
			}
			if a.Instances != b.Instances {
				out = append(out, Change{Kind: ServiceScaled, Service: n, From: a.Instances, To: b.Instances})
			}
		}
	}
	inOld, inNew := linkSet(old), linkSet(new)
	for _, l := range old.Links {
		if !inNew[l] {
			l := l
			out = append(out, Change{Kind: LinkRemoved, Link: &l})
		}
	}
	for _, l := range new.Links {
		if !inOld[l] {
			l := l
			out = append(out, Change{Kind: LinkAdded, Link: &l})
		}
	}
	return out
}

func linkSet(s *Spec) map[Link]bool {
	m := make(map[Link]bool, len(s.Links))
	for _, l := range s.Links {
		m[l] = true
	}
	return m
}

// changedFields names the fields other than instances that differ.
func changedFields(a, b *Service) []string {
	var f []string
	check := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			f = append(f, name)
		}
	}
	check("command", a.Command, b.Command)
	check("image", a.Image, b.Image)
	check("force_pull", a.ForcePull, b.ForcePull)
	check("volumes", a.Volumes, b.Volumes)
	check("args", a.Args, b.Args)
	check("env", a.Env, b.Env)
	check("uris", a.URIs, b.URIs)
	check("cpus", a.CPUs, b.CPUs)
	check("mem", a.Mem, b.Mem)
	check("disk", a.Disk, b.Disk)
	check("kill_grace_period", a.KillGracePeriod, b.KillGracePeriod)
	check("health", a.Health, b.Health)
	check("backoff", a.Backoff, b.Backoff)
	check("gates", a.Gates, b.Gates)
	check("constraints", a.Constraints, b.Constraints)
	return f
}

// imageChange reads " (image A -> B)", B shortened to what changed when the
// repository stays: " (image r.io/enc:1.4 -> :1.5)".
func imageChange(from, to string) string {
	if from == to {
		return ""
	}
	show := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	a, errA := ParseImageRef(from)
	b, errB := ParseImageRef(to)
	short := show(to)
	if errA == nil && errB == nil && a.Name() == b.Name() {
		if rest := strings.TrimPrefix(to, b.Name()); rest != "" {
			short = rest
		}
	}
	return fmt.Sprintf(" (image %s -> %s)", show(from), short)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
