package placement

import (
	"fmt"
	"math"
	"sort"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

// The baseline is a faithful copy of today's scheduler/offers.go place
// (unexported there, so it cannot be called from here), names prefixed
// with "base", so each benchmark reads beside it in the same run.

type baseNeed struct {
	TaskID  string
	Service string
	CPUs    float64
	Mem     float64
	Disk    float64
	Ports   int
}

type basePlacement struct {
	TaskID   string
	OfferID  string
	AgentID  string
	Host     string
	Task     []mesos.Resource
	Executor []mesos.Resource
	Ports    []uint32
}

func baseToMilli(v float64) milli { return milli(math.Round(v * 1000)) }

type basePool struct {
	tmpl   mesos.Resource
	amount milli
	ranges []mesos.Value_Range
}

type baseOfferState struct {
	offer *mesos.Offer
	pools map[string][]*basePool
	used  bool
}

func newBaseOfferState(o *mesos.Offer) *baseOfferState {
	s := &baseOfferState{offer: o, pools: map[string][]*basePool{}}
	for i := range o.Resources {
		r := o.Resources[i]
		if !usable(&r) {
			continue
		}
		p := &basePool{tmpl: r}
		switch {
		case r.Scalar != nil:
			p.amount = baseToMilli(r.Scalar.Value)
		case r.Ranges != nil:
			p.ranges = append([]mesos.Value_Range(nil), r.Ranges.Range...)
		default:
			continue
		}
		s.pools[r.Name] = append(s.pools[r.Name], p)
	}
	return s
}

func (s *baseOfferState) scalarFree(name string) milli {
	var sum milli
	for _, p := range s.pools[name] {
		sum += p.amount
	}
	return sum
}

func (s *baseOfferState) portsFree() int {
	n := 0
	for _, p := range s.pools["ports"] {
		for _, r := range p.ranges {
			n += int(r.End - r.Begin + 1)
		}
	}
	return n
}

func (s *baseOfferState) fits(cpus, mem, disk milli, ports int) bool {
	return s.scalarFree("cpus") >= cpus && s.scalarFree("mem") >= mem &&
		(disk == 0 || s.scalarFree("disk") >= disk) && (ports == 0 || s.portsFree() >= ports)
}

func (s *baseOfferState) takeScalar(name string, amount milli) []mesos.Resource {
	var out []mesos.Resource
	for _, p := range s.pools[name] {
		if amount == 0 {
			break
		}
		take := min(p.amount, amount)
		if take == 0 {
			continue
		}
		p.amount -= take
		amount -= take
		r := p.tmpl
		r.Scalar = &mesos.Value_Scalar{Value: float64(take) / 1000}
		out = append(out, r)
	}
	return out
}

func (s *baseOfferState) takePorts(n int) ([]uint32, []mesos.Resource) {
	var ports []uint32
	var out []mesos.Resource
	for _, p := range s.pools["ports"] {
		var got []mesos.Value_Range
		for n > 0 && len(p.ranges) > 0 {
			r := &p.ranges[0]
			port := r.Begin
			ports = append(ports, uint32(port))
			got = append(got, mesos.Value_Range{Begin: port, End: port})
			n--
			if r.Begin == r.End {
				p.ranges = p.ranges[1:]
			} else {
				r.Begin++
			}
		}
		if len(got) > 0 {
			res := p.tmpl
			res.Ranges = &mesos.Value_Ranges{Range: got}
			out = append(out, res)
		}
		if n == 0 {
			break
		}
	}
	return ports, out
}

func basePlace(offers []*mesos.Offer, needs []baseNeed, exec baseNeed, running map[string]map[string]int) ([]basePlacement, []*mesos.Offer) {
	states := make([]*baseOfferState, len(offers))
	for i, o := range offers {
		states[i] = newBaseOfferState(o)
	}
	sort.SliceStable(states, func(i, j int) bool {
		a, b := states[i].offer, states[j].offer
		if a.AgentID.Value != b.AgentID.Value {
			return a.AgentID.Value < b.AgentID.Value
		}
		return a.ID.Value < b.ID.Value
	})
	count := func(agent, service string) int {
		if running[agent] == nil {
			return 0
		}
		return running[agent][service]
	}
	var out []basePlacement
	for _, n := range needs {
		cpus := baseToMilli(n.CPUs) + baseToMilli(exec.CPUs)
		mem := baseToMilli(n.Mem) + baseToMilli(exec.Mem)
		disk := baseToMilli(n.Disk) + baseToMilli(exec.Disk)
		var best *baseOfferState
		for _, s := range states {
			if !s.fits(cpus, mem, disk, n.Ports) {
				continue
			}
			if best == nil || count(s.offer.AgentID.Value, n.Service) < count(best.offer.AgentID.Value, n.Service) {
				best = s
			}
		}
		if best == nil {
			continue
		}
		best.used = true
		pl := basePlacement{TaskID: n.TaskID, OfferID: best.offer.ID.Value, AgentID: best.offer.AgentID.Value, Host: best.offer.Hostname}
		pl.Task = append(pl.Task, best.takeScalar("cpus", baseToMilli(n.CPUs))...)
		pl.Task = append(pl.Task, best.takeScalar("mem", baseToMilli(n.Mem))...)
		if d := baseToMilli(n.Disk); d > 0 {
			pl.Task = append(pl.Task, best.takeScalar("disk", d)...)
		}
		if n.Ports > 0 {
			ports, res := best.takePorts(n.Ports)
			pl.Ports = ports
			pl.Task = append(pl.Task, res...)
		}
		pl.Executor = append(pl.Executor, best.takeScalar("cpus", baseToMilli(exec.CPUs))...)
		pl.Executor = append(pl.Executor, best.takeScalar("mem", baseToMilli(exec.Mem))...)
		out = append(out, pl)
		agent := best.offer.AgentID.Value
		if running[agent] == nil {
			running[agent] = map[string]int{}
		}
		running[agent][n.Service]++
	}
	var unused []*mesos.Offer
	for _, s := range states {
		if !s.used {
			unused = append(unused, s.offer)
		}
	}
	return out, unused
}

const (
	benchAgents   = 100
	benchTasks    = 10000
	benchServices = 10
)

// benchOffers: one offer per agent with room for 100 tasks of 0.1 cpus,
// 32 MiB and one port, plus the executor's 0.05 cpus and 16 MiB; agents
// in 5 racks.
func benchOffers() []Offer {
	out := make([]Offer, benchAgents)
	for i := range out {
		name := fmt.Sprintf("agent-%03d", i)
		out[i] = Offer{
			ID: "o-" + name, AgentID: name, Hostname: name + ".example",
			Attributes: []mesos.Attribute{text("rack", fmt.Sprintf("r%d", i%5))},
			Resources:  []mesos.Resource{scalar("cpus", 16), scalar("mem", 8192), scalar("disk", 1000), portRange(31000, 31199)},
		}
	}
	return out
}

func benchNeeds(tasks int, cs ...linkspec.Constraint) []Need {
	out := make([]Need, tasks)
	for i := range out {
		out[i] = Need{TaskID: fmt.Sprintf("t%05d", i), Service: fmt.Sprintf("svc-%d", i%benchServices), CPUs: 0.1, Mem: 32, Ports: 1, Constraints: cs}
	}
	return out
}

func BenchmarkPlace(b *testing.B) {
	exec := Resources{CPUs: 0.05, Mem: 16}
	for _, tasks := range []int{benchTasks, 2 * benchTasks} {
		offers := benchOffers()
		mesosOffers := make([]*mesos.Offer, len(offers))
		for i, o := range offers {
			mesosOffers[i] = &mesos.Offer{ID: mesos.OfferID{Value: o.ID}, AgentID: mesos.AgentID{Value: o.AgentID}, Hostname: o.Hostname, Attributes: o.Attributes, Resources: o.Resources}
		}
		plain := benchNeeds(tasks)
		base := make([]baseNeed, len(plain))
		for i, n := range plain {
			base[i] = baseNeed{TaskID: n.TaskID, Service: n.Service, CPUs: n.CPUs, Mem: n.Mem, Ports: n.Ports}
		}
		size := fmt.Sprintf("%dx%d", benchAgents, tasks)
		b.Run("baseline/"+size, func(b *testing.B) {
			for b.Loop() {
				placed, _ := basePlace(mesosOffers, base, baseNeed{CPUs: exec.CPUs, Mem: exec.Mem}, map[string]map[string]int{})
				if tasks == benchTasks && len(placed) != tasks {
					b.Fatalf("placed %d", len(placed))
				}
			}
		})
		b.Run("place/"+size, func(b *testing.B) {
			for b.Loop() {
				r := Place(offers, nil, plain, Options{Executor: exec})
				if tasks == benchTasks && len(r.Placements) != tasks {
					b.Fatalf("placed %d", len(r.Placements))
				}
			}
		})
		constrained := benchNeeds(tasks, linkspec.Constraint{Field: "rack", Operator: linkspec.GroupBy, Value: "5"},
			linkspec.Constraint{Field: "hostname", Operator: linkspec.MaxPer, Value: "20"},
			linkspec.Constraint{Field: "rack", Operator: linkspec.Like, Value: "r[0-9]"})
		b.Run("place-constraints/"+size, func(b *testing.B) {
			for b.Loop() {
				r := Place(offers, nil, constrained, Options{Executor: exec})
				if tasks == benchTasks && len(r.Placements) != tasks {
					b.Fatalf("placed %d: %v", len(r.Placements), r.Unplaced[0].Reasons)
				}
			}
		})
	}
}
