package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tiltai/tiltai/internal/backoff"
)

// ClientConfig configures the service's end of the control socket.
type ClientConfig struct {
	// Addr is the TILTAI_CONTROL value, unix:///abs/path.
	Addr    string
	TaskID  string
	Service string
	Logger  *slog.Logger
	// Status returns the heartbeat content; it is called from the client's
	// goroutine once per heartbeat interval and must not block.
	Status func() Status
	// WriteTimeout bounds one write to the executor. Default 5s.
	WriteTimeout time.Duration
}

// Client is a service's connection to its executor. It connects in the
// background and reconnects with backoff for as long as it lives, re-sending
// hello and its current state (gates, ready, applied, drained) each time.
// Snapshots arrive in version order, each at most once; a newer one replaces
// an older one that has not been taken yet.
type Client struct {
	cfg       ClientConfig
	log       *slog.Logger
	path      string
	snapshots chan Snapshot
	drains    chan Drain
	updates   chan func(*clientState)
	reports   chan chan bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	once      sync.Once
}

type clientState struct {
	gates    []GateInfo
	ready    bool
	applied  uint64
	rejected *Message
	drained  bool
	dirty    map[string]bool // message types to (re)send on the current connection
}

// NewClient starts a client for cfg.Addr. It fails only on a malformed
// address; an absent executor is retried.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	path, err := ControlPath(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot start control client: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Status == nil {
		cfg.Status = func() Status { return Status{} }
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{
		cfg: cfg, log: cfg.Logger, path: path,
		snapshots: make(chan Snapshot, 1), drains: make(chan Drain, 1),
		updates: make(chan func(*clientState)), reports: make(chan chan bool), ctx: ctx, cancel: cancel,
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// Snapshots delivers link snapshots, newest wins, each version at most once
// and never an older one after a newer.
func (c *Client) Snapshots() <-chan Snapshot { return c.snapshots }

// Drain is the executor's drain request.
type Drain struct {
	// Timeout is the time granted to drain the in-gates (0: choose your own).
	Timeout time.Duration
	// StopBy is when the executor sends SIGTERM (zero: not said): the
	// service should have closed its out-gates and reported by then.
	StopBy time.Time
}

// Drains delivers the executor's drain requests.
func (c *Client) Drains() <-chan Drain { return c.drains }

// SetGates tells the executor which gates are open (and where in-gates bound).
func (c *Client) SetGates(g []GateInfo) {
	g = slices.Clone(g)
	c.update(func(s *clientState) { s.gates = g; s.dirty[TypeGates] = true })
}

// Ready tells the executor that every in-gate is bound.
func (c *Client) Ready() {
	c.update(func(s *clientState) { s.ready = true; s.dirty[TypeReady] = true })
}

// Applied tells the executor that snapshot version v is applied.
func (c *Client) Applied(v uint64) {
	c.update(func(s *clientState) {
		if v > s.applied {
			s.applied = v
			s.dirty[TypeApplied] = true
		}
	})
}

// Rejected tells the executor that snapshot version v cannot be applied.
func (c *Client) Rejected(v uint64, err error) {
	c.update(func(s *clientState) {
		s.rejected = &Message{Type: TypeRejected, Version: v, Error: err.Error()}
		s.dirty[TypeRejected] = true
	})
}

// Drained tells the executor that the service has drained its in-gates.
func (c *Client) Drained() {
	c.update(func(s *clientState) { s.drained = true; s.dirty[TypeDrained] = true })
}

func (c *Client) update(f func(*clientState)) {
	select {
	case c.updates <- f:
	case <-c.ctx.Done():
	}
}

// Report sends a status now, after any state not yet sent (drained), and
// returns whether it was written: the service's last words before it closes
// the connection, so that the executor has its final counters. It returns
// false at once when not connected, or when ctx ends.
func (c *Client) Report(ctx context.Context) bool {
	done := make(chan bool, 1)
	select {
	case c.reports <- done:
	case <-c.ctx.Done():
		return false
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-done:
		return ok
	case <-ctx.Done():
		return false
	}
}

// Close disconnects and waits for the client's goroutines. Idempotent.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

type clientIn struct {
	conn net.Conn
	msg  Message
	err  error
}

// redialRetry spaces out reconnections: the n-th after n failed dials waits
// 20ms doubling to 2s.
var redialRetry = backoff.Policy{Initial: 20 * time.Millisecond, Max: 2 * time.Second, Factor: 2}

func (c *Client) run() {
	defer c.wg.Done()
	var (
		st        = clientState{dirty: map[string]bool{}}
		conn      net.Conn
		in        = make(chan clientIn)
		lastSnap  uint64
		beat      = time.Second
		ticker    = time.NewTicker(beat)
		seq       uint64
		redial    = time.NewTimer(0)
		dialFails int
	)
	defer ticker.Stop()
	defer redial.Stop()
	drop := func(why string, err error) {
		if conn == nil {
			return
		}
		c.log.Warn("control connection lost; reconnecting", "reason", why, "error", err)
		conn.Close()
		conn = nil
		redial.Reset(redialRetry.Envelope(dialFails))
	}
	send := func(m Message) bool {
		if conn == nil {
			return false
		}
		b, err := Encode(m)
		if err == nil {
			conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			_, err = conn.Write(b)
		}
		if err != nil {
			drop("write "+m.Type, err)
			return false
		}
		return true
	}
	flush := func() {
		for _, t := range []string{TypeGates, TypeReady, TypeApplied, TypeRejected, TypeDrained} {
			if !st.dirty[t] || conn == nil {
				continue
			}
			var ok bool
			switch t {
			case TypeGates:
				ok = send(Message{Type: TypeGates, Gates: st.gates})
			case TypeReady:
				ok = send(Message{Type: TypeReady})
			case TypeApplied:
				ok = send(Message{Type: TypeApplied, Version: st.applied})
			case TypeRejected:
				ok = send(*st.rejected)
			case TypeDrained:
				ok = send(Message{Type: TypeDrained})
			}
			if ok {
				delete(st.dirty, t)
			}
		}
	}
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-redial.C:
			d := net.Dialer{Timeout: 2 * time.Second}
			nc, err := d.DialContext(c.ctx, "unix", c.path)
			if err != nil {
				dialFails++
				if dialFails == 1 || dialFails%50 == 0 {
					c.log.Warn("cannot connect to the executor's control socket; retrying", "path", c.path, "attempts", dialFails, "error", err)
				}
				redial.Reset(redialRetry.Envelope(dialFails))
				continue
			}
			dialFails, conn = 0, nc
			c.wg.Add(1)
			go c.read(nc, in)
			hello := Message{Type: TypeHello, Protocol: ProtocolVersion, TaskID: c.cfg.TaskID, Service: c.cfg.Service, PID: os.Getpid(), Gates: st.gates}
			if send(hello) {
				// Everything the executor knew died with the old connection.
				st.dirty[TypeReady] = st.ready
				st.dirty[TypeApplied] = st.applied > 0
				st.dirty[TypeRejected] = st.rejected != nil
				st.dirty[TypeDrained] = st.drained
				flush()
			}
		case f := <-c.updates:
			f(&st)
			flush()
		case m := <-in:
			if m.conn != conn {
				continue
			}
			if m.err != nil {
				if !isEOF(m.err) {
					send(Message{Type: TypeError, Error: m.err.Error()})
				}
				drop("read", m.err)
				continue
			}
			switch m.msg.Type {
			case TypeWelcome:
				if m.msg.HeartbeatMS > 0 {
					beat = max(durationMS(m.msg.HeartbeatMS), 10*time.Millisecond)
					ticker.Reset(beat)
				}
			case TypeSnapshot:
				s := *m.msg.Snapshot
				if s.Version <= lastSnap {
					// Already delivered (a resend after reconnect): acknowledge again.
					if st.applied >= s.Version {
						send(Message{Type: TypeApplied, Version: st.applied})
					}
					continue
				}
				lastSnap = s.Version
				select {
				case <-c.snapshots: // replaced by the newer one
				default:
				}
				c.snapshots <- s
			case TypeDrain:
				select {
				case <-c.drains:
				default:
				}
				d := Drain{Timeout: durationMS(m.msg.TimeoutMS)}
				if m.msg.StopMS > 0 {
					d.StopBy = time.Now().Add(durationMS(m.msg.StopMS))
				}
				c.drains <- d
			case TypeError:
				c.log.Warn("executor reported a control error", "error", m.msg.Error)
			default:
				c.log.Debug("ignoring control message not meant for the service", "type", m.msg.Type)
			}
		case <-ticker.C:
			if conn == nil {
				continue
			}
			s := c.cfg.Status()
			seq++
			s.Seq = seq
			send(Message{Type: TypeStatus, Status: &s})
		case done := <-c.reports:
			flush()
			ok := false
			if conn != nil {
				s := c.cfg.Status()
				seq++
				s.Seq = seq
				ok = send(Message{Type: TypeStatus, Status: &s})
			}
			done <- ok
		}
	}
}

func (c *Client) read(nc net.Conn, out chan<- clientIn) {
	defer c.wg.Done()
	r := NewReader(nc)
	for {
		m, err := r.Next()
		if errors.Is(err, ErrUnknownType) {
			continue
		}
		select {
		case out <- clientIn{conn: nc, msg: m, err: err}:
		case <-c.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}
