package scheduler

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/httpapi"
)

// The HTTP API is the package httpapi; this file is what it serves: the
// view the loop published after its last step (reads never wait for the
// loop or the store), and the loop's writes.

func (s *Scheduler) handler() http.Handler {
	return httpapi.New(httpapi.Config{
		Service:   apiService{s},
		Token:     s.cfg.APIToken,
		OpenReads: s.cfg.OpenReads,
		Now:       s.cfg.Now,
		Metrics:   promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}),
		Artifacts: s.art,
	})
}

// apiService is the scheduler as httpapi.Service: SubmitSpec and Scale are
// the Go API's; reads come from the latest view.
type apiService struct{ *Scheduler }

func (a apiService) View() (httpapi.View, error) {
	select {
	case <-a.done:
		return nil, ErrStopped
	default:
	}
	return apiView{a.view.Load()}, nil
}

func (a apiService) Subscribe() httpapi.Subscription { return a.bus.Subscribe() }

// apiView answers the API's reads from one core.View.
type apiView struct{ v *core.View }

func (a apiView) Health() Health {
	v := a.v
	return Health{Status: "ok", Subscribed: v.Subscribed, FrameworkID: v.FrameworkID, Master: v.Master, SpecVersion: v.SpecVersion}
}

func (a apiView) Spec() SpecInfo {
	v := a.v
	return SpecInfo{Version: v.SpecVersion, Name: v.SpecName, Accepted: v.SpecAccepted, Spec: v.Spec, Source: string(v.Source)}
}

func (a apiView) Status() Status { return statusView(a.v) }

func (a apiView) Tasks() int { return len(a.v.Tasks) }

func (a apiView) Task(i int) apitypes.Task {
	t := &a.v.Tasks[i]
	return apitypes.Task{ID: t.ID, Service: t.Service, Phase: t.Phase}
}

func (a apiView) TaskInfo(i int) TaskInfo { return taskView(&a.v.Tasks[i]) }

func (a apiView) Links() []TaskLinks {
	v := a.v
	out := make([]TaskLinks, 0, len(v.Tasks))
	for _, t := range v.Tasks {
		tl := TaskLinks{TaskID: t.ID, Service: t.Service, Acked: t.Acked}
		if t.LinkVersion > 0 {
			tl.Version, tl.Table = t.LinkVersion, v.Services[t.Service].Table
		}
		out = append(out, tl)
	}
	return out
}

func (a apiView) Agents() []Agent {
	v := a.v
	out := make([]Agent, 0, len(v.Agents))
	for _, a := range v.Agents {
		ag := Agent{ID: a.ID, Hostname: a.Hostname, Attributes: a.Attributes, Region: a.Region, Zone: a.Zone,
			Maintenance: a.Maintenance, Draining: a.Draining, Tasks: a.Tasks}
		if u := a.Unavailability; u != nil {
			ag.Unavailable = u.Start.UTC()
			if u.Duration > 0 {
				ag.Until = u.Start.Add(u.Duration).UTC()
			}
		}
		out = append(out, ag)
	}
	return out
}

// The API's bodies are the leaf package apitypes, so a client needs not
// link the scheduler; these names keep the scheduler's own API as it was.
type (
	Health             = apitypes.Health
	SpecInfo           = apitypes.SpecInfo
	SubmitResult       = apitypes.SubmitResult
	TaskInfo           = apitypes.TaskInfo
	LinkState          = apitypes.LinkState
	GateCountersReport = apitypes.GateCountersReport
	TaskLinks          = apitypes.TaskLinks
	Status             = apitypes.Status
	ServiceStatus      = apitypes.ServiceStatus
	Waiting            = apitypes.Waiting
	Agent              = apitypes.Agent
	Event              = apitypes.Event
	TaskFile           = apitypes.TaskFile
	// TaskQuery filters and pages GET /v1/tasks (?service=, ?phase=,
	// ?limit=, ?after=, ?view=summary).
	TaskQuery = apitypes.TaskQuery
	// TaskSummary is GET /v1/tasks?view=summary: task counts by service
	// and phase; ServiceTasks is one service's.
	TaskSummary  = apitypes.TaskSummary
	ServiceTasks = apitypes.ServiceTasks
)

// Paging of GET /v1/tasks: tasks a page without ?limit=, and at most.
const (
	DefaultTaskLimit = apitypes.DefaultTaskLimit
	MaxTaskLimit     = apitypes.MaxTaskLimit
)

func waitingView(w *core.Waiting) *Waiting {
	if w == nil {
		return nil
	}
	return &Waiting{Tasks: w.Tasks, Reason: w.Top, Reasons: w.Reasons, Since: w.Since, At: w.At}
}

// taskView is one task's entry of GET /v1/tasks.
func taskView(t *core.TaskView) TaskInfo {
	ti := TaskInfo{
		ID: t.ID, Service: t.Service, Phase: t.Phase, State: t.State, Reason: t.Reason, Message: t.Message,
		AgentID: t.AgentID, Host: t.Host, Ports: t.Ports, Retiring: t.Retiring, Orphan: t.Orphan,
		Outdated: t.Outdated, Created: t.Created, Updated: t.Updated,
		Links: LinkState{Version: t.LinkVersion, Sent: t.Sent, Acked: t.Acked},
	}
	if t.Phase == "pending" {
		ti.Waiting = waitingView(t.Waiting)
	}
	if st := t.Status; st != nil {
		ti.StatusAt, ti.Counters = st.At, st.Counters
		ti.Gates = map[string]GateCountersReport{}
		for g, gc := range st.Gates {
			ti.Gates[g] = GateCountersReport{Pattern: string(gc.Pattern), Sent: gc.Sent, Received: gc.Received, Dropped: gc.Dropped, Rerouted: gc.Rerouted, QueueDepth: gc.QueueDepth, Peers: gc.Peers}
		}
	}
	return ti
}

func statusView(v *core.View) Status {
	st := Status{SpecVersion: v.SpecVersion, Subscribed: v.Subscribed, Converged: true}
	bySvc := map[string]*ServiceStatus{}
	for _, name := range v.Spec.ServiceNames() {
		svc := v.Spec.Services[name]
		ss := &ServiceStatus{Name: name, Wanted: svc.Instances, Waiting: waitingView(v.Services[name].Waiting)}
		bySvc[name] = ss
		r := v.Services[name].Restarts
		ss.Failures = r.Failures
		if r.Failures > 0 {
			ss.HeldUntil = r.Last.Add(svc.Backoff.Delay(r.Failures))
			ss.LastFailure = v.Services[name].LastFailure
		}
	}
	for i := range v.Tasks {
		t := &v.Tasks[i]
		ss := bySvc[t.Service]
		if ss == nil {
			ss = &ServiceStatus{Name: t.Service}
			bySvc[t.Service] = ss
		}
		if t.Status != nil {
			addGates(ss, t.Status.Gates)
		}
		switch {
		case t.Retiring || t.Phase == "killing":
			ss.Retiring++
		case t.Outdated:
			ss.Outdated++
		case t.Phase == "pending":
			ss.Pending++
		case t.Phase == "launched":
			ss.Launching++
		case t.Phase == "running" && !t.Orphan:
			ss.Running++
			if t.LinkVersion > 0 && t.Acked != t.LinkVersion {
				ss.Unacked++
			}
		}
	}
	for _, ss := range bySvc {
		ss.Converged = ss.Running == ss.Wanted && ss.Unacked == 0 && ss.Retiring == 0 && ss.Outdated == 0 && ss.Pending == 0 && ss.Launching == 0
		if !ss.Converged {
			st.Converged = false
		}
		st.Services = append(st.Services, *ss)
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	if !v.Subscribed {
		st.Converged = false
	}
	return st
}

// addGates adds one task's gate counters to the service's sums.
func addGates(ss *ServiceStatus, gates map[string]control.GateCounters) {
	if ss.Gates == nil {
		ss.Gates = map[string]GateCountersReport{}
	}
	for g, gc := range gates {
		sum := ss.Gates[g]
		sum.Pattern = string(gc.Pattern)
		sum.Sent += gc.Sent
		sum.Received += gc.Received
		sum.Dropped += gc.Dropped
		sum.Rerouted += gc.Rerouted
		sum.QueueDepth += gc.QueueDepth
		sum.Peers += gc.Peers
		ss.Gates[g] = sum
	}
}
