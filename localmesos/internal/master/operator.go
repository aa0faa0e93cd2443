package master

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The master's operator API (POST /api/v1), after Mesos 1.11's
// src/master/http.cpp (Master::Http::api) and docs/operator-http-api.md.
// Answers are built on the master's goroutine as a master.Response; the
// protobuf answer is that message, the JSON answer is written the way
// Mesos' hand-written JSON writers do (empty lists shown as [], fields the
// mesos-go v0.0.11 protos lack, such as agent_info.checkpoint and a
// framework's offer_constraints, added).

// masterFunc runs on the master's goroutine (see master.handle).
type masterFunc func(*Master)

// onMaster runs f on the master's goroutine and waits for it.
func (h *masterHTTP) onMaster(f func(*Master)) bool {
	done := make(chan struct{})
	if !h.m.box.Post(masterFunc(func(m *Master) { f(m); close(done) })) {
		return false
	}
	select {
	case <-done:
		return true
	case <-h.m.done:
		return false
	}
}

var errMasterStopping = &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"}

func (h *masterHTTP) operator(w http.ResponseWriter, r *http.Request) {
	if err := h.serveOperator(w, r); err != nil {
		wire.WriteError(w, err)
	}
}

// validateMasterCall is validation::master::call::validate
// (src/master/validation.cpp) for the calls localmesos knows; "UNKNOWN"
// stands for a call without a type.
func validateMasterCall(c *mmaster.Call) string {
	need := func(name string, present bool) string {
		if present {
			return ""
		}
		return "Expecting '" + name + "' to be present"
	}
	switch c.Type {
	case mmaster.Call_UNKNOWN:
		return "UNKNOWN"
	case mmaster.Call_GET_METRICS:
		return need("get_metrics", c.GetMetrics != nil)
	case mmaster.Call_SET_LOGGING_LEVEL:
		return need("set_logging_level", c.SetLoggingLevel != nil)
	case mmaster.Call_LIST_FILES:
		return need("list_files", c.ListFiles != nil)
	case mmaster.Call_READ_FILE:
		return need("read_file", c.ReadFile != nil)
	case mmaster.Call_UPDATE_WEIGHTS:
		return need("update_weights", c.UpdateWeights != nil)
	case mmaster.Call_RESERVE_RESOURCES:
		return need("reserve_resources", c.ReserveResources != nil)
	case mmaster.Call_UNRESERVE_RESOURCES:
		return need("unreserve_resources", c.UnreserveResources != nil)
	case mmaster.Call_CREATE_VOLUMES:
		return need("create_volumes", c.CreateVolumes != nil)
	case mmaster.Call_DESTROY_VOLUMES:
		return need("destroy_volumes", c.DestroyVolumes != nil)
	case mmaster.Call_GROW_VOLUME:
		return need("grow_volume", c.GrowVolume != nil)
	case mmaster.Call_SHRINK_VOLUME:
		return need("shrink_volume", c.ShrinkVolume != nil)
	case mmaster.Call_UPDATE_MAINTENANCE_SCHEDULE:
		return need("update_maintenance_schedule", c.UpdateMaintenanceSchedule != nil)
	case mmaster.Call_START_MAINTENANCE:
		return need("start_maintenance", c.StartMaintenance != nil)
	case mmaster.Call_STOP_MAINTENANCE:
		return need("stop_maintenance", c.StopMaintenance != nil)
	case mmaster.Call_DRAIN_AGENT:
		return need("drain_agent", c.DrainAgent != nil)
	case mmaster.Call_DEACTIVATE_AGENT:
		return need("deactivate_agent", c.DeactivateAgent != nil)
	case mmaster.Call_REACTIVATE_AGENT:
		return need("reactivate_agent", c.ReactivateAgent != nil)
	case mmaster.Call_UPDATE_QUOTA:
		return need("update_quota", c.UpdateQuota != nil)
	case mmaster.Call_SET_QUOTA:
		return need("set_quota", c.SetQuota != nil)
	case mmaster.Call_REMOVE_QUOTA:
		return need("remove_quota", c.RemoveQuota != nil)
	case mmaster.Call_TEARDOWN:
		return need("teardown", c.Teardown != nil)
	case mmaster.Call_MARK_AGENT_GONE:
		return need("mark_agent_gone", c.MarkAgentGone != nil)
	}
	return ""
}

func (h *masterHTTP) serveOperator(w http.ResponseWriter, r *http.Request) error {
	call := new(mmaster.Call)
	codec, err := api.DecodeOperatorCall(r, call, "master::Call", func() string { return validateMasterCall(call) })
	if err != nil {
		return err
	}
	if call.Type == mmaster.Call_SUBSCRIBE {
		return h.operatorSubscribe(w, r, codec)
	}
	var ans api.OpAnswer
	if !h.onMaster(func(m *Master) { ans = m.operatorCall(call) }) {
		return errMasterStopping
	}
	if ans.Err != nil {
		return ans.Err
	}
	return api.WriteOperatorAnswer(w, codec, ans)
}

// operatorCall answers one operator call on the master's goroutine.
func (m *Master) operatorCall(c *mmaster.Call) api.OpAnswer {
	resp := &mmaster.Response{}
	var js ojson.Object
	switch c.Type {
	case mmaster.Call_GET_HEALTH:
		resp.Type = mmaster.Response_GET_HEALTH
		resp.GetHealth = &mmaster.Response_GetHealth{Healthy: true}
		js = ojson.Object{{K: "healthy", V: true}}
	case mmaster.Call_GET_FLAGS:
		flags := m.flags()
		resp.Type = mmaster.Response_GET_FLAGS
		resp.GetFlags = &mmaster.Response_GetFlags{Flags: flags}
		js = ojson.Object{{K: "flags", V: api.RawList(flags)}}
	case mmaster.Call_GET_VERSION:
		resp.Type = mmaster.Response_GET_VERSION
		resp.GetVersion = &mmaster.Response_GetVersion{VersionInfo: api.VersionInfo()}
		js = ojson.Object{{K: "version_info", V: api.Raw(&resp.GetVersion.VersionInfo)}}
	case mmaster.Call_GET_MASTER:
		start, elected := float64(m.started.UnixNano())/1e9, float64(m.started.UnixNano())/1e9
		resp.Type = mmaster.Response_GET_MASTER
		resp.GetMaster = &mmaster.Response_GetMaster{MasterInfo: m.masterInfo(), StartTime: &start, ElectedTime: &elected}
		js = ojson.Object{{K: "master_info", V: api.Raw(resp.GetMaster.MasterInfo)},
			{K: "start_time", V: ojson.Double(start)}, {K: "elected_time", V: ojson.Double(elected)}}
	case mmaster.Call_GET_STATE:
		st, sj := m.opState()
		resp.Type, resp.GetState, js = mmaster.Response_GET_STATE, st, sj
	case mmaster.Call_GET_AGENTS:
		resp.Type = mmaster.Response_GET_AGENTS
		resp.GetAgents, js = m.opAgents()
	case mmaster.Call_GET_FRAMEWORKS:
		resp.Type = mmaster.Response_GET_FRAMEWORKS
		resp.GetFrameworks, js = m.opFrameworks()
	case mmaster.Call_GET_TASKS:
		resp.Type = mmaster.Response_GET_TASKS
		resp.GetTasks, js = m.opTasks()
	case mmaster.Call_GET_EXECUTORS:
		resp.Type = mmaster.Response_GET_EXECUTORS
		resp.GetExecutors, js = m.opExecutors()
	case mmaster.Call_GET_MAINTENANCE_SCHEDULE:
		resp.Type = mmaster.Response_GET_MAINTENANCE_SCHEDULE
		resp.GetMaintenanceSchedule = &mmaster.Response_GetMaintenanceSchedule{Schedule: m.maint.schedule}
		js = ojson.Object{{K: "schedule", V: api.Raw(&resp.GetMaintenanceSchedule.Schedule)}}
	case mmaster.Call_GET_MAINTENANCE_STATUS:
		resp.Type = mmaster.Response_GET_MAINTENANCE_STATUS
		resp.GetMaintenanceStatus = &mmaster.Response_GetMaintenanceStatus{Status: m.clusterStatus()}
		js = ojson.Object{{K: "status", V: api.Raw(&resp.GetMaintenanceStatus.Status)}}
	case mmaster.Call_UPDATE_MAINTENANCE_SCHEDULE:
		return api.OpAnswer{Err: m.updateSchedule(c.UpdateMaintenanceSchedule.Schedule)}
	case mmaster.Call_START_MAINTENANCE:
		return api.OpAnswer{Err: m.startMaintenance(c.StartMaintenance.Machines)}
	case mmaster.Call_STOP_MAINTENANCE:
		return api.OpAnswer{Err: m.stopMaintenance(c.StopMaintenance.Machines)}
	case mmaster.Call_DRAIN_AGENT:
		return api.OpAnswer{Err: m.drainAgentCall(c.DrainAgent)}
	case mmaster.Call_DEACTIVATE_AGENT:
		return api.OpAnswer{Err: m.deactivateAgentCall(c.DeactivateAgent)}
	case mmaster.Call_REACTIVATE_AGENT:
		return api.OpAnswer{Err: m.reactivateAgentCall(c.ReactivateAgent)}
	case mmaster.Call_MARK_AGENT_GONE:
		return api.OpAnswer{Err: m.markAgentGoneCall(c.MarkAgentGone)}
	default:
		return api.OpAnswer{Err: api.NotImplemented(c.Type)}
	}
	return api.OpAnswer{PB: resp, JSON: ojson.Marshal(ojson.Object{
		{K: "type", V: resp.Type.String()}, {K: api.LowerType(resp.Type.String()), V: js}})}
}

func timeInfo(t time.Time) *mesos.TimeInfo {
	if t.IsZero() {
		return nil
	}
	return &mesos.TimeInfo{Nanoseconds: t.UnixNano()}
}

// flags lists the master's flags as Mesos 1.11 does (sorted by name): the
// ones localmesos has from its Config, Mesos' defaults for the rest.
func (m *Master) flags() []mesos.Flag {
	v := map[string]string{
		"agent_ping_timeout": "15secs", "agent_reregister_timeout": "10mins",
		"allocation_interval": api.MesosDuration(m.cfg.AllocationInterval), "allocator": "hierarchical",
		"allocator_agent_recovery_factor": "0.8", "allocator_recovery_timeout": "10mins",
		"authenticate_agents": "false", "authenticate_frameworks": strconv.FormatBool(m.cfg.SchedulerAuth != nil),
		"authenticate_http_frameworks": strconv.FormatBool(m.cfg.SchedulerAuth != nil),
		"authenticate_http_readonly":   "false", "authenticate_http_readwrite": "false",
		"authentication_v0_timeout": "15secs", "authenticators": "crammd5", "authorizers": "local",
		"filter_gpu_resources": "true", "framework_sorter": "drf", "help": "false",
		"hostname_lookup": "true", "http_authenticators": "basic", "initialize_driver_logging": "true",
		"ip": m.ip, "log_auto_initialize": "true", "logbufsecs": "0", "logging_level": "INFO",
		"max_agent_ping_timeouts": "5", "max_completed_frameworks": strconv.Itoa(m.cfg.MaxCompletedFrameworks),
		"max_completed_tasks_per_framework":     strconv.Itoa(m.cfg.MaxCompletedTasks),
		"max_operator_event_stream_subscribers": "1000", "max_unreachable_tasks_per_framework": "1000",
		"memory_profiling": "false", "min_allocatable_resources": "cpus:0.01|mem:32",
		"offer_constraints_re2_max_mem": "4KB", "offer_constraints_re2_max_program_size": "100",
		"port": strconv.Itoa(m.port), "publish_per_framework_metrics": "true", "quiet": "false",
		"recovery_agent_removal_limit": "100%", "registry": "in_memory", "registry_fetch_timeout": "1mins",
		"registry_gc_interval": "15mins", "registry_max_agent_age": "2weeks", "registry_max_agent_count": "102400",
		"registry_store_timeout": "20secs", "registry_strict": "false", "require_agent_domain": "false",
		"role_sorter": "drf", "root_submissions": "true", "version": "false",
		"webui_dir": "", "work_dir": m.cfg.WorkDir, "zk_session_timeout": "10secs",
	}
	if m.cfg.OfferTimeout > 0 {
		v["offer_timeout"] = api.MesosDuration(m.cfg.OfferTimeout)
	}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]mesos.Flag, len(names))
	for i, k := range names {
		val := v[k]
		out[i] = mesos.Flag{Name: k, Value: &val}
	}
	return out
}

// agentCapabilities are what a Mesos 1.11 agent registers with.
var agentCapabilities = []mesos.AgentInfo_Capability_Type{
	mesos.AgentInfo_Capability_MULTI_ROLE, mesos.AgentInfo_Capability_HIERARCHICAL_ROLE,
	mesos.AgentInfo_Capability_RESERVATION_REFINEMENT, mesos.AgentInfo_Capability_RESOURCE_PROVIDER,
	mesos.AgentInfo_Capability_RESIZE_VOLUME, mesos.AgentInfo_Capability_AGENT_OPERATION_FEEDBACK,
	mesos.AgentInfo_Capability_AGENT_DRAINING, 8, // TASK_RESOURCE_LIMITS, newer than mesos-go's enum
}

// agentCapabilitiesJSON spells them out, TASK_RESOURCE_LIMITS included.
var agentCapabilitiesJSON = []string{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT",
	"RESOURCE_PROVIDER", "RESIZE_VOLUME", "AGENT_OPERATION_FEEDBACK", "AGENT_DRAINING", "TASK_RESOURCE_LIMITS"}

// withAllocation marks resources as allocated to role "*" and with role
// "*", as the master's allocated_resources show them.
func withAllocation(rs []mesos.Resource) []mesos.Resource {
	star := "*"
	for i := range rs {
		rs[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &star}
	}
	return rs
}

// opAgent renders one agent as GET_AGENTS does.
func (m *Master) opAgent(a *agentRec) (mmaster.Response_GetAgents_Agent, ojson.Object) {
	port := int32(a.port)
	id := mesos.AgentID{Value: a.id}
	info := mesos.AgentInfo{Hostname: a.hostname, Port: &port, Resources: a.total.ToProto(res.Plain, false), Attributes: a.attributes, ID: &id}
	pid := fmt.Sprintf("slave(1)@%s:%d", a.ip, a.port)
	active := a.connected && !m.agentDeactivated(a.id)
	deactivated := !active
	out := mmaster.Response_GetAgents_Agent{
		AgentInfo: info, Active: active, Deactivated: &deactivated, Version: api.Version, PID: &pid,
		RegisteredTime: timeInfo(a.registered), TotalResources: a.total.ToProto(res.OfferRole, false),
		AllocatedResources: withAllocation(a.used.ToProto(res.OfferRole, false)),
		OfferedResources:   withAllocation(a.offered.ToProto(res.OfferRole, true)), // in offer order (recording 12)
	}
	caps := make([]mesos.AgentInfo_Capability, len(agentCapabilities))
	for i, c := range agentCapabilities {
		caps[i] = mesos.AgentInfo_Capability{Type: c}
	}
	out.Capabilities = caps
	capsJSON := make([]ojson.Object, len(agentCapabilitiesJSON))
	for i, c := range agentCapabilitiesJSON {
		capsJSON[i] = ojson.Object{{K: "type", V: c}}
	}
	infoJSON := ojson.Object{{K: "hostname", V: a.hostname}, {K: "port", V: a.port}, {K: "resources", V: api.RawList(info.Resources)}}
	if len(a.attributes) > 0 {
		infoJSON = append(infoJSON, ojson.KV{K: "attributes", V: api.RawList(a.attributes)})
	}
	infoJSON = append(infoJSON, ojson.KV{K: "id", V: ojson.Object{{K: "value", V: a.id}}}, ojson.KV{K: "checkpoint", V: true})
	js := ojson.Object{{K: "agent_info", V: infoJSON}, {K: "active", V: active}, {K: "deactivated", V: deactivated},
		{K: "version", V: api.Version}, {K: "pid", V: pid}}
	if out.RegisteredTime != nil {
		js = append(js, ojson.KV{K: "registered_time", V: api.Raw(out.RegisteredTime)})
	}
	if out.ReregisteredTime = timeInfo(a.reregistered); out.ReregisteredTime != nil {
		js = append(js, ojson.KV{K: "reregistered_time", V: api.Raw(out.ReregisteredTime)})
	}
	js = append(js, ojson.KV{K: "total_resources", V: api.RawList(out.TotalResources)})
	if len(out.AllocatedResources) > 0 {
		js = append(js, ojson.KV{K: "allocated_resources", V: api.RawList(out.AllocatedResources)})
	}
	if len(out.OfferedResources) > 0 {
		js = append(js, ojson.KV{K: "offered_resources", V: api.RawList(out.OfferedResources)})
	}
	js = append(js, ojson.KV{K: "capabilities", V: capsJSON})
	if di := m.agentDrainInfo(a.id); di != nil {
		out.DrainInfo = di
		out.EstimatedDrainStartTime = timeInfo(a.drainStart)
		js = append(js, ojson.KV{K: "drain_info", V: api.Raw(di)}, ojson.KV{K: "estimated_drain_start_time", V: api.Raw(out.EstimatedDrainStartTime)})
	}
	return out, js
}

func (m *Master) opAgents() (*mmaster.Response_GetAgents, ojson.Object) {
	out := &mmaster.Response_GetAgents{}
	items := []ojson.Object{}
	for _, id := range sortedAgentIDs(m.agents) {
		a := m.agents[id]
		if a.removed {
			continue
		}
		pb, js := m.opAgent(a)
		out.Agents = append(out.Agents, pb)
		items = append(items, js)
	}
	return out, ojson.Object{{K: "agents", V: items}, {K: "recovered_agents", V: []ojson.Object{}}}
}

// opFramework renders a framework as GET_FRAMEWORKS does (forEvent: as
// FRAMEWORK_ADDED/UPDATED do, from the protobuf model, which always has
// unregistered_time and no resources or offer constraints).
func (m *Master) opFramework(fw *framework, forEvent bool) (mmaster.Response_GetFrameworks_Framework, ojson.Object) {
	out := mmaster.Response_GetFrameworks_Framework{
		FrameworkInfo: api.FrameworkInfoShown(fw.info), Active: fw.active, Connected: fw.connected, Recovered: fw.recovered,
		RegisteredTime: timeInfo(fw.registered), ReregisteredTime: timeInfo(fw.registered),
		UnregisteredTime: timeInfo(fw.unregistered),
	}
	if !fw.reregistered.IsZero() {
		out.ReregisteredTime = timeInfo(fw.reregistered)
	}
	if forEvent {
		if out.UnregisteredTime == nil {
			out.UnregisteredTime = &mesos.TimeInfo{}
		}
		return out, nil
	}
	var used, offered res.Resources
	for _, t := range fw.tasks {
		if !t.released {
			used.AddInPlace(t.resources)
		}
	}
	for _, a := range m.agents {
		for _, e := range a.executors[fw.id] {
			used.AddInPlace(e.resources)
		}
	}
	for _, o := range m.offersOf(fw.id) {
		offered.AddInPlace(o.resources)
	}
	out.AllocatedResources = withAllocation(used.ToProto(res.OfferRole, false))
	out.OfferedResources = withAllocation(offered.ToProto(res.OfferRole, false))
	js := ojson.Object{{K: "framework_info", V: api.Raw(&out.FrameworkInfo)}, {K: "active", V: out.Active},
		{K: "connected", V: out.Connected}, {K: "recovered", V: out.Recovered}}
	for _, kv := range []struct {
		k string
		t *mesos.TimeInfo
	}{{"registered_time", out.RegisteredTime}, {"reregistered_time", out.ReregisteredTime}, {"unregistered_time", out.UnregisteredTime}} {
		if kv.t != nil {
			js = append(js, ojson.KV{K: kv.k, V: api.Raw(kv.t)})
		}
	}
	if len(out.AllocatedResources) > 0 {
		js = append(js, ojson.KV{K: "allocated_resources", V: api.RawList(out.AllocatedResources)})
	}
	if len(out.OfferedResources) > 0 {
		js = append(js, ojson.KV{K: "offered_resources", V: api.RawList(out.OfferedResources)})
	}
	return out, append(js, ojson.KV{K: "offer_constraints", V: ojson.Object{}})
}

func (m *Master) opFrameworks() (*mmaster.Response_GetFrameworks, ojson.Object) {
	out := &mmaster.Response_GetFrameworks{}
	items, completed := []ojson.Object{}, []ojson.Object{}
	for _, id := range api.SortedKeys(m.frameworks) {
		pb, js := m.opFramework(m.frameworks[id], false)
		out.Frameworks = append(out.Frameworks, pb)
		items = append(items, js)
	}
	for _, fw := range m.completedFws {
		pb, js := m.opFramework(fw, false)
		out.CompletedFrameworks = append(out.CompletedFrameworks, pb)
		completed = append(completed, js)
	}
	return out, ojson.Object{{K: "frameworks", V: items}, {K: "completed_frameworks", V: completed}}
}

// opTask renders a task as the master's GET_TASKS does: its statuses as
// the master received them, and the head of its status update stream.
func opTask(t *task) mesos.Task {
	st := t.state
	out := mesos.Task{
		Name: t.info.Name, TaskID: t.info.TaskID, FrameworkID: mesos.FrameworkID{Value: t.fwID},
		AgentID: mesos.AgentID{Value: t.agentID}, State: &st, Resources: t.info.Resources,
		Statuses: t.statuses, Labels: t.info.Labels, Discovery: t.info.Discovery,
		Container: t.info.Container, HealthCheck: t.info.HealthCheck, KillPolicy: t.info.KillPolicy,
	}
	if t.executorID != "" {
		out.ExecutorID = &mesos.ExecutorID{Value: t.executorID}
	}
	if t.latest != nil && len(t.latest.UUID) > 0 {
		out.StatusUpdateState = t.latest.State
		out.StatusUpdateUUID = t.latest.UUID
	}
	return out
}

// tasksOf lists a framework's tasks by id.
func tasksOf(fw *framework) []*task {
	out := make([]*task, 0, len(fw.tasks))
	for _, id := range api.SortedKeys(fw.tasks) {
		out = append(out, fw.tasks[id])
	}
	return out
}

func (m *Master) opTasks() (*mmaster.Response_GetTasks, ojson.Object) {
	out := &mmaster.Response_GetTasks{}
	for _, id := range api.SortedKeys(m.frameworks) {
		fw := m.frameworks[id]
		for _, t := range tasksOf(fw) {
			if t.state == mesos.TASK_UNREACHABLE {
				out.UnreachableTasks = append(out.UnreachableTasks, opTask(t))
			} else {
				out.Tasks = append(out.Tasks, opTask(t))
			}
		}
		for _, t := range fw.completed {
			out.CompletedTasks = append(out.CompletedTasks, opTask(t))
		}
	}
	for _, fw := range m.completedFws {
		for _, t := range fw.completed {
			out.CompletedTasks = append(out.CompletedTasks, opTask(t))
		}
	}
	return out, ojson.Object{{K: "tasks", V: api.RawList(out.Tasks)},
		{K: "unreachable_tasks", V: api.RawList(out.UnreachableTasks)}, {K: "completed_tasks", V: api.RawList(out.CompletedTasks)}}
}

// opExecutors lists custom executors; like Mesos, not the command
// executors of command tasks.
func (m *Master) opExecutors() (*mmaster.Response_GetExecutors, ojson.Object) {
	out := &mmaster.Response_GetExecutors{}
	for _, aid := range sortedAgentIDs(m.agents) {
		a := m.agents[aid]
		for _, fwID := range api.SortedKeys(a.executors) {
			for _, eid := range api.SortedKeys(a.executors[fwID]) {
				out.Executors = append(out.Executors, mmaster.Response_GetExecutors_Executor{
					ExecutorInfo: a.executors[fwID][eid].info, AgentID: mesos.AgentID{Value: aid}})
			}
		}
	}
	return out, ojson.Object{{K: "executors", V: api.RawList(out.Executors)}}
}

func (m *Master) opState() (*mmaster.Response_GetState, ojson.Object) {
	tasks, tj := m.opTasks()
	execs, ej := m.opExecutors()
	fws, fj := m.opFrameworks()
	agents, aj := m.opAgents()
	return &mmaster.Response_GetState{GetTasks: tasks, GetExecutors: execs, GetFrameworks: fws, GetAgents: agents},
		ojson.Object{{K: "get_tasks", V: tj}, {K: "get_executors", V: ej}, {K: "get_frameworks", V: fj}, {K: "get_agents", V: aj}}
}

// agentDeactivated and agentDrainInfo show DEACTIVATE_AGENT and
// DRAIN_AGENT.
func (m *Master) agentDeactivated(id string) bool {
	return m.agents[id] != nil && m.agents[id].deactivated
}

func (m *Master) agentDrainInfo(id string) *mesos.DrainInfo {
	if a := m.agents[id]; a != nil && a.drain != nil {
		di := *a.drain
		return &di
	}
	return nil
}

// streamContext ends a stream with its request or with the master's
// incarnation, whichever ends first.
func (h *masterHTTP) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}
