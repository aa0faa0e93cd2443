package scheduler

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/console"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/internal/apiwire"
)

// The HTTP API. Reads are answered from the view the loop published after
// its last step, so every answer is consistent and none waits for the
// loop or the store; writes go through the loop and are stored before the
// answer says they were accepted.

func (s *Scheduler) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.getHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /v1/artifacts/{name}", s.art)
	mux.HandleFunc("GET /v1/spec", s.read(s.getSpec))
	mux.HandleFunc("PUT /v1/spec", s.write(s.putSpec))
	mux.HandleFunc("GET /v1/tasks", s.read(s.getTasks))
	mux.HandleFunc("GET /v1/tasks/{id}/files/{name}", s.private(s.getTaskFile))
	mux.HandleFunc("GET /v1/links", s.read(s.getLinks))
	mux.HandleFunc("GET /v1/status", s.read(s.getStatus))
	mux.HandleFunc("GET /v1/services/{name}", s.read(s.getService))
	mux.HandleFunc("GET /v1/agents", s.read(s.getAgents))
	mux.HandleFunc("POST /v1/services/{name}/scale", s.write(s.postScale))
	mux.HandleFunc("GET /v1/events", s.read(s.getEvents))
	mux.HandleFunc("GET /{$}", s.getIndex)
	mux.HandleFunc("GET /v1", s.getIndex)
	mux.Handle("GET /console/", console.Handler())
	return console.Secure(mux)
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

// The wire details (error bodies, body checks, task paging) are shared with
// the test fake in scheduler/client/clienttest.
type apiError = apiwire.Error

var (
	writeJSON = apiwire.WriteJSON
	writeErr  = apiwire.WriteError
)

// authorized checks the bearer token in constant time.
func (s *Scheduler) authorized(r *http.Request) bool {
	if s.cfg.APIToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.APIToken)) == 1
}

func (s *Scheduler) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.OpenReads && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "this scheduler needs a token: pass --token or set TILTAI_TOKEN")
			return
		}
		h(w, r)
	}
}

func (s *Scheduler) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "changes need the scheduler's token: pass --token or set TILTAI_TOKEN")
			return
		}
		h(w, r)
	}
}

// readView returns the latest view, or answers 503 when the scheduler
// stopped.
func (s *Scheduler) readView(w http.ResponseWriter) (*core.View, bool) {
	select {
	case <-s.done:
		writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
		return nil, false
	default:
	}
	return s.view.Load(), true
}

// getIndex is the console for a browser, the JSON index for tools (and at
// GET /v1).
func (s *Scheduler) getIndex(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && console.WantsPage(r) {
		console.Handler().ServeHTTP(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "tiltai scheduler",
		"endpoints": []string{
			"GET / (the web console; JSON with Accept: application/json)", "GET /v1 (this index)", "GET /health", "GET /metrics", "GET /v1/spec", "PUT /v1/spec[?dry_run=1] (If-Match: VERSION)",
			"GET /v1/services/{name}",
			"GET /v1/agents",
			"POST /v1/services/{name}/scale {\"instances\": N}",
			"GET /v1/tasks[?service=S&phase=P&limit=N&after=ID|&view=summary]",
			"GET /v1/tasks/{id}/files/{stdout|stderr}[?offset=N&length=N] (needs the token)", "GET /v1/links",
			"GET /v1/status", "GET /v1/events (Server-Sent Events)",
		},
	})
}

func (s *Scheduler) getHealth(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.done:
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "stopped"})
		return
	default:
	}
	v := s.view.Load()
	writeJSON(w, http.StatusOK, Health{Status: "ok", Subscribed: v.Subscribed, FrameworkID: v.FrameworkID, Master: v.Master, SpecVersion: v.SpecVersion})
}

func (s *Scheduler) getSpec(w http.ResponseWriter, r *http.Request) {
	v, ok := s.readView(w)
	if !ok {
		return
	}
	info := SpecInfo{Version: v.SpecVersion, Name: v.SpecName, Accepted: v.SpecAccepted, Spec: v.Spec, Source: string(v.Source)}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(info.Version)))
	if r.URL.Query().Get("format") == "source" {
		w.Header().Set("Content-Type", "application/yaml")
		io.WriteString(w, info.Source)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Scheduler) putSpec(w http.ResponseWriter, r *http.Request) {
	match, err := apiwire.IfMatch(r)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	name, src, err := apiwire.ReadSpec(r, linkspec.MaxSpecBytes)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	res, err := s.SubmitSpec(r.Context(), name, src, SubmitOptions{IfMatch: match, DryRun: apiwire.DryRun(r)})
	s.answerSubmit(w, res, err)
}

func (s *Scheduler) answerSubmit(w http.ResponseWriter, res SubmitResult, err error) {
	var (
		inv      *InvalidSpecError
		conflict *ConflictError
		notFound *UnknownServiceError
	)
	switch {
	case err == nil:
		w.Header().Set("ETag", strconv.Quote(strconv.Itoa(res.Version)))
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &inv):
		n := len(inv.Problems.Errors())
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: fmt.Sprintf("the spec is invalid (%d %s); nothing was changed", n, plural(n, "problem", "problems")), Problems: inv.Problems})
	case errors.As(err, &conflict):
		writeJSON(w, http.StatusConflict, apiError{Error: conflict.Error(), Version: &conflict.Current})
	case errors.As(err, &notFound):
		writeErr(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrBusy):
		s.metrics.parseRefused.Inc()
		apiwire.WriteBusy(w, time.Second, "the scheduler is busy checking other specs; retry in a second")
	case errors.Is(err, ErrStopped):
		writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
	default:
		writeErr(w, http.StatusInternalServerError, "%v", err)
	}
}

type scaleRequest struct {
	Instances *int `json:"instances"`
}

func (s *Scheduler) postScale(w http.ResponseWriter, r *http.Request) {
	match, err := apiwire.IfMatch(r)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	var req scaleRequest
	if err := apiwire.DecodeJSON(r, 4096, &req, `{"instances": N}`); err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	if req.Instances == nil {
		writeErr(w, http.StatusBadRequest, `the body must be {"instances": N}; "instances" is missing`)
		return
	}
	res, err := s.Scale(r.Context(), r.PathValue("name"), *req.Instances, SubmitOptions{IfMatch: match, DryRun: apiwire.DryRun(r)})
	s.answerSubmit(w, res, err)
}

func waitingView(w *core.Waiting) *Waiting {
	if w == nil {
		return nil
	}
	return &Waiting{Tasks: w.Tasks, Reason: w.Top, Reasons: w.Reasons, Since: w.Since, At: w.At}
}

func (s *Scheduler) getAgents(w http.ResponseWriter, r *http.Request) {
	v, ok := s.readView(w)
	if !ok {
		return
	}
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
	writeJSON(w, http.StatusOK, out)
}

// getService is GET /v1/services/{name}: the service's progress, as in
// GET /v1/status, with why its pending tasks wait.
func (s *Scheduler) getService(w http.ResponseWriter, r *http.Request) {
	v, ok := s.readView(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	for _, ss := range statusView(v).Services {
		if ss.Name == name {
			writeJSON(w, http.StatusOK, ss)
			return
		}
	}
	writeErr(w, http.StatusNotFound, fmt.Sprintf("no service %q in spec version %d", name, v.SpecVersion))
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

// taskPage lists one page of the tasks, in launch order (the view's).
// Only the page's tasks are built, so a page costs the same with 20 or
// 20,000 tasks around it.
func taskPage(v *core.View, q TaskQuery) (page []TaskInfo, next string, total int) {
	ts := v.Tasks
	idx, next, total := q.Page(len(ts), func(i int) apitypes.Task {
		return apitypes.Task{ID: ts[i].ID, Service: ts[i].Service, Phase: ts[i].Phase}
	})
	page = make([]TaskInfo, 0, len(idx))
	for _, i := range idx {
		page = append(page, taskView(&ts[i]))
	}
	return page, next, total
}

func taskSummary(v *core.View, q TaskQuery) TaskSummary {
	ts := v.Tasks
	return q.Summarize(len(ts), func(i int) apitypes.Task {
		return apitypes.Task{ID: ts[i].ID, Service: ts[i].Service, Phase: ts[i].Phase}
	})
}

func (s *Scheduler) getTasks(w http.ResponseWriter, r *http.Request) {
	q, err := apiwire.ParseTaskQuery(r.URL.Query())
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	v, ok := s.readView(w)
	if !ok {
		return
	}
	if q.Summary {
		writeJSON(w, http.StatusOK, taskSummary(v, q))
		return
	}
	page, next, total := taskPage(v, q)
	apiwire.SetPageHeaders(w, r, next, total)
	writeJSON(w, http.StatusOK, page)
}

func (s *Scheduler) getLinks(w http.ResponseWriter, r *http.Request) {
	v, ok := s.readView(w)
	if !ok {
		return
	}
	out := make([]TaskLinks, 0, len(v.Tasks))
	for _, t := range v.Tasks {
		tl := TaskLinks{TaskID: t.ID, Service: t.Service, Acked: t.Acked}
		if t.LinkVersion > 0 {
			tl.Version, tl.Table = t.LinkVersion, v.Services[t.Service].Table
		}
		out = append(out, tl)
	}
	writeJSON(w, http.StatusOK, out)
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

func (s *Scheduler) getStatus(w http.ResponseWriter, r *http.Request) {
	if v, ok := s.readView(w); ok {
		writeJSON(w, http.StatusOK, statusView(v))
	}
}

// getEvents streams events as Server-Sent Events until the client goes.
func (s *Scheduler) getEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub := s.bus.subscribe()
	defer s.bus.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": tiltai scheduler events\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.done:
			return
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-sub.notify:
			evs, dropped := sub.take()
			if dropped > 0 {
				lost := Event{Type: "dropped", Time: s.cfg.Now().UTC(), Data: map[string]any{"events": dropped, "why": "this client read too slowly"}}
				if _, err := w.Write(lost.SSE()); err != nil {
					return
				}
			}
			for _, ev := range evs {
				if _, err := w.Write(ev.SSE()); err != nil {
					return
				}
			}
			fl.Flush()
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
