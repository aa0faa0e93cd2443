package clienttest

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/internal/apiwire"
)

// FakeConfig configures a Fake. The zero value is a scheduler without a
// token, at spec version 0.
type FakeConfig struct {
	// Token, when set, is required on writes, and on reads unless
	// OpenReads (as scheduler.Config.APIToken and OpenReads).
	Token     string
	OpenReads bool
	// MaxSpecBytes is the body limit of PUT /v1/spec (default
	// linkspec.MaxSpecBytes; smaller to test 413 cheaply).
	MaxSpecBytes int
	// MaxTasks is the scheduler's --max_tasks (default
	// linkspec.DefaultMaxTasks).
	MaxTasks int
	// EventQueue is each event subscriber's queue; a subscriber further
	// behind loses the oldest and gets a "dropped" event (default 1024, as
	// the scheduler).
	EventQueue int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Request is one request the Fake answered.
type Request struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
}

// Fake answers the scheduler's HTTP API over state the test sets. Start it
// with NewFake; Close it when done.
type Fake struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string

	cfg FakeConfig
	srv *httptest.Server

	mu       sync.Mutex
	version  int
	name     string
	source   []byte
	accepted time.Time
	spec     *linkspec.Spec
	tasks    []apitypes.TaskInfo
	links    []apitypes.TaskLinks
	statusFn func(n int) apitypes.Status
	statusN  int
	requests []Request
	subs     map[*fakeSub]struct{}
	subsCh   chan struct{} // closed and replaced when subscribers change
	seq      uint64
	held     bool
	busyN    int           // writes still to refuse with 503
	busyWait time.Duration // their Retry-After (0: none)
}

type fakeSub struct {
	queue   []apitypes.Event
	dropped uint64
	notify  chan struct{}
	done    chan struct{}
}

// NewFake starts a Fake.
func NewFake(cfg FakeConfig) *Fake {
	if cfg.MaxSpecBytes == 0 {
		cfg.MaxSpecBytes = linkspec.MaxSpecBytes
	}
	if cfg.EventQueue == 0 {
		cfg.EventQueue = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Fake{
		cfg:    cfg,
		spec:   &linkspec.Spec{Version: linkspec.FormatVersion, Services: map[string]*linkspec.Service{}},
		subs:   map[*fakeSub]struct{}{},
		subsCh: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", f.getHealth)
	mux.HandleFunc("GET /metrics", f.read(f.getMetrics, true))
	mux.HandleFunc("GET /v1/spec", f.read(f.getSpec, false))
	mux.HandleFunc("PUT /v1/spec", f.write(f.putSpec))
	mux.HandleFunc("GET /v1/tasks", f.read(f.getTasks, false))
	mux.HandleFunc("GET /v1/links", f.read(f.getLinks, false))
	mux.HandleFunc("GET /v1/status", f.read(f.getStatus, false))
	mux.HandleFunc("POST /v1/services/{name}/scale", f.write(f.postScale))
	mux.HandleFunc("GET /v1/events", f.read(f.getEvents, false))
	f.srv = httptest.NewServer(f.record(mux))
	f.URL = f.srv.URL
	return f
}

// Close stops the server, ending event streams first.
func (f *Fake) Close() {
	f.mu.Lock()
	for s := range f.subs {
		delete(f.subs, s)
		close(s.done)
	}
	f.mu.Unlock()
	f.srv.Close()
}

// Requests returns the requests answered so far (the event stream is
// recorded when it opens).
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Version is the current spec version.
func (f *Fake) Version() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

// Spec is the current spec (do not modify it).
func (f *Fake) Spec() *linkspec.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spec
}

// SetTasks sets what GET /v1/tasks answers (filtered, paged and summarised
// as the scheduler does). They are listed in launch order, as the
// scheduler lists them: by the serial N of their ID SERVICE.N.
func (f *Fake) SetTasks(ts []apitypes.TaskInfo) {
	ts = slices.Clone(ts)
	slices.SortStableFunc(ts, func(a, b apitypes.TaskInfo) int {
		x, _ := apitypes.TaskSeq(a.ID)
		y, _ := apitypes.TaskSeq(b.ID)
		return cmp.Compare(x, y)
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks = ts
}

// SetLinks sets what GET /v1/links answers.
func (f *Fake) SetLinks(ls []apitypes.TaskLinks) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = ls
}

// SetStatus makes GET /v1/status answer fn(n), n counting the status reads
// from 0 since this call. Without it, the status is every service of the
// current spec converged.
func (f *Fake) SetStatus(fn func(n int) apitypes.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusFn, f.statusN = fn, 0
}

// ScriptStatus makes the status reads answer sts in turn, the last one
// again and again.
func (f *Fake) ScriptStatus(sts ...apitypes.Status) {
	f.SetStatus(func(n int) apitypes.Status { return sts[min(n, len(sts)-1)] })
}

// StatusReads is how many status reads were answered since SetStatus.
func (f *Fake) StatusReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusN
}

// Publish sends an event to every event stream, as the scheduler's bus
// does: a subscriber whose queue is full loses its oldest event.
func (f *Fake) Publish(typ string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	ev := apitypes.Event{Seq: f.seq, Time: f.cfg.Now().UTC(), Type: typ, Data: data}
	for s := range f.subs {
		if len(s.queue) >= f.cfg.EventQueue {
			s.queue = s.queue[1:]
			s.dropped++
		}
		s.queue = append(s.queue, ev)
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// HoldEvents stops writing events to streams (they queue, and overflow
// into "dropped" events) until ReleaseEvents: a slow reader, made
// deterministic.
func (f *Fake) HoldEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = true
}

// ReleaseEvents lets held events go out.
func (f *Fake) ReleaseEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = false
	for s := range f.subs {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// Busy makes the next n writes (PUT /v1/spec, POST …/scale) that pass the
// token check be refused with 503, as the scheduler refuses them when its
// parse slots are full: with Retry-After retryAfter (in whole seconds, at
// least 1, as apiwire.WriteBusy writes it), or with no Retry-After when
// retryAfter is 0, as a stopping scheduler answers. Nothing is changed by
// a refused write; it is recorded in Requests like any other.
func (f *Fake) Busy(n int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyN, f.busyWait = n, retryAfter
}

// BusyLeft is how many writes Busy still refuses.
func (f *Fake) BusyLeft() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busyN
}

// CloseStreams ends every open event stream, as a scheduler going away
// would, and keeps serving.
func (f *Fake) CloseStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		delete(f.subs, s)
		close(s.done)
	}
	f.subsChanged()
}

// WaitSubscribers waits until n event streams are open, or ctx ends.
func (f *Fake) WaitSubscribers(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		have, ch := len(f.subs), f.subsCh
		f.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d event streams open, want %d: %w", have, n, ctx.Err())
		}
	}
}

func (f *Fake) subsChanged() {
	close(f.subsCh)
	f.subsCh = make(chan struct{})
}

func (f *Fake) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && r.Method != http.MethodGet {
			body, _ = io.ReadAll(io.LimitReader(r.Body, int64(f.cfg.MaxSpecBytes)+1))
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		f.mu.Lock()
		f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// The rest mirrors scheduler/api.go; what is about the wire (bodies,
// errors, paging) is the same code, in scheduler/internal/apiwire.

var (
	writeJSON = apiwire.WriteJSON
	writeErr  = apiwire.WriteError
)

func (f *Fake) authorized(r *http.Request) bool {
	if f.cfg.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(f.cfg.Token)) == 1
}

// read guards a read; the scheduler serves /metrics without a token.
func (f *Fake) read(h http.HandlerFunc, open bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !open && !f.cfg.OpenReads && !f.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "this scheduler needs a token: pass --token or set TILTAI_TOKEN")
			return
		}
		h(w, r)
	}
}

func (f *Fake) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "changes need the scheduler's token: pass --token or set TILTAI_TOKEN")
			return
		}
		f.mu.Lock()
		busy, wait := f.busyN > 0, f.busyWait
		if busy {
			f.busyN--
		}
		f.mu.Unlock()
		switch {
		case busy && wait > 0:
			apiwire.WriteBusy(w, wait, "the scheduler is busy checking other specs; retry in a second")
			return
		case busy:
			writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
			return
		}
		h(w, r)
	}
}

func (f *Fake) getHealth(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSON(w, http.StatusOK, apitypes.Health{Status: "ok", Subscribed: true, FrameworkID: "fake-framework", Master: "http://127.0.0.1:5050", SpecVersion: f.version})
}

func (f *Fake) getMetrics(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP tiltai_spec_version The accepted spec version.\n# TYPE tiltai_spec_version gauge\ntiltai_spec_version %d\n", f.version)
}

func (f *Fake) getSpec(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	info := apitypes.SpecInfo{Version: f.version, Name: f.name, Accepted: f.accepted, Spec: f.spec, Source: string(f.source)}
	f.mu.Unlock()
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(info.Version)))
	if r.URL.Query().Get("format") == "source" {
		w.Header().Set("Content-Type", "application/yaml")
		io.WriteString(w, info.Source)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (f *Fake) putSpec(w http.ResponseWriter, r *http.Request) {
	match, err := apiwire.IfMatch(r)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	name, src, err := apiwire.ReadSpec(r, f.cfg.MaxSpecBytes)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	spec, probs := linkspec.ParseWith(r.Context(), name, src, linkspec.ParseOptions{MaxTasks: f.cfg.MaxTasks})
	if probs.Err() != nil {
		invalid(w, probs)
		return
	}
	f.submit(w, r, spec, src, name, match, probs.Warnings())
}

func invalid(w http.ResponseWriter, probs linkspec.Problems) {
	n := len(probs.Errors())
	noun := "problems"
	if n == 1 {
		noun = "problem"
	}
	writeJSON(w, http.StatusUnprocessableEntity, apiwire.Error{Error: fmt.Sprintf("the spec is invalid (%d %s); nothing was changed", n, noun), Problems: probs})
}

func (f *Fake) postScale(w http.ResponseWriter, r *http.Request) {
	match, err := apiwire.IfMatch(r)
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	var req struct {
		Instances *int `json:"instances"`
	}
	if err := apiwire.DecodeJSON(r, 4096, &req, `{"instances": N}`); err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	if req.Instances == nil {
		writeErr(w, http.StatusBadRequest, `the body must be {"instances": N}; "instances" is missing`)
		return
	}
	name := r.PathValue("name")
	f.mu.Lock()
	cur := f.spec.Services[name]
	version := f.version
	var next *linkspec.Spec
	if cur != nil {
		if match < 0 {
			match = version
		}
		next = f.spec.Clone()
		next.Services[name].Instances = *req.Instances
	}
	f.mu.Unlock()
	if cur == nil {
		writeErr(w, http.StatusNotFound, "no service %q in spec version %d", name, version)
		return
	}
	opts := linkspec.ParseOptions{MaxTasks: f.cfg.MaxTasks}
	if probs := next.ValidateWith(opts); probs.Err() != nil {
		invalid(w, probs)
		return
	}
	src, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "cannot encode the scaled spec: %v", err)
		return
	}
	spec, probs := linkspec.ParseWith(r.Context(), "scaled.json", src, opts)
	if err := probs.Err(); err != nil {
		writeErr(w, http.StatusInternalServerError, "the scaled spec does not parse back: %v", err)
		return
	}
	f.submit(w, r, spec, src, "scaled.json", match, nil)
}

func (f *Fake) submit(w http.ResponseWriter, r *http.Request, spec *linkspec.Spec, src []byte, name string, match int, warnings []linkspec.Problem) {
	dry := apiwire.DryRun(r)
	f.mu.Lock()
	cur := f.version
	if match >= 0 && match != cur {
		f.mu.Unlock()
		writeJSON(w, http.StatusConflict, apiwire.Error{
			Error:   fmt.Sprintf("the spec is at version %d, not %d: someone else changed it; get it again and retry", cur, match),
			Version: &cur,
		})
		return
	}
	res := apitypes.SubmitResult{Version: cur, DryRun: dry, Changes: linkspec.Diff(f.spec, spec), Warnings: warnings}
	if res.Changes == nil {
		res.Changes = []linkspec.Change{}
	}
	accepted := !dry && (len(res.Changes) > 0 || cur == 0)
	if accepted {
		f.version, f.name, f.source, f.accepted, f.spec = cur+1, name, src, f.cfg.Now().UTC(), spec
		res.Version, res.Changed = cur+1, true
	}
	f.mu.Unlock()
	if accepted {
		f.Publish("spec_accepted", map[string]any{"version": res.Version, "changes": len(res.Changes)})
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(res.Version)))
	writeJSON(w, http.StatusOK, res)
}

func (f *Fake) getTasks(w http.ResponseWriter, r *http.Request) {
	q, err := apiwire.ParseTaskQuery(r.URL.Query())
	if err != nil {
		apiwire.WriteRequestError(w, err)
		return
	}
	f.mu.Lock()
	ts := f.tasks
	f.mu.Unlock()
	task := func(i int) apitypes.Task {
		return apitypes.Task{ID: ts[i].ID, Service: ts[i].Service, Phase: ts[i].Phase}
	}
	if q.Summary {
		writeJSON(w, http.StatusOK, q.Summarize(len(ts), task))
		return
	}
	idx, next, total := q.Page(len(ts), task)
	page := make([]apitypes.TaskInfo, 0, len(idx))
	for _, i := range idx {
		page = append(page, ts[i])
	}
	apiwire.SetPageHeaders(w, r, next, total)
	writeJSON(w, http.StatusOK, page)
}

func (f *Fake) getLinks(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	out := append([]apitypes.TaskLinks{}, f.links...)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) getStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	var st apitypes.Status
	if f.statusFn != nil {
		st = f.statusFn(f.statusN)
		f.statusN++
	} else {
		st = apitypes.Status{SpecVersion: f.version, Subscribed: true, Converged: true}
		for _, name := range f.spec.ServiceNames() {
			n := f.spec.Services[name].Instances
			st.Services = append(st.Services, apitypes.ServiceStatus{Name: name, Wanted: n, Running: n, Converged: true})
		}
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (f *Fake) getEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	s := &fakeSub{notify: make(chan struct{}, 1), done: make(chan struct{})}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.subsChanged()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if _, ok := f.subs[s]; ok {
			delete(f.subs, s)
			f.subsChanged()
		}
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": tiltai scheduler events\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-s.notify:
		}
		f.mu.Lock()
		if f.held {
			f.mu.Unlock()
			continue
		}
		evs, dropped := s.queue, s.dropped
		s.queue, s.dropped = nil, 0
		f.mu.Unlock()
		if dropped > 0 {
			lost := apitypes.Event{Type: "dropped", Time: f.cfg.Now().UTC(), Data: map[string]any{"events": dropped, "why": "this client read too slowly"}}
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
