package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/linkspec"
)

// Scheduler is the Tiltai framework: it subscribes to Mesos, launches the
// services of the accepted spec, publishes link tables to their executors,
// and serves the HTTP API. One goroutine (the loop) owns all its state;
// everything else talks to it through inputs.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	conn    *conn
	inputs  chan input
	outbox  chan []*scheduler.Call
	bus     *bus
	metrics *metrics
	art     *artifact
	http    *http.Server
	// parseSlots bounds the specs parsed at once (see parsing).
	parseSlots chan struct{}
	lis        net.Listener

	fwID    atomic.Pointer[string] // for conn's SUBSCRIBE, set by the loop after persisting
	crashed atomic.Bool            // tests: crashed by a hook; nothing more may happen

	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	err    error // why the loop stopped, when it did on its own
	once   sync.Once

	// Everything below is owned by the loop goroutine.
	st         *state
	planner    *linkspec.Planner
	offers     []*mesos.Offer
	tables     map[string]*pubTable
	links      map[string]*pubTask
	status     map[string]*taskStatus
	lastFail   map[string]string // service → why its last task failed
	redeclined map[string]bool   // offers declined a second time after a failed DECLINE
	subscribed bool
	suppressed bool
	leader     string
	recon      reconciler
	nextAE     time.Time // next anti-entropy round
	calls      []*scheduler.Call
	inFlight   int // batches handed to the outbox and not yet sent
	// storeFirst: this step's link tables must wait for the write too (a
	// new block of versions was reserved, or the spec changed: tables that
	// follow from an operator's change go out only once it is stored).
	storeFirst bool
	lastFlush  time.Time // when the outbox last finished a batch
}

// input is anything the loop reacts to.
type input interface{}

type (
	evMesos struct {
		ev     *scheduler.Event
		leader string
	}
	evDisconnected struct{ err error }
	evFatal        struct{ err error }
	evFlushed      struct{ at time.Time }
	evCallFailed   struct{ call *scheduler.Call }
	// evRequest runs fn in the loop (API calls, metrics, tests).
	evRequest struct {
		fn   func() error
		done chan struct{}
	}
)

// New loads the state, starts the HTTP API and subscribes to Mesos. It
// fails when the stored state cannot be read, or says the framework ID was
// lost while tasks may still run (a new ID would leave them orphaned and
// run every service twice).
func New(ctx context.Context, cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid scheduler configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	kv, err := cfg.Store.Load(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("cannot load the scheduler state: %w", err)
	}
	st, err := loadState(kv)
	if err != nil {
		return nil, fmt.Errorf("cannot load the scheduler state: %w", err)
	}
	switch {
	case cfg.FrameworkID != "" && st.frameworkID != "" && cfg.FrameworkID != st.frameworkID:
		return nil, fmt.Errorf("--framework_id %s differs from the stored framework ID %s; drop the flag", cfg.FrameworkID, st.frameworkID)
	case cfg.FrameworkID != "" && st.frameworkID == "":
		// Recovery: the operator restores the ID the master still knows.
		st.frameworkID = cfg.FrameworkID
		st.dirty[keyFrameworkID] = true
		batch, err := st.flush()
		if err == nil {
			err = cfg.Store.Apply(ctx, batch)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot store the restored framework ID: %w", err)
		}
	case st.frameworkID == "" && (len(st.tasks) > 0 || st.specRec.Version > 0):
		return nil, &FrameworkIDLostError{Tasks: len(st.tasks), SpecVersion: st.specRec.Version, Name: cfg.FrameworkName}
	}
	art, err := newArtifact(cfg.ExecutorBinary)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		art.close()
		return nil, fmt.Errorf("cannot listen for the scheduler API on %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Scheduler{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    cfg.Store,
		inputs:   make(chan input, 1024),
		outbox:   make(chan []*scheduler.Call, 1024),
		bus:      newBus(),
		art:      art,
		lis:      lis,
		cancel:   cancel,
		done:     make(chan struct{}),
		st:       st,
		planner:  linkspec.NewPlanner(linkspec.Options{DrainTimeout: cfg.DrainTimeout}),
		tables:   map[string]*pubTable{},
		links:    map[string]*pubTask{},
		status:   map[string]*taskStatus{},
		lastFail: map[string]string{}, redeclined: map[string]bool{},
		parseSlots: make(chan struct{}, cfg.parseSlots),
	}
	s.metrics = newMetrics(s)
	if id := st.frameworkID; id != "" {
		s.fwID.Store(&id)
	}
	s.restorePlanner()
	s.conn = &conn{cfg: &s.cfg, log: s.log, events: s.inputs, info: s.frameworkInfo}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}

	if n := specTasks(st.spec); n > cfg.MaxTasks {
		// Refusing it would leave the running tasks unmanaged; the limit
		// applies to the next spec submitted.
		s.log.Warn("the stored spec asks for more tasks than --max_tasks allows; it is kept, but a changed spec must fit the limit",
			"spec_version", st.specRec.Version, "tasks", n, "max_tasks", cfg.MaxTasks)
	}
	startLog := []any{"api", s.URL(), "framework_id", st.frameworkID, "spec_version", st.specRec.Version, "tasks", len(st.tasks), "executor", art.name}
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.serveHTTP() }()
	go func() { defer s.wg.Done(); s.conn.run(ctx) }()
	go func() { defer s.wg.Done(); s.runOutbox(ctx) }()
	go func() {
		defer s.wg.Done()
		defer close(s.done)
		s.err = s.run(ctx)
		if s.err != nil {
			s.log.Error("scheduler stopped", "err", s.err)
		}
	}()
	s.log.Info("scheduler started", startLog...)
	return s, nil
}

// FrameworkIDLostError: the state has tasks or a spec but no framework ID.
type FrameworkIDLostError struct {
	Tasks       int
	SpecVersion int
	Name        string // the framework's name in Mesos
}

func (e *FrameworkIDLostError) Error() string {
	return fmt.Sprintf("the state store has %d task records and spec version %d but no framework ID; "+
		"registering a new framework would leave the old tasks running unmanaged and start every service twice. "+
		"Recover: find the framework ID in the Mesos master's /state (frameworks, name %q) and restore it, "+
		"or tear the old framework down (POST /teardown on the master) and clear the state; see docs/operations.md",
		e.Tasks, e.SpecVersion, e.Name)
}

// URL is the scheduler API's base URL.
func (s *Scheduler) URL() string { return "http://" + s.apiHostPort() }

func (s *Scheduler) apiHostPort() string {
	_, port, _ := net.SplitHostPort(s.lis.Addr().String())
	return net.JoinHostPort(s.advertiseHost(), port)
}

func (s *Scheduler) advertiseHost() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	host, _, _ := net.SplitHostPort(s.lis.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return h
		}
	}
	return host
}

// Done is closed when the scheduler has stopped (Close, or a fatal error).
func (s *Scheduler) Done() <-chan struct{} { return s.done }

// Err says why the scheduler stopped on its own (nil after Close).
func (s *Scheduler) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// crash stops everything at once, as kill -9 would: the loop processes
// nothing more and the outbox sends nothing more (tests only).
func (s *Scheduler) crash() {
	s.crashed.Store(true)
	s.cancel()
}

// Close stops the scheduler without tearing the framework down: tasks keep
// running for the failover timeout and a new scheduler on the same store
// resumes them. It waits for every goroutine.
func (s *Scheduler) Close() error {
	s.once.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.http.Shutdown(ctx)
		cancel()
		s.http.Close()
		s.bus.close()
		s.wg.Wait()
		s.art.close()
	})
	return nil
}

func (s *Scheduler) serveHTTP() {
	if err := s.http.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("scheduler API stopped", "err", err)
	}
}

// frameworkInfo is what conn subscribes with.
func (s *Scheduler) frameworkInfo() *mesos.FrameworkInfo {
	failover := s.cfg.FailoverTimeout.Seconds()
	checkpoint := s.cfg.Checkpoint
	hostname, _ := os.Hostname()
	webui := s.URL()
	info := &mesos.FrameworkInfo{
		User:            s.cfg.User,
		Name:            s.cfg.FrameworkName,
		FailoverTimeout: &failover,
		Checkpoint:      &checkpoint,
		Hostname:        &hostname,
		WebUiURL:        &webui,
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE},
			{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		},
	}
	if info.User == "" {
		if u, err := user.Current(); err == nil {
			info.User = u.Username
		}
	}
	if s.cfg.Role != "*" {
		role := s.cfg.Role
		info.Role = &role
	}
	if s.cfg.Principal != "" {
		p := s.cfg.Principal
		info.Principal = &p
	}
	if id := s.fwID.Load(); id != nil {
		info.ID = &mesos.FrameworkID{Value: *id}
	}
	return info
}

// do runs fn in the loop and waits for it; false if the scheduler stopped.
func (s *Scheduler) do(ctx context.Context, fn func()) bool {
	return s.doErr(ctx, func() error { fn(); return nil })
}

// doErr runs fn in the loop; an error from fn stops the scheduler (it is
// for failures to persist, after which acting on is unsafe).
func (s *Scheduler) doErr(ctx context.Context, fn func() error) bool {
	req := evRequest{fn: fn, done: make(chan struct{})}
	select {
	case s.inputs <- req:
	case <-s.done:
		return false
	case <-ctx.Done():
		return false
	}
	// Once queued, the request runs soon (the loop takes inputs in
	// order); wait for it rather than report a change as not made when it
	// may have been.
	select {
	case <-req.done:
		return true
	case <-s.done:
		return false
	}
}

// run is the loop: take inputs (in batches), apply them, plan, persist,
// then hand the Mesos calls to the outbox.
func (s *Scheduler) run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if err := s.step(); err != nil {
		return err
	}
	for {
		var in input
		select {
		case <-ctx.Done():
			return nil
		case in = <-s.inputs:
		case <-timer.C:
		}
		if err := s.handle(in); err != nil {
			return err
		}
		// Take whatever else is waiting, so a burst of updates costs one
		// plan and one store write.
	drain:
		for i := 0; i < 256; i++ {
			select {
			case in = <-s.inputs:
				if err := s.handle(in); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if err := s.step(); err != nil {
			return err
		}
		timer.Reset(s.nextWake())
	}
}

func (s *Scheduler) handle(in input) error {
	switch e := in.(type) {
	case nil:
	case evMesos:
		if err := s.onEvent(e.ev, e.leader); err != nil {
			return err
		}
	case evDisconnected:
		if s.subscribed {
			s.event("disconnected", map[string]any{"error": errString(e.err)})
		}
		s.subscribed = false
		s.offers = nil
		s.metrics.subscribed.Set(0)
	case evFatal:
		return e.err
	case evFlushed:
		s.inFlight--
		s.lastFlush = e.at
	case evCallFailed:
		s.repair(e.call)
	case evRequest:
		err := e.fn()
		close(e.done)
		if err != nil {
			return err
		}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
