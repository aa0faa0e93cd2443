package master

import (
	"net"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mallocator "github.com/mesos/mesos-go/api/v1/lib/allocator"
	mmaintenance "github.com/mesos/mesos-go/api/v1/lib/maintenance"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// Maintenance as Mesos 1.11's master does it (src/master/maintenance.cpp,
// the maintenance handlers of src/master/http.cpp, the inverse offers of
// the hierarchical allocator): a schedule of unavailability windows over
// machines; a scheduled machine is DRAINING (its offers carry the
// unavailability, and every framework with resources there gets inverse
// offers) until START_MAINTENANCE takes it DOWN (its agents are removed
// and refused) and STOP_MAINTENANCE brings it UP again.
//
// A machine is {hostname, ip}; an agent is on the machine whose hostname
// is its advertised hostname and whose ip is the IP of its address, both
// equal (Mesos keys machines by the whole MachineID).

type machineMode int

const (
	machineDraining machineMode = iota + 1
	machineDown
)

type machineKey struct{ hostname, ip string }

func keyOf(id mesos.MachineID) machineKey { return machineKey{id.GetHostname(), id.GetIP()} }

func (k machineKey) id() mesos.MachineID {
	var id mesos.MachineID
	if k.hostname != "" {
		h := k.hostname
		id.Hostname = &h
	}
	if k.ip != "" {
		ip := k.ip
		id.IP = &ip
	}
	return id
}

type machineRec struct {
	key            machineKey
	mode           machineMode
	unavailability mesos.Unavailability
	responses      map[string]inverseResponse // framework id → its last answer
}

type inverseResponse struct {
	status mallocator.InverseOfferStatus_Status
	at     time.Time
}

type inverseOffer struct{ id, fwID, agentID string }

// maintState is the master's maintenance state.
type maintState struct {
	schedule mmaintenance.Schedule
	machines map[machineKey]*machineRec
	inverse  map[string]*inverseOffer
	refused  map[string]map[string]time.Time // framework → agent → inverse offers filtered until
}

// machineText is a machine id in error texts, as Mesos writes it there
// (stringify(JSON::protobuf(id))).
func machineText(id mesos.MachineID) string {
	b, err := protojson.Marshal(&id)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// validateMachine is maintenance::validation::machine.
func validateMachine(id mesos.MachineID) string {
	if id.GetHostname() == "" && id.GetIP() == "" {
		return "Both 'hostname' and 'ip' for a machine are empty"
	}
	if ip := id.GetIP(); ip != "" {
		if p := net.ParseIP(ip); p == nil || p.To4() == nil {
			return "Failed to parse IP address: " + ip
		}
	}
	return ""
}

// validateSchedule is maintenance::validation::schedule: every window has
// machines, no negative duration, valid and unique machines, and no DOWN
// machine left out.
func validateSchedule(s mmaintenance.Schedule, machines map[machineKey]*machineRec) string {
	seen := map[machineKey]bool{}
	for _, w := range s.Windows {
		if len(w.MachineIDs) == 0 {
			return "List of machines in the maintenance window is empty"
		}
		if d := w.Unavailability.Duration; d != nil && d.Nanoseconds < 0 {
			return "Unavailability 'duration' is negative"
		}
		for _, id := range w.MachineIDs {
			if msg := validateMachine(id); msg != "" {
				return msg
			}
			if seen[keyOf(id)] {
				return "Machine '" + machineText(id) + "' appears more than once in the schedule"
			}
			seen[keyOf(id)] = true
		}
	}
	for _, k := range sortedMachines(machines) {
		if machines[k].mode == machineDown && !seen[k] {
			return "Machine '" + machineText(k.id()) + "' is deactivated and cannot be removed from the schedule"
		}
	}
	return ""
}

// validateMachineList is maintenance::validation::machines (START and
// STOP_MAINTENANCE).
func validateMachineList(ids []mesos.MachineID) string {
	if len(ids) == 0 {
		return "List of machines is empty"
	}
	seen := map[machineKey]bool{}
	for _, id := range ids {
		if msg := validateMachine(id); msg != "" {
			return msg
		}
		if seen[keyOf(id)] {
			return "Machine '" + machineText(id) + "' appears more than once in the schedule"
		}
		seen[keyOf(id)] = true
	}
	return ""
}

func sortedMachines(ms map[machineKey]*machineRec) []machineKey {
	out := make([]machineKey, 0, len(ms))
	for k := range ms {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].hostname != out[j].hostname {
			return out[i].hostname < out[j].hostname
		}
		return out[i].ip < out[j].ip
	})
	return out
}

// machine is the machine an agent runs on.
func (a *agentRec) machine() machineKey { return machineKey{a.hostname, a.ip} }

// maintenanceOf is the scheduled machine of an agent (nil when UP).
func (m *Master) maintenanceOf(a *agentRec) *machineRec { return m.maint.machines[a.machine()] }

// agentsOn lists the registered agents of a machine.
func (m *Master) agentsOn(k machineKey) []*agentRec {
	var out []*agentRec
	for _, id := range sortedAgentIDs(m.agents) {
		if a := m.agents[id]; !a.removed && a.machine() == k {
			out = append(out, a)
		}
	}
	return out
}

// updateSchedule is UPDATE_MAINTENANCE_SCHEDULE after validation: new
// machines start DRAINING, machines left out are UP again, and every
// machine whose unavailability is (re)set gets its offers and inverse
// offers rescinded, so that they are made again with it.
func (m *Master) updateSchedule(s mmaintenance.Schedule) *wire.Error {
	if msg := validateSchedule(s, m.maint.machines); msg != "" {
		return wire.BadRequest("%s", msg)
	}
	windows := map[machineKey]mesos.Unavailability{}
	for _, w := range s.Windows {
		for _, id := range w.MachineIDs {
			windows[keyOf(id)] = w.Unavailability
		}
	}
	for _, k := range sortedMachines(m.maint.machines) {
		if _, ok := windows[k]; !ok {
			delete(m.maint.machines, k)
			m.unavailabilityChanged(k)
		}
	}
	for _, w := range s.Windows {
		for _, id := range w.MachineIDs {
			k := keyOf(id)
			mr := m.maint.machines[k]
			if mr == nil {
				mr = &machineRec{key: k, mode: machineDraining}
				m.maint.machines[k] = mr
			}
			mr.unavailability = w.Unavailability
			mr.responses = map[string]inverseResponse{}
			m.unavailabilityChanged(k)
		}
	}
	m.maint.schedule = s
	m.allocDirty = true
	return nil
}

// unavailabilityChanged rescinds the offers and inverse offers of a
// machine's agents (Master::updateUnavailability).
func (m *Master) unavailabilityChanged(k machineKey) {
	for _, a := range m.agentsOn(k) {
		for _, o := range m.offersOn(a.id) {
			m.rescindOffer(o.id)
		}
		m.rescindInverseOffers(a.id)
	}
}

func (m *Master) rescindInverseOffers(agentID string) {
	for _, id := range api.SortedKeys(m.maint.inverse) {
		io := m.maint.inverse[id]
		if io.agentID != agentID {
			continue
		}
		delete(m.maint.inverse, id)
		if fw := m.frameworks[io.fwID]; fw != nil {
			m.send(fw, &scheduler.Event{Type: scheduler.Event_RESCIND_INVERSE_OFFER,
				RescindInverseOffer: &scheduler.Event_RescindInverseOffer{InverseOfferID: mesos.OfferID{Value: id}}})
		}
	}
}

// startMaintenance is START_MAINTENANCE: the machines go DOWN, their agents
// are told to shut down and removed at once (their tasks are lost).
func (m *Master) startMaintenance(ids []mesos.MachineID) *wire.Error {
	if err := m.checkMachines(ids, machineDraining, "is not in DRAINING mode and cannot be brought down"); err != nil {
		return err
	}
	const why = "Operator initiated 'Machine DOWN'"
	for _, id := range ids {
		k := keyOf(id)
		for _, a := range m.agentsOn(k) {
			if a.connected {
				a.link.Post(link.AgentShutdown{Message: why})
			}
			m.removeAgentNow(a, "Agent "+a.hostname+" removed: "+why, false)
		}
		mr := m.maint.machines[k]
		mr.mode, mr.responses = machineDown, nil
	}
	return nil
}

// checkMachines validates the machines of START/STOP_MAINTENANCE: each
// scheduled and in the mode the call leaves.
func (m *Master) checkMachines(ids []mesos.MachineID, mode machineMode, notInMode string) *wire.Error {
	if msg := validateMachineList(ids); msg != "" {
		return wire.BadRequest("%s", msg)
	}
	for _, id := range ids {
		mr := m.maint.machines[keyOf(id)]
		if mr == nil {
			return wire.BadRequest("Machine '%s' is not part of a maintenance schedule", machineText(id))
		}
		if mr.mode != mode {
			return wire.BadRequest("Machine '%s' %s", machineText(id), notInMode)
		}
	}
	return nil
}

// stopMaintenance is STOP_MAINTENANCE: the machines are UP and leave the
// schedule; their agents may register again.
func (m *Master) stopMaintenance(ids []mesos.MachineID) *wire.Error {
	if err := m.checkMachines(ids, machineDown, "is not in DOWN mode and cannot be brought up"); err != nil {
		return err
	}
	up := map[machineKey]bool{}
	for _, id := range ids {
		up[keyOf(id)] = true
		delete(m.maint.machines, keyOf(id))
	}
	var windows []mmaintenance.Window
	for _, w := range m.maint.schedule.Windows {
		var kept []mesos.MachineID
		for _, id := range w.MachineIDs {
			if !up[keyOf(id)] {
				kept = append(kept, id)
			}
		}
		if len(kept) > 0 {
			w.MachineIDs = kept
			windows = append(windows, w)
		}
	}
	m.maint.schedule.Windows = windows
	return nil
}

// removeAgentNow removes a registered agent at once (START_MAINTENANCE,
// MARK_AGENT_GONE): its tasks end, its offers and inverse offers are
// rescinded, and every framework hears FAILURE {agent_id}.
func (m *Master) removeAgentNow(a *agentRec, message string, gone bool) {
	for _, fwID := range api.SortedKeys(m.frameworks) {
		fw := m.frameworks[fwID]
		for _, t := range tasksOf(fw) {
			if t.agentID != a.id || api.Terminal(t.state) {
				continue
			}
			state, reason := mesos.TASK_LOST, mesos.REASON_AGENT_REMOVED
			if gone && fw.partitionAware {
				state, reason = mesos.TASK_GONE_BY_OPERATOR, mesos.REASON_AGENT_REMOVED_BY_OPERATOR
			}
			e := masterUpdate(t.info.TaskID.Value, a.id, state, reason, message)
			m.recordStatus(t, e.Update.Status, e.Update.Status)
			m.completeTask(fw, t)
			m.send(fw, e)
		}
	}
	for _, o := range m.offersOn(a.id) {
		m.rescindOffer(o.id)
	}
	m.rescindInverseOffers(a.id)
	a.removed, a.connected, a.gone = true, false, gone
	for _, fw := range m.frameworks {
		delete(fw.filters, a.id) // as Mesos' allocator removes the agent's filters
		delete(m.maint.refused[fw.id], a.id)
	}
	a.executors = map[string]map[string]execRec{}
	a.tasks = map[*task]struct{}{}
	m.recomputeUsed(a)
	for _, fwID := range api.SortedKeys(m.frameworks) {
		m.send(m.frameworks[fwID], &scheduler.Event{Type: scheduler.Event_FAILURE,
			Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: a.id}}})
	}
	m.allocDirty = true
}

// refusedRegistration is why an agent may not (re-)register: its machine
// is DOWN, or it was marked gone ("" when it may).
func (m *Master) refusedRegistration(agentID, hostname, ip string) string {
	if a := m.agents[agentID]; a != nil && a.gone {
		return "Agent has been marked gone"
	}
	if mr := m.maint.machines[machineKey{hostname, ip}]; mr != nil && mr.mode == machineDown {
		return "Machine is `DOWN`"
	}
	return ""
}

// allocateInverse makes inverse offers for the agents of DRAINING machines
// to every framework with resources there (tasks, executors or offers),
// one outstanding per framework and agent, honouring the refusal filters
// of ACCEPT/DECLINE_INVERSE_OFFERS.
func (m *Master) allocateInverse(fws []*framework, agentIDs []string, now time.Time) {
	if len(m.maint.machines) == 0 {
		return
	}
	outstanding := map[[2]string]bool{}
	for _, io := range m.maint.inverse {
		outstanding[[2]string{io.fwID, io.agentID}] = true
	}
	batches := map[*framework][]mesos.InverseOffer{}
	for _, aid := range agentIDs {
		a := m.agents[aid]
		mr := m.maintenanceOf(a)
		if mr == nil || mr.mode != machineDraining {
			continue
		}
		for _, fw := range fws {
			if outstanding[[2]string{fw.id, a.id}] || !m.hasResourcesOn(fw, a) {
				continue
			}
			if until, ok := m.maint.refused[fw.id][a.id]; ok {
				if now.Before(until) {
					continue
				}
				delete(m.maint.refused[fw.id], a.id)
			}
			id := m.nextOfferID()
			m.maint.inverse[id] = &inverseOffer{id: id, fwID: fw.id, agentID: a.id}
			ip, path := a.ip, "/slave(1)"
			batches[fw] = append(batches[fw], mesos.InverseOffer{
				OfferID: mesos.OfferID{Value: id}, FrameworkID: mesos.FrameworkID{Value: fw.id},
				URL:            &mesos.URL{Scheme: "http", Address: mesos.Address{Hostname: &a.hostname, IP: &ip, Port: int32(a.port)}, Path: &path},
				AgentID:        &mesos.AgentID{Value: a.id},
				Unavailability: mr.unavailability,
			})
		}
	}
	for _, fw := range fws {
		if ios := batches[fw]; len(ios) > 0 {
			m.send(fw, &scheduler.Event{Type: scheduler.Event_INVERSE_OFFERS,
				InverseOffers: &scheduler.Event_InverseOffers{InverseOffers: ios}})
		}
	}
}

func (m *Master) hasResourcesOn(fw *framework, a *agentRec) bool {
	for t := range a.tasks {
		if t.fwID == fw.id && !t.released {
			return true
		}
	}
	if len(a.executors[fw.id]) > 0 {
		return true
	}
	for _, o := range m.offersOn(a.id) {
		if o.fwID == fw.id {
			return true
		}
	}
	return false
}

// answerInverseOffers is ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS:
// the answer shows in GET_MAINTENANCE_STATUS, and the framework gets no
// inverse offer for that agent for refuse_seconds. Unknown ids are
// ignored, as by Mesos.
func (m *Master) answerInverseOffers(fw *framework, ids []mesos.OfferID, f *mesos.Filters, st mallocator.InverseOfferStatus_Status) {
	now := time.Now()
	for _, id := range ids {
		io := m.maint.inverse[id.Value]
		if io == nil || io.fwID != fw.id {
			m.log.Warn("ignoring an answer to an inverse offer that is no longer valid", "framework_id", fw.id, "offer_id", id.Value)
			continue
		}
		delete(m.maint.inverse, id.Value)
		if a := m.agents[io.agentID]; a != nil {
			if mr := m.maintenanceOf(a); mr != nil && mr.responses != nil {
				mr.responses[fw.id] = inverseResponse{status: st, at: now}
			}
		}
		d := m.cfg.DefaultRefuse
		if f != nil && f.RefuseSeconds != nil && *f.RefuseSeconds >= 0 {
			d = time.Duration(min(*f.RefuseSeconds, 365*24*3600) * float64(time.Second))
		}
		if d > 0 {
			if m.maint.refused[fw.id] == nil {
				m.maint.refused[fw.id] = map[string]time.Time{}
			}
			m.maint.refused[fw.id][io.agentID] = now.Add(d)
		}
	}
	m.allocDirty = true
}

// dropInverseOffersOf forgets a removed framework's inverse offers.
func (m *Master) dropInverseOffersOf(fwID string) {
	for id, io := range m.maint.inverse {
		if io.fwID == fwID {
			delete(m.maint.inverse, id)
		}
	}
	delete(m.maint.refused, fwID)
}

// clusterStatus is GET_MAINTENANCE_STATUS: DRAINING machines (in schedule
// order) with the frameworks' answers, latest first, and DOWN machines.
func (m *Master) clusterStatus() mmaintenance.ClusterStatus {
	var cs mmaintenance.ClusterStatus
	for _, w := range m.maint.schedule.Windows {
		for _, id := range w.MachineIDs {
			mr := m.maint.machines[keyOf(id)]
			if mr == nil {
				continue
			}
			if mr.mode == machineDown {
				cs.DownMachines = append(cs.DownMachines, id)
				continue
			}
			dm := mmaintenance.ClusterStatus_DrainingMachine{ID: id}
			fws := api.SortedKeys(mr.responses)
			sort.SliceStable(fws, func(i, j int) bool { return mr.responses[fws[i]].at.After(mr.responses[fws[j]].at) })
			for _, fwID := range fws {
				r := mr.responses[fwID]
				s := r.status
				dm.Statuses = append(dm.Statuses, mallocator.InverseOfferStatus{Status: &s,
					FrameworkID: mesos.FrameworkID{Value: fwID}, Timestamp: mesos.TimeInfo{Nanoseconds: r.at.UnixNano()}})
			}
			cs.DrainingMachines = append(cs.DrainingMachines, dm)
		}
	}
	return cs
}

// unavailabilityOf is what an offer from the agent carries (nil if none).
func (m *Master) unavailabilityOf(a *agentRec) *mesos.Unavailability {
	if mr := m.maintenanceOf(a); mr != nil && mr.mode == machineDraining {
		u := mr.unavailability
		return &u
	}
	return nil
}
