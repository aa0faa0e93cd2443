package res

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Range is an inclusive range of integers, like Mesos' Value.Range.
type Range struct{ Begin, End uint64 }

// Resources is a bag of unreserved resources. The zero value is empty.
// Scalars are in thousandths (Mesos' fixed-point precision), so sums and
// differences are exact.
type Resources struct {
	names   []string // first-seen order of every name, for stable output
	scalars map[string]int64
	ranges  map[string][]Range
}

// ErrUnsupported marks a resource that uses a Mesos feature localmesos does
// not implement; the message names the feature.
var ErrUnsupported = errors.New("not implemented by localmesos")

func (r *Resources) note(name string) {
	for _, n := range r.names {
		if n == name {
			return
		}
	}
	r.names = append(r.names, name)
}

// Clone returns an independent copy.
func (r Resources) Clone() Resources {
	c := Resources{names: append([]string(nil), r.names...)}
	if r.scalars != nil {
		c.scalars = make(map[string]int64, len(r.scalars))
		for k, v := range r.scalars {
			c.scalars[k] = v
		}
	}
	if r.ranges != nil {
		c.ranges = make(map[string][]Range, len(r.ranges))
		for k, v := range r.ranges {
			c.ranges[k] = append([]Range(nil), v...)
		}
	}
	return c
}

// AddScalar adds value (in whole units) of a scalar resource.
func (r *Resources) AddScalar(name string, value float64) {
	r.addMilli(name, toMilli(value))
}

func (r *Resources) addMilli(name string, m int64) {
	if r.scalars == nil {
		r.scalars = map[string]int64{}
	}
	r.note(name)
	r.scalars[name] += m
}

// AddRanges adds ranges of a range resource.
func (r *Resources) AddRanges(name string, rs ...Range) {
	if r.ranges == nil {
		r.ranges = map[string][]Range{}
	}
	r.note(name)
	r.ranges[name] = normalize(append(r.ranges[name], rs...))
}

func toMilli(v float64) int64 { return int64(math.Round(v * 1000)) }

// Scalar returns the amount of a scalar resource.
func (r Resources) Scalar(name string) float64 { return float64(r.scalars[name]) / 1000 }

// Ranges returns the ranges of a range resource.
func (r Resources) Ranges(name string) []Range { return r.ranges[name] }

// Empty reports whether nothing is left (every scalar zero, no ranges).
func (r Resources) Empty() bool {
	for _, v := range r.scalars {
		if v > 0 {
			return false
		}
	}
	for _, v := range r.ranges {
		if len(v) > 0 {
			return false
		}
	}
	return true
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	c := r.Clone()
	for _, n := range o.names {
		if v, ok := o.scalars[n]; ok {
			c.addMilli(n, v)
		}
		if v, ok := o.ranges[n]; ok {
			c.AddRanges(n, v...)
		}
	}
	return c
}

// AddInPlace adds o to r, without copying r first.
func (r *Resources) AddInPlace(o Resources) {
	for _, n := range o.names {
		if v, ok := o.scalars[n]; ok {
			r.addMilli(n, v)
		}
		if v, ok := o.ranges[n]; ok {
			r.AddRanges(n, v...)
		}
	}
}

// Sum adds up many resources: each range resource is merged once at the
// end, where adding one at a time would sort the ranges so far every time
// (an agent with thousands of tasks, each holding a port).
func Sum(items ...Resources) Resources {
	var r Resources
	for _, o := range items {
		for _, n := range o.names {
			if v, ok := o.scalars[n]; ok {
				r.addMilli(n, v)
			}
			if v, ok := o.ranges[n]; ok {
				if r.ranges == nil {
					r.ranges = map[string][]Range{}
				}
				r.note(n)
				r.ranges[n] = append(r.ranges[n], v...)
			}
		}
	}
	for n, rs := range r.ranges {
		r.ranges[n] = normalize(rs)
	}
	return r
}

// Contains reports whether o fits in r.
func (r Resources) Contains(o Resources) bool {
	for n, v := range o.scalars {
		if v > r.scalars[n] {
			return false
		}
	}
	for n, v := range o.ranges {
		if !rangesContain(r.ranges[n], v) {
			return false
		}
	}
	return true
}

// Sub returns r - o; o must be contained in r.
func (r Resources) Sub(o Resources) Resources {
	c := r.Clone()
	for n, v := range o.scalars {
		if c.scalars == nil {
			c.scalars = map[string]int64{}
		}
		c.scalars[n] -= v
		if c.scalars[n] < 0 {
			c.scalars[n] = 0
		}
	}
	for n, v := range o.ranges {
		c.ranges[n] = subtractRanges(c.ranges[n], v)
	}
	return c
}

func normalize(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
	out := rs[:1]
	for _, x := range rs[1:] {
		last := &out[len(out)-1]
		if x.Begin <= last.End+1 {
			if x.End > last.End {
				last.End = x.End
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

func rangesContain(have, want []Range) bool {
	for _, w := range want {
		ok := false
		for _, h := range have {
			if w.Begin >= h.Begin && w.End <= h.End {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func subtractRanges(have, take []Range) []Range {
	out := append([]Range(nil), have...)
	for _, t := range take {
		var next []Range
		for _, h := range out {
			if t.End < h.Begin || t.Begin > h.End {
				next = append(next, h)
				continue
			}
			if t.Begin > h.Begin {
				next = append(next, Range{h.Begin, t.Begin - 1})
			}
			if t.End < h.End {
				next = append(next, Range{t.End + 1, h.End})
			}
		}
		out = next
	}
	return out
}

// Parse reads an agent --resources value such as
// "cpus:4;mem:4096;disk:10000;ports:[31000-32000]". A role suffix other than
// "(*)" is refused: reservations are not implemented.
func Parse(s string) (Resources, error) {
	var r Resources
	var problems []string
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, ":")
		if !ok {
			problems = append(problems, fmt.Sprintf("%q: expecting name:value", part))
			continue
		}
		name = strings.TrimSpace(name)
		if i := strings.IndexByte(name, '('); i >= 0 {
			if strings.TrimSpace(name[i:]) != "(*)" {
				problems = append(problems, fmt.Sprintf("%q: reserved resources are %s", part, ErrUnsupported))
				continue
			}
			name = strings.TrimSpace(name[:i])
		}
		if name == "" {
			problems = append(problems, fmt.Sprintf("%q: empty resource name", part))
			continue
		}
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "[") {
			rs, err := parseRanges(value)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%q: %v", part, err))
				continue
			}
			r.AddRanges(name, rs...)
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			problems = append(problems, fmt.Sprintf("%q: expecting a non-negative number or [begin-end,…] ranges", part))
			continue
		}
		r.AddScalar(name, f)
	}
	if len(problems) > 0 {
		return Resources{}, fmt.Errorf("invalid resources %q: %s", s, strings.Join(problems, "; "))
	}
	return r, nil
}

func parseRanges(v string) ([]Range, error) {
	if !strings.HasSuffix(v, "]") {
		return nil, errors.New("ranges must end with ]")
	}
	var out []Range
	for _, p := range strings.Split(v[1:len(v)-1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		a, b, ok := strings.Cut(p, "-")
		if !ok {
			b = a
		}
		begin, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
		end, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
		if err1 != nil || err2 != nil || begin > end {
			return nil, fmt.Errorf("bad range %q", p)
		}
		out = append(out, Range{begin, end})
	}
	return out, nil
}

// FromProto converts Mesos resources. Anything that needs a feature localmesos
// does not implement is an error wrapping ErrUnsupported that names it.
func FromProto(rs []mesos.Resource) (Resources, error) {
	var r Resources
	for _, x := range rs {
		switch {
		case x.Reservation != nil || len(x.Reservations) > 0 || (x.Role != nil && *x.Role != "*"):
			return Resources{}, fmt.Errorf("resource %q: reservations are %w", x.Name, ErrUnsupported)
		case x.Disk != nil:
			return Resources{}, fmt.Errorf("resource %q: disk info (persistent volumes, disk sources) is %w", x.Name, ErrUnsupported)
		case x.Revocable != nil:
			return Resources{}, fmt.Errorf("resource %q: revocable resources are %w", x.Name, ErrUnsupported)
		case x.Shared != nil:
			return Resources{}, fmt.Errorf("resource %q: shared resources are %w", x.Name, ErrUnsupported)
		case x.ProviderID != nil:
			return Resources{}, fmt.Errorf("resource %q: resource providers are %w", x.Name, ErrUnsupported)
		case x.AllocationInfo != nil && x.AllocationInfo.Role != nil && *x.AllocationInfo.Role != "*":
			return Resources{}, fmt.Errorf("resource %q: roles other than \"*\" are %w", x.Name, ErrUnsupported)
		}
		switch x.GetType() {
		case mesos.SCALAR:
			if x.Scalar == nil || x.Scalar.Value < 0 || math.IsNaN(x.Scalar.Value) || math.IsInf(x.Scalar.Value, 0) {
				return Resources{}, fmt.Errorf("resource %q: invalid scalar", x.Name)
			}
			r.AddScalar(x.Name, x.Scalar.Value)
		case mesos.RANGES:
			if x.Ranges == nil {
				return Resources{}, fmt.Errorf("resource %q: missing ranges", x.Name)
			}
			for _, rg := range x.Ranges.Range {
				if rg.Begin > rg.End {
					return Resources{}, fmt.Errorf("resource %q: invalid range [%d-%d]", x.Name, rg.Begin, rg.End)
				}
				r.AddRanges(x.Name, Range{rg.Begin, rg.End})
			}
		default:
			return Resources{}, fmt.Errorf("resource %q: %s resources are %w", x.Name, x.GetType(), ErrUnsupported)
		}
	}
	return r, nil
}

// Style says how ToProto marks the role of each resource.
type Style int

const (
	// Plain: no role at all (AgentInfo.resources).
	Plain Style = iota
	// OfferRole: role "*" and no allocation_info, as offers to a framework
	// without the MULTI_ROLE capability carry.
	OfferRole
	// Allocated: allocation_info {role "*"}, as tasks and executors carry
	// once the master injected it.
	Allocated
)

// ToProto returns Mesos resources: range resources first, then scalars, each
// in first-seen order (Mesos offers list ports, cpus, mem, disk). Zero
// scalars and empty ranges are left out.
func (r Resources) ToProto(style Style, rangesFirst bool) []mesos.Resource {
	var out []mesos.Resource
	emit := func(wantRanges bool) {
		for _, n := range r.names {
			if v, ok := r.ranges[n]; ok && wantRanges && len(v) > 0 {
				t := mesos.RANGES
				vr := make([]mesos.Value_Range, len(v))
				for i, x := range v {
					vr[i] = mesos.Value_Range{Begin: x.Begin, End: x.End}
				}
				out = append(out, styled(mesos.Resource{Name: n, Type: &t, Ranges: &mesos.Value_Ranges{Range: vr}}, style))
			}
			if v, ok := r.scalars[n]; ok && !wantRanges && v > 0 {
				t := mesos.SCALAR
				out = append(out, styled(mesos.Resource{Name: n, Type: &t, Scalar: &mesos.Value_Scalar{Value: float64(v) / 1000}}, style))
			}
		}
	}
	if rangesFirst {
		emit(true)
		emit(false)
	} else {
		// Agent order: scalars and ranges interleaved as configured.
		for _, n := range r.names {
			one := Resources{names: []string{n}, scalars: r.scalars, ranges: r.ranges}
			out = append(out, one.ToProto(style, true)...)
		}
	}
	return out
}

func styled(x mesos.Resource, s Style) mesos.Resource {
	star := "*"
	switch s {
	case OfferRole:
		x.Role = &star
	case Allocated:
		x.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &star}
	}
	return x
}

// String formats like Mesos' messages: "cpus(allocated: *):0.1; mem(allocated: *):32;
// ports(allocated: *):[31000-31000]".
func (r Resources) String() string {
	var parts []string
	for _, n := range r.names {
		if v, ok := r.scalars[n]; ok && v > 0 {
			parts = append(parts, n+"(allocated: *):"+strconv.FormatFloat(float64(v)/1000, 'f', -1, 64))
		}
		if v, ok := r.ranges[n]; ok && len(v) > 0 {
			parts = append(parts, n+"(allocated: *):"+FormatRanges(v))
		}
	}
	return strings.Join(parts, "; ")
}

// FormatRanges prints ranges as Mesos does: "[31000-31000, 31002-32000]".
func FormatRanges(v []Range) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d-%d", x.Begin, x.End)
	}
	b.WriteByte(']')
	return b.String()
}

// StateMap renders resources as /master/state does: disk, mem, gpus, cpus
// always (0.0 when absent), other scalars after them, ranges as strings.
func (r Resources) StateMap() map[string]any {
	m := map[string]any{}
	for _, n := range []string{"disk", "mem", "gpus", "cpus"} {
		m[n] = float64(r.scalars[n]) / 1000
	}
	for n, v := range r.scalars {
		m[n] = float64(v) / 1000
	}
	for n, v := range r.ranges {
		if len(v) > 0 {
			m[n] = FormatRanges(v)
		}
	}
	return m
}
