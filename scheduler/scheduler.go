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
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/internal/mailbox"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/artifacts"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/httpapi"
	"github.com/tiltai/tiltai/scheduler/mesossession"
)

// Scheduler is the Tiltai framework: it subscribes to Mesos, launches the
// services of the accepted spec, publishes link tables to their executors,
// and serves the HTTP API. Its decisions are core.Machine's; the loop
// goroutine drives it (inputs in, Step, store, calls out) and is the only
// one that touches it. Readers get the immutable view published after
// each step.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	mesos   mesosSession
	inputs  chan input               // API writes → loop
	reports *mailbox.Box[core.Input] // outbox → loop: never blocks either
	bus     *httpapi.Bus
	metrics *metrics
	art     *artifacts.Executor
	// sandboxes reads tasks' logs from their agents (GET /v1/tasks/{id}/files/…).
	sandboxes *sandboxReader
	http      *http.Server
	lis       net.Listener
	view      atomic.Pointer[core.View] // published after every step that changed it
	// parseSlots bounds the specs parsed at once (see parsing).
	parseSlots chan struct{}

	fwID atomic.Pointer[string] // for the session's SUBSCRIBE and the outbox's calls

	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	err    error // why the loop stopped, when it did on its own
	once   sync.Once

	// Owned by the loop goroutine.
	core    *core.Machine
	waiting map[uint64]chan core.Reply // submissions waiting for their step's write
	nextID  uint64
	wake    time.Time
	// The view is made at most every viewEvery (it copies every task), and
	// the events that follow from a step wait with it: whoever sees an
	// event and then reads finds its effect.
	viewDue  bool
	lastView time.Time
	held     []heldEvent
}

// heldEvent is an event waiting for the view that shows its effect.
type heldEvent struct {
	ev core.Event
	at time.Time
}

// viewEvery is how often at most the loop makes a view for readers while
// nothing waits for it. A submission's answer never waits: its step makes
// the view at once, before answering. At 10,000 tasks a view costs
// milliseconds; made after every one of a burst of acknowledgements it
// took most of the loop's time.
const viewEvery = 20 * time.Millisecond

// input is what API writers hand the loop: a spec change, whose reply
// comes once it is stored.
type input struct {
	in    core.SubmitSpec
	reply chan core.Reply // buffered: the loop never waits on it
}

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
	m, err := core.New(cfg.coreConfig(), kv)
	if err != nil {
		return nil, fmt.Errorf("cannot load the scheduler state: %w", err)
	}
	switch fw := m.FrameworkID(); {
	case cfg.FrameworkID != "" && fw != "" && cfg.FrameworkID != fw:
		return nil, fmt.Errorf("--framework_id %s differs from the stored framework ID %s; drop the flag", cfg.FrameworkID, fw)
	case cfg.FrameworkID != "" && fw == "":
		// Recovery: the operator restores the ID the master still knows.
		batch, err := m.RestoreFrameworkID(cfg.FrameworkID)
		if err == nil {
			err = cfg.Store.Apply(ctx, batch)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot store the restored framework ID: %w", err)
		}
	case fw == "" && (m.Tasks() > 0 || m.SpecVersion() > 0):
		return nil, &FrameworkIDLostError{Tasks: m.Tasks(), SpecVersion: m.SpecVersion(), Name: cfg.FrameworkName}
	}
	art, err := artifacts.Stage(cfg.ExecutorBinary)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		art.Close()
		return nil, fmt.Errorf("cannot listen for the scheduler API on %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Scheduler{
		cfg:        cfg,
		log:        cfg.Logger,
		store:      cfg.Store,
		inputs:     make(chan input, 1024),
		reports:    mailbox.New[core.Input](),
		bus:        httpapi.NewBus(cfg.eventQueue),
		art:        art,
		sandboxes:  newSandboxReader(cfg),
		lis:        lis,
		cancel:     cancel,
		done:       make(chan struct{}),
		core:       m,
		waiting:    map[uint64]chan core.Reply{},
		parseSlots: make(chan struct{}, cfg.parseSlots),
	}
	m.SetExecutor(art.Name(), art.URL(s.apiHostPort()))
	s.metrics = newMetrics(s)
	if id := m.FrameworkID(); id != "" {
		s.fwID.Store(&id)
	}
	s.view.Store(m.View())
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: cfg.readHeaderTimeout, ReadTimeout: cfg.readTimeout, MaxHeaderBytes: 64 << 10}

	if n := specTasks(m.Spec()); n > cfg.MaxTasks {
		// Refusing it would leave the running tasks unmanaged; the limit
		// applies to the next spec submitted.
		s.log.Warn("the stored spec asks for more tasks than --max_tasks allows; it is kept, but a changed spec must fit the limit",
			"spec_version", m.SpecVersion(), "tasks", n, "max_tasks", cfg.MaxTasks)
	}
	if why := art.NoImages(); why != "" {
		for _, name := range imageServices(m.Spec()) {
			s.log.Error("a service of the stored spec runs in an image, which this scheduler cannot launch: new tasks of it will fail to start until a static tiltai schedules them",
				"service", name, "reason", why)
		}
	}
	startLog := []any{"api", s.URL(), "framework_id", m.FrameworkID(), "spec_version", m.SpecVersion(), "tasks", m.Tasks(), "executor", art.Name()}
	s.mesos = s.openSession(ctx)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveHTTP() }()
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
		s.bus.Close()
		s.wg.Wait()
		s.mesos.Close()
		s.art.Close()
		s.sandboxes.client.CloseIdleConnections()
	})
	return nil
}

func (s *Scheduler) serveHTTP() {
	if err := s.http.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("scheduler API stopped", "err", err)
	}
}

// frameworkInfo is what the session subscribes with.
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

// run is the loop: take inputs (in batches), Step the machine, store
// what it decided, then hand its Mesos calls to the outbox.
//
// No deadlock is possible between the loop and the outbox: each hands the
// other work through a mailbox (internal/mailbox: a slice under a mutex,
// and a notification channel of one that is signalled without waiting),
// so neither ever waits for the other. The outbox's queue is bounded by
// the batches the machine counts as in flight; the loop's reports queue by
// the calls in those batches. Only the Mesos session and API callers wait
// to hand the loop an input, and the loop waits for nothing but the store.
func (s *Scheduler) run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	const maxBatch = 256
	batch := make([]core.Input, 0, maxBatch+16)
	events := s.mesos.Events()
	for {
		if err := s.step(ctx, batch); err != nil {
			s.fail(err)
			return err
		}
		batch = batch[:0]
		timer.Reset(s.untilWake())
		select {
		case <-ctx.Done():
			s.fail(ErrStopped)
			return nil
		case in := <-s.inputs:
			batch = s.take(batch, in)
		case ev := <-events:
			var err error
			if batch, err = takeEvent(batch, ev); err != nil {
				s.fail(err)
				return err
			}
		case <-s.reports.Notify():
		case <-timer.C:
		}
		// Take whatever else is waiting, so a burst of updates costs one
		// step and one store write.
	drain:
		for len(batch) < maxBatch {
			select {
			case in := <-s.inputs:
				batch = s.take(batch, in)
			case ev := <-events:
				var err error
				if batch, err = takeEvent(batch, ev); err != nil {
					s.fail(err)
					return err
				}
			default:
				break drain
			}
		}
		batch = append(batch, s.reports.Take()...)
	}
}

// take turns an API write into the machine's input; its reply waits for
// the step that stores it.
func (s *Scheduler) take(batch []core.Input, in input) []core.Input {
	s.nextID++
	in.in.ID = s.nextID
	s.waiting[in.in.ID] = in.reply
	return append(batch, in.in)
}

// takeEvent turns the Mesos session's news into the machine's input; a
// Fatal one stops the loop.
func takeEvent(batch []core.Input, ev mesossession.Event) ([]core.Input, error) {
	switch e := ev.(type) {
	case mesossession.Received:
		if ci := core.FromEvent(e.Event, e.Leader); ci != nil {
			batch = append(batch, ci)
		}
	case mesossession.Disconnected:
		batch = append(batch, core.Disconnected{Err: errString(e.Err)})
	case mesossession.Fatal:
		return batch, e.Err
	}
	return batch, nil
}

// step runs one step of the machine and carries out its Ready, in order:
// early calls to the outbox, records to the store (write-ahead: a failure
// stops the scheduler before anything that depends on them is sent), late
// calls to the outbox, then the view, events, logs and metrics, and the
// answers.
func (s *Scheduler) step(ctx context.Context, batch []core.Input) error {
	now := s.cfg.Now()
	rd := s.core.Step(now, batch...)
	s.wake = rd.Wake
	if rd.FrameworkID != "" {
		id := rd.FrameworkID
		s.fwID.Store(&id)
	}
	if rd.Err != nil {
		s.publish(&rd, now)
		return rd.Err
	}
	if len(rd.Early) > 0 {
		s.mesos.Send(rd.Early)
	}
	if len(rd.Records) > 0 {
		if err := s.store.Apply(context.WithoutCancel(ctx), rd.Records); err != nil {
			s.publish(&rd, now)
			s.viewDue = false // what was not stored is not shown
			s.flushView(now)
			// Write-ahead: what was not stored must not be acted on. Stop;
			// a restarted scheduler resumes from what is stored and
			// reconciles the rest.
			return fmt.Errorf("cannot persist the scheduler state, stopping before acting on it: %w", err)
		}
		s.metrics.storeWrites.Inc()
	}
	if len(rd.Late) > 0 {
		s.mesos.Send(rd.Late)
	}
	s.viewDue = s.viewDue || rd.ViewChanged
	s.publish(&rd, now)
	if !s.viewDue || len(rd.Replies) > 0 || now.Sub(s.lastView) >= viewEvery {
		s.flushView(now)
	}
	for _, r := range rd.Replies {
		if ch := s.waiting[r.ID]; ch != nil {
			ch <- r
			delete(s.waiting, r.ID)
		}
	}
	return nil
}

// fail answers every submission still waiting: it was not stored.
func (s *Scheduler) fail(err error) {
	for id, ch := range s.waiting {
		ch <- core.Reply{ID: id, Err: err}
		delete(s.waiting, id)
	}
}

// untilWake is how long the loop may wait for an input.
func (s *Scheduler) untilWake() time.Duration {
	wake := s.wake
	if s.viewDue {
		wake = minTime(wake, s.lastView.Add(viewEvery))
	}
	return max(wake.Sub(s.cfg.Now()), time.Millisecond)
}

// publish hands the step's events, logs and metric facts on.
func (s *Scheduler) publish(rd *core.Ready, now time.Time) {
	for _, ev := range rd.Events {
		s.held = append(s.held, heldEvent{ev, now})
	}
	if rd.Err != nil {
		s.flushView(now)
	}
	for _, l := range rd.Logs {
		s.log.Log(context.Background(), slog.Level(l.Level), l.Msg, l.Attrs...)
	}
	s.metrics.add(&rd.Metrics)
}

// flushView makes the view when one is due, then publishes the events
// held for it: events after the view, so whoever sees one and then reads
// finds its effect.
func (s *Scheduler) flushView(now time.Time) {
	if s.viewDue {
		s.view.Store(s.core.View())
		s.viewDue, s.lastView = false, now
	}
	for _, h := range s.held {
		s.bus.Publish(h.ev.Type, h.ev.Data, h.at)
	}
	clear(s.held)
	s.held = s.held[:0]
}

// submit hands a spec change to the loop and waits until it is stored.
func (s *Scheduler) submitIn(ctx context.Context, in core.SubmitSpec) (core.Reply, error) {
	ev := input{in: in, reply: make(chan core.Reply, 1)}
	select {
	case s.inputs <- ev:
	case <-s.done:
		return core.Reply{}, ErrStopped
	case <-ctx.Done():
		return core.Reply{}, ErrStopped
	}
	// Once queued, the change is decided soon (the loop takes inputs in
	// order); wait for it rather than report it as not made when it may
	// have been. A loop that stops answers every waiting submission.
	select {
	case r := <-ev.reply:
		return r, nil
	case <-s.done:
		select {
		case r := <-ev.reply:
			return r, nil
		default:
			return core.Reply{}, ErrStopped
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// imageServices names the services of spec that run in an image, sorted.
func imageServices(spec *linkspec.Spec) []string {
	var out []string
	for name, svc := range spec.Services {
		if svc.Image != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
