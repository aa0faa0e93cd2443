package marathontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tiltai/tiltai/internal/uuid"
)

// MarathonVersion is what /v2/info reports: the API this server follows.
const MarathonVersion = "1.11.24"

// Options configure a Server.
type Options struct {
	// Addr to listen on; empty: a free port on 127.0.0.1.
	Addr string
	// Runner starts tasks. Required.
	Runner Runner
	// Users, when not empty, turns on HTTP Basic authentication: every
	// request needs one of these user/password pairs (401 otherwise).
	Users map[string]string
	// ReadOnly users may read but get 403 for every change.
	ReadOnly map[string]bool
	// HealthInterval, when set, replaces every health check's
	// intervalSeconds (Marathon's minimum is a second; tests go faster).
	HealthInterval time.Duration
	// BackoffScale multiplies the apps' backoffSeconds and
	// maxLaunchDelaySeconds and kill grace periods; 0 means 1 (real time).
	BackoffScale float64
	Logger       *slog.Logger
}

// Server is a running Marathon stand-in.
type Server struct {
	opts    Options
	log     *slog.Logger
	ln      net.Listener
	http    *http.Server
	ops     chan func()
	events  chan func()
	closing chan struct{}
	wg      sync.WaitGroup

	// Owned by the run goroutine.
	apps        map[string]*appState
	deployments map[string]*deployment
	lastVersion time.Time

	closeOnce sync.Once
}

// appState is one app as the run goroutine knows it.
type appState struct {
	def         App
	history     []App // earlier configurations, oldest first
	tasks       map[string]*task
	deployment  *deployment
	lastFailure *lastTaskFailure
	failures    int // consecutive, for the launch backoff
	nextLaunch  time.Time
	removed     bool
}

type deployment struct {
	ID      string
	Version string
	AppID   string
	Action  string // StartApplication, RestartApplication, ScaleApplication, StopApplication
	prev    *App   // configuration before, for a rollback; nil for a start
}

type task struct {
	ID        string
	AppID     string
	Version   string // the app's version when it was launched
	Config    string // the app's lastConfigChangeAt then: tells new from old
	Host      string
	Ports     []int
	State     string
	StagedAt  string
	StartedAt string
	started   time.Time
	run       Task
	killing   bool
	health    *healthResult
	stopProbe chan struct{}
}

type healthResult struct {
	Alive               bool   `json:"alive"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	FirstSuccess        string `json:"firstSuccess,omitempty"`
	LastFailure         string `json:"lastFailure,omitempty"`
	LastSuccess         string `json:"lastSuccess,omitempty"`
	LastFailureCause    string `json:"lastFailureCause,omitempty"`
	TaskID              string `json:"taskId"`
	checked             bool
}

type lastTaskFailure struct {
	AppID     string `json:"appId"`
	Host      string `json:"host"`
	Message   string `json:"message"`
	State     string `json:"state"`
	TaskID    string `json:"taskId"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
}

// New starts a server; Close stops it and every task it runs.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Runner == nil {
		return nil, errors.New("marathontest: Options.Runner is required")
	}
	if opts.BackoffScale == 0 {
		opts.BackoffScale = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("marathontest: cannot listen on %s: %w", addr, err)
	}
	s := &Server{
		opts:        opts,
		log:         log,
		ln:          ln,
		ops:         make(chan func()),
		events:      make(chan func(), 64),
		closing:     make(chan struct{}),
		apps:        make(map[string]*appState),
		deployments: make(map[string]*deployment),
	}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go s.run()
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

// URL is the server's base URL, http://127.0.0.1:port.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving, kills every task and waits. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		_ = s.http.Close()
		close(s.closing)
	})
	s.wg.Wait()
	return nil
}

// do runs fn on the run goroutine, which owns all state.
func (s *Server) do(fn func()) bool {
	done := make(chan struct{})
	select {
	case s.ops <- func() { fn(); close(done) }:
		<-done
		return true
	case <-s.closing:
		return false
	}
}

// post hands an event from a task or probe goroutine to the run goroutine.
func (s *Server) post(fn func()) {
	select {
	case s.events <- fn:
	case <-s.closing:
	}
}

func (s *Server) run() {
	defer s.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case fn := <-s.ops:
			fn()
		case fn := <-s.events:
			fn()
		case <-tick.C:
		case <-s.closing:
			s.shutdown()
			return
		}
		s.reconcile(time.Now())
	}
}

// shutdown kills every task; events still arriving are drained.
func (s *Server) shutdown() {
	var wg sync.WaitGroup
	for _, a := range s.apps {
		for _, t := range a.tasks {
			if t.stopProbe != nil {
				close(t.stopProbe)
				t.stopProbe = nil
			}
			if t.run != nil {
				wg.Add(1)
				go func(run Task) {
					defer wg.Done()
					run.Kill(time.Second)
				}(t.run)
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-s.events:
		case <-done:
			return
		}
	}
}

// newVersion is a Marathon version: an ISO-8601 timestamp, strictly
// increasing within this server.
func (s *Server) newVersion() string {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if !now.After(s.lastVersion) {
		now = s.lastVersion.Add(time.Millisecond)
	}
	s.lastVersion = now
	return now.Format("2006-01-02T15:04:05.000Z")
}

func newID() string { return uuid.New().String() }

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// startDeployment records a deployment of a's current definition.
func (s *Server) startDeployment(a *appState, action string, prev *App) *deployment {
	d := &deployment{ID: newID(), Version: a.def.Version, AppID: a.def.ID, Action: action, prev: prev}
	if old := a.deployment; old != nil {
		delete(s.deployments, old.ID)
	}
	a.deployment = d
	s.deployments[d.ID] = d
	a.failures, a.nextLaunch = 0, time.Time{}
	s.log.Info("deployment started", "deployment", d.ID, "app", a.def.ID, "action", action, "version", d.Version)
	return d
}

// reconcile moves every app towards its definition, by Marathon's rules: at
// most instances×(1+maximumOverCapacity) tasks at once, at least
// instances×minimumHealthCapacity healthy ones while old tasks are
// replaced, failed tasks relaunched with backoff.
func (s *Server) reconcile(now time.Time) {
	for id, a := range s.apps {
		s.reconcileApp(a, now)
		if a.removed && len(a.tasks) == 0 {
			if a.deployment != nil {
				delete(s.deployments, a.deployment.ID)
			}
			delete(s.apps, id)
		}
	}
}

func (s *Server) reconcileApp(a *appState, now time.Time) {
	n := a.def.Instances
	if a.removed {
		n = 0
	}
	var fresh, old []*task
	for _, t := range a.tasks {
		if t.killing {
			continue
		}
		if t.Config == a.def.VersionInfo.LastConfigChangeAt {
			fresh = append(fresh, t)
		} else {
			old = append(old, t)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].ID < fresh[j].ID })
	// Unhealthy old tasks go first: they cost no capacity.
	sort.Slice(old, func(i, j int) bool { return !s.healthy(a, old[i]) && s.healthy(a, old[j]) })
	healthy := 0
	for _, t := range append(append([]*task{}, fresh...), old...) {
		if s.healthy(a, t) {
			healthy++
		}
	}
	minHealthy := int(math.Ceil(a.def.UpgradeStrategy.MinimumHealthCapacity * float64(n)))
	maxTotal := n + int(math.Floor(a.def.UpgradeStrategy.MaximumOverCapacity*float64(n)))

	// Old tasks go as long as enough healthy ones remain.
	for len(old) > 0 {
		t := old[0]
		if s.healthy(a, t) && healthy-1 < minHealthy {
			break
		}
		if s.healthy(a, t) {
			healthy--
		}
		s.kill(a, t)
		old = old[1:]
	}
	// Surplus new tasks (a scale down) go too.
	for len(fresh) > n {
		s.kill(a, fresh[len(fresh)-1])
		fresh = fresh[:len(fresh)-1]
	}
	// Launch within the capacity bound and the backoff.
	for len(fresh) < n && len(fresh)+len(old)+s.killingCount(a) < max(maxTotal, 1) && !now.Before(a.nextLaunch) {
		fresh = append(fresh, s.launch(a))
	}
	// A deployment is done when exactly the new tasks run, healthy.
	if d := a.deployment; d != nil && len(old) == 0 && len(fresh) == n && s.killingCount(a) == 0 {
		done := true
		for _, t := range fresh {
			if !s.healthy(a, t) {
				done = false
			}
		}
		if done {
			s.log.Info("deployment finished", "deployment", d.ID, "app", a.def.ID)
			delete(s.deployments, d.ID)
			a.deployment = nil
		}
	}
}

func (s *Server) killingCount(a *appState) int {
	n := 0
	for _, t := range a.tasks {
		if t.killing {
			n++
		}
	}
	return n
}

// healthy: running, and alive by every health check the app has.
func (s *Server) healthy(a *appState, t *task) bool {
	if t.State != "TASK_RUNNING" {
		return false
	}
	if len(a.def.HealthChecks) == 0 {
		return true
	}
	return t.health != nil && t.health.Alive
}

func (s *Server) launch(a *appState) *task {
	short := strings.ReplaceAll(strings.TrimPrefix(a.def.ID, "/"), "/", "_")
	t := &task{
		ID: short + "." + newID(), AppID: a.def.ID, Version: a.def.Version,
		Config: a.def.VersionInfo.LastConfigChangeAt, Host: "127.0.0.1",
		State: "TASK_STAGING", StagedAt: now(),
	}
	a.tasks[t.ID] = t
	spec := TaskSpec{TaskID: t.ID, AppID: a.def.ID, Version: a.def.Version, Env: a.def.Env, Fetch: a.def.Fetch}
	if a.def.Cmd != nil {
		spec.Cmd = *a.def.Cmd
	}
	spec.Args = a.def.Args
	for _, pd := range a.def.PortDefinitions {
		spec.PortNames = append(spec.PortNames, pd.Name)
	}
	s.log.Info("launching task", "task_id", t.ID, "app", a.def.ID, "version", t.Version)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		run, err := s.opts.Runner.Run(ctx, spec)
		select {
		case <-s.closing:
			// Started while the server was closing: nobody else will
			// stop it.
			if err == nil {
				run.Kill(time.Second)
			}
			return
		default:
		}
		s.post(func() { s.started(a, t, run, err) })
		if err != nil {
			return
		}
		select {
		case <-run.Done():
			s.post(func() { s.exited(a, t) })
		case <-s.closing:
			run.Kill(time.Second)
		}
	}()
	return t
}

func (s *Server) started(a *appState, t *task, run Task, err error) {
	if err != nil {
		s.failed(a, t, "TASK_FAILED", "Failed to launch: "+err.Error())
		return
	}
	t.run, t.State, t.StartedAt, t.started = run, "TASK_RUNNING", now(), time.Now()
	t.Ports = run.Ports()
	t.Host = run.Host()
	if t.killing {
		grace := s.grace(a)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			run.Kill(grace)
		}()
		return
	}
	if len(a.def.HealthChecks) > 0 {
		t.health = &healthResult{TaskID: t.ID}
		t.stopProbe = make(chan struct{})
		s.startProbe(a, t)
	} else {
		a.failures = 0
	}
}

func (s *Server) exited(a *appState, t *task) {
	if t.stopProbe != nil {
		close(t.stopProbe)
		t.stopProbe = nil
	}
	if t.killing {
		delete(a.tasks, t.ID)
		return
	}
	state, msg := "TASK_FAILED", "Command exited with status 0"
	if err := t.run.Err(); err != nil {
		msg = "Command exited: " + err.Error()
	} else {
		state = "TASK_FINISHED"
	}
	s.failed(a, t, state, msg)
}

// failed records a task's unplanned end and backs off the next launch.
func (s *Server) failed(a *appState, t *task, state, msg string) {
	delete(a.tasks, t.ID)
	a.lastFailure = &lastTaskFailure{
		AppID: a.def.ID, Host: t.Host, Message: msg, State: state,
		TaskID: t.ID, Timestamp: now(), Version: t.Version,
	}
	a.failures++
	delay := a.def.BackoffSeconds * math.Pow(a.def.BackoffFactor, float64(a.failures-1))
	delay = math.Min(delay, a.def.MaxLaunchDelaySeconds) * s.opts.BackoffScale
	a.nextLaunch = time.Now().Add(time.Duration(delay * float64(time.Second)))
	s.log.Warn("task failed", "task_id", t.ID, "app", a.def.ID, "state", state, "message", msg)
}

func (s *Server) grace(a *appState) time.Duration {
	g := 3.0
	if a.def.TaskKillGracePeriodSeconds != nil {
		g = *a.def.TaskKillGracePeriodSeconds
	}
	return time.Duration(g * s.opts.BackoffScale * float64(time.Second))
}

func (s *Server) kill(a *appState, t *task) {
	if t.killing {
		return
	}
	t.killing = true
	if t.stopProbe != nil {
		close(t.stopProbe)
		t.stopProbe = nil
	}
	s.log.Info("killing task", "task_id", t.ID, "app", a.def.ID)
	if t.run != nil {
		run, grace := t.run, s.grace(a)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			run.Kill(grace)
		}()
	}
}

// startProbe runs the app's first health check against the task, as
// Marathon does for MESOS_HTTP (HTTP GET, 2xx/3xx healthy) and MESOS_TCP
// (connect) checks.
func (s *Server) startProbe(a *appState, t *task) {
	hc := a.def.HealthChecks[0]
	port := 0
	switch {
	case hc.Port != nil:
		port = *hc.Port
	case hc.PortIndex != nil && *hc.PortIndex < len(t.Ports):
		port = t.Ports[*hc.PortIndex]
	}
	interval := time.Duration(hc.IntervalSeconds) * time.Second
	if s.opts.HealthInterval > 0 {
		interval = s.opts.HealthInterval
	}
	timeout := min(time.Duration(hc.TimeoutSeconds)*time.Second, max(interval, time.Second))
	path := "/"
	if hc.Path != nil && *hc.Path != "" {
		path = *hc.Path
	}
	addr := net.JoinHostPort(t.Host, fmt.Sprint(port))
	stop := t.stopProbe
	// No keep-alive: a probe connection must not outlive its task.
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			var err error
			switch hc.Protocol {
			case "TCP", "MESOS_TCP":
				var c net.Conn
				c, err = net.DialTimeout("tcp", addr, timeout)
				if err == nil {
					c.Close()
				}
			default:
				scheme := "http"
				if strings.HasSuffix(hc.Protocol, "HTTPS") {
					scheme = "https"
				}
				var resp *http.Response
				resp, err = client.Get(scheme + "://" + addr + path)
				if err == nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
					resp.Body.Close()
					if resp.StatusCode < 200 || resp.StatusCode > 399 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
			}
			s.post(func() { s.checked(a, t, hc, err) })
			select {
			case <-tick.C:
			case <-stop:
				return
			case <-s.closing:
				return
			}
		}
	}()
}

func (s *Server) checked(a *appState, t *task, hc HealthCheck, err error) {
	h := t.health
	if h == nil || t.killing {
		return
	}
	h.checked = true
	if err == nil {
		if h.FirstSuccess == "" {
			h.FirstSuccess = now()
		}
		h.LastSuccess, h.Alive, h.ConsecutiveFailures = now(), true, 0
		a.failures = 0
		return
	}
	h.Alive, h.LastFailure, h.LastFailureCause = false, now(), err.Error()
	h.ConsecutiveFailures++
	// Failures in the grace period do not count until a first success.
	inGrace := time.Since(t.started) < time.Duration(float64(hc.GracePeriodSeconds)*float64(time.Second))
	if inGrace && h.FirstSuccess == "" {
		return
	}
	if hc.MaxConsecutiveFailures > 0 && h.ConsecutiveFailures >= hc.MaxConsecutiveFailures {
		s.kill(a, t)
		a.lastFailure = &lastTaskFailure{
			AppID: a.def.ID, Host: t.Host, State: "TASK_KILLED", TaskID: t.ID, Timestamp: now(), Version: t.Version,
			Message: fmt.Sprintf("Task was killed since health check failed %d times in a row: %s", h.ConsecutiveFailures, err),
		}
		a.failures++
	}
}

// view is an app as GET /v2/apps/{id} returns it, with tasks, counts,
// deployments and the last task failure embedded.
type view struct {
	App
	Tasks           []taskView       `json:"tasks"`
	TasksStaged     int              `json:"tasksStaged"`
	TasksRunning    int              `json:"tasksRunning"`
	TasksHealthy    int              `json:"tasksHealthy"`
	TasksUnhealthy  int              `json:"tasksUnhealthy"`
	Deployments     []idRef          `json:"deployments"`
	LastTaskFailure *lastTaskFailure `json:"lastTaskFailure,omitempty"`
}

type taskView struct {
	ID                 string          `json:"id"`
	AppID              string          `json:"appId"`
	Host               string          `json:"host"`
	Ports              []int           `json:"ports"`
	SlaveID            string          `json:"slaveId"`
	StagedAt           string          `json:"stagedAt"`
	StartedAt          string          `json:"startedAt,omitempty"`
	State              string          `json:"state"`
	Version            string          `json:"version"`
	HealthCheckResults []*healthResult `json:"healthCheckResults,omitempty"`
}

func (s *Server) view(a *appState) view {
	v := view{App: a.def, Deployments: []idRef{}, Tasks: []taskView{}, LastTaskFailure: a.lastFailure}
	if a.deployment != nil {
		v.Deployments = append(v.Deployments, idRef{a.deployment.ID})
	}
	ids := make([]string, 0, len(a.tasks))
	for id := range a.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := a.tasks[id]
		tv := taskView{ID: t.ID, AppID: t.AppID, Host: t.Host, Ports: t.Ports, SlaveID: "marathontest-agent",
			StagedAt: t.StagedAt, StartedAt: t.StartedAt, State: t.State, Version: t.Version}
		if t.killing {
			tv.State = "TASK_KILLING"
		}
		if tv.Ports == nil {
			tv.Ports = []int{}
		}
		if t.health != nil && t.health.checked {
			h := *t.health
			tv.HealthCheckResults = []*healthResult{&h}
		}
		v.Tasks = append(v.Tasks, tv)
		switch {
		case t.State == "TASK_STAGING":
			v.TasksStaged++
		case t.State == "TASK_RUNNING":
			v.TasksRunning++
			if t.health != nil && t.health.checked {
				if t.health.Alive {
					v.TasksHealthy++
				} else {
					v.TasksUnhealthy++
				}
			}
		}
	}
	return v
}

// deploymentView is a deployment as GET /v2/deployments lists it.
type deploymentView struct {
	ID             string       `json:"id"`
	Version        string       `json:"version"`
	AffectedApps   []string     `json:"affectedApps"`
	AffectedPods   []string     `json:"affectedPods"`
	Steps          []stepView   `json:"steps"`
	CurrentActions []actionView `json:"currentActions"`
	CurrentStep    int          `json:"currentStep"`
	TotalSteps     int          `json:"totalSteps"`
}

type stepView struct {
	Actions []actionView `json:"actions"`
}

type actionView struct {
	Action                string `json:"action"`
	App                   string `json:"app"`
	ReadinessCheckResults []any  `json:"readinessCheckResults,omitempty"`
}

func (d *deployment) view() deploymentView {
	act := actionView{Action: d.Action, App: d.AppID}
	cur := act
	cur.ReadinessCheckResults = []any{}
	return deploymentView{
		ID: d.ID, Version: d.Version, AffectedApps: []string{d.AppID}, AffectedPods: []string{},
		Steps: []stepView{{Actions: []actionView{act}}}, CurrentActions: []actionView{cur},
		CurrentStep: 1, TotalSteps: 1,
	}
}

// Deployments lists the deployment ids in progress, for tests that act on
// them through the HTTP API as an operator would.
func (s *Server) Deployments() []string {
	var ids []string
	s.do(func() {
		for id := range s.deployments {
			ids = append(ids, id)
		}
	})
	sort.Strings(ids)
	return ids
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
