package placement

import (
	"regexp"
	"slices"

	"github.com/tiltai/tiltai/linkspec"
)

// check is one constraint made ready to test: its field interned, its
// regular expression compiled, its count parsed. A constraint that could
// not be made ready (an unvalidated spec) is never met, so it shows up as
// the reason its tasks wait.
type check struct {
	c      linkspec.Constraint
	reason Reason
	field  int
	re     *regexp.Regexp
	in     []string
	count  int // GROUP_BY minimum groups, MAX_PER cap; -1 when broken
	broken bool
}

// compile prepares a need's constraints, interning their fields.
func compile(cs []linkspec.Constraint, fields map[string]int) []check {
	out := make([]check, len(cs))
	for i, c := range cs {
		k := check{c: c, reason: Reason(c.String())}
		f, ok := fields[c.Field]
		if !ok {
			f = len(fields)
			fields[c.Field] = f
		}
		k.field = f
		switch c.Operator {
		case linkspec.Like, linkspec.Unlike:
			re, err := regexp.Compile(linkspec.Anchored(c.Value))
			k.re, k.broken = re, err != nil || c.Value == ""
		case linkspec.GroupBy, linkspec.MaxPer:
			k.count = c.Count()
			k.broken = k.count < 0 || (c.Operator == linkspec.MaxPer && k.count == 0)
		case linkspec.In:
			k.in = linkspec.InValues(c.Value)
		case linkspec.Unique, linkspec.Cluster, linkspec.Is:
		default:
			k.broken = true
		}
		out[i] = k
	}
	return out
}

// val is a field's value on one agent; ok is false when the agent has none.
type val struct {
	s  string
	ok bool
}

// group is where one service's tasks are, by the value of one field: the
// tasks Marathon calls "placed", running ones first, then those placed
// this round.
type group struct {
	counts map[string]int
	none   int  // tasks on agents without the field
	total  int  // all of them
	first  val  // the first task's value (CLUSTER without a value)
	min    int  // smallest count over values and none (GROUP_BY)
	dirty  bool // min needs recomputing
}

func newGroup() *group { return &group{counts: map[string]int{}} }

func (g *group) add(v val) {
	if g.total == 0 {
		g.first = v
	}
	g.total++
	if v.ok {
		g.counts[v.s]++
	} else {
		g.none++
	}
	g.dirty = true
}

// count is how many of the tasks are on the value.
func (g *group) count(v val) int {
	if !v.ok {
		return g.none
	}
	return g.counts[v.s]
}

// groups is the number of distinct values, Marathon counting the tasks
// without the field as a group of their own.
func (g *group) groups() int {
	n := len(g.counts)
	if g.none > 0 {
		n++
	}
	return n
}

func (g *group) minCount() int {
	if g.dirty {
		m := -1
		for _, c := range g.counts {
			if m < 0 || c < m {
				m = c
			}
		}
		if g.none > 0 && (m < 0 || g.none < m) {
			m = g.none
		}
		g.min, g.dirty = max(m, 0), false
	}
	return g.min
}

// static reports whether the check depends only on the offer's value, not
// on where the service's tasks are (meets then ignores the group).
func (k *check) static() bool {
	switch k.c.Operator {
	case linkspec.Like, linkspec.Unlike, linkspec.Is, linkspec.In:
		return true
	case linkspec.Cluster:
		return k.c.Value != ""
	}
	return k.broken
}

// meets is Marathon's ConstraintsChecker for one constraint, one offer
// value and the service's tasks grouped by that field.
func (k *check) meets(v val, g *group) bool {
	if k.broken {
		return false
	}
	if !v.ok {
		// Only UNLIKE accepts an agent without the field.
		return k.c.Operator == linkspec.Unlike
	}
	switch k.c.Operator {
	case linkspec.Like:
		return k.re.MatchString(v.s)
	case linkspec.Unlike:
		return !k.re.MatchString(v.s)
	case linkspec.Unique:
		return g.counts[v.s] == 0
	case linkspec.MaxPer:
		return g.counts[v.s] < k.count
	case linkspec.GroupBy:
		n, seen := g.counts[v.s]
		if !seen {
			return true // a new value always evens things out
		}
		return g.groups() >= k.count && n == g.minCount()
	case linkspec.Cluster:
		if k.c.Value != "" {
			return v.s == k.c.Value
		}
		return g.total == 0 || g.first == v
	case linkspec.Is:
		return v.s == k.c.Value
	case linkspec.In:
		return slices.Contains(k.in, v.s)
	}
	return false
}
