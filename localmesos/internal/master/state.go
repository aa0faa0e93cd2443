package master

import (
	"fmt"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// renderState builds /master/state, shaped after Mesos 1.11's.
func (m *Master) renderState() []byte {
	pid := fmt.Sprintf("master@%s:%d", m.ip, m.port)
	agentIDs := make([]string, 0, len(m.agents))
	for id := range m.agents {
		agentIDs = append(agentIDs, id)
	}
	sort.Slice(agentIDs, func(i, j int) bool { return agentLess(agentIDs[i], agentIDs[j]) })
	var slaves []ojson.Object
	activated, deactivated := 0, 0
	for _, id := range agentIDs {
		a := m.agents[id]
		if a.connected {
			activated++
		} else {
			deactivated++
		}
		slaves = append(slaves, ojson.Object{
			{K: "id", V: a.id}, {K: "hostname", V: a.hostname}, {K: "port", V: a.port},
			{K: "attributes", V: api.AttributesJSON(a.attributes)},
			{K: "pid", V: fmt.Sprintf("slave(1)@%s:%d", a.ip, a.port)},
			{K: "registered_time", V: api.Secs(a.registered)},
			{K: "resources", V: api.ResourcesJSON(a.total)},
			{K: "used_resources", V: api.ResourcesJSON(a.used)},
			{K: "offered_resources", V: api.ResourcesJSON(a.offered)},
			{K: "reserved_resources", V: ojson.Object{}},
			{K: "unreserved_resources", V: api.ResourcesJSON(a.total)},
			{K: "active", V: a.connected}, {K: "deactivated", V: !a.connected},
			{K: "version", V: api.Version},
			{K: "capabilities", V: agentCapabilitiesJSON},
		})
	}
	fwIDs := make([]string, 0, len(m.frameworks))
	for id := range m.frameworks {
		fwIDs = append(fwIDs, id)
	}
	sort.Strings(fwIDs)
	var fws, completed []ojson.Object
	for _, id := range fwIDs {
		fws = append(fws, m.frameworkJSON(m.frameworks[id]))
	}
	for _, fw := range m.completedFws {
		completed = append(completed, m.frameworkJSON(fw))
	}
	doc := ojson.Object{
		{K: "version", V: api.Version},
		{K: "build_date", V: "localmesos"},
		{K: "build_time", V: ojson.Double(0)},
		{K: "build_user", V: ""},
		{K: "start_time", V: api.Secs(m.started)},
		{K: "elected_time", V: api.Secs(m.started)},
		{K: "id", V: m.id},
		{K: "pid", V: pid},
		{K: "hostname", V: m.hostname},
		{K: "capabilities", V: []string{"AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"}},
		{K: "activated_slaves", V: ojson.Double(activated)},
		{K: "deactivated_slaves", V: ojson.Double(deactivated)},
		{K: "unreachable_slaves", V: ojson.Double(0)},
		{K: "leader", V: pid},
		{K: "leader_info", V: ojson.Object{{K: "id", V: m.id}, {K: "pid", V: pid}, {K: "port", V: m.port}, {K: "hostname", V: m.hostname}}},
		{K: "flags", V: ojson.Object{
			{K: "allocation_interval", V: api.MesosDuration(m.cfg.AllocationInterval)},
			{K: "offer_timeout", V: api.MesosDuration(m.cfg.OfferTimeout)},
			{K: "max_completed_frameworks", V: fmt.Sprint(m.cfg.MaxCompletedFrameworks)},
			{K: "max_completed_tasks_per_framework", V: fmt.Sprint(m.cfg.MaxCompletedTasks)},
			{K: "port", V: fmt.Sprint(m.port)},
			{K: "registry", V: "in_memory"},
		}},
		{K: "slaves", V: api.NonNil(slaves)},
		{K: "recovered_slaves", V: []ojson.Object{}},
		{K: "frameworks", V: api.NonNil(fws)},
		{K: "completed_frameworks", V: api.NonNil(completed)},
		{K: "orphan_tasks", V: []ojson.Object{}},
		{K: "unregistered_frameworks", V: []ojson.Object{}},
	}
	return ojson.Marshal(doc)
}

func (m *Master) frameworkJSON(fw *framework) ojson.Object {
	var used, offered res.Resources
	taskIDs := make([]string, 0, len(fw.tasks))
	for id, t := range fw.tasks {
		taskIDs = append(taskIDs, id)
		if !t.released {
			used = used.Add(t.resources)
		}
	}
	sort.Strings(taskIDs)
	var tasks, completed, offers, executors []ojson.Object
	for _, id := range taskIDs {
		tasks = append(tasks, taskJSON(fw.tasks[id]))
	}
	for _, t := range fw.completed {
		completed = append(completed, taskJSON(t))
	}
	for _, o := range m.offersOf(fw.id) {
		offered = offered.Add(o.resources)
		offers = append(offers, ojson.Object{
			{K: "id", V: o.id}, {K: "framework_id", V: fw.id},
			{K: "allocation_info", V: ojson.Object{{K: "role", V: "*"}}},
			{K: "slave_id", V: o.agentID}, {K: "resources", V: api.ResourcesJSON(o.resources)},
		})
	}
	for _, aid := range sortedAgentIDs(m.agents) {
		a := m.agents[aid]
		execIDs := make([]string, 0, len(a.executors[fw.id]))
		for id := range a.executors[fw.id] {
			execIDs = append(execIDs, id)
		}
		sort.Strings(execIDs)
		for _, id := range execIDs {
			e := a.executors[fw.id][id]
			used = used.Add(e.resources)
			cmd := ojson.Object{}
			if e.info.Command != nil {
				cmd = ojson.Object{{K: "shell", V: e.info.Command.Shell == nil || *e.info.Command.Shell}, {K: "value", V: e.info.Command.GetValue()},
					{K: "argv", V: nonNilStrings(e.info.Command.Arguments)}, {K: "uris", V: urisJSON(e.info.Command.URIs)}}
			}
			executors = append(executors, ojson.Object{
				{K: "executor_id", V: id}, {K: "name", V: e.info.GetName()}, {K: "framework_id", V: fw.id},
				{K: "command", V: cmd}, {K: "resources", V: api.ResourcesJSON(e.resources)}, {K: "role", V: "*"},
				{K: "type", V: e.info.GetType().String()}, {K: "slave_id", V: aid},
			})
		}
	}
	caps := []string{}
	for _, c := range fw.info.Capabilities {
		caps = append(caps, c.Type.String())
	}
	out := ojson.Object{
		{K: "id", V: fw.id}, {K: "name", V: fw.info.Name},
		{K: "used_resources", V: api.ResourcesJSON(used)},
		{K: "offered_resources", V: api.ResourcesJSON(offered)},
		{K: "capabilities", V: caps},
		{K: "hostname", V: fw.info.GetHostname()},
		{K: "webui_url", V: fw.info.GetWebUiURL()},
		{K: "active", V: fw.active}, {K: "connected", V: fw.connected}, {K: "recovered", V: fw.recovered},
		{K: "user", V: fw.info.User},
		{K: "failover_timeout", V: ojson.Double(fw.info.GetFailoverTimeout())},
		{K: "checkpoint", V: fw.info.GetCheckpoint()},
		{K: "registered_time", V: api.Secs(fw.registered)},
		{K: "unregistered_time", V: api.Secs(fw.unregistered)},
		{K: "resources", V: api.ResourcesJSON(used.Add(offered))},
	}
	if !fw.reregistered.IsZero() {
		out = append(out, ojson.KV{K: "reregistered_time", V: api.Secs(fw.reregistered)})
	}
	if p := fw.info.GetPrincipal(); p != "" {
		out = append(out, ojson.KV{K: "principal", V: p})
	}
	// Mesos' FullFrameworkWriter: "roles" for MULTI_ROLE frameworks, "role"
	// otherwise.
	if fw.multiRole {
		out = append(out, ojson.KV{K: "roles", V: nonNilStrings(fw.info.Roles)})
	} else {
		out = append(out, ojson.KV{K: "role", V: fw.info.GetRole()})
	}
	return append(out,
		ojson.KV{K: "tasks", V: api.NonNil(tasks)},
		ojson.KV{K: "unreachable_tasks", V: []ojson.Object{}},
		ojson.KV{K: "completed_tasks", V: api.NonNil(completed)},
		ojson.KV{K: "offers", V: api.NonNil(offers)},
		ojson.KV{K: "executors", V: api.NonNil(executors)},
		ojson.KV{K: "offer_constraints", V: ojson.Object{}},
	)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func urisJSON(uris []mesos.CommandInfo_URI) []ojson.Object {
	out := []ojson.Object{}
	for _, u := range uris {
		out = append(out, ojson.Object{{K: "value", V: u.Value}, {K: "executable", V: u.GetExecutable()}, {K: "extract", V: u.GetExtract()}, {K: "cache", V: u.GetCache()}})
	}
	return out
}

func sortedAgentIDs(agents map[string]*agentRec) []string {
	ids := make([]string, 0, len(agents))
	for id := range agents {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return agentLess(ids[i], ids[j]) })
	return ids
}

func (m *Master) offersOf(fwID string) []*offer {
	var out []*offer
	for _, o := range m.offers {
		if o.fwID == fwID {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func taskJSON(t *task) ojson.Object {
	statuses := []ojson.Object{}
	for _, s := range t.statuses {
		st := ojson.Object{{K: "state", V: s.GetState().String()}, {K: "timestamp", V: ojson.Double(s.GetTimestamp())}}
		if cs := s.ContainerStatus; cs != nil {
			shown := *cs
			shown.ExecutorPID = nil // Mesos leaves the pid out of /state
			if b, err := protojson.Marshal(&shown); err == nil {
				st = append(st, ojson.KV{K: "container_status", V: ojson.Raw(b)})
			}
		}
		statuses = append(statuses, st)
	}
	out := ojson.Object{
		{K: "id", V: t.info.TaskID.Value}, {K: "name", V: t.info.Name}, {K: "framework_id", V: t.fwID},
		{K: "executor_id", V: t.executorID}, {K: "slave_id", V: t.agentID}, {K: "state", V: t.state.String()},
		{K: "resources", V: api.ResourcesJSON(t.resources)}, {K: "role", V: "*"},
		{K: "statuses", V: statuses},
	}
	if t.info.Discovery != nil {
		if b, err := protojson.Marshal(t.info.Discovery); err == nil {
			out = append(out, ojson.KV{K: "discovery", V: ojson.Raw(b)})
		}
	}
	return out
}

func (m *Master) renderMetrics() []byte {
	c := m.counters
	running := 0
	for _, fw := range m.frameworks {
		running += len(fw.tasks)
	}
	fc := m.faults.Counts()
	// Mesos' own keys, with localmesos' counters beside them.
	return m.snapshot(time.Now()).JSON(ojson.Object{
		{K: "master/tasks_active", V: ojson.Double(running)},
		{K: "master/offers_made", V: ojson.Double(c.offersMade)},
		{K: "master/offers_declined", V: ojson.Double(c.offersDeclined)},
		{K: "master/offers_rescinded", V: ojson.Double(c.offersRescinded)},
		{K: "master/tasks_launched", V: ojson.Double(c.tasksLaunched)},
		{K: "master/tasks_invalid", V: ojson.Double(c.tasksInvalid)},
		{K: "master/status_updates_forwarded", V: ojson.Double(c.updatesForwarded)},
		{K: "master/status_updates_undeliverable", V: ojson.Double(c.updatesUndeliverable)},
		{K: "master/messages_to_executors", V: ojson.Double(c.messagesToExecutors)},
		{K: "master/messages_to_schedulers", V: ojson.Double(c.messagesToSchedulers)},
		{K: "master/messages_undeliverable", V: ojson.Double(c.messagesUndeliverable)},
		{K: "master/unsupported_operations", V: ojson.Double(c.unsupportedOperations)},
		{K: "faults/messages_dropped", V: ojson.Double(fc.MessagesDropped)},
		{K: "faults/messages_duplicated", V: ojson.Double(fc.MessagesDuplicated)},
		{K: "faults/messages_delayed", V: ojson.Double(fc.MessagesDelayed)},
		{K: "faults/events_black_holed", V: ojson.Double(fc.EventsBlackHoled)},
	})
}
