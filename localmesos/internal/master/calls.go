package master

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mallocator "github.com/mesos/mesos-go/api/v1/lib/allocator"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/uuid"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// schedCall is a decoded, syntactically valid scheduler call for the master.
type schedCall struct {
	call     *scheduler.Call
	codec    wire.Codec // of the answer stream (SUBSCRIBE)
	streamID string     // Mesos-Stream-Id header, "" when absent
	reply    chan callResult
}

// callResult is the master's answer: an error, or 202 (or status), or a
// stream.
type callResult struct {
	err    *wire.Error
	status int // of an answer without a body; 0 means 202
	stream *wire.Stream
	fwID   string // of the stream
}

// streamEnded: a scheduler's event stream ended (it went away, or the
// Master closed it).
type streamEnded struct{ fwID, streamID string }

func (m *Master) call(x schedCall) callResult {
	c := x.call
	if c.Type == scheduler.Call_SUBSCRIBE {
		r := m.subscribe(x)
		m.countSubscribe(c, r)
		return r
	}
	fw := m.frameworks[c.FrameworkID.Value]
	if fw == nil {
		return callResult{err: wire.BadRequest("Framework cannot be found")}
	}
	// The order of Mesos' Master::Http::scheduler (src/master/http.cpp): a
	// framework without a stream is refused before its stream id is looked
	// at, whatever id the call carries.
	if !fw.connected {
		return callResult{err: &wire.Error{Status: http.StatusForbidden, Text: "Framework is not subscribed"}}
	}
	if x.streamID == "" {
		return callResult{err: wire.BadRequest("All non-subscribe calls should include the 'Mesos-Stream-Id' header")}
	}
	if fw.streamID != x.streamID {
		return callResult{err: wire.BadRequest("The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", x.streamID, fw.id)}
	}
	m.countCall(fw, c)
	switch c.Type {
	case scheduler.Call_TEARDOWN:
		m.log.Info("framework teardown", "framework_id", fw.id)
		m.removeFramework(fw)
	case scheduler.Call_ACCEPT:
		m.accept(fw, c.Accept)
	case scheduler.Call_DECLINE:
		for _, id := range c.Decline.OfferIDs {
			if o := m.offers[id.Value]; o != nil && o.fwID == fw.id {
				m.takeOffer(id.Value)
				m.refuse(fw, o.agentID, o.role, o.resources, c.Decline.Filters)
				m.counters.offersDeclined++
			}
		}
	case scheduler.Call_REVIVE:
		// Roles the framework does not have are ignored, as by Mesos.
		roles := rolesOrAll(fw, c.Revive.GetRoles())
		for agentID, fs := range fw.filters {
			kept := fs[:0]
			for _, f := range fs {
				if !roles[f.role] {
					kept = append(kept, f)
				}
			}
			fw.filters[agentID] = kept
		}
		for r := range roles {
			delete(fw.suppressed, r)
		}
		m.allocDirty = true
	case scheduler.Call_SUPPRESS:
		for r := range rolesOrAll(fw, c.Suppress.GetRoles()) {
			fw.suppressed[r] = true
		}
	case scheduler.Call_UPDATE_FRAMEWORK:
		if err := m.updateFramework(fw, c.UpdateFramework); err != nil {
			return callResult{err: err}
		}
		return callResult{status: http.StatusOK}
	case scheduler.Call_KILL:
		m.kill(fw, c.Kill)
	case scheduler.Call_SHUTDOWN:
		if a := m.agents[c.Shutdown.AgentID.Value]; a != nil && a.connected {
			a.link.Post(link.ShutdownExecutor{FrameworkID: fw.id, ExecutorID: c.Shutdown.ExecutorID.Value})
		}
	case scheduler.Call_ACKNOWLEDGE:
		m.acknowledge(fw, c.Acknowledge)
	case scheduler.Call_RECONCILE:
		m.reconcile(fw, c.Reconcile.Tasks)
	case scheduler.Call_MESSAGE:
		m.faultyDeliver(routedMessage{agentID: c.Message.AgentID.Value, msg: link.FrameworkToExecutor{
			FrameworkID: fw.id, ExecutorID: c.Message.ExecutorID.Value, Data: c.Message.Data}})
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		m.answerInverseOffers(fw, c.AcceptInverseOffers.InverseOfferIDs, c.AcceptInverseOffers.Filters, mallocator.InverseOfferStatus_ACCEPT)
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		m.answerInverseOffers(fw, c.DeclineInverseOffers.InverseOfferIDs, c.DeclineInverseOffers.Filters, mallocator.InverseOfferStatus_DECLINE)
	case scheduler.Call_REQUEST:
		// A no-op in Mesos too.
	default:
		return callResult{err: &wire.Error{Status: http.StatusNotImplemented,
			Text: fmt.Sprintf("Call type %s is not implemented by localmesos", c.Type)}}
	}
	return callResult{}
}

func (m *Master) newFramework(id string, info mesos.FrameworkInfo) *framework {
	info.ID = &mesos.FrameworkID{Value: id}
	fw := &framework{id: id, registered: time.Now(), filters: map[string][]refusal{}, suppressed: map[string]bool{}, tasks: map[string]*task{}, active: true}
	fw.setInfo(info)
	m.frameworks[id] = fw
	return fw
}

// setInfo takes a (validated) FrameworkInfo and what follows from it.
func (fw *framework) setInfo(info mesos.FrameworkInfo) {
	info.ID = &mesos.FrameworkID{Value: fw.id}
	fw.info = info
	fw.roles = frameworkRoles(info)
	fw.multiRole = hasCapability(info, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	fw.partitionAware = hasCapability(info, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	for r := range fw.suppressed {
		if !slices.Contains(fw.roles, r) {
			delete(fw.suppressed, r)
		}
	}
}

func hasCapability(fi mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, x := range fi.Capabilities {
		if x.Type == c {
			return true
		}
	}
	return false
}

// frameworkRoles is Mesos' protobuf::framework::getRoles: `roles` of a
// MULTI_ROLE framework, else `role` (default "*").
func frameworkRoles(fi mesos.FrameworkInfo) []string {
	if hasCapability(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		return fi.Roles
	}
	return []string{fi.GetRole()}
}

// rolesOrAll is the set of roles a SUPPRESS or REVIVE names, or all the
// framework's roles when it names none.
func rolesOrAll(fw *framework, roles []string) map[string]bool {
	if len(roles) == 0 {
		roles = fw.roles
	}
	set := map[string]bool{}
	for _, r := range roles {
		if slices.Contains(fw.roles, r) {
			set[r] = true
		}
	}
	return set
}

// validateFrameworkInfo is the part of Mesos' validation::framework::validate
// (src/master/validation.cpp) about roles; its message ("" when valid).
func validateFrameworkInfo(fi mesos.FrameworkInfo) string {
	if hasCapability(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		if fi.Role != nil {
			return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
		}
		seen, dup := map[string]bool{}, []string{}
		for _, r := range fi.Roles {
			if seen[r] && !slices.Contains(dup, r) {
				dup = append(dup, r)
			}
			seen[r] = true
		}
		if len(dup) > 0 {
			sort.Strings(dup)
			return "'FrameworkInfo.roles' contains duplicate items: { " + strings.Join(dup, ", ") + " }"
		}
		return ""
	}
	if len(fi.Roles) > 0 {
		return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
	}
	return ""
}

// validateSuppressedRoles: every suppressed role must be one of the
// framework's (Mesos' text for SUBSCRIBE and UPDATE_FRAMEWORK).
func validateSuppressedRoles(roles, suppressed []string) string {
	for _, r := range suppressed {
		if !slices.Contains(roles, r) {
			return "Suppressed role '" + r + "' is not contained in the list of roles"
		}
	}
	return ""
}

// validateFrameworkUpdate is Mesos' validation::framework::validateUpdate:
// the principal may not change; nor, through UPDATE_FRAMEWORK, may user or
// checkpoint (a re-SUBSCRIBE keeps the old values instead, see subscribe).
func validateFrameworkUpdate(old, upd mesos.FrameworkInfo) string {
	if (old.Principal == nil) != (upd.Principal == nil) || old.GetPrincipal() != upd.GetPrincipal() {
		return "Changing framework's principal is not allowed."
	}
	if old.User != upd.User {
		return "Updating 'FrameworkInfo.user' is unsupported; attempted to update from '" + old.User + "' to '" + upd.User + "'"
	}
	if old.GetCheckpoint() != upd.GetCheckpoint() {
		return fmt.Sprintf("Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from '%t' to '%t'", old.GetCheckpoint(), upd.GetCheckpoint())
	}
	return ""
}

// updateFramework is the UPDATE_FRAMEWORK call, with the checks and texts of
// Mesos' Master::updateFramework (src/master/master.cpp).
func (m *Master) updateFramework(fw *framework, u *scheduler.Call_UpdateFramework) *wire.Error {
	fi := u.FrameworkInfo
	if msg := validateFrameworkInfo(fi); msg != "" {
		return wire.BadRequest("Supplied FrameworkInfo is not valid: %s", msg)
	}
	if msg := validateFrameworkUpdate(fw.info, fi); msg != "" {
		return wire.BadRequest("FrameworkInfo update is not valid: %s", msg)
	}
	if msg := validateSuppressedRoles(frameworkRoles(fi), u.SuppressedRoles); msg != "" {
		return wire.BadRequest("%s", msg)
	}
	fw.setInfo(fi)
	fw.suppressed = map[string]bool{}
	for _, r := range u.SuppressedRoles {
		fw.suppressed[r] = true
	}
	// Offers allocated to a role the framework left are void.
	for oid, o := range m.offers {
		if o.fwID == fw.id && !slices.Contains(fw.roles, o.role) {
			m.rescindOffer(oid)
		}
	}
	for _, a := range m.agents {
		if a.connected {
			a.link.Post(link.UpdateFramework{Info: fw.info})
		}
	}
	m.allocDirty = true
	return nil
}

func (m *Master) subscribe(x schedCall) callResult {
	fi := *x.call.Subscribe.FrameworkInfo
	id := ""
	if fi.ID != nil {
		id = fi.ID.Value
	}
	stream := wire.NewStream(x.codec, uuid.New().String())
	// A refused SUBSCRIBE is 200 with an ERROR event and the end of the
	// stream, as Mesos' Master::subscribe answers on the new connection.
	refuse := func(msg string) callResult {
		stream.Send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: msg}})
		stream.Close()
		return callResult{stream: stream, fwID: id}
	}
	if msg := validateFrameworkInfo(fi); msg != "" {
		return refuse(msg)
	}
	suppressed := x.call.Subscribe.SuppressedRoles
	if msg := validateSuppressedRoles(frameworkRoles(fi), suppressed); msg != "" {
		return refuse(msg)
	}
	if id != "" && m.removed[id] {
		return refuse("Framework has been removed")
	}
	fw := m.frameworks[id]
	if fw != nil {
		// user and checkpoint cannot change (MESOS-703): Mesos keeps the
		// old values (preserveImmutableFields); a new principal is refused
		// and the framework's current stream is left alone.
		fi.User = fw.info.User
		fi.Checkpoint = fw.info.Checkpoint
		if msg := validateFrameworkUpdate(fw.info, fi); msg != "" {
			return refuse(msg)
		}
	}
	switch {
	case fw != nil:
		if fw.stream != nil && fw.connected {
			fw.stream.Send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}})
			fw.stream.Close()
		}
		// Offers made to the previous connection are void.
		for oid, o := range m.offers {
			if o.fwID == fw.id {
				m.takeOffer(oid)
			}
		}
		fw.setInfo(fi)
		fw.reregistered = time.Now()
		fw.recovered = false
		m.log.Info("framework re-subscribed", "framework_id", id)
	case id != "":
		// An id this master never saw: a framework coming back after a
		// master failover. Mesos accepts it.
		fw = m.newFramework(id, fi)
		fw.reregistered = time.Now()
		m.log.Info("framework re-subscribed after master failover", "framework_id", id)
	default:
		id = fmt.Sprintf("%s-%04d", m.id, m.nextFw)
		m.nextFw++
		fw = m.newFramework(id, fi)
		m.log.Info("framework subscribed", "framework_id", id, "name", fi.Name)
	}
	fw.suppressed = map[string]bool{}
	for _, r := range suppressed {
		fw.suppressed[r] = true
	}
	fw.stream, fw.streamID, fw.connected, fw.active = stream, stream.ID, true, true
	fw.failoverDeadline = time.Time{}
	hb := m.cfg.HeartbeatInterval.Seconds()
	stream.Send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: id}, HeartbeatIntervalSeconds: &hb, MasterInfo: m.masterInfo(),
	}})
	stream.Send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT})
	for _, a := range m.agents {
		if a.connected {
			a.link.Post(link.UpdateFramework{Info: fw.info})
		}
	}
	m.allocDirty = true
	return callResult{stream: stream, fwID: id}
}

func (m *Master) masterInfo() *mesos.MasterInfo {
	port := uint32(m.port)
	pid := fmt.Sprintf("master@%s:%d", m.ip, m.port)
	hostname, version, ip := m.hostname, api.Version, m.ip
	return &mesos.MasterInfo{
		ID: m.id, IP: ipUint32(m.ip), Port: &port, PID: &pid, Hostname: &hostname, Version: &version,
		Address: &mesos.Address{Hostname: &hostname, IP: &ip, Port: int32(m.port)},
		Capabilities: []mesos.MasterInfo_Capability{
			{Type: mesos.MasterInfo_Capability_AGENT_UPDATE},
			{Type: mesos.MasterInfo_Capability_AGENT_DRAINING},
			{Type: 3}, // QUOTA_V2: unknown to the v1 enum; JSON shows {}
		},
	}
}

func (m *Master) streamEnded(x streamEnded) {
	fw := m.frameworks[x.fwID]
	if fw == nil || fw.streamID != x.streamID || !fw.connected {
		return
	}
	m.log.Info("framework disconnected", "framework_id", fw.id)
	m.disconnect(fw)
}

// disconnect starts the failover timeout of a framework without a stream.
func (m *Master) disconnect(fw *framework) {
	fw.connected, fw.active = false, false
	fw.stream = nil
	fw.unregistered = time.Now()
	for oid, o := range m.offers {
		if o.fwID == fw.id {
			m.takeOffer(oid)
		}
	}
	timeout := time.Duration(fw.info.GetFailoverTimeout() * float64(time.Second))
	if timeout <= 0 {
		m.removeFramework(fw)
		return
	}
	if timeout > 365*24*time.Hour {
		timeout = 365 * 24 * time.Hour
	}
	fw.failoverDeadline = time.Now().Add(timeout)
	m.after(timeout, failoverExpired{fwID: fw.id, deadline: fw.failoverDeadline})
}

// removeFramework tears a framework down: its executors are shut down, its
// tasks end as TASK_KILLED (never delivered: the stream closes first).
func (m *Master) removeFramework(fw *framework) {
	if fw.stream != nil {
		fw.stream.Close()
	}
	fw.connected, fw.active, fw.stream = false, false, nil
	fw.unregistered = time.Now()
	for oid, o := range m.offers {
		if o.fwID == fw.id {
			m.takeOffer(oid)
		}
	}
	ids := make([]string, 0, len(fw.tasks))
	for id := range fw.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := fw.tasks[id]
		if !api.Terminal(t.state) {
			// As Mesos' master makes it: no container status.
			st := masterUpdate(t.info.TaskID.Value, t.agentID, mesos.TASK_KILLED, mesos.REASON_FRAMEWORK_REMOVED, "Framework "+fw.id+" removed").Update.Status
			t.state = mesos.TASK_KILLED
			t.statuses = append(t.statuses, st)
		}
		m.completeTask(fw, t)
	}
	for _, a := range m.agents {
		delete(a.executors, fw.id)
		if a.connected {
			a.link.Post(link.ShutdownFramework{FrameworkID: fw.id})
		}
		m.recomputeUsed(a)
	}
	m.dropInverseOffersOf(fw.id)
	delete(m.frameworks, fw.id)
	m.removed[fw.id] = true
	m.completedFws = append(m.completedFws, fw)
	if over := len(m.completedFws) - m.cfg.MaxCompletedFrameworks; over > 0 {
		m.completedFws = m.completedFws[over:]
	}
	m.allocDirty = true
}

// accept runs an ACCEPT: offers are checked first (an invalid one voids
// every LAUNCH in the call), then each task in order against what is left.
func (m *Master) accept(fw *framework, a *scheduler.Call_Accept) {
	var offers []*offer
	invalid := ""
	seen := map[string]bool{}
	agentID := ""
	for _, oid := range a.OfferIDs {
		o := m.offers[oid.Value]
		switch {
		case seen[oid.Value]:
			invalid = "Duplicate offer " + oid.Value + " in the same call"
		case o == nil || o.fwID != fw.id:
			if invalid == "" {
				invalid = "Offer " + oid.Value + " is no longer valid"
			}
			continue
		case agentID != "" && o.agentID != agentID:
			if invalid == "" {
				invalid = fmt.Sprintf("Aggregated offers must belong to one single agent. Offer %s uses agent %s and offer %s uses agent %s", oid.Value, o.agentID, offers[0].id, agentID)
			}
		}
		seen[oid.Value] = true
		if o != nil && o.fwID == fw.id {
			agentID = o.agentID
			offers = append(offers, o)
		}
	}
	var pool res.Resources
	for _, o := range offers {
		m.takeOffer(o.id)
		pool = pool.Add(o.resources)
	}
	if len(a.OfferIDs) == 0 {
		invalid = "No offers specified"
	}
	if invalid != "" {
		state := mesos.TASK_LOST
		if fw.partitionAware {
			state = mesos.TASK_DROPPED
		}
		for _, op := range a.Operations {
			for _, t := range launchTasks(op) {
				m.send(fw, masterUpdate(t.TaskID.Value, t.AgentID.Value, state, mesos.REASON_INVALID_OFFERS, "Task launched with invalid offers: "+invalid))
			}
		}
		m.log.Warn("ACCEPT call used invalid offers", "framework_id", fw.id, "error", invalid)
		return
	}
	agent := m.agents[agentID]
	launchedExecutors := map[string]mesos.ExecutorInfo{}
	for _, op := range a.Operations {
		switch op.GetType() {
		case mesos.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			for _, t := range op.Launch.TaskInfos {
				plan, problem := validateTask(t, launchContext{
					frameworkID: fw.id, agentID: agentID, available: pool,
					taskExists: func(id string) bool { _, ok := fw.tasks[id]; return ok },
					executor: func(id string) (mesos.ExecutorInfo, bool) {
						if e, ok := launchedExecutors[id]; ok {
							return e, true
						}
						e, ok := agent.executors[fw.id][id]
						return e.info, ok
					},
				})
				if problem != "" {
					m.counters.tasksInvalid++
					m.send(fw, masterUpdate(t.TaskID.Value, t.AgentID.Value, mesos.TASK_ERROR, mesos.REASON_TASK_INVALID, problem))
					continue
				}
				pool = pool.Sub(plan.needed)
				m.launch(fw, agent, plan, launchedExecutors)
			}
		case mesos.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup != nil {
				for _, t := range op.LaunchGroup.TaskGroup.Tasks {
					m.send(fw, masterUpdate(t.TaskID.Value, t.AgentID.Value, mesos.TASK_ERROR, mesos.REASON_TASK_GROUP_INVALID,
						"LAUNCH_GROUP (task groups, the default executor) is not implemented by localmesos"))
				}
			}
		default:
			m.counters.unsupportedOperations++
			m.log.Warn("offer operation not implemented by localmesos, ignored", "framework_id", fw.id, "operation", op.GetType().String())
		}
	}
	// What the call did not use goes back, filtered for refuse_seconds.
	m.refuse(fw, agentID, offers[0].role, pool, a.Filters)
}

func launchTasks(op mesos.Offer_Operation) []mesos.TaskInfo {
	switch {
	case op.Launch != nil:
		return op.Launch.TaskInfos
	case op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

func (m *Master) launch(fw *framework, a *agentRec, plan launchPlan, launched map[string]mesos.ExecutorInfo) {
	t := plan.task
	t.Resources = allocated(t.Resources)
	execID := ""
	if t.Executor != nil {
		e := *t.Executor
		e.FrameworkID = &mesos.FrameworkID{Value: fw.id}
		e.Resources = allocated(e.Resources)
		t.Executor = &e
		execID = e.ExecutorID.Value
		if plan.newExecutor {
			launched[execID] = e
			if a.executors[fw.id] == nil {
				a.executors[fw.id] = map[string]execRec{}
			}
			a.executors[fw.id][execID] = execRec{info: e, resources: plan.executorRes}
		}
	}
	rec := &task{
		info: t, fwID: fw.id, agentID: a.id, executorID: execID, state: mesos.TASK_STAGING,
		resources: plan.taskRes, seen: map[string]bool{},
	}
	fw.tasks[t.TaskID.Value] = rec
	a.tasks[rec] = struct{}{}
	m.recomputeUsed(a)
	m.counters.tasksLaunched++
	a.link.Post(link.RunTask{Framework: fw.info, Task: t})
}

func (m *Master) kill(fw *framework, k *scheduler.Call_Kill) {
	t := fw.tasks[k.TaskID.Value]
	if t == nil {
		agentID := ""
		if k.AgentID != nil {
			agentID = k.AgentID.Value
		}
		m.log.Warn("cannot kill an unknown task; performing reconciliation", "framework_id", fw.id, "task_id", k.TaskID.Value)
		m.reconcile(fw, []scheduler.Call_Reconcile_Task{{TaskID: k.TaskID, AgentID: k.AgentID}})
		_ = agentID
		return
	}
	if a := m.agents[t.agentID]; a != nil && a.connected {
		a.link.Post(link.KillTask{FrameworkID: fw.id, TaskID: t.info.TaskID.Value, Policy: k.KillPolicy})
	}
}

func (m *Master) acknowledge(fw *framework, ack *scheduler.Call_Acknowledge) {
	if t := fw.tasks[ack.TaskID.Value]; t != nil && t.terminalUUID != "" && t.terminalUUID == string(ack.UUID) {
		m.completeTask(fw, t)
	}
	if a := m.agents[ack.AgentID.Value]; a != nil && a.connected {
		a.link.Post(link.StatusAck{FrameworkID: fw.id, TaskID: ack.TaskID.Value, UUID: ack.UUID})
	}
}

// reconcile answers explicit (tasks given) or implicit (none) reconciliation
// with master-made updates, as Mesos 1.11 does.
func (m *Master) reconcile(fw *framework, tasks []scheduler.Call_Reconcile_Task) {
	latest := func(t *task) *scheduler.Event {
		e := masterUpdate(t.info.TaskID.Value, t.agentID, t.state, mesos.REASON_RECONCILIATION, "Reconciliation: Latest task state")
		if t.executorID != "" {
			e.Update.Status.ExecutorID = &mesos.ExecutorID{Value: t.executorID}
		}
		if t.latest != nil {
			e.Update.Status.ContainerStatus = t.latest.ContainerStatus
		}
		return e
	}
	if len(tasks) == 0 {
		ids := make([]string, 0, len(fw.tasks))
		for id, t := range fw.tasks {
			if !api.Terminal(t.state) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			m.send(fw, latest(fw.tasks[id]))
		}
		return
	}
	lost, unknown := mesos.TASK_LOST, mesos.TASK_LOST
	if fw.partitionAware {
		lost, unknown = mesos.TASK_GONE, mesos.TASK_UNKNOWN
	}
	for _, rt := range tasks {
		if t := fw.tasks[rt.TaskID.Value]; t != nil {
			m.send(fw, latest(t))
			continue
		}
		if rt.AgentID != nil {
			if _, known := m.agents[rt.AgentID.Value]; known {
				m.send(fw, masterUpdate(rt.TaskID.Value, rt.AgentID.Value, lost, mesos.REASON_RECONCILIATION, "Reconciliation: Task is unknown to the agent"))
				continue
			}
		}
		m.send(fw, masterUpdate(rt.TaskID.Value, "", unknown, mesos.REASON_RECONCILIATION, "Reconciliation: Task is unknown"))
	}
}
