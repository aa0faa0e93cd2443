package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// Options tune every gate of a hub. Zero values take the defaults.
type Options struct {
	// QueueLen and QueueBytes bound each gate's queue (and each pub
	// subscriber's): an out-gate's in messages and payload bytes, an
	// in-gate's in the memory its received batches hold (buffers and 24
	// bytes a part). Defaults 8192 messages, 16 MiB.
	QueueLen   int
	QueueBytes int
	// MaxMessageSize bounds one message, sent or received. Default 4 MiB.
	MaxMessageSize int
	// MaxConns bounds an in-gate's connections (pair: always 1). Default 256.
	MaxConns int
	// BatchMsgs and BatchBytes bound one batch written to a peer (a chunk:
	// messages Send encoded, written with one call). A message bigger than
	// BatchBytes travels alone. Defaults 1024 messages, 64 KiB.
	BatchMsgs  int
	BatchBytes int
	// Window and WindowBytes bound the messages sent to one Tiltai peer and not
	// yet acknowledged. Defaults 16384 messages, 8 MiB.
	Window      int
	WindowBytes int
	// DrainTimeout bounds draining a removed peer, closing an out-gate, and a
	// drain the executor asks for without a timeout. Default 10s.
	DrainTimeout time.Duration
	// HandshakeTimeout bounds the ZMTP (and TLS) handshake. Default 5s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds one connection attempt. Default 2s.
	DialTimeout time.Duration
	// RetryMin and RetryMax bound the jittered backoff between connection
	// attempts. Defaults 5ms and 100ms.
	RetryMin, RetryMax time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueLen, 8192)
	def(&o.QueueBytes, 16<<20)
	def(&o.MaxMessageSize, 4<<20)
	def(&o.MaxConns, 256)
	def(&o.BatchMsgs, 1024)
	def(&o.BatchBytes, 64<<10)
	def(&o.Window, 16384)
	def(&o.WindowBytes, 8<<20)
	defd(&o.DrainTimeout, 10*time.Second)
	defd(&o.HandshakeTimeout, 5*time.Second)
	defd(&o.DialTimeout, 2*time.Second)
	defd(&o.RetryMin, 5*time.Millisecond)
	defd(&o.RetryMax, 100*time.Millisecond)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	return o
}

// Governor tells a hub who its out-gates' peers are: a stream of versioned
// link snapshots, newest last, and a place to report the version applied.
// Three exist: the executor's control socket (the default under Mesos),
// static endpoints (from the environment or code), and Memory (tests).
type Governor interface {
	Snapshots() <-chan control.Snapshot
	Applied(version uint64)
}

// Memory is an in-memory Governor: Publish hands the hub a snapshot, and
// WaitApplied waits until the hub applied it.
type Memory struct {
	ch      chan control.Snapshot
	mu      sync.Mutex
	applied uint64
	sig     signal
}

// NewMemory returns an empty in-memory governor.
func NewMemory() *Memory { return &Memory{ch: make(chan control.Snapshot, 16), sig: newSignal()} }

// Publish queues a snapshot for the hub.
func (m *Memory) Publish(s control.Snapshot) { m.ch <- s }

// Snapshots implements Governor.
func (m *Memory) Snapshots() <-chan control.Snapshot { return m.ch }

// Applied implements Governor.
func (m *Memory) Applied(v uint64) {
	m.mu.Lock()
	m.applied = max(m.applied, v)
	m.mu.Unlock()
	m.sig.notify()
}

// WaitApplied waits until version v (or later) is applied.
func (m *Memory) WaitApplied(ctx context.Context, v uint64) error {
	for {
		m.mu.Lock()
		a := m.applied
		m.mu.Unlock()
		if a >= v {
			return nil
		}
		select {
		case <-m.sig:
		case <-ctx.Done():
			return fmt.Errorf("link snapshot %d not applied (at %d): %w", v, a, ctx.Err())
		}
	}
}

// Static returns a governor with one snapshot (version 1) made of the static
// peers of the out-gates in gates: the original's hard-coded mode.
func Static(gates []control.GateSpec) Governor {
	s := control.Snapshot{Version: 1, Out: map[string]control.OutLink{}}
	for _, g := range gates {
		if g.Dir == control.Out {
			s.Out[g.Name] = control.OutLink{Pattern: g.Pattern, Peers: g.Peers}
		}
	}
	m := NewMemory()
	m.Publish(s.Normalize())
	return m
}

// Config configures a Hub.
type Config struct {
	Logger  *slog.Logger
	TaskID  string
	Service string
	// Gates declares the service's gates (from TILTAI_GATE_* or code): an
	// in-gate's bind address, an out-gate's pattern (and static peers).
	Gates []control.GateSpec
	// Governor supplies link snapshots. Nil: the control socket if Control is
	// set, else Static(Gates).
	Governor Governor
	// Control is the executor's control socket (TILTAI_CONTROL).
	Control string
	// TLS turns on mutual TLS for every gate connection.
	TLS     control.TLSFiles
	Options Options
}

// Hub owns a service's gates: it opens them by name as declared, applies link
// snapshots from its governor in version order, talks to the executor over
// the control socket (hello, readiness, applied versions, heartbeats with
// counters, drain), and carries application counters. One goroutine (run)
// owns the snapshot state.
type Hub struct {
	cfg    Config
	opt    Options
	log    *slog.Logger
	gov    Governor
	ctl    *control.Client
	tls    *tlsConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	gates    map[string]*Gate
	app      map[string]int64
	opened   chan *Gate
	snapshot atomic.Pointer[control.Snapshot] // latest applied
	ready    bool

	draining   chan struct{}
	drainOnce  sync.Once
	drained    chan struct{}
	drainEnded chan struct{} // drainIn has reported drained
	closeOnce  sync.Once

	// closed holds the last counters of gates closed before the hub, so
	// that heartbeats, and the final report, still carry them.
	closed map[string]control.GateCounters
	// stopBy is the stop deadline (see SetStopDeadline); stopSet closes
	// when it is first set.
	stopBy   atomic.Pointer[time.Time]
	stopOnce sync.Once
	stopSet  chan struct{}
}

// New starts a hub.
func New(ctx context.Context, cfg Config) (*Hub, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	var errs []error
	for _, g := range cfg.Gates {
		if err := control.ValidName(g.Name); err != nil {
			errs = append(errs, err)
		}
		if !g.Pattern.ValidFor(g.Dir) {
			errs = append(errs, fmt.Errorf("gate %q: pattern %q is not valid for an %s-gate", g.Name, g.Pattern, g.Dir))
		}
		if seen[g.Name] {
			errs = append(errs, fmt.Errorf("gate %q declared twice", g.Name))
		}
		for _, p := range g.Peers {
			if _, err := control.ParseEndpoint(p); err != nil {
				errs = append(errs, fmt.Errorf("gate %q: %w", g.Name, err))
			}
		}
		if g.Dir == control.In {
			if _, err := control.ParseBindEndpoint(g.Bind); err != nil {
				errs = append(errs, fmt.Errorf("gate %q: %w", g.Name, err))
			}
		}
		seen[g.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot start gates: %w", err)
	}
	h := &Hub{
		cfg: cfg, opt: cfg.Options.withDefaults(), log: cfg.Logger,
		gates: map[string]*Gate{}, app: map[string]int64{}, opened: make(chan *Gate),
		draining: make(chan struct{}), drained: make(chan struct{}), drainEnded: make(chan struct{}),
		closed: map[string]control.GateCounters{}, stopSet: make(chan struct{}),
	}
	if cfg.TLS.Enabled() {
		t, err := loadTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		h.tls = t
	}
	h.ctx, h.cancel = context.WithCancel(ctx)
	switch {
	case cfg.Governor != nil:
		h.gov = cfg.Governor
	case cfg.Control != "":
		c, err := control.NewClient(h.ctx, control.ClientConfig{
			Addr: cfg.Control, TaskID: cfg.TaskID, Service: cfg.Service, Logger: cfg.Logger, Status: h.Status,
		})
		if err != nil {
			h.cancel()
			return nil, err
		}
		h.ctl, h.gov = c, ctlGovernor{c}
		c.SetGates(h.gateInfo())
	default:
		h.gov = Static(cfg.Gates)
	}
	h.checkReady()
	h.wg.Add(1)
	go h.run()
	return h, nil
}

// FromEnv starts a hub configured by the TILTAI_* environment (see
// docs/control-protocol.md).
func FromEnv(ctx context.Context, logger *slog.Logger, opt Options) (*Hub, error) {
	env, err := control.ParseEnv(os.Environ())
	if err != nil {
		return nil, err
	}
	return New(ctx, Config{
		Logger: logger, TaskID: env.TaskID, Service: env.Service, Gates: env.Gates,
		Control: env.Control, TLS: env.TLS, Options: opt,
	})
}

type ctlGovernor struct{ c *control.Client }

func (g ctlGovernor) Snapshots() <-chan control.Snapshot { return g.c.Snapshots() }
func (g ctlGovernor) Applied(v uint64)                   { g.c.Applied(v) }

func (h *Hub) spec(name string) (control.GateSpec, bool) {
	for _, g := range h.cfg.Gates {
		if g.Name == name {
			return g, true
		}
	}
	return control.GateSpec{}, false
}

// Out opens the declared out-gate name.
func (h *Hub) Out(name string) (*Gate, error) { return h.open(name, control.Out) }

// In opens the declared in-gate name: it binds at once.
func (h *Hub) In(name string) (*Gate, error) { return h.open(name, control.In) }

func (h *Hub) open(name string, dir control.Direction) (*Gate, error) {
	spec, ok := h.spec(name)
	if !ok {
		return nil, fmt.Errorf("cannot open %s-gate %q: not declared (set %s, or list it in Config.Gates)", dir, name, control.EnvName(name))
	}
	if spec.Dir != dir {
		return nil, fmt.Errorf("cannot open %s-gate %q: it is declared as an %s-gate (%s)", dir, name, spec.Dir, spec.Value())
	}
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("cannot open gate %q: %w", name, ErrClosed)
	}
	if _, dup := h.gates[name]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("cannot open gate %q: already open", name)
	}
	g := newGate(h, spec)
	if dir == control.In {
		if err := g.listen(spec.Bind); err != nil {
			h.mu.Unlock()
			g.cancel()
			return nil, err
		}
	}
	h.gates[name] = g
	h.mu.Unlock()
	h.log.Info("gate open", "gate", name, "pattern", spec.Pattern, "dir", dir, "bound", g.bound)
	if h.ctl != nil {
		h.ctl.SetGates(h.gateInfo())
	}
	h.checkReady()
	if dir == control.Out {
		select {
		case h.opened <- g: // the run loop gives it its peers
		case <-h.ctx.Done():
		}
	}
	return g, nil
}

// forget removes a closed gate, keeping its last counters for the reports.
func (h *Hub) forget(g *Gate) {
	st := g.Stats()
	h.mu.Lock()
	if h.gates[g.name] == g {
		delete(h.gates, g.name)
	}
	h.closed[g.name] = st
	h.mu.Unlock()
}

// SetStopDeadline sets when the service must have stopped: closing an
// out-gate (Gate.Close, Hub.Close) delivers what it holds until then at the
// latest, and counts what is left as dropped (stop_dropped). The executor
// sets it with its drain request: the time it will send SIGTERM, less a
// reserve for the last report and the exit. Only an earlier deadline
// replaces one already set.
func (h *Hub) SetStopDeadline(t time.Time) {
	for {
		old := h.stopBy.Load()
		if old != nil && !t.Before(*old) {
			return
		}
		if h.stopBy.CompareAndSwap(old, &t) {
			break
		}
	}
	h.stopOnce.Do(func() { close(h.stopSet) })
}

// stopDeadline returns the stop deadline, zero if none.
func (h *Hub) stopDeadline() time.Time {
	if t := h.stopBy.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// stopReserve is the part of the time before SIGTERM kept for the final
// report and the exit: a quarter, at most 500ms.
func stopReserve(left time.Duration) time.Duration {
	return min(left/4, 500*time.Millisecond)
}

// Gates describes the open gates (in-gates with their bound address).
func (h *Hub) Gates() []control.GateInfo { return h.gateInfo() }

func (h *Hub) gateInfo() []control.GateInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []control.GateInfo
	for _, name := range slices.Sorted(maps.Keys(h.gates)) {
		g := h.gates[name]
		out = append(out, control.GateInfo{Name: name, Dir: g.dir, Pattern: g.pattern, Bound: g.bound})
	}
	return out
}

// checkReady reports readiness once every declared in-gate is bound.
func (h *Hub) checkReady() {
	h.mu.Lock()
	if h.ready {
		h.mu.Unlock()
		return
	}
	for _, s := range h.cfg.Gates {
		if s.Dir == control.In && h.gates[s.Name] == nil {
			h.mu.Unlock()
			return
		}
	}
	h.ready = true
	h.mu.Unlock()
	if h.ctl != nil {
		h.ctl.Ready()
	}
}

// Ready reports whether every declared in-gate is bound.
func (h *Hub) Ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ready
}

// SetCounter sets an application counter, reported to the executor with
// every heartbeat (e.g. the demo printer's received and missing counts).
func (h *Hub) SetCounter(name string, v int64) error {
	// Not through SetCounters: services call this per message, and a map
	// per call would be garbage on that path.
	if err := control.ValidCounterName(name); err != nil {
		return fmt.Errorf("cannot set application counter: %w", err)
	}
	h.mu.Lock()
	h.app[name] = v
	h.mu.Unlock()
	return nil
}

// SetCounters sets several application counters at once: a heartbeat
// carries all of them or none of the new values, never a mix (counters
// that must agree, such as received and missing, stay consistent).
func (h *Hub) SetCounters(counters map[string]int64) error {
	for name := range counters {
		if err := control.ValidCounterName(name); err != nil {
			return fmt.Errorf("cannot set application counter: %w", err)
		}
	}
	h.mu.Lock()
	maps.Copy(h.app, counters)
	h.mu.Unlock()
	return nil
}

// Status returns the heartbeat content: every gate's counters and the
// application counters.
func (h *Hub) Status() control.Status {
	h.mu.Lock()
	gates := slices.Collect(maps.Values(h.gates))
	st := control.Status{Ready: h.ready, Gates: maps.Clone(h.closed), App: maps.Clone(h.app)}
	h.mu.Unlock()
	for _, g := range gates {
		st.Gates[g.name] = g.Stats()
	}
	if s := h.snapshot.Load(); s != nil {
		st.Applied = s.Version
	}
	select {
	case <-h.draining:
		st.Draining = true
	default:
	}
	return st
}

// Draining is closed when the executor (or Drain) asks the service to drain:
// stop producing, let the in-gates run dry (Recv returns ErrDrained), close
// the out-gates and exit.
func (h *Hub) Draining() <-chan struct{} { return h.draining }

// Drain drains every open in-gate (see Gate.Recv and docs/gates.md): no new
// connections, what is held is delivered, done when the upstream peers have
// closed their connections and the application has taken everything, or at
// the deadline. It reports drained to the executor.
func (h *Hub) Drain(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = h.opt.DrainTimeout
	}
	h.drainOnce.Do(func() {
		close(h.draining)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer close(h.drainEnded)
			h.drainIn(time.Now().Add(timeout))
		}()
	})
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hub) drainIn(deadline time.Time) {
	h.mu.Lock()
	var ins []*Gate
	for _, g := range h.gates {
		if g.dir == control.In {
			ins = append(ins, g)
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range ins {
		wg.Add(1)
		go func() { defer wg.Done(); g.drain(deadline) }()
	}
	wg.Wait()
	// Drained once the application has taken what the gates held.
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, g := range ins {
		for g.recvQ != nil && g.recvQ.len() > 0 {
			select {
			case <-g.recvQ.notFull:
				continue
			case <-t.C:
			case <-h.ctx.Done():
			}
			break
		}
	}
	h.log.Info("drained", "gates", len(ins))
	close(h.drained)
	if testHookBeforeDrained != nil {
		testHookBeforeDrained()
	}
	if h.ctl != nil {
		h.ctl.Drained()
	}
}

// testHookBeforeDrained, when set by a test, runs between the in-gates
// running dry and the report of "drained" — the window in which the
// application may close the hub (TestDrainedReportedBeforeClose).
var testHookBeforeDrained func()

// run applies snapshots in version order and gives newly opened out-gates
// their peers. A version is reported applied once every gate runs on it and
// the peers it removed have drained.
func (h *Hub) run() {
	defer h.wg.Done()
	var (
		latest  *control.Snapshot
		pending []<-chan struct{}
		waitAll chan struct{}
		waitVer uint64 // the version the running wait covers
		drains  <-chan control.Drain
	)
	if h.ctl != nil {
		drains = h.ctl.Drains()
	}
	apply := func(g *Gate) {
		if latest == nil || g.dir != control.Out {
			return
		}
		pending = append(pending, g.setPeers(latest.Peers(g.name)))
	}
	report := func() {
		if latest == nil || waitAll != nil {
			return
		}
		chans := pending
		pending = nil
		// The wait covers the removals of every version up to this one;
		// a later version's removals queue in pending for the next wait.
		waitVer = latest.Version
		waitAll = make(chan struct{})
		done := waitAll
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for _, c := range chans {
				select {
				case <-c:
				case <-h.ctx.Done():
					return
				}
			}
			close(done)
		}()
	}
	var reported uint64
	for {
		select {
		case <-h.ctx.Done():
			return
		case s := <-h.gov.Snapshots():
			if err := h.check(s, latest); err != nil {
				h.log.Warn("rejecting link snapshot", "version", s.Version, "error", err)
				if h.ctl != nil {
					h.ctl.Rejected(s.Version, err)
				}
				continue
			}
			latest = &s
			h.snapshot.Store(latest)
			h.mu.Lock()
			gates := slices.Collect(maps.Values(h.gates))
			h.mu.Unlock()
			for _, g := range gates {
				apply(g)
			}
			h.log.Debug("applying link snapshot", "version", s.Version, "out_gates", len(s.Out))
			report()
		case g := <-h.opened:
			apply(g)
			report()
		case <-waitAll:
			waitAll = nil
			if waitVer > reported {
				reported = waitVer
				h.gov.Applied(reported)
			}
			if len(pending) > 0 || latest.Version > reported {
				report()
			}
		case d := <-drains:
			if !d.StopBy.IsZero() {
				h.SetStopDeadline(d.StopBy.Add(-stopReserve(time.Until(d.StopBy))))
			}
			h.wg.Add(1)
			go func() { defer h.wg.Done(); h.Drain(h.ctx, d.Timeout) }()
		}
	}
}

// check validates s against the declared gates and the last version.
func (h *Hub) check(s control.Snapshot, last *control.Snapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if last != nil && s.Version <= last.Version {
		return fmt.Errorf("version %d is not above the applied %d", s.Version, last.Version)
	}
	// An out-gate this service does not declare is refused, as the
	// executor refuses it: the scheduler and the service disagree on the
	// service's gates, and a nack says so where a skip would hide it.
	return s.CheckDeclared(h.cfg.Gates)
}

// Close closes every gate (out-gates drain first, see Gate.Close: until the
// stop deadline at the latest), reports the final counters to the executor,
// closes the control connection, and waits for all goroutines. Idempotent.
func (h *Hub) Close() error { return h.CloseContext(context.Background()) }

// CloseContext is Close with out-gates delivering what they hold only until
// ctx ends (and the stop deadline, and DrainTimeout): what is left then is
// counted as dropped (stop_dropped) and reported to the executor before the
// hub closes. It returns an error naming what was lost.
func (h *Hub) CloseContext(ctx context.Context) error {
	var errs []error
	h.closeOnce.Do(func() {
		h.mu.Lock()
		gates := slices.Collect(maps.Values(h.gates))
		h.mu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, g := range gates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := g.closeCtx(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		select {
		case <-h.draining:
			// A drain was asked for, and the application may close the
			// hub as soon as its in-gates run dry: "drained" must reach
			// the executor before the control connection closes, or it
			// waits for it until the grace period ends. With the gates
			// closed the drain ends at once.
			<-h.drainEnded
		default:
		}
		if h.ctl != nil {
			// The last counters (what closing the gates dropped) reach
			// the executor before the connection closes: it reports them
			// when the task ends.
			// One line on a unix socket: bounded well inside the reserve
			// kept before SIGTERM.
			rctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			h.ctl.Report(rctx)
			cancel()
		}
		h.cancel()
		if h.ctl != nil {
			h.ctl.Close()
		}
		h.wg.Wait()
	})
	return errors.Join(errs...)
}
