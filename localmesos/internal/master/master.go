package master

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// Master is the Mesos master: frameworks, agents, offers and tasks. All of
// its fields below box are owned by run; everything else talks to it
// through box.
type Master struct {
	cfg      Config
	log      *slog.Logger
	faults   *Faults
	box      *link.Mailbox
	id       string
	hostname string
	ip       string
	port     int
	started  time.Time

	frameworks   map[string]*framework
	removed      map[string]bool
	completedFws []*framework
	agents       map[string]*agentRec
	offers       map[string]*offer
	nextFw       int
	nextOffer    int
	nextAgent    int
	rr           int
	allocDirty   bool
	timers       map[*time.Timer]struct{}
	counters     masterCounters
	metrics      mesosMetrics  // Mesos' counters that state cannot give back
	ops          operatorState // operator event stream subscribers
	maint        maintState
	done         chan struct{}
}

type masterCounters struct {
	offersMade, offersDeclined, offersRescinded, tasksLaunched, tasksInvalid int64
	updatesForwarded, updatesUndeliverable, messagesToExecutors              int64
	messagesToSchedulers, messagesUndeliverable, unsupportedOperations       int64
}

type framework struct {
	id               string
	info             mesos.FrameworkInfo
	stream           *wire.Stream
	streamID         string
	connected        bool
	active           bool
	roles            []string        // frameworkRoles of info
	multiRole        bool            // MULTI_ROLE: offers carry allocation_info
	suppressed       map[string]bool // roles not offered to until REVIVE
	recovered        bool
	partitionAware   bool
	registered       time.Time
	reregistered     time.Time
	unregistered     time.Time
	failoverDeadline time.Time
	filters          map[string][]refusal // agent id → DECLINE filters
	tasks            map[string]*task
	completed        []*task
}

// refusal is Mesos' RefusedOfferFilter: until it expires, the resources
// refused on an agent are not offered again to that role of the framework;
// an offer with anything more (resources freed since) passes.
type refusal struct {
	role      string
	until     time.Time
	resources res.Resources
}

type task struct {
	info         mesos.TaskInfo
	fwID         string
	agentID      string
	executorID   string // custom executor; "" for a command task
	state        mesos.TaskState
	statuses     []mesos.TaskStatus // history as /state shows it
	latest       *mesos.TaskStatus  // last update as sent (container_status)
	seen         map[string]bool    // uuids already recorded
	resources    res.Resources
	released     bool
	terminalUUID string
}

type agentRec struct {
	id           string
	hostname     string
	ip           string // of its address: with hostname, its machine
	attributes   []mesos.Attribute
	port         int
	total        res.Resources
	used         res.Resources
	offered      res.Resources
	link         link.Agent
	connected    bool
	removed      bool // gone past AgentRemovalTimeout, or removed by the operator: its tasks were lost
	gone         bool // MARK_AGENT_GONE: never again
	deactivated  bool // DEACTIVATE_AGENT or DRAIN_AGENT: no offers
	drain        *mesos.DrainInfo
	drainStart   time.Time
	goneSince    time.Time // when it disconnected
	registered   time.Time
	reregistered time.Time
	executors    map[string]map[string]execRec // fw → executor id
	tasks        map[*task]struct{}            // tasks placed on this agent, not yet completed
}

type execRec struct {
	info      mesos.ExecutorInfo
	resources res.Resources
}

type offer struct {
	id, fwID, agentID string
	role              string // the role it is allocated to
	resources         res.Resources
	timer             *time.Timer
}

// after posts m to the master's mailbox after d.
func (m *Master) after(d time.Duration, msg any) *time.Timer {
	var t *time.Timer
	// The callback may run before AfterFunc returns (d near 0): it waits
	// until t is set.
	set := make(chan struct{})
	t = time.AfterFunc(d, func() { <-set; m.box.Post(timerFired{t: t, msg: msg}) })
	close(set)
	m.timers[t] = struct{}{}
	return t
}

func (m *Master) stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
		delete(m.timers, t)
	}
}

type timerFired struct {
	t   *time.Timer
	msg any
}

type allocateTick struct{}

// Run is the master's state goroutine.
func (m *Master) Run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.cfg.AllocationInterval)
	defer tick.Stop()
	defer func() {
		for t := range m.timers {
			t.Stop()
		}
		for _, fw := range m.frameworks {
			if fw.stream != nil {
				fw.stream.Close()
			}
		}
		m.box.Close()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.box.Notify():
		case <-tick.C:
			m.allocDirty = true
		}
		for _, msg := range m.box.Take() {
			m.handle(msg)
		}
		m.checkDrains()
		if m.allocDirty {
			m.allocDirty = false
			m.allocate(time.Now())
		}
		m.publishOperatorEvents()
	}
}

func (m *Master) handle(msg any) {
	switch x := msg.(type) {
	case timerFired:
		if _, ok := m.timers[x.t]; !ok {
			return // stopped meanwhile
		}
		delete(m.timers, x.t)
		m.handle(x.msg)
	case schedCall:
		x.reply <- m.call(x)
	case masterFunc:
		x(m)
	case streamEnded:
		m.streamEnded(x)
	case stateRequest:
		x.reply <- m.renderState()
	case metricsRequest:
		x.reply <- m.renderMetrics()
	case teardownRequest:
		fw := m.frameworks[x.fwID]
		if fw == nil {
			x.reply <- []byte("No framework found with specified ID")
			return
		}
		m.log.Info("framework teardown by the operator", "framework_id", fw.id)
		m.removeFramework(fw)
		x.reply <- nil
	case offerExpired:
		m.rescindOffer(x.id)
	case failoverExpired:
		if fw := m.frameworks[x.fwID]; fw != nil && !fw.connected && fw.failoverDeadline.Equal(x.deadline) {
			m.log.Info("framework failover timeout expired", "framework_id", fw.id)
			m.removeFramework(fw)
		}
	case allocateTick:
		m.allocDirty = true
	case delayedMessage:
		m.deliverMessage(x.msg)
	case link.AgentRegister:
		m.agentRegister(x)
	case link.AgentDisconnected:
		m.agentDisconnected(x.AgentID)
	case agentRemovalDue:
		m.removeAgent(x)
	case link.StatusUpdate:
		m.statusUpdate(x)
	case link.ExecutorToFramework:
		m.faultyDeliver(x)
	case link.ExecutorExited:
		m.executorExited(x)
	default:
		m.log.Error("master got an unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

type offerExpired struct{ id string }

type failoverExpired struct {
	fwID     string
	deadline time.Time
}

type delayedMessage struct{ msg any }

type stateRequest struct{ reply chan []byte }

// send queues an event on the framework's stream, if it has one.
func (m *Master) send(fw *framework, e *scheduler.Event) bool {
	if fw.stream == nil || !fw.connected {
		return false
	}
	m.countEvent(fw, e)
	return fw.stream.Send(e)
}

// masterUpdate builds an update made by the master itself: source
// SOURCE_MASTER, a reason, no uuid and no executor id.
func masterUpdate(taskID, agentID string, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) *scheduler.Event {
	ts := api.NowSeconds()
	st := mesos.TaskStatus{
		TaskID: mesos.TaskID{Value: taskID}, State: state.Enum(), Message: &message,
		Source: mesos.SOURCE_MASTER.Enum(), Reason: reason.Enum(), Timestamp: &ts,
	}
	if agentID != "" {
		st.AgentID = &mesos.AgentID{Value: agentID}
	}
	return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}}
}

// --- agents ---

func (m *Master) agentRegister(x link.AgentRegister) {
	if why := m.refusedRegistration(x.AgentID, x.Hostname, x.IP); why != "" {
		m.log.Warn("refusing the registration of an agent", "agent_id", x.AgentID, "hostname", x.Hostname, "reason", why)
		x.Link.Post(link.AgentShutdown{Message: why})
		return
	}
	id := x.AgentID
	a := m.agents[id]
	if id == "" || a == nil {
		if id == "" {
			id = fmt.Sprintf("%s-S%d", m.id, m.nextAgent)
			m.nextAgent++
		}
		a = &agentRec{id: id, registered: time.Now(), executors: map[string]map[string]execRec{}, tasks: map[*task]struct{}{}}
		m.agents[id] = a
	}
	// A re-registration replaces what the master knew of the agent's
	// offers: they are rescinded and the agent's report is the truth.
	for _, o := range m.offersOn(id) {
		m.rescindOffer(o.id)
	}
	wasRemoved := a.removed
	if x.AgentID != "" {
		a.reregistered = time.Now()
	}
	a.hostname, a.ip, a.attributes, a.port, a.total, a.link, a.connected, a.removed = x.Hostname, x.IP, x.Attributes, x.Port, x.Total, x.Link, true, false
	for _, fi := range x.Frameworks {
		if fi.ID == nil || m.removed[fi.ID.Value] {
			continue
		}
		if _, ok := m.frameworks[fi.ID.Value]; !ok {
			// Known to the agent, not to this (restarted) master: recover it
			// until its scheduler re-subscribes or its failover timeout ends.
			fw := m.newFramework(fi.ID.Value, fi)
			fw.recovered = true
			m.disconnect(fw)
		}
	}
	reported := map[string]bool{}
	for _, e := range x.Executors {
		if m.frameworks[e.FrameworkID] == nil || e.Command {
			continue
		}
		r, _ := res.FromProto(api.StripAllocation(e.Info.Resources))
		if a.executors[e.FrameworkID] == nil {
			a.executors[e.FrameworkID] = map[string]execRec{}
		}
		a.executors[e.FrameworkID][e.Info.ExecutorID.Value] = execRec{info: e.Info, resources: r}
	}
	for _, rt := range x.Tasks {
		fw := m.frameworks[rt.FrameworkID]
		if fw == nil {
			continue
		}
		reported[rt.FrameworkID+"/"+rt.Info.TaskID.Value] = true
		t := fw.tasks[rt.Info.TaskID.Value]
		if t == nil && wasRemoved && !api.Terminal(rt.State) {
			// Declared lost while its agent was away: a framework that is
			// not partition-aware was told so; the task must not come back.
			x.Link.Post(link.KillTask{FrameworkID: fw.id, TaskID: rt.Info.TaskID.Value})
			continue
		}
		if t == nil {
			r, _ := res.FromProto(api.StripAllocation(rt.Info.Resources))
			t = &task{info: rt.Info, fwID: fw.id, agentID: id, executorID: rt.ExecutorID, resources: r, seen: map[string]bool{}}
			fw.tasks[rt.Info.TaskID.Value] = t
		}
		a.tasks[t] = struct{}{}
		t.state = rt.State
		if rt.Latest != nil {
			t.latest = rt.Latest
		}
	}
	// Tasks the master placed on this agent that the agent no longer knows
	// (it restarted without them): they are lost.
	for _, fw := range m.frameworks {
		for _, t := range fw.tasks {
			if t.agentID == id && !reported[fw.id+"/"+t.info.TaskID.Value] && !api.Terminal(t.state) && x.AgentID != "" {
				m.loseTask(fw, t, mesos.REASON_AGENT_RESTARTED, "Task is unknown to the agent after it re-registered")
			}
		}
	}
	m.recomputeUsed(a)
	a.link.Post(link.AgentRegistered{AgentID: id})
	m.log.Info("agent registered", "agent_id", id, "hostname", a.hostname, "port", a.port, "tasks", len(x.Tasks))
	m.allocDirty = true
}

// recomputeUsed derives an agent's used resources from the tasks and
// executors on it, rather than keeping a running count.
func (m *Master) recomputeUsed(a *agentRec) {
	items := make([]res.Resources, 0, len(a.tasks)+len(a.executors))
	for t := range a.tasks {
		if !t.released {
			items = append(items, t.resources)
		}
	}
	for _, execs := range a.executors {
		for _, e := range execs {
			items = append(items, e.resources)
		}
	}
	a.used = res.Sum(items...)
}

func (m *Master) agentDisconnected(id string) {
	a := m.agents[id]
	if a == nil {
		return
	}
	a.connected = false
	a.goneSince = time.Now()
	for _, o := range m.offersOn(id) {
		m.rescindOffer(o.id)
	}
	m.rescindInverseOffers(id)
	m.after(m.cfg.AgentRemovalTimeout, agentRemovalDue{agentID: id, since: a.goneSince})
	m.log.Info("agent disconnected", "agent_id", id)
}

type agentRemovalDue struct {
	agentID string
	since   time.Time
}

// removeAgent gives up on an agent that stayed away: its tasks are lost to
// frameworks that are not partition-aware, unreachable to those that are.
func (m *Master) removeAgent(x agentRemovalDue) {
	a := m.agents[x.agentID]
	if a == nil || a.connected || !a.goneSince.Equal(x.since) || a.removed {
		return
	}
	a.removed = true
	m.log.Warn("agent did not come back; its tasks are lost", "agent_id", a.id)
	for t := range a.tasks {
		fw := m.frameworks[t.fwID]
		if fw == nil || api.Terminal(t.state) {
			continue
		}
		if fw.partitionAware {
			e := masterUpdate(t.info.TaskID.Value, a.id, mesos.TASK_UNREACHABLE, mesos.REASON_AGENT_REMOVED, "Agent removed: it did not re-register in time")
			m.recordStatus(t, e.Update.Status, e.Update.Status)
			m.send(fw, e)
			continue
		}
		e := masterUpdate(t.info.TaskID.Value, a.id, mesos.TASK_LOST, mesos.REASON_AGENT_REMOVED, "Agent removed: it did not re-register in time")
		m.recordStatus(t, e.Update.Status, e.Update.Status)
		m.completeTask(fw, t)
		m.send(fw, e)
	}
	a.executors = map[string]map[string]execRec{}
	m.recomputeUsed(a)
}

// loseTask ends a task the master can no longer reach.
func (m *Master) loseTask(fw *framework, t *task, reason mesos.TaskStatus_Reason, message string) {
	state := mesos.TASK_LOST
	if fw.partitionAware {
		state = mesos.TASK_GONE
	}
	e := masterUpdate(t.info.TaskID.Value, t.agentID, state, reason, message)
	m.recordStatus(t, e.Update.Status, e.Update.Status)
	m.completeTask(fw, t)
	m.send(fw, e)
}

func (m *Master) offersOn(agentID string) []*offer {
	var out []*offer
	for _, o := range m.offers {
		if o.agentID == agentID {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (m *Master) statusUpdate(x link.StatusUpdate) {
	fw := m.frameworks[x.FrameworkID]
	if fw == nil {
		// Unknown or removed framework: the agent keeps retrying until its
		// framework is shut down; nothing to deliver.
		m.counters.updatesUndeliverable++
		return
	}
	if t := fw.tasks[x.Status.TaskID.Value]; t != nil {
		m.recordStatus(t, x.Status, x.Stored)
	}
	if !m.send(fw, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: x.Status}}) {
		m.counters.updatesUndeliverable++
		return
	}
	m.counters.updatesForwarded++
}

// recordStatus applies an update to the master's view of the task.
func (m *Master) recordStatus(t *task, st, stored mesos.TaskStatus) {
	key := string(st.UUID)
	if key != "" && t.seen[key] {
		return // a retry of an update already recorded
	}
	if key != "" {
		t.seen[key] = true
	}
	t.state = st.GetState()
	latest := st
	t.latest = &latest
	t.statuses = append(t.statuses, stored)
	if api.Terminal(t.state) {
		t.terminalUUID = key
		if !t.released {
			t.released = true
			if a := m.agents[t.agentID]; a != nil {
				m.recomputeUsed(a)
			}
			m.allocDirty = true
		}
	}
}

// completeTask moves a task to the framework's completed tasks.
func (m *Master) completeTask(fw *framework, t *task) {
	delete(fw.tasks, t.info.TaskID.Value)
	t.released = true
	fw.completed = append(fw.completed, t)
	if over := len(fw.completed) - m.cfg.MaxCompletedTasks; over > 0 {
		fw.completed = fw.completed[over:]
	}
	if a := m.agents[t.agentID]; a != nil {
		delete(a.tasks, t)
		m.recomputeUsed(a)
	}
	m.allocDirty = true
}

func (m *Master) executorExited(x link.ExecutorExited) {
	if a := m.agents[x.AgentID]; a != nil {
		if a.removed {
			return // its frameworks heard FAILURE {agent_id} when it was removed
		}
		if execs := a.executors[x.FrameworkID]; execs != nil {
			delete(execs, x.ExecutorID)
			if len(execs) == 0 {
				delete(a.executors, x.FrameworkID)
			}
		}
		m.recomputeUsed(a)
		m.allocDirty = true
	}
	fw := m.frameworks[x.FrameworkID]
	if fw == nil || x.Command {
		// Mesos sends no FAILURE for the command executor.
		return
	}
	status := x.Status
	m.send(fw, &scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{
		AgentID: &mesos.AgentID{Value: x.AgentID}, ExecutorID: &mesos.ExecutorID{Value: x.ExecutorID}, Status: &status,
	}})
}

// --- framework messages, through the fault injector ---

func (m *Master) faultyDeliver(msg any) {
	copies, delay := m.faults.decide()
	for i := 0; i < copies; i++ {
		if delay > 0 {
			m.after(delay, delayedMessage{msg: msg})
			continue
		}
		m.deliverMessage(msg)
	}
}

func (m *Master) deliverMessage(msg any) {
	switch x := msg.(type) {
	case link.ExecutorToFramework:
		fw := m.frameworks[x.FrameworkID]
		if fw == nil || !m.send(fw, &scheduler.Event{Type: scheduler.Event_MESSAGE, Message: &scheduler.Event_Message{
			AgentID: mesos.AgentID{Value: x.AgentID}, ExecutorID: mesos.ExecutorID{Value: x.ExecutorID}, Data: x.Data,
		}}) {
			m.counters.messagesUndeliverable++
			return
		}
		m.counters.messagesToSchedulers++
	case link.FrameworkToExecutor:
		// Routed by agent: the agent drops messages for unknown executors.
		for _, a := range m.agents {
			if a.connected && a.executors[x.FrameworkID] != nil {
				if _, ok := a.executors[x.FrameworkID][x.ExecutorID]; ok {
					a.link.Post(x)
					m.counters.messagesToExecutors++
					return
				}
			}
		}
		m.counters.messagesUndeliverable++
	case routedMessage:
		a := m.agents[x.agentID]
		if a == nil || !a.connected {
			m.counters.messagesUndeliverable++
			return
		}
		a.link.Post(x.msg)
		m.counters.messagesToExecutors++
	}
}

// routedMessage is a scheduler MESSAGE for one agent.
type routedMessage struct {
	agentID string
	msg     link.FrameworkToExecutor
}

// --- allocation ---

// minAllocatable mirrors Mesos' default min_allocatable_resources
// ("cpus:0.01|mem:32"): an agent with less free is not offered.
func minAllocatable(r res.Resources) bool {
	return r.Scalar("cpus") >= 0.01 || r.Scalar("mem") >= 32
}

func (m *Master) available(a *agentRec) res.Resources {
	return a.total.Sub(a.used).Sub(a.offered)
}

// allocate offers every agent's free resources to one eligible framework,
// round robin, honouring DECLINE filters and SUPPRESS.
func (m *Master) allocate(now time.Time) {
	var fws, active []*framework
	for _, fw := range m.frameworks {
		if fw.connected && fw.active {
			active = append(active, fw)
			if fw.offerRole() != "" {
				fws = append(fws, fw)
			}
		}
	}
	sort.Slice(fws, func(i, j int) bool { return fws[i].id < fws[j].id })
	sort.Slice(active, func(i, j int) bool { return active[i].id < active[j].id })
	agentIDs := make([]string, 0, len(m.agents))
	for id, a := range m.agents {
		// A deactivated (or draining) agent is not offered (Mesos'
		// allocator deactivates it).
		if a.connected && !a.deactivated {
			agentIDs = append(agentIDs, id)
		}
	}
	sort.Slice(agentIDs, func(i, j int) bool { return agentLess(agentIDs[i], agentIDs[j]) })
	defer m.allocateInverse(active, agentIDs, now)
	if len(fws) == 0 {
		return
	}
	batches := map[*framework][]mesos.Offer{}
	for _, id := range agentIDs {
		a := m.agents[id]
		avail := m.available(a)
		if !minAllocatable(avail) {
			continue
		}
		for i := 0; i < len(fws); i++ {
			fw := fws[(m.rr+i)%len(fws)]
			role := fw.offerRole()
			if fw.refused(id, role, avail, now) {
				continue // re-examined by the periodic allocation pass
			}
			m.rr = (m.rr + i + 1) % len(fws)
			o := m.makeOffer(fw, a, avail, role)
			batches[fw] = append(batches[fw], o)
			break
		}
	}
	for fw, offers := range batches {
		m.send(fw, &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}})
	}
}

// agentLess orders "…-S2" before "…-S10".
func agentLess(a, b string) bool {
	na, ea := agentNumber(a)
	nb, eb := agentNumber(b)
	if ea == nil && eb == nil && na != nb {
		return na < nb
	}
	return a < b
}

func agentNumber(id string) (int, error) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == 'S' {
			return strconv.Atoi(id[i+1:])
		}
	}
	return 0, fmt.Errorf("no agent number in %q", id)
}

// offerRole is the role the framework's next offer is allocated to: its
// first role that is not suppressed ("" when there is none).
func (fw *framework) offerRole() string {
	for _, r := range fw.roles {
		if !fw.suppressed[r] {
			return r
		}
	}
	return ""
}

// refused applies the framework's DECLINE filters on an agent, dropping
// expired ones: avail is filtered when an unexpired refusal of the role
// covers all of it (Mesos' RefusedOfferFilter::filter).
func (fw *framework) refused(agentID, role string, avail res.Resources, now time.Time) bool {
	live := fw.filters[agentID][:0]
	filtered := false
	for _, f := range fw.filters[agentID] {
		if !now.Before(f.until) {
			continue
		}
		live = append(live, f)
		if f.role == role && f.resources.Contains(avail) {
			filtered = true
		}
	}
	if len(live) == 0 {
		delete(fw.filters, agentID)
	} else {
		fw.filters[agentID] = live
	}
	return filtered
}

// nextOfferID: offers and inverse offers share one counter, as in Mesos.
func (m *Master) nextOfferID() string {
	id := fmt.Sprintf("%s-O%d", m.id, m.nextOffer)
	m.nextOffer++
	return id
}

func (m *Master) makeOffer(fw *framework, a *agentRec, avail res.Resources, role string) mesos.Offer {
	id := m.nextOfferID()
	o := &offer{id: id, fwID: fw.id, agentID: a.id, role: role, resources: avail}
	if m.cfg.OfferTimeout > 0 {
		o.timer = m.after(m.cfg.OfferTimeout, offerExpired{id: id})
	}
	m.offers[id] = o
	a.offered = a.offered.Add(avail)
	m.counters.offersMade++
	return m.offerProto(o, a)
}

func (m *Master) offerProto(o *offer, a *agentRec) mesos.Offer {
	ip, path := a.ip, "/slave(1)"
	p := mesos.Offer{
		ID: mesos.OfferID{Value: o.id}, FrameworkID: mesos.FrameworkID{Value: o.fwID},
		AgentID: mesos.AgentID{Value: a.id}, Hostname: a.hostname,
		URL:            &mesos.URL{Scheme: "http", Address: mesos.Address{Hostname: &a.hostname, IP: &ip, Port: int32(a.port)}, Path: &path},
		Resources:      o.resources.ToProto(res.OfferRole, true),
		Attributes:     a.attributes,
		Unavailability: m.unavailabilityOf(a),
	}
	// A MULTI_ROLE framework learns the role of the offer and of each
	// resource from allocation_info; the others get none (recorded).
	if fw := m.frameworks[o.fwID]; fw != nil && fw.multiRole {
		role := o.role
		p.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
		for i := range p.Resources {
			p.Resources[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
		}
	}
	return p
}

// takeOffer removes an offer, returning its resources to the agent's pool
// (the caller decides whether a filter applies).
func (m *Master) takeOffer(id string) *offer {
	o := m.offers[id]
	if o == nil {
		return nil
	}
	delete(m.offers, id)
	m.stopTimer(o.timer)
	if a := m.agents[o.agentID]; a != nil {
		a.offered = a.offered.Sub(o.resources)
	}
	m.allocDirty = true
	return o
}

func (m *Master) rescindOffer(id string) {
	o := m.takeOffer(id)
	if o == nil {
		return
	}
	m.counters.offersRescinded++
	if fw := m.frameworks[o.fwID]; fw != nil {
		m.send(fw, &scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: id}}})
	}
}

// refuse applies a DECLINE filter: the refused resources of the agent are
// not offered to the framework's role again for refuse_seconds, as Mesos'
// allocator: none given or negative → the default, 0 → no filter.
func (m *Master) refuse(fw *framework, agentID, role string, refused res.Resources, f *mesos.Filters) {
	d := m.cfg.DefaultRefuse
	if f != nil && f.RefuseSeconds != nil && *f.RefuseSeconds >= 0 {
		secs := *f.RefuseSeconds
		if secs > 365*24*3600 {
			secs = 365 * 24 * 3600
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 || refused.Empty() {
		return
	}
	fw.filters[agentID] = append(fw.filters[agentID], refusal{role: role, until: time.Now().Add(d), resources: refused})
}
