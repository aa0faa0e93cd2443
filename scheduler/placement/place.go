package placement

import (
	"math"
	"slices"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

// Need is a pending task: what it asks of an offer.
type Need struct {
	TaskID, Service string
	CPUs, Mem, Disk float64
	Ports           int // one per in-gate
	// Constraints are its service's. Tasks of one service share them: the
	// first pending task of a service gives them for all its tasks.
	Constraints []linkspec.Constraint
}

// Resources are amounts of the scalar resources.
type Resources struct {
	CPUs, Mem, Disk float64
}

// Options are what placement needs beyond offers and tasks.
type Options struct {
	// Executor is what each task's executor needs on top of the task.
	Executor Resources
	// Roles are the roles whose resources may be used ("*" is unreserved);
	// empty means any.
	Roles []string
	// Now and Life bound a new task's expected life, [Now, Now+Life); an
	// agent with maintenance scheduled in it gets no new task. Life 0 is
	// open-ended: any maintenance not yet over rules the agent out.
	Now  time.Time
	Life time.Duration
}

// Placement is a task placed on an offer: the resources its TaskInfo and
// ExecutorInfo carry, and the ports it got (in the order of its in-gates).
type Placement struct {
	TaskID   string
	OfferID  string
	AgentID  string
	Host     string
	Task     []mesos.Resource
	Executor []mesos.Resource
	Ports    []uint32
}

// Reason is why an offer was not used for a task.
type Reason string

// Reasons besides constraints, which are named "field:OPERATOR[:value]".
const (
	ReasonCPUs        Reason = "cpus"
	ReasonMem         Reason = "mem"
	ReasonDisk        Reason = "disk"
	ReasonPorts       Reason = "ports"
	ReasonRole        Reason = "role" // enough only counting resources of roles not accepted
	ReasonDraining    Reason = "agent draining"
	ReasonMaintenance Reason = "maintenance"
	ReasonNoOffers    Reason = "no offers"
)

// Unplaced is a task left waiting and why: for each reason, how many
// offers it ruled out. An offer can fail several constraints and resources
// at once and is counted under each; a draining agent's or one under
// maintenance only under that. With no offers at all the only reason is
// ReasonNoOffers, counted 1.
type Unplaced struct {
	TaskID, Service string
	Reasons         map[Reason]int
}

// Result is a round of placement.
type Result struct {
	Placements []Placement // in the order of the needs
	Unused     []string    // IDs of offers nothing was placed on
	Unplaced   []Unplaced  // in the order of the needs
}

// Resources are counted in thousandths, as Mesos does, so that 0.1 + 0.2
// fits into 0.3.
type milli = int64

func toMilli(v float64) milli { return milli(math.Round(v * 1000)) }

// the resources placement takes, indexing offerState.pools and .free.
const (
	rCPUs = iota
	rMem
	rDisk
	rPorts
	nRes
)

var resNames = [nRes]string{"cpus", "mem", "disk", "ports"}
var resReasons = [nRes]Reason{ReasonCPUs, ReasonMem, ReasonDisk, ReasonPorts}

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
	offer   *Offer
	agent   int // interned agent ID, for the spread counts
	pools   [nRes][]pool
	free    [nRes]int64 // in pools of accepted roles (ports counted one by one)
	other   [nRes]int64 // in pools of other roles, to tell "role" from "cpus"
	blocked Reason      // draining or maintenance: nothing goes here
	vals    []val       // by interned constraint field
	used    bool
}

// usable: plain resources only. Persistent volumes, revocable and shared
// resources and resource-provider resources are not for us.
func usable(r *mesos.Resource) bool {
	return r.Disk == nil && r.Revocable == nil && r.Shared == nil && r.ProviderID == nil
}

// role is the role a resource is reserved for, "*" when unreserved.
func role(r *mesos.Resource) string {
	if n := len(r.Reservations); n > 0 && r.Reservations[n-1].Role != nil {
		return *r.Reservations[n-1].Role
	}
	if r.Role != nil {
		return *r.Role
	}
	return "*"
}

func newOfferState(o *Offer, roles []string) *offerState {
	s := &offerState{offer: o}
	for i := range o.Resources {
		r := &o.Resources[i]
		if !usable(r) {
			continue
		}
		k := slices.Index(resNames[:], r.Name)
		if k < 0 {
			continue
		}
		var amount int64
		p := pool{tmpl: *r}
		switch {
		case k != rPorts && r.Scalar != nil:
			p.amount = toMilli(r.Scalar.Value)
			amount = p.amount
		case k == rPorts && r.Ranges != nil:
			p.ranges = append([]mesos.Value_Range(nil), r.Ranges.Range...)
			for _, rg := range p.ranges {
				amount += int64(rg.End - rg.Begin + 1)
			}
		default:
			continue
		}
		if len(roles) > 0 && !slices.Contains(roles, role(r)) {
			s.other[k] += amount
			continue
		}
		s.free[k] += amount
		s.pools[k] = append(s.pools[k], p)
	}
	return s
}

// want is a need in the units of offerState.free.
type want [nRes]int64

func (s *offerState) fits(w *want) bool {
	return s.free[rCPUs] >= w[rCPUs] && s.free[rMem] >= w[rMem] && s.free[rDisk] >= w[rDisk] && s.free[rPorts] >= w[rPorts]
}

// takeScalar removes amount from the pools, in the order offered, and
// returns the resources that carry it.
func (s *offerState) takeScalar(k int, amount milli) []mesos.Resource {
	var out []mesos.Resource
	s.free[k] -= amount
	for i := range s.pools[k] {
		p := &s.pools[k][i]
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
	s.free[rPorts] -= int64(n)
	for i := range s.pools[rPorts] {
		p := &s.pools[rPorts][i]
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

// service is what a round keeps per service: its constraints, where its
// tasks are per agent (for spreading) and per constraint field.
type service struct {
	checks   []check
	perAgent []int32        // by interned agent
	groups   map[int]*group // by interned field
	spreadBy []int          // fields of its GROUP_BY constraints
	// Constraints that depend only on the offer (LIKE, IS, …) are checked
	// once per offer: ok by offer, and dynamic are the rest.
	ok      []bool
	dynamic []check
}

// Place puts as many pending tasks as fit onto the offers, in the order
// given (oldest first). Each goes to the offer, among those with room for
// the task and its executor and meeting every constraint of its service,
// whose agent runs the fewest tasks of that service (counting running
// tasks and those placed earlier in this round), so a service spreads over
// agents; ties go to the lowest agent ID, then offer ID. A service with a
// GROUP_BY constraint first prefers the value with the fewest of its tasks,
// so one round spreads over every value offered. Offers on
// draining agents and on agents with maintenance in the task's expected
// life are not used.
func Place(offers []Offer, running []Placed, pending []Need, opts Options) Result {
	var res Result
	states := make([]*offerState, len(offers))
	for i := range offers {
		states[i] = newOfferState(&offers[i], opts.Roles)
	}
	sort.SliceStable(states, func(i, j int) bool {
		a, b := states[i].offer, states[j].offer
		if a.AgentID != b.AgentID {
			return a.AgentID < b.AgentID
		}
		return a.ID < b.ID
	})
	agents := map[string]int{}
	for _, s := range states {
		o := s.offer
		a, ok := agents[o.AgentID]
		if !ok {
			a = len(agents)
			agents[o.AgentID] = a
		}
		s.agent = a
		switch {
		case o.Draining:
			s.blocked = ReasonDraining
		case o.Unavailability != nil && o.Unavailability.overlaps(opts.Now, opts.Life):
			s.blocked = ReasonMaintenance
		}
	}

	// Services and constraint fields, interned.
	fields := map[string]int{}
	services := map[string]*service{}
	svcOf := make([]*service, len(pending))
	for i := range pending {
		n := &pending[i]
		svc := services[n.Service]
		if svc == nil {
			svc = &service{checks: compile(n.Constraints, fields), perAgent: make([]int32, len(agents)), groups: map[int]*group{}}
			services[n.Service] = svc
		}
		svcOf[i] = svc
	}
	for _, svc := range services {
		for _, k := range svc.checks {
			if svc.groups[k.field] == nil {
				svc.groups[k.field] = newGroup()
			}
			if k.c.Operator == linkspec.GroupBy && !slices.Contains(svc.spreadBy, k.field) {
				svc.spreadBy = append(svc.spreadBy, k.field)
			}
		}
	}
	names := make([]string, len(fields))
	for f, i := range fields {
		names[i] = f
	}
	if len(names) > 0 {
		for _, s := range states {
			o := s.offer
			s.vals = make([]val, len(names))
			for i, f := range names {
				s.vals[i].s, s.vals[i].ok = fieldValue(f, o.Hostname, o.Region, o.Zone, o.Attributes)
			}
		}
	}
	for _, svc := range services {
		svc.ok = make([]bool, len(states))
		for i, s := range states {
			svc.ok[i] = true
			for j := range svc.checks {
				if k := &svc.checks[j]; k.static() && !k.meets(s.vals[k.field], nil) {
					svc.ok[i] = false
				}
			}
		}
		for _, k := range svc.checks {
			if !k.static() {
				svc.dynamic = append(svc.dynamic, k)
			}
		}
	}
	for i := range running {
		t := &running[i]
		svc := services[t.Service]
		if svc == nil {
			continue
		}
		if a, ok := agents[t.AgentID]; ok {
			svc.perAgent[a]++
		}
		for f, g := range svc.groups {
			var v val
			v.s, v.ok = fieldValue(names[f], t.Hostname, t.Region, t.Zone, t.Attributes)
			g.add(v)
		}
	}

	exec := want{toMilli(opts.Executor.CPUs), toMilli(opts.Executor.Mem), toMilli(opts.Executor.Disk), 0}
	// A task that found no offer leaves the offers as they were, so the
	// next task asking the same gets the same answer until something is
	// placed: remember it rather than scan every offer again.
	type memoKey struct {
		svc *service
		w   want
	}
	memo := map[memoKey]map[Reason]int{}
	for i := range pending {
		n := &pending[i]
		svc := svcOf[i]
		w := want{toMilli(n.CPUs) + exec[rCPUs], toMilli(n.Mem) + exec[rMem], toMilli(n.Disk) + exec[rDisk], int64(n.Ports)}
		key := memoKey{svc, w}
		if r, ok := memo[key]; ok {
			res.Unplaced = append(res.Unplaced, Unplaced{TaskID: n.TaskID, Service: n.Service, Reasons: cloneReasons(r)})
			continue
		}
		var best *offerState
		var bestScore int64
	offers:
		for si, s := range states {
			if s.blocked != "" || !svc.ok[si] || !s.fits(&w) {
				continue
			}
			score := int64(svc.perAgent[s.agent])
			if best != nil && score >= bestScore && svc.spreadBy == nil {
				continue // it could not win; skip the constraints
			}
			for j := range svc.dynamic {
				k := &svc.dynamic[j]
				if !k.meets(s.vals[k.field], svc.groups[k.field]) {
					continue offers
				}
			}
			// GROUP_BY: the value with the fewest tasks first, so a round
			// spreads over the values offered, not only those Marathon's
			// rule has seen; then the agent with the fewest.
			for _, f := range svc.spreadBy {
				score += int64(svc.groups[f].count(s.vals[f])) << 32
			}
			if best == nil || score < bestScore {
				best, bestScore = s, score
			}
		}
		if best == nil {
			r := diagnose(states, &w, svc)
			memo[key] = r
			res.Unplaced = append(res.Unplaced, Unplaced{TaskID: n.TaskID, Service: n.Service, Reasons: cloneReasons(r)})
			continue
		}
		if len(memo) > 0 {
			clear(memo)
		}
		best.used = true
		o := best.offer
		pl := Placement{TaskID: n.TaskID, OfferID: o.ID, AgentID: o.AgentID, Host: o.Hostname}
		pl.Task = append(pl.Task, best.takeScalar(rCPUs, toMilli(n.CPUs))...)
		pl.Task = append(pl.Task, best.takeScalar(rMem, toMilli(n.Mem))...)
		if d := toMilli(n.Disk); d > 0 {
			pl.Task = append(pl.Task, best.takeScalar(rDisk, d)...)
		}
		if n.Ports > 0 {
			ports, rs := best.takePorts(n.Ports)
			pl.Ports = ports
			pl.Task = append(pl.Task, rs...)
		}
		pl.Executor = append(pl.Executor, best.takeScalar(rCPUs, exec[rCPUs])...)
		pl.Executor = append(pl.Executor, best.takeScalar(rMem, exec[rMem])...)
		if exec[rDisk] > 0 {
			pl.Executor = append(pl.Executor, best.takeScalar(rDisk, exec[rDisk])...)
		}
		res.Placements = append(res.Placements, pl)
		svc.perAgent[best.agent]++
		for f, g := range svc.groups {
			g.add(best.vals[f])
		}
	}
	for _, s := range states {
		if !s.used {
			res.Unused = append(res.Unused, s.offer.ID)
		}
	}
	return res
}

// diagnose counts, for a task no offer took, why each offer did not.
func diagnose(states []*offerState, w *want, svc *service) map[Reason]int {
	r := map[Reason]int{}
	if len(states) == 0 {
		r[ReasonNoOffers] = 1
		return r
	}
	for _, s := range states {
		if s.blocked != "" {
			r[s.blocked]++
			continue
		}
		for j := range svc.checks {
			k := &svc.checks[j]
			if !k.meets(s.vals[k.field], svc.groups[k.field]) {
				r[k.reason]++
			}
		}
		for k := range nRes {
			if s.free[k] < w[k] {
				if s.free[k]+s.other[k] >= w[k] {
					r[ReasonRole]++
				} else {
					r[resReasons[k]]++
				}
			}
		}
	}
	return r
}

func cloneReasons(m map[Reason]int) map[Reason]int {
	c := make(map[Reason]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
