package core

import (
	"math"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Offer matching: a pure function from offers and pending launches to
// placements. Resources are counted in thousandths, as Mesos does, so that
// 0.1 + 0.2 fits into 0.3.

// need is what one task asks of an offer.
type need struct {
	TaskID  string
	Service string
	CPUs    float64
	Mem     float64
	Disk    float64
	Ports   int // one per in-gate
}

// placement is a task placed on an offer: the resources its TaskInfo and
// ExecutorInfo carry, and the ports it got (in the order of its in-gates).
type placement struct {
	TaskID   string
	OfferID  string
	AgentID  string
	Host     string
	Task     []mesos.Resource
	Executor []mesos.Resource
	Ports    []uint32
}

type milli = int64

func toMilli(v float64) milli { return milli(math.Round(v * 1000)) }

// pool is one offered resource we can take from: a scalar amount or port
// ranges, keeping the offered resource as the template for what we hand
// back (its role and reservation must be echoed exactly).
type pool struct {
	tmpl   mesos.Resource
	amount milli
	ranges []mesos.Value_Range
}

// offerState is an offer being carved up.
type offerState struct {
	offer *mesos.Offer
	pools map[string][]*pool // by resource name
	used  bool
}

// usable: plain resources only. Persistent volumes, revocable and shared
// resources and resource-provider resources are not for us.
func usable(r *mesos.Resource) bool {
	return r.Disk == nil && r.Revocable == nil && r.Shared == nil && r.ProviderID == nil
}

func newOfferState(o *mesos.Offer) *offerState {
	s := &offerState{offer: o, pools: map[string][]*pool{}}
	for i := range o.Resources {
		r := o.Resources[i]
		if !usable(&r) {
			continue
		}
		p := &pool{tmpl: r}
		switch {
		case r.Scalar != nil:
			p.amount = toMilli(r.Scalar.Value)
		case r.Ranges != nil:
			p.ranges = append([]mesos.Value_Range(nil), r.Ranges.Range...)
		default:
			continue
		}
		s.pools[r.Name] = append(s.pools[r.Name], p)
	}
	return s
}

func (s *offerState) scalarFree(name string) milli {
	var sum milli
	for _, p := range s.pools[name] {
		sum += p.amount
	}
	return sum
}

func (s *offerState) portsFree() int {
	n := 0
	for _, p := range s.pools["ports"] {
		for _, r := range p.ranges {
			n += int(r.End - r.Begin + 1)
		}
	}
	return n
}

func (s *offerState) fits(cpus, mem, disk milli, ports int) bool {
	return s.scalarFree("cpus") >= cpus && s.scalarFree("mem") >= mem &&
		(disk == 0 || s.scalarFree("disk") >= disk) && (ports == 0 || s.portsFree() >= ports)
}

// takeScalar removes amount from the pools (reserved ones first, as they
// are ours alone) and returns the resources that carry it.
func (s *offerState) takeScalar(name string, amount milli) []mesos.Resource {
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

// takePorts removes n ports, lowest first, and returns them and the
// resources that carry them.
func (s *offerState) takePorts(n int) ([]uint32, []mesos.Resource) {
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

// place puts as many needs as fit onto the offers, in the order given
// (oldest first). Each task goes to the offer whose agent runs the fewest
// tasks of its service (counting those placed in this round), so a
// service spreads over agents. exec is what each task's executor needs on
// top of the task. It returns the placements and the offers left unused.
func place(offers []*mesos.Offer, needs []need, exec need, running map[string]map[string]int) ([]placement, []*mesos.Offer) {
	states := make([]*offerState, len(offers))
	for i, o := range offers {
		states[i] = newOfferState(o)
	}
	// Deterministic order: by agent, then offer ID.
	sort.SliceStable(states, func(i, j int) bool {
		a, b := states[i].offer, states[j].offer
		if a.AgentID.Value != b.AgentID.Value {
			return a.AgentID.Value < b.AgentID.Value
		}
		return a.ID.Value < b.ID.Value
	})
	// Placed in this round, on top of running (which is not changed).
	placedOn := map[[2]string]int{}
	count := func(agent, service string) int {
		return running[agent][service] + placedOn[[2]string{agent, service}]
	}
	var out []placement
	for _, n := range needs {
		cpus := toMilli(n.CPUs) + toMilli(exec.CPUs)
		mem := toMilli(n.Mem) + toMilli(exec.Mem)
		disk := toMilli(n.Disk) + toMilli(exec.Disk)
		var best *offerState
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
		pl := placement{TaskID: n.TaskID, OfferID: best.offer.ID.Value, AgentID: best.offer.AgentID.Value, Host: best.offer.Hostname}
		pl.Task = append(pl.Task, best.takeScalar("cpus", toMilli(n.CPUs))...)
		pl.Task = append(pl.Task, best.takeScalar("mem", toMilli(n.Mem))...)
		if d := toMilli(n.Disk); d > 0 {
			pl.Task = append(pl.Task, best.takeScalar("disk", d)...)
		}
		if n.Ports > 0 {
			ports, res := best.takePorts(n.Ports)
			pl.Ports = ports
			pl.Task = append(pl.Task, res...)
		}
		pl.Executor = append(pl.Executor, best.takeScalar("cpus", toMilli(exec.CPUs))...)
		pl.Executor = append(pl.Executor, best.takeScalar("mem", toMilli(exec.Mem))...)
		out = append(out, pl)
		placedOn[[2]string{best.offer.AgentID.Value, n.Service}]++
	}
	var unused []*mesos.Offer
	for _, s := range states {
		if !s.used {
			unused = append(unused, s.offer)
		}
	}
	return out, unused
}
