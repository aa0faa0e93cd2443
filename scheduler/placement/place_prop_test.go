package placement

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

// instance is a small random round: agents with a "rack" attribute (or
// none), one offer each, tasks of service "s" running, one constraint.
type instance struct {
	offers  []Offer
	running []Placed
	pending []Need
	c       linkspec.Constraint
}

var racks = []string{"r1", "r2", "r3"}

func randAttrs(rng *rand.Rand) []mesos.Attribute {
	if rng.IntN(5) == 0 {
		return nil // no rack
	}
	return []mesos.Attribute{text("rack", racks[rng.IntN(len(racks))])}
}

func randConstraint(rng *rand.Rand, ops []linkspec.Operator) linkspec.Constraint {
	field := []string{"hostname", "rack"}[rng.IntN(2)]
	op := ops[rng.IntN(len(ops))]
	k := linkspec.Constraint{Field: field, Operator: op}
	switch op {
	case linkspec.GroupBy:
		if rng.IntN(2) == 0 {
			k.Value = strconv.Itoa(1 + rng.IntN(3))
		}
	case linkspec.MaxPer:
		k.Value = strconv.Itoa(1 + rng.IntN(2))
	case linkspec.Like, linkspec.Unlike:
		k.Value = []string{"r[12]", "r1", ".*", "a.*"}[rng.IntN(4)]
	case linkspec.Is, linkspec.Cluster:
		if op == linkspec.Is || rng.IntN(2) == 0 {
			k.Value = []string{"r1", "r2", "a.example"}[rng.IntN(3)]
		}
	case linkspec.In:
		k.Value = "r1, b.example"
	}
	return k
}

func randInstance(rng *rand.Rand, ops []linkspec.Operator, roomy bool) instance {
	var in instance
	in.c = randConstraint(rng, ops)
	nAgents := 1 + rng.IntN(4)
	for i := range nAgents {
		name := string(rune('a' + i))
		o := agent(name, randAttrs(rng)...)
		if !roomy {
			o.Resources = []mesos.Resource{scalar("cpus", float64(rng.IntN(4))/10), scalar("mem", float64(rng.IntN(4)*40)), portRange(31000, 31000+uint64(rng.IntN(3)))}
		}
		in.offers = append(in.offers, o)
	}
	for i := range rng.IntN(4) {
		// Running tasks, some on agents not offered now.
		name := string(rune('a' + rng.IntN(nAgents+2)))
		p := running("s", name, randAttrs(rng)...)
		p.TaskID += strconv.Itoa(i)
		in.running = append(in.running, p)
	}
	in.pending = needs("s", 1+rng.IntN(4), in.c)
	if roomy {
		for i := range in.pending {
			in.pending[i].Ports = 0
		}
	}
	return in
}

// value reads the constraint's field of a task's agent, independently of
// the code under test (hostname or a text attribute).
func value(field, host string, attrs []mesos.Attribute) (string, bool) {
	if field == "hostname" {
		return host, true
	}
	for _, a := range attrs {
		if a.Name == field {
			return a.Text.Value, true
		}
	}
	return "", false
}

// violation checks the round's outcome against the constraint's meaning,
// stated on the final state rather than replayed step by step.
func violation(in instance, r Result) string {
	byAgent := map[string]Offer{}
	for _, o := range in.offers {
		byAgent[o.AgentID] = o
	}
	type task struct {
		v   string
		ok  bool
		new bool
	}
	var all []task
	for _, p := range in.running {
		v, ok := value(in.c.Field, p.Hostname, p.Attributes)
		all = append(all, task{v, ok, false})
	}
	for _, p := range r.Placements {
		o := byAgent[p.AgentID]
		v, ok := value(in.c.Field, o.Hostname, o.Attributes)
		all = append(all, task{v, ok, true})
	}
	count := map[task]int{}
	for _, t := range all {
		count[task{t.v, t.ok, false}]++
	}
	c := in.c
	for i, t := range all {
		if !t.new {
			continue
		}
		if !t.ok && c.Operator != linkspec.Unlike {
			return fmt.Sprintf("placed where %s is missing", c.Field)
		}
		n := count[task{t.v, t.ok, false}]
		switch c.Operator {
		case linkspec.Like, linkspec.Unlike:
			m := regexp.MustCompile("^(?:" + c.Value + ")$").MatchString(t.v)
			if t.ok && m != (c.Operator == linkspec.Like) {
				return fmt.Sprintf("%q placed against %s", t.v, c)
			}
		case linkspec.Is:
			if t.v != c.Value {
				return fmt.Sprintf("%q is not %q", t.v, c.Value)
			}
		case linkspec.In:
			if !slices.Contains([]string{"r1", "b.example"}, t.v) {
				return fmt.Sprintf("%q not in %q", t.v, c.Value)
			}
		case linkspec.Unique:
			if n > 1 {
				return fmt.Sprintf("%d tasks on %q", n, t.v)
			}
		case linkspec.MaxPer:
			if m, _ := strconv.Atoi(c.Value); n > m {
				return fmt.Sprintf("%d tasks on %q, max %d", n, t.v, m)
			}
		case linkspec.Cluster:
			want := c.Value
			if want == "" {
				want = all[0].v
				if !all[0].ok {
					return "clustered on a missing value"
				}
			}
			if t.v != want {
				return fmt.Sprintf("task %d on %q, cluster is %q", i, t.v, want)
			}
		case linkspec.GroupBy:
			min := -1
			for _, k := range count {
				if min < 0 || k < min {
					min = k
				}
			}
			if n > min+1 {
				return fmt.Sprintf("%q has %d tasks, the smallest group %d", t.v, n, min)
			}
			if k, _ := strconv.Atoi(c.Value); len(count) < k && n > 1 {
				return fmt.Sprintf("%q has %d tasks with only %d of %d groups", t.v, n, len(count), k)
			}
		}
	}
	return ""
}

// resourcesOK checks no offer gave more than it had.
func resourcesOK(in instance, r Result) string {
	used := map[string]map[string]float64{}
	for _, p := range r.Placements {
		if used[p.OfferID] == nil {
			used[p.OfferID] = map[string]float64{}
		}
		for _, res := range append(slices.Clone(p.Task), p.Executor...) {
			if res.Scalar != nil {
				used[p.OfferID][res.Name] += res.Scalar.Value
			} else {
				used[p.OfferID][res.Name] += float64(len(res.Ranges.Range))
			}
		}
	}
	for _, o := range in.offers {
		for _, res := range o.Resources {
			have := 0.0
			if res.Scalar != nil {
				have = res.Scalar.Value
			} else {
				for _, rg := range res.Ranges.Range {
					have += float64(rg.End - rg.Begin + 1)
				}
			}
			if got := used[o.ID][res.Name]; got > have+1e-9 {
				return fmt.Sprintf("offer %s gave %g %s of %g", o.ID, got, res.Name, have)
			}
		}
	}
	return ""
}

func TestPropNeverViolates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		in := randInstance(rng, linkspec.Operators, i%2 == 0)
		r := Place(in.offers, in.running, in.pending, Options{Executor: Resources{CPUs: 0.05, Mem: 10}})
		if msg := violation(in, r) + resourcesOK(in, r); msg != "" {
			t.Fatalf("case %d, %s: %s\noffers %v\nrunning %v\nplaced %q", i, in.c, msg, in.offers, in.running, where(r))
		}
		if len(r.Placements)+len(r.Unplaced) != len(in.pending) {
			t.Fatalf("case %d: %d placed + %d unplaced of %d", i, len(r.Placements), len(r.Unplaced), len(in.pending))
		}
		for _, u := range r.Unplaced {
			if len(u.Reasons) == 0 {
				t.Fatalf("case %d: %s unplaced without a reason", i, u.TaskID)
			}
		}
	}
}

// most is the most tasks any sequence of choices places, each choice
// allowed by the constraint given the ones before: an exhaustive search
// over which offer (or none) each pending task takes, in order. Offers are
// roomy, so only the constraint limits.
func most(in instance) int {
	fields := map[string]int{}
	k := compile([]linkspec.Constraint{in.c}, fields)[0]
	g := newGroup()
	for _, p := range in.running {
		var v val
		v.s, v.ok = fieldValue(in.c.Field, p.Hostname, "", "", p.Attributes)
		g.add(v)
	}
	vals := make([]val, len(in.offers))
	for i, o := range in.offers {
		vals[i].s, vals[i].ok = fieldValue(in.c.Field, o.Hostname, "", "", o.Attributes)
	}
	var search func(left int, g *group) int
	search = func(left int, g *group) int {
		if left == 0 {
			return 0
		}
		best := search(left-1, g) // this task waits
		for _, v := range vals {
			if k.meets(v, g) {
				h := &group{counts: maps.Clone(g.counts), none: g.none, total: g.total, first: g.first, dirty: true}
				h.add(v)
				best = max(best, 1+search(left-1, h))
			}
		}
		return best
	}
	return search(len(in.pending), g)
}

func TestPropFindsWhenOneExists(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ops := []linkspec.Operator{linkspec.Unique, linkspec.MaxPer, linkspec.GroupBy}
	for i := range 5000 {
		in := randInstance(rng, ops, true)
		r := Place(in.offers, in.running, in.pending, Options{})
		if want := most(in); len(r.Placements) != want {
			t.Fatalf("case %d, %s: placed %d (%q), %d possible\noffers %v\nrunning %v", i, in.c, len(r.Placements), where(r), want, in.offers, in.running)
		}
	}
}
