package placement

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func portRange(b, e uint64) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: b, End: e}}}}
}

func text(name, v string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}
}

func scalarAttr(name string, v float64) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: v}}
}

func rangesAttr(name string, rs ...uint64) mesos.Attribute {
	var out []mesos.Value_Range
	for i := 0; i+1 < len(rs); i += 2 {
		out = append(out, mesos.Value_Range{Begin: rs[i], End: rs[i+1]})
	}
	return mesos.Attribute{Name: name, Type: mesos.RANGES, Ranges: &mesos.Value_Ranges{Range: out}}
}

func setAttr(name string, items ...string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.SET, Set: &mesos.Value_Set{Item: items}}
}

// agent makes a roomy offer "o-<name>" from agent "<name>", host
// "<name>.example".
func agent(name string, attrs ...mesos.Attribute) Offer {
	return Offer{
		ID: "o-" + name, AgentID: name, Hostname: name + ".example", Attributes: attrs,
		Resources: []mesos.Resource{scalar("cpus", 8), scalar("mem", 8192), scalar("disk", 1000), portRange(31000, 31099)},
	}
}

func running(service, agentName string, attrs ...mesos.Attribute) Placed {
	return Placed{TaskID: service + "@" + agentName, Service: service, AgentID: agentName, Hostname: agentName + ".example", Attributes: attrs}
}

func needs(service string, n int, cs ...linkspec.Constraint) []Need {
	out := make([]Need, n)
	for i := range out {
		out[i] = Need{TaskID: fmt.Sprintf("%s-%d", service, i), Service: service, CPUs: 0.1, Mem: 32, Ports: 1, Constraints: cs}
	}
	return out
}

func c(field string, op linkspec.Operator, value ...string) linkspec.Constraint {
	k := linkspec.Constraint{Field: field, Operator: op}
	if len(value) > 0 {
		k.Value = value[0]
	}
	return k
}

// where lists the agents the placements went to, in need order.
func where(r Result) string {
	var out []string
	for _, p := range r.Placements {
		out = append(out, p.AgentID)
	}
	return strings.Join(out, " ")
}

func reasons(r Result) string {
	var out []string
	for _, u := range r.Unplaced {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(u.Reasons)) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, u.Reasons[k]))
		}
		out = append(out, u.TaskID+"["+strings.Join(parts, ",")+"]")
	}
	return strings.Join(out, " ")
}

func TestValueString(t *testing.T) {
	for _, tc := range []struct {
		a    mesos.Attribute
		want string
	}{
		{text("rack", "rack-1"), "rack-1"},
		{scalarAttr("n", 2), "2"},
		{scalarAttr("n", 2.5), "2.5"},
		{scalarAttr("n", 0.1), "0.1"},
		{scalarAttr("n", 1234.5), "1,234.5"},
		{scalarAttr("n", -1234567.891), "-1,234,567.891"},
		{scalarAttr("n", 0.0625), "0.062"}, // half-even, exactly half
		{scalarAttr("n", 0.0635), "0.064"}, // 0.0635 is a little above half in binary
		{scalarAttr("n", 1.23456), "1.235"},
		{scalarAttr("n", 100), "100"},
		{scalarAttr("n", 1000), "1,000"},
		{rangesAttr("r", 300, 400, 100, 200), "[100-200,300-400]"},
		{setAttr("s", "c", "a", "b"), "{a,b,c}"},
	} {
		got, ok := ValueString(tc.a)
		if !ok || got != tc.want {
			t.Errorf("%v: got %q, %v; want %q", tc.a, got, ok, tc.want)
		}
	}
	if _, ok := ValueString(mesos.Attribute{Name: "x", Type: mesos.TEXT}); ok {
		t.Error("a text attribute without text has a value")
	}
}

func TestOperators(t *testing.T) {
	rack := func(v string) mesos.Attribute { return text("rack", v) }
	for _, tc := range []struct {
		name    string
		offers  []Offer
		running []Placed
		pending []Need
		where   string // agents, in need order
		reasons string
	}{
		{
			name:    "no constraints spread over agents",
			offers:  []Offer{agent("a"), agent("b"), agent("c")},
			running: []Placed{running("web", "a")},
			pending: needs("web", 4),
			where:   "b c a b",
		},
		{
			name:    "hostname UNIQUE counts running and this round",
			offers:  []Offer{agent("a"), agent("b"), agent("c")},
			running: []Placed{running("web", "b")},
			pending: needs("web", 3, c("hostname", linkspec.Unique)),
			where:   "a c",
			reasons: "web-2[hostname:UNIQUE=3]",
		},
		{
			name:    "@hostname is hostname",
			offers:  []Offer{agent("a"), agent("b")},
			pending: needs("web", 3, c("@hostname", linkspec.Unique)),
			where:   "a b",
			reasons: "web-2[@hostname:UNIQUE=2]",
		},
		{
			name:    "UNIQUE on a text attribute",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r1")), agent("c", rack("r2"))},
			pending: needs("web", 3, c("rack", linkspec.Unique)),
			where:   "a c",
			reasons: "web-2[rack:UNIQUE=3]",
		},
		{
			name:    "an attribute the agent lacks fails all but UNLIKE",
			offers:  []Offer{agent("a"), agent("b", rack("r9"))},
			pending: append(needs("like", 1, c("rack", linkspec.Like, "r[0-8]")), needs("unlike", 2, c("rack", linkspec.Unlike, "r9"))...),
			where:   "a a",
			reasons: "like-0[rack:LIKE:r[0-8]=2]",
		},
		{
			name:    "LIKE is anchored: r1 does not match r10",
			offers:  []Offer{agent("a", rack("r10")), agent("b", rack("r1"))},
			pending: needs("web", 2, c("rack", linkspec.Like, "r1")),
			where:   "b b",
		},
		{
			name:    "UNLIKE keeps off matching values",
			offers:  []Offer{agent("a", rack("r7")), agent("b", rack("r1"))},
			pending: needs("web", 2, c("rack", linkspec.Unlike, "r[7-9]")),
			where:   "b b",
		},
		{
			name:    "LIKE on a scalar is on its formatted text",
			offers:  []Offer{agent("a", scalarAttr("cores", 1000)), agent("b", scalarAttr("cores", 16))},
			pending: needs("web", 2, c("cores", linkspec.Like, "1,000")),
			where:   "a a",
		},
		{
			name:    "IS on a range attribute",
			offers:  []Offer{agent("a", rangesAttr("slots", 300, 400, 1, 2)), agent("b", rangesAttr("slots", 1, 2))},
			pending: needs("web", 1, c("slots", linkspec.Is, "[1-2,300-400]")),
			where:   "a",
		},
		{
			name:    "IS on a set attribute, and IN",
			offers:  []Offer{agent("a", setAttr("gpu", "v100", "a100")), agent("b", setAttr("gpu", "k80")), agent("c", setAttr("gpu", "t4"))},
			pending: append(needs("is", 1, c("gpu", linkspec.Is, "{a100,v100}")), needs("in", 2, c("gpu", linkspec.In, "{k80}, {t4}"))...),
			where:   "a b c",
		},
		{
			name:    "CLUSTER with a value",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r2")), agent("c", rack("r2"))},
			pending: needs("web", 3, c("rack", linkspec.Cluster, "r2")),
			where:   "b c b",
		},
		{
			name:    "CLUSTER without a value follows the running tasks",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r2"))},
			running: []Placed{running("web", "x", rack("r2"))},
			pending: needs("web", 2, c("rack", linkspec.Cluster)),
			where:   "b b",
		},
		{
			name:    "CLUSTER without a value and nothing running: the first placed decides",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r2")), agent("c", rack("r1"))},
			pending: needs("web", 3, c("rack", linkspec.Cluster)),
			where:   "a c a",
		},
		{
			name:    "hostname CLUSTER",
			offers:  []Offer{agent("a"), agent("b")},
			pending: needs("web", 2, c("hostname", linkspec.Cluster, "b.example")),
			where:   "b b",
		},
		{
			name:    "MAX_PER caps each value",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r1")), agent("c", rack("r2"))},
			running: []Placed{running("web", "a", rack("r1"))},
			pending: needs("web", 4, c("rack", linkspec.MaxPer, "2")),
			where:   "b c c",
			reasons: "web-3[rack:MAX_PER:2=3]",
		},
		{
			name:    "GROUP_BY spreads evenly over the values seen",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r1")), agent("c", rack("r2"))},
			running: []Placed{running("web", "a", rack("r1"))},
			pending: needs("web", 3, c("rack", linkspec.GroupBy)),
			where:   "c b c",
		},
		{
			name:    "GROUP_BY with a count waits for that many values",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r2"))},
			pending: needs("web", 3, c("rack", linkspec.GroupBy, "3")),
			where:   "a b",
			reasons: "web-2[rack:GROUP_BY:3=2]",
		},
		{
			name:    "GROUP_BY counts tasks without the attribute as a group",
			offers:  []Offer{agent("a", rack("r1"))},
			running: []Placed{running("web", "x"), running("web", "a", rack("r1"))},
			pending: needs("web", 2, c("rack", linkspec.GroupBy)),
			// r1 has 1, the none group 1: r1 is at the minimum, once.
			where:   "a",
			reasons: "web-1[rack:GROUP_BY=1]",
		},
		{
			name:    "other services do not count",
			offers:  []Offer{agent("a"), agent("b")},
			running: []Placed{running("db", "a"), running("db", "b")},
			pending: needs("web", 2, c("hostname", linkspec.Unique)),
			where:   "a b",
		},
		{
			name:    "@zone and @region",
			offers:  []Offer{{ID: "o1", AgentID: "a", Zone: "z1", Region: "eu", Resources: agent("a").Resources}, {ID: "o2", AgentID: "b", Zone: "z2", Region: "us", Resources: agent("b").Resources}},
			pending: needs("web", 2, c("@zone", linkspec.Unique), c("@region", linkspec.Like, "eu|us")),
			where:   "a b",
		},
		{
			name:    "several constraints, several reasons",
			offers:  []Offer{agent("a", rack("r1")), agent("b", rack("r2"))},
			running: []Placed{running("web", "a", rack("r1"))},
			pending: needs("web", 1, c("hostname", linkspec.Unique), c("rack", linkspec.Is, "r1")),
			reasons: "web-0[hostname:UNIQUE=1,rack:IS:r1=1]",
		},
		{
			name:    "a constraint that does not compile is never met",
			offers:  []Offer{agent("a", rack("r1"))},
			pending: needs("web", 1, c("rack", linkspec.Like, "(")),
			reasons: "web-0[rack:LIKE:(=1]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Place(tc.offers, tc.running, tc.pending, Options{Executor: Resources{CPUs: 0.05, Mem: 16}})
			if got := where(r); got != tc.where {
				t.Errorf("placed on %q, want %q", got, tc.where)
			}
			if got := reasons(r); got != tc.reasons {
				t.Errorf("reasons %q, want %q", got, tc.reasons)
			}
		})
	}
}

func TestResourcesAndReasons(t *testing.T) {
	small := Offer{ID: "o1", AgentID: "a", Hostname: "a", Resources: []mesos.Resource{
		scalar("cpus", 0.3), scalar("mem", 100), portRange(31000, 31001),
	}}
	r := Place([]Offer{small}, nil, []Need{
		{TaskID: "t1", Service: "s", CPUs: 0.1, Mem: 32, Ports: 2},
		{TaskID: "t2", Service: "s", CPUs: 0.1, Mem: 32, Ports: 1},
		{TaskID: "t3", Service: "s", CPUs: 0.1, Mem: 32, Ports: 1},
		{TaskID: "t4", Service: "s", CPUs: 1, Mem: 1000, Disk: 1, Ports: 0},
	}, Options{Executor: Resources{CPUs: 0.1, Mem: 16}})
	if len(r.Placements) != 1 {
		t.Fatalf("placements %+v", r.Placements)
	}
	p := r.Placements[0]
	if p.OfferID != "o1" || !slices.Equal(p.Ports, []uint32{31000, 31001}) || len(p.Task) != 3 || len(p.Executor) != 2 {
		t.Errorf("placement %+v", p)
	}
	if got := p.Task[0].Scalar.Value + p.Executor[0].Scalar.Value; got != 0.2 {
		t.Errorf("cpus taken %v", got)
	}
	if got, want := reasons(r), "t2[cpus=1,ports=1] t3[cpus=1,ports=1] t4[cpus=1,disk=1,mem=1]"; got != want {
		t.Errorf("reasons %q, want %q", got, want)
	}
	if len(r.Unused) != 0 {
		t.Errorf("unused %v", r.Unused)
	}

	r = Place(nil, nil, needs("web", 1), Options{})
	if got := reasons(r); got != "web-0[no offers=1]" {
		t.Errorf("no offers: %q", got)
	}
}

func TestDrainingAndMaintenance(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	draining := agent("a")
	draining.Draining = true
	soon := agent("b")
	soon.Unavailability = &Window{Start: now.Add(time.Hour), Duration: time.Hour}
	past := agent("c")
	past.Unavailability = &Window{Start: now.Add(-2 * time.Hour), Duration: time.Hour}
	offers := []Offer{draining, soon, past}

	r := Place(offers, nil, needs("web", 2, c("hostname", linkspec.Unique)), Options{Now: now})
	if got, want := where(r), "c"; got != want {
		t.Errorf("placed on %q, want %q", got, want)
	}
	if got, want := reasons(r), "web-1[agent draining=1,hostname:UNIQUE=1,maintenance=1]"; got != want {
		t.Errorf("reasons %q, want %q", got, want)
	}
	if !slices.Equal(r.Unused, []string{"o-a", "o-b"}) {
		t.Errorf("unused %v", r.Unused)
	}
	// A task expected to end before the maintenance may go there.
	r = Place([]Offer{soon}, nil, needs("batch", 1), Options{Now: now, Life: 30 * time.Minute})
	if where(r) != "b" {
		t.Errorf("short task not placed before maintenance: %s", reasons(r))
	}
}

func TestRoles(t *testing.T) {
	reserved := func(v float64, role string) mesos.Resource {
		r := scalar("cpus", v)
		r.Reservations = []mesos.Resource_ReservationInfo{{Role: &role}}
		return r
	}
	o := Offer{ID: "o1", AgentID: "a", Resources: []mesos.Resource{reserved(1, "other"), scalar("cpus", 0.1), reserved(0.5, "tiltai"), scalar("mem", 1000)}}
	n := []Need{{TaskID: "t1", Service: "s", CPUs: 0.5, Mem: 10}, {TaskID: "t2", Service: "s", CPUs: 0.5, Mem: 10}}
	r := Place([]Offer{o}, nil, n, Options{Roles: []string{"tiltai", "*"}})
	if where(r) != "a" || reasons(r) != "t2[role=1]" {
		t.Fatalf("placed %q, reasons %q", where(r), reasons(r))
	}
	// The reserved resource comes back with its reservation.
	task := r.Placements[0].Task
	if len(task) != 3 || task[0].Scalar.Value != 0.1 || task[1].Scalar.Value != 0.4 || *task[1].Reservations[0].Role != "tiltai" {
		t.Errorf("task resources %+v", task)
	}
}

func TestFromMesos(t *testing.T) {
	o := &mesos.Offer{
		ID: mesos.OfferID{Value: "o1"}, AgentID: mesos.AgentID{Value: "a1"}, Hostname: "h1",
		Domain:         &mesos.DomainInfo{FaultDomain: &mesos.DomainInfo_FaultDomain{Region: mesos.DomainInfo_FaultDomain_RegionInfo{Name: "eu"}, Zone: mesos.DomainInfo_FaultDomain_ZoneInfo{Name: "eu-1"}}},
		Unavailability: &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: 5e9}, Duration: &mesos.DurationInfo{Nanoseconds: 6e9}},
		Attributes:     []mesos.Attribute{text("rack", "r1")},
	}
	got := FromMesos(o, true)
	if got.ID != "o1" || got.AgentID != "a1" || got.Hostname != "h1" || got.Region != "eu" || got.Zone != "eu-1" || !got.Draining ||
		got.Unavailability == nil || got.Unavailability.Start.Unix() != 5 || got.Unavailability.Duration != 6*time.Second || len(got.Attributes) != 1 {
		t.Errorf("%+v", got)
	}
}
