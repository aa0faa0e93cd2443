package mesossession

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/mailbox"
)

// MasterSource tells where the leading Mesos master is. A static URL is
// one; a ZooKeeper detector (scheduler/detect) is another that also reports
// changes of leader.
type MasterSource interface {
	// Leader returns the leading master's base URL (http(s)://host:port).
	Leader(ctx context.Context) (string, error)
	// Changed is signalled when the leader may have changed (nil: never).
	Changed() <-chan struct{}
}

// StaticMaster is a master at a fixed URL; 307 redirects to another leader
// are still followed, by mesos-go's httpsched.
type StaticMaster string

// Leader implements MasterSource.
func (m StaticMaster) Leader(context.Context) (string, error) { return string(m), nil }

// Changed implements MasterSource.
func (StaticMaster) Changed() <-chan struct{} { return nil }

// Config is what a session needs. Every field but TLS, Principal, Secret
// and Logger is required: the scheduler's Config supplies the defaults.
type Config struct {
	// Master finds the leading master.
	Master MasterSource
	// Info returns the FrameworkInfo to subscribe with (its ID once
	// known); FrameworkID the ID the outbox's calls carry (nil: none yet).
	// Both are called from the session's goroutines.
	Info        func() *mesos.FrameworkInfo
	FrameworkID func() *mesos.FrameworkID
	// FrameworkName is the framework's name in Mesos: a live framework of
	// this name on the master stops a subscription without an ID.
	FrameworkName string
	// Codec of the scheduler API: "protobuf" or "json".
	Codec string
	// Principal and Secret authenticate (HTTP Basic); TLS is used for an
	// https master (nil: system roots).
	Principal string
	Secret    string
	TLS       *tls.Config
	// CallTimeout bounds one call to the master.
	CallTimeout time.Duration
	// SubscribeBackoffMin and Max bound the re-subscription backoff.
	SubscribeBackoffMin time.Duration
	SubscribeBackoffMax time.Duration
	// MissedHeartbeats intervals without a byte, and the stream is presumed
	// dead; HeartbeatFallback is the interval assumed until SUBSCRIBED says.
	MissedHeartbeats  int
	HeartbeatFallback time.Duration
	// Report hears what became of the outbox's calls.
	Report Reporter
	// Through, when set, wraps what the outbox's calls go through on their
	// way to the master (tests: a fake that fails or crashes around it).
	Through func(Caller) Caller
	// Logger receives the session's logs (nil: discarded).
	Logger *slog.Logger
}

// Event is what the session hands out: Received, Disconnected or Fatal.
type Event interface{ isEvent() }

type (
	// Received is an event of the stream (never a HEARTBEAT or an ERROR)
	// from the master at Leader.
	Received struct {
		Event  *scheduler.Event
		Leader string
	}
	// Disconnected: the subscription ended (Err says why); the session
	// subscribes again.
	Disconnected struct{ Err error }
	// Fatal: the session cannot go on (the framework was removed, the
	// master refuses what is sent, or a new framework ID would orphan a
	// live one's tasks). The session has stopped subscribing.
	Fatal struct{ Err error }
)

func (Received) isEvent()     {}
func (Disconnected) isEvent() {}
func (Fatal) isEvent()        {}

// Caller makes one call on the current subscription.
type Caller interface {
	Call(ctx context.Context, call *scheduler.Call) error
}

// Session keeps one subscription to the leading master: it subscribes (with
// backoff), hands out the event stream, watches heartbeats, and
// re-subscribes when the stream breaks, goes quiet, or the leader changes.
// Its outbox makes the calls it is sent. It owns no scheduler state.
type Session struct {
	cfg    Config
	log    *slog.Logger
	events chan Event
	outbox *mailbox.Box[[]*scheduler.Call]

	mu     sync.Mutex
	caller calls.Caller // nil when not subscribed
	leader string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open starts subscribing and the outbox; Close stops both.
func Open(ctx context.Context, cfg Config) *Session {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Session{cfg: cfg, log: log, events: make(chan Event, 1024), outbox: mailbox.New[[]*scheduler.Call](), cancel: cancel}
	var caller Caller = c
	if cfg.Through != nil {
		caller = cfg.Through(c)
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.run(ctx) }()
	go func() { defer c.wg.Done(); c.runOutbox(ctx, caller) }()
	return c
}

// Events are the stream's events, in order, and the session's own news
// (Disconnected, Fatal). The session waits while nobody takes them.
func (c *Session) Events() <-chan Event { return c.events }

// Send queues one batch of calls; batches are made in the order sent, each
// after the one before has returned. It never waits.
func (c *Session) Send(batch []*scheduler.Call) { c.outbox.Put(batch) }

// Close stops the session and waits for its goroutines; it is idempotent.
// Calls still queued are not made.
func (c *Session) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// Call sends a call on the current subscription.
func (c *Session) Call(ctx context.Context, call *scheduler.Call) error {
	c.mu.Lock()
	caller := c.caller
	c.mu.Unlock()
	if caller == nil {
		return ErrNotSubscribed
	}
	resp, err := caller.Call(ctx, call)
	if resp != nil {
		resp.Close()
	}
	return err
}

// ErrNotSubscribed: a call was made while no subscription is up.
var ErrNotSubscribed = errors.New("not subscribed to a Mesos master")

func (c *Session) setCaller(caller calls.Caller, leader string) {
	c.mu.Lock()
	c.caller, c.leader = caller, leader
	c.mu.Unlock()
}

// Leader returns the master currently subscribed to ("" if none).
func (c *Session) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// newCaller returns a caller for leader and a function that tells which
// URL answered the SUBSCRIBE. mesos-go's httpsched follows a 307 for the
// SUBSCRIBE only; later calls would still go to the first URL, be
// redirected again, and drop the subscription. So the session notices the
// redirect and subscribes to the leader directly.
func (c *Session) newCaller(leader string) (calls.Caller, func() string) {
	codec := codecs.ByMediaType[codecs.MediaTypeProtobuf]
	if c.cfg.Codec == "json" {
		codec = codecs.ByMediaType[codecs.MediaTypeJSON]
	}
	opts := []httpcli.ConfigOpt{
		httpcli.Timeout(c.cfg.CallTimeout),
		// The outbox makes up to outboxWorkers calls at once; keep that many
		// connections alive instead of opening one per call.
		httpcli.Transport(func(t *http.Transport) { t.MaxIdleConnsPerHost = 2 * Workers }),
	}
	if c.cfg.Principal != "" && c.cfg.Secret != "" {
		opts = append(opts, httpcli.BasicAuth(c.cfg.Principal, c.cfg.Secret))
	}
	if strings.HasPrefix(leader, "https://") {
		opts = append(opts, httpcli.TLSConfig(c.cfg.TLS.Clone()))
	}
	var mu sync.Mutex
	answered := ""
	do := httpcli.With(opts...)
	record := func(req *http.Request) (*http.Response, error) {
		resp, err := do(req)
		if err == nil && resp.StatusCode == http.StatusOK && resp.Header.Get("Mesos-Stream-Id") != "" {
			mu.Lock()
			answered = req.URL.Scheme + "://" + req.URL.Host
			mu.Unlock()
		}
		return resp, err
	}
	cli := httpcli.New(
		httpcli.Endpoint(strings.TrimRight(leader, "/")+"/api/v1/scheduler"),
		httpcli.Codec(codec),
		httpcli.Do(record),
	)
	return httpsched.NewCaller(cli, httpsched.AllowReconnection(true), httpsched.MaxRedirects(4)), func() string {
		mu.Lock()
		defer mu.Unlock()
		return answered
	}
}

// run subscribes until ctx ends.
func (c *Session) run(ctx context.Context) {
	policy := backoff.Policy{Initial: c.cfg.SubscribeBackoffMin, Max: c.cfg.SubscribeBackoffMax, Factor: 2, Jitter: backoff.Equal}
	attempt := 0
	for ctx.Err() == nil {
		err := c.session(ctx)
		c.setCaller(nil, "")
		if ctx.Err() != nil {
			return
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			c.send(ctx, Fatal{Err: fatal.err})
			return
		}
		c.send(ctx, Disconnected{Err: err})
		// Jitter keeps many schedulers from subscribing in lockstep after
		// a master failover.
		wait := policy.Next(attempt, rand.Float64())
		c.log.Warn("mesos subscription ended; re-subscribing", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-c.changed():
		}
		attempt++
		if err == nil {
			attempt = 0
		}
	}
}

func (c *Session) changed() <-chan struct{} {
	if c.cfg.Master == nil {
		return nil
	}
	return c.cfg.Master.Changed()
}

type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }

func (c *Session) send(ctx context.Context, in Event) bool {
	select {
	case c.events <- in:
		return true
	case <-ctx.Done():
		return false
	}
}

// session is one subscription: subscribe, then pump events until the
// stream fails, heartbeats stop, or the leader changes.
func (c *Session) session(ctx context.Context) error {
	leader, err := c.cfg.Master.Leader(ctx)
	if err != nil {
		return fmt.Errorf("cannot find the leading Mesos master: %w", err)
	}
	// The leader as the source names it: a change signal that still names
	// it (a ZooKeeper detector signals its first find too) is no change.
	found := leader
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		caller calls.Caller
		resp   mesos.Response
	)
	leader = c.resolveLeader(sctx, leader)
	var registered string // a framework ID a redirected SUBSCRIBE just registered
	for hop := 0; ; hop++ {
		var answered func() string
		caller, answered = c.newCaller(leader)
		info := c.cfg.Info()
		if info.ID == nil && registered != "" {
			info.ID = &mesos.FrameworkID{Value: registered}
		}
		if info.ID == nil {
			// About to mint a new framework ID: make sure no framework of
			// ours is alive on this master (our stored ID may have been lost).
			if err := c.checkNoLiveFramework(sctx, leader); err != nil {
				return err
			}
		}
		resp, err = caller.Call(sctx, calls.Subscribe(info))
		if err != nil {
			return fmt.Errorf("cannot subscribe to %s: %w", leader, describeCallError(err))
		}
		at := answered()
		if at == "" || sameHost(at, leader) || hop >= 3 {
			break
		}
		// Redirected anyway (the leader changed meanwhile): subscribe to
		// the leader itself, so every later call goes there too. A new
		// framework was registered by the redirected SUBSCRIBE: keep its ID.
		if info.ID == nil {
			registered = c.forwardSubscribed(sctx, resp, leader)
		}
		resp.Close()
		c.log.Info("master redirected to the leader", "from", leader, "leader", at)
		leader = at
	}
	defer resp.Close()
	c.setCaller(caller, leader)

	// The watchdog closes the stream when nothing (not even a heartbeat)
	// arrives for MissedHeartbeats intervals: a half-open TCP connection
	// would otherwise block Decode forever.
	var (
		mu       sync.Mutex
		interval = c.cfg.HeartbeatFallback
		last     = time.Now()
		quiet    = make(chan struct{})
	)
	tick := min(interval/4, time.Second)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-c.changed():
				if now, err := c.cfg.Master.Leader(sctx); err == nil && now == found {
					continue
				}
				cancel()
				return
			case <-t.C:
				mu.Lock()
				silent := time.Since(last) > time.Duration(c.cfg.MissedHeartbeats)*interval
				mu.Unlock()
				if silent {
					close(quiet)
					cancel()
					return
				}
			}
		}
	}()

	for {
		var ev scheduler.Event
		if err := resp.Decode(&ev); err != nil {
			select {
			case <-quiet:
				return fmt.Errorf("no heartbeat from %s for %d intervals; the connection is presumed dead", leader, c.cfg.MissedHeartbeats)
			default:
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("master %s closed the event stream", leader)
			}
			if sctx.Err() != nil && ctx.Err() == nil {
				return fmt.Errorf("leading master changed (was %s)", leader)
			}
			return fmt.Errorf("event stream from %s broke: %w", leader, err)
		}
		mu.Lock()
		last = time.Now()
		if ev.Type == scheduler.Event_SUBSCRIBED && ev.Subscribed.HeartbeatIntervalSeconds != nil {
			if hb := time.Duration(*ev.Subscribed.HeartbeatIntervalSeconds * float64(time.Second)); hb > 0 {
				interval = hb
			}
		}
		mu.Unlock()
		switch ev.Type {
		case scheduler.Event_HEARTBEAT:
			continue
		case scheduler.Event_ERROR:
			msg := ev.GetError().GetMessage()
			// "Framework has been removed": the ID is dead for good; a
			// new one would orphan nothing but must be a deliberate act.
			if strings.Contains(msg, "removed") || strings.Contains(msg, "torn down") {
				return &fatalError{fmt.Errorf("mesos master says: %s; the framework ID is no longer usable (see docs/operations.md, 'framework ID lost')", msg)}
			}
			// A subscription the master refuses for what we sent (a changed
			// principal, roles it will not take) fails the same way every
			// time: retrying would loop for ever.
			if strings.Contains(msg, "is not allowed") || strings.Contains(msg, "is not contained in the list of roles") || strings.Contains(msg, "is not valid") {
				return &fatalError{fmt.Errorf("mesos master refused the subscription: %s; start the scheduler with the framework settings it was registered with (e.g. the same --mesos_authentication_principal), see docs/operations.md", msg)}
			}
			return fmt.Errorf("mesos master sent ERROR: %s", msg)
		}
		e := ev
		if !c.send(ctx, Received{Event: &e, Leader: leader}) {
			return ctx.Err()
		}
	}
}

// resolveLeader asks a master which master leads (GET /master/redirect
// answers 307 to the leader, itself included) so that the subscription and
// every call go straight to it. Any other answer keeps the given URL.
func (c *Session) resolveLeader(ctx context.Context, master string) string {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(master, "/")+"/master/redirect", nil)
	if err != nil {
		return master
	}
	cl := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: c.cfg.TLS.Clone()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return master
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		return master
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host == "" {
		return master
	}
	return req.URL.Scheme + "://" + loc.Host
}

// forwardSubscribed reads a stream up to its SUBSCRIBED event and hands it
// to the loop, which stores the new framework ID; it returns the ID, so
// the next SUBSCRIBE carries it whether or not the loop has stored it yet.
func (c *Session) forwardSubscribed(ctx context.Context, resp mesos.Response, leader string) string {
	for i := 0; i < 16; i++ {
		var ev scheduler.Event
		if err := resp.Decode(&ev); err != nil {
			return ""
		}
		if ev.Type == scheduler.Event_SUBSCRIBED {
			c.send(ctx, Received{Event: &ev, Leader: leader})
			return ev.Subscribed.FrameworkID.Value
		}
	}
	return ""
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host == ub.Host
}

// describeCallError adds what an operator should check to common failures.
func describeCallError(err error) error {
	s := err.Error()
	switch {
	case strings.Contains(s, "401"), strings.Contains(strings.ToLower(s), "unauthorized"):
		return fmt.Errorf("%w (check --mesos_authentication_principal and the secret file)", err)
	case strings.Contains(s, "connection refused"):
		return fmt.Errorf("%w (is the master running, and is --master right?)", err)
	}
	return err
}

// checkNoLiveFramework refuses to register a new framework while the master
// knows a live one of the same name: its tasks would be orphaned and every
// service would run twice (docs/reliability.md F14). Only an answer from the master
// counts; if it cannot be asked, the subscription is retried later.
func (c *Session) checkNoLiveFramework(ctx context.Context, leader string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	// A master that does not lead answers 307 to the one that does (host
	// only, scheme-relative); follow it to the leader's /state.
	cl := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: c.cfg.TLS.Clone()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer cl.CloseIdleConnections()
	base := strings.TrimRight(leader, "/")
	var resp *http.Response
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/state", nil)
		if err != nil {
			return err
		}
		if c.cfg.Principal != "" {
			req.SetBasicAuth(c.cfg.Principal, c.cfg.Secret)
		}
		resp, err = cl.Do(req)
		if err != nil {
			return fmt.Errorf("cannot ask master %s which frameworks run before registering: %w", leader, err)
		}
		if resp.StatusCode != http.StatusTemporaryRedirect || hop >= 3 {
			break
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		resp.Body.Close()
		if err != nil || loc.Host == "" {
			return fmt.Errorf("master %s redirected to an unusable location %q", leader, resp.Header.Get("Location"))
		}
		base = req.URL.Scheme + "://" + loc.Host
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot ask master %s which frameworks run before registering: GET /state: %s", leader, resp.Status)
	}
	var st struct {
		Frameworks []struct {
			ID     string            `json:"id"`
			Name   string            `json:"name"`
			Active bool              `json:"active"`
			Tasks  []json.RawMessage `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&st); err != nil {
		return fmt.Errorf("cannot read master %s's /state: %w", leader, err)
	}
	for _, f := range st.Frameworks {
		if f.Name == c.cfg.FrameworkName {
			return &fatalError{fmt.Errorf("the state store has no framework ID, but master %s has a framework %q named %q (active %v, %d tasks); "+
				"registering anew would orphan its tasks and run every service twice. Recover: restore that ID into the state "+
				"(tiltai scheduler --framework_id %s), or tear it down on purpose (curl -X POST -d frameworkId=%s %s/teardown) "+
				"and start again; see docs/operations.md", leader, f.ID, f.Name, f.Active, len(f.Tasks), f.ID, f.ID, strings.TrimRight(leader, "/"))}
		}
	}
	return nil
}
