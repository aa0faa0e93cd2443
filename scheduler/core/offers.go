package core

import (
	"maps"
	"slices"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	placer "github.com/tiltai/tiltai/scheduler/placement"
)

// Offer matching is scheduler/placement's Place, a pure function of the
// offers held, the tasks placed and the tasks waiting; this file turns the
// machine's records into its inputs and keeps what it says about the tasks
// it could not place.

// placement is a task placed on an offer: the resources its TaskInfo and
// ExecutorInfo carry, and the ports it got (in the order of its in-gates).
type placement = placer.Placement

// agentInfo is what the machine knows of an agent: from its offers (which
// carry its hostname, attributes and any maintenance), inverse offers and
// status updates. It is not stored: a restarted scheduler learns it again
// from offers; the attributes constraints read of a task's agent are kept
// on the task record.
type agentInfo struct {
	ID             string
	Hostname       string
	Attributes     []mesos.Attribute
	Region, Zone   string
	Unavailability *placer.Window
	// Draining: a task of ours there was killed with REASON_AGENT_DRAINING
	// (the operator's DRAIN_AGENT); cleared by the agent's next offer (a
	// drained agent offers nothing until it is reactivated).
	Draining bool
	// Maintenance: a window is coming (inverse offers came) and the
	// agent's tasks are being moved. Inverse are the outstanding inverse
	// offers, accepted once the agent is empty.
	Maintenance bool
	Inverse     []string
}

func (m *Machine) agent(id string) *agentInfo {
	a := m.agents[id]
	if a == nil {
		a = &agentInfo{ID: id}
		m.agents[id] = a
	}
	return a
}

// learnOffer updates the agent an offer comes from.
func (m *Machine) learnOffer(o *mesos.Offer) {
	p := placer.FromMesos(o, false)
	a := m.agent(p.AgentID)
	if a.Draining {
		a.Draining = false // it offers again: reactivated
		m.viewDirty = true
	}
	if a.Hostname != p.Hostname || a.Region != p.Region || a.Zone != p.Zone || !sameWindow(a.Unavailability, p.Unavailability) {
		m.viewDirty = true
	}
	a.Hostname, a.Attributes, a.Region, a.Zone, a.Unavailability = p.Hostname, p.Attributes, p.Region, p.Zone, p.Unavailability
	if a.Maintenance && p.Unavailability == nil {
		m.maintenanceOver(a)
	}
}

func sameWindow(a, b *placer.Window) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Waiting is why a service's tasks wait for an offer: from the last round
// of placement that left some of them unplaced, for each reason how many
// offers it ruled out (one offer may count under several).
type Waiting struct {
	Tasks   int            // tasks of the service left pending
	Reasons map[string]int // reason → offers ruled out
	Top     string         // the reason that ruled out most offers
	Since   time.Time      // when the service started waiting
	At      time.Time      // the round the reasons come from
}

func topReason(r map[string]int) string {
	top, n := "", -1
	for k, v := range r {
		if v > n || (v == n && k < top) {
			top, n = k, v
		}
	}
	return top
}

// placeOffers puts pending tasks on the offers held, accepts the offers
// used and declines the rest, and notes why what waits still waits.
func (m *Machine) placeOffers(now time.Time) bool {
	if len(m.offers) == 0 {
		m.noOffers(now)
		return false
	}
	var pending []*taskRecord
	for _, t := range m.idx.pending {
		if m.st.spec.Services[t.Service] != nil {
			pending = append(pending, t)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Seq < pending[j].Seq })
	needs := make([]placer.Need, 0, len(pending))
	services := map[string]bool{}
	for _, t := range pending {
		svc := m.st.spec.Services[t.Service]
		services[t.Service] = true
		needs = append(needs, placer.Need{TaskID: t.ID, Service: t.Service, CPUs: svc.CPUs, Mem: svc.Mem, Disk: svc.Disk,
			Ports: len(m.st.spec.InGates(t.Service)), Constraints: svc.Constraints})
	}
	// Where the waiting services' tasks are, for spreading and for the
	// constraints. Tasks on their way out (retiring, killing, moving off
	// an agent) are not counted: their replacements take their place.
	var running []placer.Placed
	for svc := range services {
		for _, t := range m.idx.service[svc] {
			if t.AgentID == "" || t.Phase == phaseKilling || t.Phase == phaseUnreachable || !t.Retiring.IsZero() || m.moving(t) {
				continue
			}
			running = append(running, placer.Placed{TaskID: t.ID, Service: t.Service, AgentID: t.AgentID, Hostname: t.Host,
				Region: t.Region, Zone: t.Zone, Attributes: t.Attributes})
		}
	}
	offers := make([]placer.Offer, len(m.offers))
	for i, o := range m.offers {
		offers[i] = placer.FromMesos(o, m.agents[o.AgentID.Value].Draining)
	}
	res := placer.Place(offers, running, needs, placer.Options{
		Executor: placer.Resources{CPUs: m.cfg.ExecutorCPUs, Mem: m.cfg.ExecutorMem},
		Now:      now,
	})
	m.offers = nil
	m.noteWaiting(res.Unplaced, now)

	byOffer := map[string][]mesos.TaskInfo{}
	var offerOrder []string
	for _, pl := range res.Placements {
		t := m.st.tasks[pl.TaskID]
		gates := m.st.spec.InGates(t.Service)
		t.Phase = phaseLaunched
		t.AgentID, t.Host = pl.AgentID, pl.Host
		if a := m.agents[pl.AgentID]; a != nil {
			t.Attributes, t.Region, t.Zone = a.Attributes, a.Region, a.Zone
		}
		t.Ports = make(map[string]uint32, len(gates))
		for i, g := range gates {
			t.Ports[g] = pl.Ports[i]
		}
		t.State = "TASK_STAGING"
		t.Updated = now
		m.touch(t)
		m.observe(t)
		ti, err := m.taskInfo(t, pl)
		if err != nil {
			// Cannot happen for a valid spec; never launch half a task.
			m.logf(LevelError, "cannot build the task", "task_id", t.ID, "err", err)
			m.forget(t, err.Error())
			continue
		}
		if _, ok := byOffer[pl.OfferID]; !ok {
			offerOrder = append(offerOrder, pl.OfferID)
		}
		byOffer[pl.OfferID] = append(byOffer[pl.OfferID], ti)
		m.out.Metrics.Launches++
		m.event("task_launching", map[string]any{"task_id": t.ID, "agent_id": t.AgentID, "host": t.Host, "ports": t.Ports})
	}
	for _, oid := range offerOrder {
		m.queue(acceptLaunch(oid, byOffer[oid]))
	}
	if len(res.Unused) > 0 {
		refuse := m.cfg.Refuse
		if len(res.Unplaced) > 0 {
			// Something waits but did not fit: look again soon.
			refuse = time.Second
		}
		ids := make([]mesos.OfferID, len(res.Unused))
		for i, id := range res.Unused {
			ids[i] = mesos.OfferID{Value: id}
		}
		m.queue(decline(ids, refuse))
		m.out.Metrics.Declined += len(ids)
	}
	return len(res.Placements) > 0
}

// noteWaiting keeps, per service, why its tasks were left waiting this
// round (the first such task's reasons stand for the service: its tasks
// ask the same), and forgets services none of whose tasks waits. A
// service whose top reason changed gets an event.
func (m *Machine) noteWaiting(unplaced []placer.Unplaced, now time.Time) {
	seen := map[string]*Waiting{}
	for _, u := range unplaced {
		if w := seen[u.Service]; w != nil {
			w.Tasks++
			continue
		}
		w := &Waiting{Tasks: 1, Reasons: make(map[string]int, len(u.Reasons)), At: now, Since: now}
		for r, n := range u.Reasons {
			w.Reasons[string(r)] = n
			inc(&m.out.Metrics.Unplaced, u.Service+"\x00"+string(r), n)
		}
		w.Top = topReason(w.Reasons)
		seen[u.Service] = w
	}
	for _, svc := range slices.Sorted(maps.Keys(seen)) {
		m.setWaiting(svc, seen[svc])
	}
	for svc := range m.waiting {
		if seen[svc] == nil {
			delete(m.waiting, svc)
			m.viewDirty = true
		}
	}
}

func (m *Machine) setWaiting(svc string, w *Waiting) {
	old := m.waiting[svc]
	if old != nil {
		w.Since = old.Since
	}
	m.waiting[svc] = w
	m.viewDirty = true
	if old == nil || old.Top != w.Top || old.Tasks != w.Tasks {
		m.event("service_waiting", map[string]any{"service": svc, "tasks": w.Tasks, "reason": w.Top, "reasons": w.Reasons})
		m.logf(LevelInfo, "tasks wait for an offer", "service", svc, "tasks", w.Tasks, "reason", w.Top)
	}
}

// noOffers: tasks wait and no offer has been seen since they began to.
// Once an offer round has given reasons, those stay until the next round.
func (m *Machine) noOffers(now time.Time) {
	if len(m.idx.pending) == 0 {
		if len(m.waiting) > 0 {
			clear(m.waiting)
			m.viewDirty = true
		}
		return
	}
	count := map[string]int{}
	for _, t := range m.idx.pending {
		count[t.Service]++
	}
	for _, svc := range slices.Sorted(maps.Keys(count)) {
		n := count[svc]
		if w := m.waiting[svc]; w != nil {
			if w.Tasks != n {
				w.Tasks = n
				m.viewDirty = true
			}
			continue
		}
		m.setWaiting(svc, &Waiting{Tasks: n, Reasons: map[string]int{string(placer.ReasonNoOffers): 1}, Top: string(placer.ReasonNoOffers), Since: now, At: now})
	}
	for svc := range m.waiting {
		if count[svc] == 0 {
			delete(m.waiting, svc)
			m.viewDirty = true
		}
	}
}
