package zkha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound: the key does not exist. Only returned when ZooKeeper
	// answered; never for a read that could not be made.
	ErrNotFound = errors.New("key does not exist")
	// ErrUnavailable: ZooKeeper could not be asked or did not answer (no
	// session, connection lost, not authorised). For a write the outcome is
	// unknown: read the key again before deciding anything.
	ErrUnavailable = errors.New("zookeeper is unavailable")
	// ErrConflict: a conditional write lost, the key's version is not the one
	// given (or the key exists when it should not).
	ErrConflict = errors.New("version conflict")
	// ErrNotLeader: the write was refused because this process is not, or no
	// longer, the leader; ZooKeeper checked the election node in the same
	// transaction.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: nobody holds the leadership right now.
	ErrNoLeader = errors.New("no leader is elected")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("zookeeper client closed")

	// Why a Leadership ended; Leadership.Err wraps ErrNotLeader and one of
	// these.
	ErrSessionExpired = errors.New("zookeeper session expired")
	ErrConnectionLost = errors.New("connection to zookeeper lost")
	ErrResigned       = errors.New("resigned")
	ErrNodeDeleted    = errors.New("election node was deleted")
)

// DefaultSessionTimeout is what Mesos and Marathon ask ZooKeeper for. The
// server clamps it to its own [minSessionTimeout, maxSessionTimeout].
const DefaultSessionTimeout = 10 * time.Second

// Config configures a Client.
type Config struct {
	URL URL
	// SessionTimeout asked of ZooKeeper; zero means DefaultSessionTimeout.
	SessionTimeout time.Duration
	// DisconnectGrace is how long a leader keeps its leadership while the
	// connection to ZooKeeper is down. Zero (the default) gives it up at
	// once: a leader that cannot hear from ZooKeeper cannot know whether its
	// session still lives, and by the time a silent partition is noticed
	// the server may already have expired it. A grace rides out a quick
	// reconnect (a ZooKeeper server restart in an ensemble) at the price of
	// a window in which two processes may both believe they lead; writes are
	// still fenced. It must be below a third of SessionTimeout.
	DisconnectGrace time.Duration
	Logger          *slog.Logger
}

// Validate lists every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.URL.Servers) == 0 {
		errs = append(errs, errors.New("no ZooKeeper servers given (--zk zk://host:port/path)"))
	}
	if c.URL.Path == "" || c.URL.Path == "/" || !strings.HasPrefix(c.URL.Path, "/") {
		errs = append(errs, fmt.Errorf("the ZooKeeper path %q must be absolute and below the root", c.URL.Path))
	}
	timeout := c.sessionTimeout()
	if timeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("session timeout %v is too short", timeout))
	}
	if c.DisconnectGrace < 0 || c.DisconnectGrace >= timeout/3 {
		errs = append(errs, fmt.Errorf("disconnect grace %v must be at least 0 and below a third of the session timeout %v",
			c.DisconnectGrace, timeout))
	}
	return errors.Join(errs...)
}

func (c Config) sessionTimeout() time.Duration {
	if c.SessionTimeout == 0 {
		return DefaultSessionTimeout
	}
	return c.SessionTimeout
}

// sessionState is what the client knows of its ZooKeeper session. It is
// written only from go-zookeeper's event callback, which runs on that
// library's single connection goroutine, and read as snapshots.
type sessionState struct {
	connected bool  // a live connection carrying a session
	sessionID int64 // 0 before the first session and after an expiry
	closed    bool
}

// Client is one ZooKeeper session shared by the election and the store. Its
// methods are safe for concurrent use.
type Client struct {
	cfg     Config
	log     *slog.Logger
	conn    *zk.Conn
	acl     []zk.ACL
	closing chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	st      sessionState
	changed chan struct{} // closed and replaced on every change of st

	connSet chan struct{} // closed once conn is assigned

	baseMu    sync.Mutex
	authed    bool
	baseReady bool

	closeOnce sync.Once
}

// New starts a session with the ensemble in cfg.URL. It does not wait for
// the session: ZooKeeper may be down at start, and every method waits or
// answers ErrUnavailable until it is back. Close releases it.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot use ZooKeeper %s: %w", cfg.URL, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("zk", cfg.URL.String())
	c := &Client{
		cfg:     cfg,
		log:     log,
		closing: make(chan struct{}),
		changed: make(chan struct{}),
		connSet: make(chan struct{}),
		acl:     zk.WorldACL(zk.PermAll),
	}
	if cfg.URL.Username != "" {
		// Every znode we create is then readable and writable only by these
		// credentials (ZooKeeper's "auth" scheme: the creator's identity).
		c.acl = zk.AuthACL(zk.PermAll)
	}
	conn, _, err := zk.Connect(cfg.URL.Servers, cfg.sessionTimeout(),
		zk.WithLogger(zkLogger{log}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(c.onEvent),
		// Refuse answers larger than the server could ever send by default,
		// so a corrupt stream cannot make us allocate without bound.
		zk.WithMaxBufferSize(maxPacket))
	if err != nil {
		close(c.connSet)
		return nil, fmt.Errorf("cannot connect to ZooKeeper %s: %w", cfg.URL, err)
	}
	c.conn = conn
	close(c.connSet)
	return c, nil
}

// maxPacket bounds one ZooKeeper reply; the server's own default limit
// (jute.maxbuffer) is just under 1 MiB, and a children list may be larger.
const maxPacket = 4 << 20

// Close ends the session (its ephemeral nodes, and so any leadership, go at
// once) and waits for every goroutine the client started. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.conn.Close()
		c.mu.Lock()
		c.st.closed = true
		c.st.connected = false
		c.broadcastLocked()
		c.mu.Unlock()
	})
	c.wg.Wait()
	return nil
}

// onEvent follows the session. It runs on go-zookeeper's connection goroutine
// and must not block or call back into the connection.
func (c *Client) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	// The library may report the first session before Connect has returned
	// the connection to us; New assigns it right after, so this wait is
	// momentary.
	<-c.connSet
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.closed {
		return
	}
	prev := c.st
	switch ev.State {
	case zk.StateHasSession:
		c.st.connected = true
		c.st.sessionID = c.conn.SessionID()
	case zk.StateExpired:
		c.st.connected = false
		c.st.sessionID = 0
		c.log.Warn("zookeeper session expired")
	case zk.StateAuthFailed:
		c.st.connected = false
		c.log.Error("zookeeper refused our credentials", "server", ev.Server)
	case zk.StateDisconnected, zk.StateConnecting, zk.StateConnected:
		// StateConnected is a TCP connection still without a session.
		c.st.connected = false
	default:
		return
	}
	if prev != c.st {
		if c.st.connected && !prev.connected {
			c.log.Info("zookeeper session up", "session_id", fmt.Sprintf("0x%x", c.st.sessionID), "server", ev.Server)
		} else if !c.st.connected && prev.connected {
			c.log.Warn("zookeeper connection lost", "server", ev.Server)
		}
		c.broadcastLocked()
	}
}

func (c *Client) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// state returns the current session state and a channel closed at its next
// change.
func (c *Client) state() (sessionState, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st, c.changed
}

// Connected reports whether the client has a live session right now.
func (c *Client) Connected() bool {
	st, _ := c.state()
	return st.connected
}

// waitConnected blocks until there is a session, ctx ends or the client
// closes.
func (c *Client) waitConnected(ctx context.Context) error {
	for {
		st, changed := c.state()
		switch {
		case st.closed:
			return ErrClosed
		case st.connected:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: no session: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// call runs one ZooKeeper request so that ctx can abandon it. The request
// itself cannot be cancelled: it ends when ZooKeeper answers or the
// connection fails (Close flushes it), and Close waits for it.
func (c *Client) call(ctx context.Context, fn func() error) error {
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	done := make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: no answer (the request may still take effect): %w", ErrUnavailable, ctx.Err())
	}
}

// classify maps go-zookeeper's errors onto ours, keeping the original text.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed), errors.Is(err, ErrNotLeader),
		errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists):
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return fmt.Errorf("%w: not authorised; check the user:password in --zk (%w)", ErrUnavailable, err)
	case errors.Is(err, zk.ErrClosing):
		return ErrClosed
	default:
		// Connection closed, no server, session expired or moved, and the
		// rest: ZooKeeper did not give an answer we can act on.
		return fmt.Errorf("%w (%w)", ErrUnavailable, err)
	}
}

// prepare waits for a session, then, once per client, authenticates and
// creates the chroot and its two children. Creating an existing node is not
// an error. Credentials are added only with a live session because
// go-zookeeper forgets them when AddAuth fails (ZooKeeper down at start); once
// added, it sends them again on every reconnect before any other request.
func (c *Client) prepare(ctx context.Context) error {
	if err := c.waitConnected(ctx); err != nil {
		return err
	}
	c.baseMu.Lock()
	defer c.baseMu.Unlock()
	if !c.authed && c.cfg.URL.Username != "" {
		err := c.call(ctx, func() error {
			return c.conn.AddAuth("digest", []byte(c.cfg.URL.Username+":"+c.cfg.URL.Password))
		})
		if err != nil {
			return fmt.Errorf("cannot authenticate to ZooKeeper as %q: %w", c.cfg.URL.Username, classify(err))
		}
	}
	c.authed = true
	if c.baseReady {
		return nil
	}
	for _, p := range append(parents(c.cfg.URL.Path), c.cfg.URL.Path, c.electionDir(), c.stateDir()) {
		err := c.call(ctx, func() error {
			_, err := c.conn.Create(p, nil, 0, c.acl)
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("cannot create %s in ZooKeeper: %w", p, classify(err))
		}
	}
	c.baseReady = true
	return nil
}

// parents lists the ancestors of an absolute path, root excluded, outermost
// first: "/a/b/c" → ["/a", "/a/b"].
func parents(p string) []string {
	var out []string
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

func (c *Client) electionDir() string { return c.cfg.URL.Path + "/leader" }
func (c *Client) stateDir() string    { return c.cfg.URL.Path + "/state" }

// zkLogger sends go-zookeeper's own log lines to slog at debug level; the
// client reports what matters (session up, lost, expired) itself.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("go-zookeeper", "detail", fmt.Sprintf(format, args...))
}
