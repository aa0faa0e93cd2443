package clienttest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/httpapi"
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

// Fake serves the scheduler's real HTTP handler (package httpapi) over an
// in-memory service whose state the test sets. Start it with NewFake;
// Close it when done.
type Fake struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string

	cfg FakeConfig
	srv *httptest.Server
	bus *httpapi.Bus

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
	released chan struct{} // while events are held: closed by ReleaseEvents
	busyN    int           // writes still to refuse with 503
	busyWait time.Duration // their Retry-After (0: none)
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
		bus:    httpapi.NewBus(cfg.EventQueue),
		spec:   &linkspec.Spec{Version: linkspec.FormatVersion, Services: map[string]*linkspec.Service{}},
		subs:   map[*fakeSub]struct{}{},
		subsCh: make(chan struct{}),
	}
	h := httpapi.New(httpapi.Config{
		Service:      (*service)(f),
		Token:        cfg.Token,
		OpenReads:    cfg.OpenReads,
		MaxSpecBytes: cfg.MaxSpecBytes,
		Now:          cfg.Now,
		Metrics:      http.HandlerFunc(f.getMetrics),
	})
	f.srv = httptest.NewServer(f.record(h))
	f.URL = f.srv.URL
	return f
}

// Close stops the server, ending event streams first.
func (f *Fake) Close() {
	f.bus.Close()
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
// by the real handler). They are listed in launch order, as the scheduler
// lists them: by the serial N of their ID SERVICE.N.
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
	f.links = slices.Clone(ls)
}

// SetStatus makes GET /v1/status (and GET /v1/services/{name}) answer
// fn(n), n counting the status reads from 0 since this call. Without it,
// the status is every service of the current spec converged.
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

// Publish sends an event to every event stream, through the scheduler's
// bus: a subscriber whose queue is full loses its oldest event.
func (f *Fake) Publish(typ string, data map[string]any) {
	f.bus.Publish(typ, data, f.cfg.Now())
}

// HoldEvents stops writing events to streams (they queue, and overflow
// into "dropped" events) until ReleaseEvents: a slow reader, made
// deterministic.
func (f *Fake) HoldEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released == nil {
		f.released = make(chan struct{})
	}
}

// ReleaseEvents lets held events go out.
func (f *Fake) ReleaseEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released != nil {
		close(f.released)
		f.released = nil
	}
}

// Busy makes the next n writes (PUT /v1/spec, POST …/scale) that pass the
// token and request checks be refused with 503, as the scheduler refuses
// them when its parse slots are full: with Retry-After retryAfter (in
// whole seconds, at least 1), or with no Retry-After when retryAfter is 0,
// as a stopping scheduler answers. Nothing is changed by a refused write;
// it is recorded in Requests like any other.
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
	subs := f.subs
	f.subs = map[*fakeSub]struct{}{}
	f.subsChanged()
	f.mu.Unlock()
	for s := range subs {
		s.Subscription.Close()
	}
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

// getMetrics is a token of the scheduler's /metrics: the spec version.
func (f *Fake) getMetrics(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP tiltai_spec_version The accepted spec version.\n# TYPE tiltai_spec_version gauge\ntiltai_spec_version %d\n", f.version)
}

// service is the Fake as the handler's httpapi.Service: the scheduler in
// memory, with the same spec parsing, versioning, If-Match and dry runs.
type service Fake

var _ httpapi.Service = (*service)(nil)

func (s *service) fake() *Fake { return (*Fake)(s) }

// View implements httpapi.Reader: a copy of the state set by the test.
func (s *service) View() (httpapi.View, error) {
	f := s.fake()
	f.mu.Lock()
	defer f.mu.Unlock()
	return &view{f: f, version: f.version, spec: f.spec, tasks: f.tasks, links: f.links,
		info: apitypes.SpecInfo{Version: f.version, Name: f.name, Accepted: f.accepted, Spec: f.spec, Source: string(f.source)}}, nil
}

// busy takes one refusal of Busy, if any is left.
func (f *Fake) busy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busyN == 0 {
		return nil
	}
	f.busyN--
	if f.busyWait == 0 {
		return httpapi.ErrStopped
	}
	return &httpapi.BusyError{RetryAfter: f.busyWait}
}

// SubmitSpec implements httpapi.Writer.
func (s *service) SubmitSpec(ctx context.Context, name string, src []byte, opts httpapi.SubmitOptions) (apitypes.SubmitResult, error) {
	f := s.fake()
	if err := f.busy(); err != nil {
		return apitypes.SubmitResult{}, err
	}
	spec, probs := linkspec.ParseWith(ctx, name, src, linkspec.ParseOptions{MaxTasks: f.cfg.MaxTasks})
	if probs.Err() != nil {
		return apitypes.SubmitResult{}, &httpapi.InvalidSpecError{Problems: probs}
	}
	return f.submit(spec, src, name, opts, probs.Warnings())
}

// Scale implements httpapi.Writer.
func (s *service) Scale(ctx context.Context, name string, instances int, opts httpapi.SubmitOptions) (apitypes.SubmitResult, error) {
	f := s.fake()
	if err := f.busy(); err != nil {
		return apitypes.SubmitResult{}, err
	}
	f.mu.Lock()
	cur, version := f.spec, f.version
	f.mu.Unlock()
	if cur.Services[name] == nil {
		return apitypes.SubmitResult{}, &httpapi.UnknownServiceError{Service: name, Version: version}
	}
	if opts.IfMatch < 0 {
		opts.IfMatch = version
	}
	spec, src, err := httpapi.ScaledSpec(ctx, cur, name, instances, linkspec.ParseOptions{MaxTasks: f.cfg.MaxTasks})
	if err != nil {
		return apitypes.SubmitResult{}, err
	}
	return f.submit(spec, src, "scaled.json", opts, nil)
}

func (f *Fake) submit(spec *linkspec.Spec, src []byte, name string, opts httpapi.SubmitOptions, warnings []linkspec.Problem) (apitypes.SubmitResult, error) {
	f.mu.Lock()
	cur := f.version
	if opts.IfMatch >= 0 && opts.IfMatch != cur {
		f.mu.Unlock()
		return apitypes.SubmitResult{}, &httpapi.ConflictError{Current: cur, Expected: opts.IfMatch}
	}
	res := apitypes.SubmitResult{Version: cur, DryRun: opts.DryRun, Changes: linkspec.Diff(f.spec, spec), Warnings: warnings}
	if res.Changes == nil {
		res.Changes = []linkspec.Change{}
	}
	accepted := !opts.DryRun && (len(res.Changes) > 0 || cur == 0)
	if accepted {
		f.version, f.name, f.source, f.accepted, f.spec = cur+1, name, src, f.cfg.Now().UTC(), spec
		res.Version, res.Changed = cur+1, true
	}
	f.mu.Unlock()
	if accepted {
		f.Publish("spec_accepted", map[string]any{"version": res.Version, "changes": len(res.Changes)})
	}
	return res, nil
}

// Subscribe implements httpapi.Events: a subscription of the bus that the
// Fake counts, closes on CloseStreams and holds on HoldEvents.
func (s *service) Subscribe() httpapi.Subscription {
	f := s.fake()
	sub := &fakeSub{Subscription: f.bus.Subscribe(), f: f}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[sub] = struct{}{}
	f.subsChanged()
	return sub
}

// TaskFile implements httpapi.Files: the Fake has no sandboxes.
func (s *service) TaskFile(ctx context.Context, req httpapi.FileRequest) (apitypes.TaskFile, error) {
	return apitypes.TaskFile{}, &httpapi.StatusError{Code: http.StatusNotFound, Msg: fmt.Sprintf("task %q has no sandbox in this fake scheduler", req.Task)}
}

type fakeSub struct {
	httpapi.Subscription
	f *Fake
}

// Notify is, while events are held, what ReleaseEvents closes: the
// stream sleeps until then, and the events queue in the bus meanwhile.
func (s *fakeSub) Notify() <-chan struct{} {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.released != nil {
		return s.f.released
	}
	return s.Subscription.Notify()
}

// Take takes nothing while events are held.
func (s *fakeSub) Take() ([]apitypes.Event, uint64) {
	s.f.mu.Lock()
	held := s.f.released != nil
	s.f.mu.Unlock()
	if held {
		return nil, 0
	}
	return s.Subscription.Take()
}

func (s *fakeSub) Close() {
	s.f.mu.Lock()
	if _, ok := s.f.subs[s]; ok {
		delete(s.f.subs, s)
		s.f.subsChanged()
	}
	s.f.mu.Unlock()
	s.Subscription.Close()
}

// view is one state of the Fake, as the handler reads it.
type view struct {
	f       *Fake
	version int
	spec    *linkspec.Spec
	info    apitypes.SpecInfo
	tasks   []apitypes.TaskInfo
	links   []apitypes.TaskLinks
}

func (v *view) Health() apitypes.Health {
	return apitypes.Health{Status: "ok", Subscribed: true, FrameworkID: "fake-framework", Master: "http://127.0.0.1:5050", SpecVersion: v.version}
}

func (v *view) Spec() apitypes.SpecInfo { return v.info }

// Status is SetStatus's function, counting the read, or every service of
// the spec converged.
func (v *view) Status() apitypes.Status {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusFn != nil {
		st := f.statusFn(f.statusN)
		f.statusN++
		return st
	}
	st := apitypes.Status{SpecVersion: v.version, Subscribed: true, Converged: true}
	for _, name := range v.spec.ServiceNames() {
		n := v.spec.Services[name].Instances
		st.Services = append(st.Services, apitypes.ServiceStatus{Name: name, Wanted: n, Running: n, Converged: true})
	}
	return st
}

func (v *view) Agents() []apitypes.Agent { return []apitypes.Agent{} }

func (v *view) Links() []apitypes.TaskLinks { return append([]apitypes.TaskLinks{}, v.links...) }

func (v *view) Tasks() int { return len(v.tasks) }

func (v *view) Task(i int) apitypes.Task {
	t := &v.tasks[i]
	return apitypes.Task{ID: t.ID, Service: t.Service, Phase: t.Phase}
}

func (v *view) TaskInfo(i int) apitypes.TaskInfo { return v.tasks[i] }
