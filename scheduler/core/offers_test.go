package core

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func scalar(name string, v float64, role string) mesos.Resource {
	r := mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	if role != "" {
		r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: &role}}
	}
	return r
}

func ports(lo, hi uint64) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: lo, End: hi}}}}
}

func offer(id, agent string, rs ...mesos.Resource) *mesos.Offer {
	return &mesos.Offer{ID: mesos.OfferID{Value: id}, AgentID: mesos.AgentID{Value: agent}, Hostname: agent + ".example", Resources: rs}
}

// brief renders placements as "task@offer(resources)[ports]".
func brief(pls []placement, unused []*mesos.Offer) string {
	var b strings.Builder
	for _, pl := range pls {
		var rs []string
		for _, r := range append(append([]mesos.Resource(nil), pl.Task...), pl.Executor...) {
			role := ""
			if len(r.Reservations) > 0 {
				role = "/" + r.Reservations[0].GetRole()
			}
			rs = append(rs, resource(r)+role)
		}
		fmt.Fprintf(&b, "%s@%s(%s)%v ", pl.TaskID, pl.OfferID, strings.Join(rs, " "), pl.Ports)
	}
	b.WriteString("unused:")
	for _, o := range unused {
		b.WriteString(" " + o.ID.Value)
	}
	return b.String()
}

func TestPlace(t *testing.T) {
	exec := need{CPUs: 0.01, Mem: 16}
	for _, tc := range []struct {
		name    string
		offers  []*mesos.Offer
		needs   []need
		running map[string]map[string]int
		want    string
	}{
		{
			name:   "thousandths add up exactly",
			offers: []*mesos.Offer{offer("o1", "a1", scalar("cpus", 0.33, ""), scalar("mem", 100, ""))},
			needs:  []need{{TaskID: "w.1", Service: "w", CPUs: 0.1, Mem: 34}, {TaskID: "w.2", Service: "w", CPUs: 0.2, Mem: 34}},
			want:   "w.1@o1(cpus:0.1 mem:34 cpus:0.01 mem:16)[] w.2@o1(cpus:0.2 mem:34 cpus:0.01 mem:16)[] unused:",
		},
		{
			name:   "what does not fit waits; an unused offer is returned",
			offers: []*mesos.Offer{offer("o1", "a1", scalar("cpus", 1, ""), scalar("mem", 100, "")), offer("o2", "a2", scalar("cpus", 0.1, ""), scalar("mem", 100, ""))},
			needs:  []need{{TaskID: "w.1", Service: "w", CPUs: 0.9, Mem: 10}, {TaskID: "w.2", Service: "w", CPUs: 0.9, Mem: 10}},
			want:   "w.1@o1(cpus:0.9 mem:10 cpus:0.01 mem:16)[] unused: o2",
		},
		{
			name:   "ports lowest first, one per in-gate",
			offers: []*mesos.Offer{offer("o1", "a1", scalar("cpus", 4, ""), scalar("mem", 1000, ""), ports(31000, 31002))},
			needs:  []need{{TaskID: "w.1", Service: "w", CPUs: 1, Mem: 10, Ports: 2}, {TaskID: "w.2", Service: "w", CPUs: 1, Mem: 10, Ports: 2}, {TaskID: "x.3", Service: "x", CPUs: 1, Mem: 10, Ports: 1}},
			want:   "w.1@o1(cpus:1 mem:10 ports:31000-31000,31001-31001 cpus:0.01 mem:16)[31000 31001] x.3@o1(cpus:1 mem:10 ports:31002-31002 cpus:0.01 mem:16)[31002] unused:",
		},
		{
			name: "spread: the agent running fewest of the service",
			offers: []*mesos.Offer{
				offer("o1", "a1", scalar("cpus", 4, ""), scalar("mem", 1000, "")),
				offer("o2", "a2", scalar("cpus", 4, ""), scalar("mem", 1000, "")),
			},
			needs:   []need{{TaskID: "w.3", Service: "w", CPUs: 1, Mem: 10}, {TaskID: "w.4", Service: "w", CPUs: 1, Mem: 10}, {TaskID: "w.5", Service: "w", CPUs: 1, Mem: 10}},
			running: map[string]map[string]int{"a1": {"w": 2}},
			want:    "w.3@o2(cpus:1 mem:10 cpus:0.01 mem:16)[] w.4@o2(cpus:1 mem:10 cpus:0.01 mem:16)[] w.5@o1(cpus:1 mem:10 cpus:0.01 mem:16)[] unused:",
		},
		{
			name:   "reserved and unreserved pools: both taken, the role echoed",
			offers: []*mesos.Offer{offer("o1", "a1", scalar("cpus", 0.5, "web"), scalar("cpus", 1, ""), scalar("mem", 100, ""))},
			needs:  []need{{TaskID: "w.1", Service: "w", CPUs: 0.7, Mem: 10}},
			want:   "w.1@o1(cpus:0.5/web cpus:0.2 mem:10 cpus:0.01 mem:16)[] unused:",
		},
		{
			name:   "disk only when asked for",
			offers: []*mesos.Offer{offer("o1", "a1", scalar("cpus", 1, ""), scalar("mem", 100, ""))},
			needs:  []need{{TaskID: "w.1", Service: "w", CPUs: 0.1, Mem: 10, Disk: 5}, {TaskID: "x.2", Service: "x", CPUs: 0.1, Mem: 10}},
			want:   "x.2@o1(cpus:0.1 mem:10 cpus:0.01 mem:16)[] unused:",
		},
		{
			name:  "no offers",
			needs: []need{{TaskID: "w.1", Service: "w", CPUs: 0.1, Mem: 10}},
			want:  "unused:",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := tc.running
			if running == nil {
				running = map[string]map[string]int{}
			}
			before := fmt.Sprint(running)
			pls, unused := place(tc.offers, tc.needs, exec, running)
			if got := strings.TrimSpace(brief(pls, unused)); got != tc.want {
				t.Errorf("got\n\t%s\nwant\n\t%s", got, tc.want)
			}
			if after := fmt.Sprint(running); after != before {
				t.Errorf("place changed the counts it was given: %s → %s", before, after)
			}
		})
	}
}

// Placing is deterministic: the offers' order does not matter.
func TestPlaceDeterministic(t *testing.T) {
	mk := func() []*mesos.Offer {
		return []*mesos.Offer{
			offer("o2", "a2", scalar("cpus", 2, ""), scalar("mem", 1000, ""), ports(1000, 1009)),
			offer("o1", "a1", scalar("cpus", 2, ""), scalar("mem", 1000, ""), ports(2000, 2009)),
			offer("o3", "a1", scalar("cpus", 2, ""), scalar("mem", 1000, ""), ports(3000, 3009)),
		}
	}
	var needs []need
	for i := range 8 {
		needs = append(needs, need{TaskID: fmt.Sprintf("w.%d", i), Service: "w", CPUs: 0.5, Mem: 10, Ports: 1})
	}
	want, _ := place(mk(), needs, need{}, map[string]map[string]int{})
	os := mk()
	os[0], os[2] = os[2], os[0]
	got, _ := place(os, needs, need{}, map[string]map[string]int{})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("placements depend on the offers' order:\n%v\n%v", brief(got, nil), brief(want, nil))
	}
}
