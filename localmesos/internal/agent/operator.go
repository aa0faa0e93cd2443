package agent

import (
	"net/http"
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	magent "github.com/mesos/mesos-go/api/v1/lib/agent"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The agent's operator API (POST /api/v1 on each agent), after Mesos
// 1.11's src/slave/http.cpp (Http::api): the read calls about
// frameworks, executors and tasks. Calls of the master's API are not in
// Agent::Call's enum, so they fail validation as calls without a type, as
// in Mesos.

// agentFunc runs on the agent's goroutine (see agent.handle).
type agentFunc func(*Agent)

func (h *agentHTTP) operator(w http.ResponseWriter, r *http.Request) {
	if err := h.serveOperator(w, r); err != nil {
		wire.WriteError(w, err)
	}
}

// validateAgentCall is validation::agent::call::validate
// (src/slave/validation.cpp) for the calls without parameters'
// messages; "UNKNOWN" stands for a call without a type.
func validateAgentCall(c *magent.Call) string {
	need := func(name string, present bool) string {
		if present {
			return ""
		}
		return "Expecting '" + name + "' to be present"
	}
	switch c.Type {
	case magent.Call_UNKNOWN:
		return "UNKNOWN"
	case magent.Call_GET_METRICS:
		return need("get_metrics", c.GetMetrics != nil)
	case magent.Call_SET_LOGGING_LEVEL:
		return need("set_logging_level", c.SetLoggingLevel != nil)
	case magent.Call_LIST_FILES:
		return need("list_files", c.ListFiles != nil)
	case magent.Call_READ_FILE:
		return need("read_file", c.ReadFile != nil)
	}
	return ""
}

func (h *agentHTTP) serveOperator(w http.ResponseWriter, r *http.Request) error {
	call := new(magent.Call)
	codec, err := api.DecodeOperatorCall(r, call, "agent::Call", func() string { return validateAgentCall(call) })
	if err != nil {
		return err
	}
	var ans api.OpAnswer
	done := make(chan struct{})
	stopping := &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"}
	if !h.a.box.Post(agentFunc(func(a *Agent) { ans = a.operatorCall(call); close(done) })) {
		return stopping
	}
	select {
	case <-done:
	case <-h.a.done:
		return stopping
	}
	if ans.Err != nil {
		return ans.Err
	}
	return api.WriteOperatorAnswer(w, codec, ans)
}

func (a *Agent) operatorCall(c *magent.Call) api.OpAnswer {
	resp := &magent.Response{}
	var js ojson.Object
	switch c.Type {
	case magent.Call_GET_HEALTH:
		resp.Type = magent.Response_GET_HEALTH
		resp.GetHealth = &magent.Response_GetHealth{Healthy: true}
		js = ojson.Object{{K: "healthy", V: true}}
	case magent.Call_GET_FLAGS:
		flags := a.flags()
		resp.Type = magent.Response_GET_FLAGS
		resp.GetFlags = &magent.Response_GetFlags{Flags: flags}
		js = ojson.Object{{K: "flags", V: api.RawList(flags)}}
	case magent.Call_GET_VERSION:
		resp.Type = magent.Response_GET_VERSION
		resp.GetVersion = &magent.Response_GetVersion{VersionInfo: api.VersionInfo()}
		js = ojson.Object{{K: "version_info", V: api.Raw(&resp.GetVersion.VersionInfo)}}
	case magent.Call_GET_STATE:
		tasks, tj := a.opTasks()
		execs, ej := a.opExecutors()
		fws, fj := a.opFrameworks()
		resp.Type = magent.Response_GET_STATE
		resp.GetState = &magent.Response_GetState{GetTasks: tasks, GetExecutors: execs, GetFrameworks: fws}
		js = ojson.Object{{K: "get_tasks", V: tj}, {K: "get_executors", V: ej}, {K: "get_frameworks", V: fj}}
	case magent.Call_GET_FRAMEWORKS:
		resp.Type = magent.Response_GET_FRAMEWORKS
		resp.GetFrameworks, js = a.opFrameworks()
	case magent.Call_GET_EXECUTORS:
		resp.Type = magent.Response_GET_EXECUTORS
		resp.GetExecutors, js = a.opExecutors()
	case magent.Call_GET_TASKS:
		resp.Type = magent.Response_GET_TASKS
		resp.GetTasks, js = a.opTasks()
	default:
		return api.OpAnswer{Err: api.NotImplemented(c.Type)}
	}
	return api.OpAnswer{PB: resp, JSON: ojson.Marshal(ojson.Object{
		{K: "type", V: resp.Type.String()}, {K: api.LowerType(resp.Type.String()), V: js}})}
}

// flags lists the agent's flags that localmesos has, with Mesos' names and
// duration format, sorted by name as Mesos does.
func (a *Agent) flags() []mesos.Flag {
	v := map[string]string{
		"work_dir":                        a.workDir,
		"ip":                              a.ip,
		"port":                            strconv.Itoa(a.port),
		"executor_registration_timeout":   api.MesosDuration(a.cfg.ExecutorRegistrationTimeout),
		"executor_reregistration_timeout": api.MesosDuration(a.cfg.ExecutorReregistrationTimeout),
		"executor_shutdown_grace_period":  api.MesosDuration(a.cfg.ExecutorShutdownGracePeriod),
		"recovery_timeout":                api.MesosDuration(a.cfg.RecoveryTimeout),
		"resources":                       a.total.String(),
		"default_role":                    "*",
		"launcher":                        "posix",
		"isolation":                       "posix/cpu,posix/mem",
		"containerizers":                  "mesos",
		"strict":                          "true",
		"help":                            "false",
		"http_command_executor":           "false",
		"version":                         "false",
	}
	names := api.SortedKeys(v)
	out := make([]mesos.Flag, len(names))
	for i, k := range names {
		val := v[k]
		out[i] = mesos.Flag{Name: k, Value: &val}
	}
	return out
}

func (a *Agent) opFrameworks() (*magent.Response_GetFrameworks, ojson.Object) {
	out := &magent.Response_GetFrameworks{}
	items := []ojson.Object{}
	for _, id := range api.SortedKeys(a.frameworks) {
		info := api.FrameworkInfoShown(a.frameworks[id].info)
		out.Frameworks = append(out.Frameworks, magent.Response_GetFrameworks_Framework{FrameworkInfo: info})
		items = append(items, ojson.Object{{K: "framework_info", V: api.Raw(&info)}})
	}
	return out, ojson.Object{{K: "frameworks", V: items}, {K: "completed_frameworks", V: []ojson.Object{}}}
}

func (a *Agent) opExecutors() (*magent.Response_GetExecutors, ojson.Object) {
	out := &magent.Response_GetExecutors{}
	items := []ojson.Object{}
	for _, fwID := range api.SortedKeys(a.frameworks) {
		fw := a.frameworks[fwID]
		for _, eid := range api.SortedKeys(fw.executors) {
			info := fw.executors[eid].info
			out.Executors = append(out.Executors, magent.Response_GetExecutors_Executor{ExecutorInfo: info})
			items = append(items, ojson.Object{{K: "executor_info", V: api.Raw(&info)}})
		}
	}
	return out, ojson.Object{{K: "executors", V: items}, {K: "completed_executors", V: []ojson.Object{}}}
}

// opTasks sorts the agent's tasks as Mesos' agent does: queued for an
// executor that has not subscribed yet, launched, and terminated (the
// terminal update not acknowledged yet).
func (a *Agent) opTasks() (*magent.Response_GetTasks, ojson.Object) {
	out := &magent.Response_GetTasks{}
	for _, fwID := range api.SortedKeys(a.frameworks) {
		fw := a.frameworks[fwID]
		queued := map[string]bool{}
		for _, e := range fw.executors {
			for _, t := range e.queued {
				queued[t.TaskID.Value] = true
			}
		}
		ids := api.SortedKeys(fw.tasks)
		sort.Strings(ids)
		for _, id := range ids {
			t := fw.tasks[id]
			task := a.opTask(fwID, t)
			switch {
			case api.Terminal(t.state):
				out.TerminatedTasks = append(out.TerminatedTasks, task)
			case queued[id]:
				out.QueuedTasks = append(out.QueuedTasks, task)
			default:
				out.LaunchedTasks = append(out.LaunchedTasks, task)
			}
		}
	}
	return out, ojson.Object{{K: "pending_tasks", V: []ojson.Raw{}}, {K: "queued_tasks", V: api.RawList(out.QueuedTasks)},
		{K: "launched_tasks", V: api.RawList(out.LaunchedTasks)}, {K: "terminated_tasks", V: api.RawList(out.TerminatedTasks)},
		{K: "completed_tasks", V: []ojson.Raw{}}}
}

func (a *Agent) opTask(fwID string, t *agentTask) mesos.Task {
	st := t.state
	out := mesos.Task{
		Name: t.info.Name, TaskID: t.info.TaskID, FrameworkID: mesos.FrameworkID{Value: fwID},
		AgentID: mesos.AgentID{Value: a.id}, State: &st, Resources: t.info.Resources, Statuses: t.statuses,
		Labels: t.info.Labels, Discovery: t.info.Discovery, KillPolicy: t.info.KillPolicy,
	}
	if t.info.Executor != nil {
		out.ExecutorID = &mesos.ExecutorID{Value: t.execID}
	}
	if t.latest != nil && len(t.latest.UUID) > 0 {
		out.StatusUpdateState = t.latest.State
		out.StatusUpdateUUID = t.latest.UUID
	}
	return out
}
