package scheduler

import (
	"context"
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

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/internal/apiwire"
)

// The HTTP API. Reads and writes are answered by the loop (through do), so
// every answer is a consistent view and every write is stored before the
// answer says it was accepted.

func (s *Scheduler) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.getHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) { s.art.serve(w, r, r.PathValue("name")) })
	mux.HandleFunc("GET /v1/spec", s.read(s.getSpec))
	mux.HandleFunc("PUT /v1/spec", s.write(s.putSpec))
	mux.HandleFunc("GET /v1/tasks", s.read(s.getTasks))
	mux.HandleFunc("GET /v1/links", s.read(s.getLinks))
	mux.HandleFunc("GET /v1/status", s.read(s.getStatus))
	mux.HandleFunc("POST /v1/services/{name}/scale", s.write(s.postScale))
	mux.HandleFunc("GET /v1/events", s.read(s.getEvents))
	mux.HandleFunc("GET /{$}", s.getIndex)
	return mux
}

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

// inLoop runs fn in the loop or answers 503 when the scheduler is gone.
func (s *Scheduler) inLoop(w http.ResponseWriter, r *http.Request, fn func() error) bool {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if !s.doErr(ctx, fn) {
		writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
		return false
	}
	return true
}

func (s *Scheduler) getIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "tiltai scheduler",
		"endpoints": []string{
			"GET /health", "GET /metrics", "GET /v1/spec", "PUT /v1/spec[?dry_run=1] (If-Match: VERSION)",
			"POST /v1/services/{name}/scale {\"instances\": N}",
			"GET /v1/tasks[?service=S&phase=P&limit=N&after=ID|&view=summary]", "GET /v1/links",
			"GET /v1/status", "GET /v1/events (Server-Sent Events)",
		},
	})
}

// Health is GET /health.
type Health struct {
	Status      string `json:"status"`
	Subscribed  bool   `json:"subscribed"`
	FrameworkID string `json:"framework_id,omitempty"`
	Master      string `json:"master,omitempty"`
	SpecVersion int    `json:"spec_version"`
}

func (s *Scheduler) getHealth(w http.ResponseWriter, r *http.Request) {
	var h Health
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ok := s.do(ctx, func() {
		h = Health{Status: "ok", Subscribed: s.subscribed, FrameworkID: s.st.frameworkID, Master: s.leader, SpecVersion: s.st.specRec.Version}
	})
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "stopped"})
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// SpecInfo is GET /v1/spec.
type SpecInfo struct {
	Version  int            `json:"version"`
	Name     string         `json:"name,omitempty"`
	Accepted time.Time      `json:"accepted,omitzero"`
	Spec     *linkspec.Spec `json:"spec"`
	Source   string         `json:"source,omitempty"`
}

func (s *Scheduler) getSpec(w http.ResponseWriter, r *http.Request) {
	var info SpecInfo
	if !s.inLoop(w, r, func() error {
		info = SpecInfo{Version: s.st.specRec.Version, Name: s.st.specRec.Name, Accepted: s.st.specRec.Accepted, Spec: s.st.spec, Source: string(s.st.specRec.Source)}
		return nil
	}) {
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(info.Version)))
	if r.URL.Query().Get("format") == "source" {
		w.Header().Set("Content-Type", "application/yaml")
		io.WriteString(w, info.Source)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// SubmitResult answers PUT /v1/spec and POST …/scale.
type SubmitResult struct {
	Version  int                `json:"version"`
	Changed  bool               `json:"changed"`
	DryRun   bool               `json:"dry_run,omitempty"`
	Changes  []linkspec.Change  `json:"changes"`
	Warnings []linkspec.Problem `json:"warnings,omitempty"`
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

// TaskInfo is one entry of GET /v1/tasks.
type TaskInfo struct {
	ID       string                        `json:"id"`
	Service  string                        `json:"service"`
	Phase    string                        `json:"phase"`
	State    string                        `json:"state,omitempty"`
	Reason   string                        `json:"reason,omitempty"`
	Message  string                        `json:"message,omitempty"`
	AgentID  string                        `json:"agent_id,omitempty"`
	Host     string                        `json:"host,omitempty"`
	Ports    map[string]uint32             `json:"ports,omitempty"`
	Outdated bool                          `json:"outdated,omitempty"`
	Retiring bool                          `json:"retiring,omitempty"`
	Orphan   bool                          `json:"orphan,omitempty"`
	Created  time.Time                     `json:"created"`
	Updated  time.Time                     `json:"updated"`
	Links    LinkState                     `json:"links"`
	Gates    map[string]GateCountersReport `json:"gates,omitempty"`
	Counters map[string]int64              `json:"counters,omitempty"`
	StatusAt time.Time                     `json:"status_at,omitzero"`
}

// LinkState is where a task is with its link table.
type LinkState struct {
	Version uint64 `json:"version"` // its service's current table version
	Sent    uint64 `json:"sent"`
	Acked   uint64 `json:"acked"`
}

// GateCountersReport is a gate's counters as the executor last reported.
type GateCountersReport struct {
	Pattern    string `json:"pattern"`
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Dropped    uint64 `json:"dropped"`
	Rerouted   uint64 `json:"rerouted"`
	QueueDepth int    `json:"queue_depth"`
	Peers      int    `json:"peers"`
}

func (s *Scheduler) taskView(t *taskRecord) TaskInfo {
	ti := TaskInfo{
		ID: t.ID, Service: t.Service, Phase: t.Phase, State: t.State, Reason: t.Reason, Message: t.Message,
		AgentID: t.AgentID, Host: t.Host, Ports: t.Ports, Retiring: !t.Retiring.IsZero(), Orphan: t.Orphan,
		Outdated: t.Config != s.planner.Digest(t.Service), Created: t.Created, Updated: t.Updated,
	}
	if tb := s.tables[t.Service]; tb != nil {
		ti.Links.Version = tb.version
	}
	if l := s.links[t.ID]; l != nil {
		ti.Links.Sent, ti.Links.Acked = l.sent, l.acked
	}
	if st := s.status[t.ID]; st != nil {
		ti.StatusAt, ti.Counters = st.at, st.counters
		ti.Gates = map[string]GateCountersReport{}
		for g, gc := range st.gates {
			ti.Gates[g] = GateCountersReport{Pattern: string(gc.Pattern), Sent: gc.Sent, Received: gc.Received, Dropped: gc.Dropped, Rerouted: gc.Rerouted, QueueDepth: gc.QueueDepth, Peers: gc.Peers}
		}
	}
	return ti
}

// Paging of GET /v1/tasks: tasks a page without ?limit=, and at most.
const (
	DefaultTaskLimit = apiwire.DefaultTaskLimit
	MaxTaskLimit     = apiwire.MaxTaskLimit
)

// TaskQuery filters and pages GET /v1/tasks (?service=, ?phase=, ?limit=,
// ?after=, ?view=summary).
type TaskQuery = apiwire.TaskQuery

// TaskSummary is GET /v1/tasks?view=summary: task counts by service and
// phase; ServiceTasks is one service's.
type (
	TaskSummary  = apiwire.TaskSummary
	ServiceTasks = apiwire.ServiceTasks
)

// taskPage lists one page of the tasks, in launch order. Only the page's
// tasks are built, so a page costs the same with 20 or 20,000 tasks
// around it, bar the sort.
func (s *Scheduler) taskPage(q TaskQuery) (page []TaskInfo, next string, total int) {
	ts := s.st.sortedTasks()
	idx, next, total := q.Page(len(ts), func(i int) apiwire.Task {
		return apiwire.Task{ID: ts[i].ID, Service: ts[i].Service, Phase: ts[i].Phase}
	})
	page = make([]TaskInfo, 0, len(idx))
	for _, i := range idx {
		page = append(page, s.taskView(ts[i]))
	}
	return page, next, total
}

func (s *Scheduler) taskSummary(q TaskQuery) TaskSummary {
	ts := make([]apiwire.Task, 0, len(s.st.tasks))
	for _, t := range s.st.tasks {
		ts = append(ts, apiwire.Task{ID: t.ID, Service: t.Service, Phase: t.Phase})
	}
	return q.Summarize(len(ts), func(i int) apiwire.Task { return ts[i] })
}

func (s *Scheduler) getTasks(w http.ResponseWriter, r *http.Request) {
	q, err := apiwire.ParseTaskQuery(r.URL.Query())
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	if q.Summary {
		var sum TaskSummary
		if s.inLoop(w, r, func() error { sum = s.taskSummary(q); return nil }) {
			writeJSON(w, http.StatusOK, sum)
		}
		return
	}
	var (
		page  []TaskInfo
		next  string
		total int
	)
	if s.inLoop(w, r, func() error { page, next, total = s.taskPage(q); return nil }) {
		apiwire.SetPageHeaders(w, r, next, total)
		writeJSON(w, http.StatusOK, page)
	}
}

// TaskLinks is one entry of GET /v1/links.
type TaskLinks struct {
	TaskID  string          `json:"task_id"`
	Service string          `json:"service"`
	Version uint64          `json:"version"`
	Acked   uint64          `json:"acked"`
	Table   *linkspec.Table `json:"table"`
}

func (s *Scheduler) getLinks(w http.ResponseWriter, r *http.Request) {
	var out []TaskLinks
	if !s.inLoop(w, r, func() error {
		for _, t := range s.st.sortedTasks() {
			tl := TaskLinks{TaskID: t.ID, Service: t.Service}
			if tb := s.tables[t.Service]; tb != nil {
				tl.Version, tl.Table = tb.version, tb.table
			}
			if l := s.links[t.ID]; l != nil {
				tl.Acked = l.acked
			}
			out = append(out, tl)
		}
		return nil
	}) {
		return
	}
	if out == nil {
		out = []TaskLinks{}
	}
	writeJSON(w, http.StatusOK, out)
}

// Status is GET /v1/status: how far the running system is from the spec.
type Status struct {
	SpecVersion int             `json:"spec_version"`
	Subscribed  bool            `json:"subscribed"`
	Converged   bool            `json:"converged"`
	Services    []ServiceStatus `json:"services"`
}

// ServiceStatus is one service's progress towards its spec.
type ServiceStatus struct {
	Name        string    `json:"name"`
	Wanted      int       `json:"wanted"`
	Running     int       `json:"running"` // running, current definition, not retiring
	Pending     int       `json:"pending"`
	Launching   int       `json:"launching"`
	Retiring    int       `json:"retiring"`
	Outdated    int       `json:"outdated"`
	Unacked     int       `json:"unacked"` // running tasks whose executor has not acked the current table
	Failures    int       `json:"failures"`
	HeldUntil   time.Time `json:"held_until,omitzero"`
	LastFailure string    `json:"last_failure,omitempty"`
	Converged   bool      `json:"converged"`
}

func (s *Scheduler) statusView() Status {
	st := Status{SpecVersion: s.st.specRec.Version, Subscribed: s.subscribed, Converged: true}
	bySvc := map[string]*ServiceStatus{}
	for _, name := range s.st.spec.ServiceNames() {
		svc := s.st.spec.Services[name]
		bySvc[name] = &ServiceStatus{Name: name, Wanted: svc.Instances}
		r := s.st.meta.Restarts[name]
		bySvc[name].Failures = r.Failures
		if r.Failures > 0 {
			bySvc[name].HeldUntil = r.Last.Add(svc.Backoff.Delay(r.Failures))
			bySvc[name].LastFailure = s.lastFail[name]
		}
	}
	for _, t := range s.st.tasks {
		ss := bySvc[t.Service]
		if ss == nil {
			ss = &ServiceStatus{Name: t.Service}
			bySvc[t.Service] = ss
		}
		outdated := t.Config != s.planner.Digest(t.Service)
		switch {
		case !t.Retiring.IsZero() || t.Phase == "killing":
			ss.Retiring++
		case outdated:
			ss.Outdated++
		case t.Phase == "pending":
			ss.Pending++
		case t.Phase == "launched":
			ss.Launching++
		case t.Phase == "running" && !t.Orphan:
			ss.Running++
			if tb := s.tables[t.Service]; tb != nil {
				if l := s.links[t.ID]; l == nil || l.acked != tb.version {
					ss.Unacked++
				}
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
	if !s.subscribed {
		st.Converged = false
	}
	return st
}

func (s *Scheduler) getStatus(w http.ResponseWriter, r *http.Request) {
	var st Status
	if s.inLoop(w, r, func() error { st = s.statusView(); return nil }) {
		writeJSON(w, http.StatusOK, st)
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
				if _, err := w.Write(lost.sse()); err != nil {
					return
				}
			}
			for _, ev := range evs {
				if _, err := w.Write(ev.sse()); err != nil {
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
