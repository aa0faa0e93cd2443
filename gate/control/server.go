package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ServerConfig configures the executor's end of the control socket.
type ServerConfig struct {
	Logger *slog.Logger
	// HeartbeatInterval is how often the service must send a status message
	// (told to it in welcome). Default 1s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long without a status message before the service
	// is considered not alive. Default 5 × HeartbeatInterval.
	HeartbeatTimeout time.Duration
	// WriteTimeout bounds one write to the service. Default 5s.
	WriteTimeout time.Duration
	// Gates are the gates the service was given (its TILTAI_GATE_*
	// variables). With CheckGates, a hello or gates message that declares
	// any other gate, another direction or pattern, or an in-gate bound
	// elsewhere than assigned is a false claim (State.Violation).
	Gates      []GateSpec
	CheckGates bool
}

// Hello is what a service said about itself when it connected.
type Hello struct {
	Protocol int
	TaskID   string
	Service  string
	PID      int
}

// State is what the executor knows about its service, as of one moment. The
// server publishes a new State after every change; values are never mutated
// after publication.
type State struct {
	Connected   bool  // a service connection is open and said hello
	Connections int   // connections accepted so far (reconnects count)
	Hello       Hello // from the latest hello
	Gates       []GateInfo
	Ready       bool   // all the service's in-gates are bound
	Pushed      uint64 // latest snapshot version handed to Push
	Applied     uint64 // latest version the service reports applied
	Rejected    uint64 // latest version the service rejected, with RejectErr
	RejectErr   string
	Status      *Status   // latest heartbeat, nil before the first
	LastBeat    time.Time // when it arrived
	Alive       bool      // connected and a heartbeat arrived within HeartbeatTimeout
	Draining    bool      // Drain was called
	Drained     bool      // the service reported drained
	LastError   string    // the latest protocol error, if any
	ProtoErrors int       // protocol errors so far (each drops the connection)
	// Violation is the first false claim the service made: a hello or gates
	// message that contradicts the gates it was given, or an applied
	// version never sent to it or older than one already applied. It is
	// also a protocol error; it is never cleared, and a false claim never
	// changes Applied, Gates or Ready.
	Violation string
}

// ErrStaleVersion is returned by Push for a version not above the last one.
var ErrStaleVersion = errors.New("snapshot version not above the last pushed")

// ErrServerClosed is returned by calls on a closed Server.
var ErrServerClosed = errors.New("control server closed")

type published struct {
	st      State
	changed chan struct{}
}

type inbound struct {
	conn net.Conn
	msg  Message
	err  error
}

type pushReq struct {
	snap  Snapshot
	reply chan error
}

// Server is the executor's end of a service's control socket: it accepts the
// service's connection (one at a time; a new one replaces the old), sends it
// snapshots and drain requests, and tracks hello, readiness, applied versions,
// heartbeats and drained. One goroutine (run) owns all state.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	path string
	ln   net.Listener

	cur     atomic.Pointer[published]
	conns   chan net.Conn
	in      chan inbound
	pushes  chan pushReq
	drains  chan drainReq
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

// Listen creates the unix socket at path (mode 0600; a stale socket file there
// is replaced, any other file is an error) and starts serving it.
func Listen(ctx context.Context, path string, cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 5 * cfg.HeartbeatInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("cannot listen on control socket %s: a non-socket file is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("cannot remove stale control socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot restrict control socket %s to its owner: %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{
		cfg: cfg, log: cfg.Logger, path: path, ln: ln,
		conns: make(chan net.Conn), in: make(chan inbound),
		pushes: make(chan pushReq), drains: make(chan drainReq),
		ctx: ctx, cancel: cancel,
	}
	s.cur.Store(&published{changed: make(chan struct{})})
	s.wg.Add(2)
	go s.accept()
	go s.run()
	return s, nil
}

// Addr returns the value for TILTAI_CONTROL.
func (s *Server) Addr() string { return ControlAddr(s.path) }

// State returns the current state.
func (s *Server) State() State { return s.cur.Load().st }

// Wait blocks until cond holds for the state (checked now and after every
// change) and returns that state, or returns ctx's error.
func (s *Server) Wait(ctx context.Context, cond func(State) bool) (State, error) {
	for {
		p := s.cur.Load()
		if cond(p.st) {
			return p.st, nil
		}
		select {
		case <-p.changed:
		case <-ctx.Done():
			return p.st, fmt.Errorf("waiting on the service's control socket: %w", ctx.Err())
		case <-s.ctx.Done():
			return p.st, ErrServerClosed
		}
	}
}

// WaitReady waits until the service has said hello and bound all its in-gates.
func (s *Server) WaitReady(ctx context.Context) (State, error) {
	return s.Wait(ctx, func(st State) bool { return st.Connected && st.Ready })
}

// WaitApplied waits until the service reports version v (or a later one)
// applied, or rejects v.
func (s *Server) WaitApplied(ctx context.Context, v uint64) (State, error) {
	st, err := s.Wait(ctx, func(st State) bool { return st.Applied >= v || st.Rejected >= v })
	if err == nil && st.Applied < v {
		return st, fmt.Errorf("service rejected link snapshot version %d: %s", st.Rejected, st.RejectErr)
	}
	return st, err
}

// Push hands snapshot snap to the service: now if it is connected, and again
// on every reconnection until a newer one is pushed. Versions must increase.
func (s *Server) Push(snap Snapshot) error {
	if err := snap.Validate(); err != nil {
		return fmt.Errorf("cannot push link snapshot: %w", err)
	}
	r := pushReq{snap: snap, reply: make(chan error, 1)}
	select {
	case s.pushes <- r:
		return <-r.reply
	case <-s.ctx.Done():
		return ErrServerClosed
	}
}

// Drain asks the service to drain its in-gates, giving it timeout (0: the
// service's default) to do so, and waits until it reports drained or ctx ends.
// The request is repeated if the service reconnects.
func (s *Server) Drain(ctx context.Context, timeout time.Duration) error {
	return s.DrainStop(ctx, timeout, 0)
}

// drainReq is a drain request: its timeout, and when the executor will send
// SIGTERM (zero: not said).
type drainReq struct {
	timeout time.Duration
	stopAt  time.Time
}

// DrainStop is Drain that also tells the service how long it has, from now,
// until it is sent SIGTERM (stop_ms; 0: not said): the deadline by which it
// should have closed its out-gates, counted what they could not deliver and
// reported it. A repeat after a reconnect gives the time that is left.
func (s *Server) DrainStop(ctx context.Context, timeout, stop time.Duration) error {
	r := drainReq{timeout: timeout}
	if stop > 0 {
		r.stopAt = time.Now().Add(stop)
	}
	select {
	case s.drains <- r:
	case <-s.ctx.Done():
		return ErrServerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := s.Wait(ctx, func(st State) bool { return st.Drained })
	return err
}

// Close stops serving, closes the connection and removes the socket file. It
// is idempotent and waits for every goroutine the server started.
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.cancel()
		s.ln.Close()
		s.wg.Wait()
		os.Remove(s.path)
	})
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("control socket accept failed", "error", err)
			select {
			case <-time.After(50 * time.Millisecond): // avoid a hot loop on EMFILE
			case <-s.ctx.Done():
				return
			}
			continue
		}
		select {
		case s.conns <- c:
		case <-s.ctx.Done():
			c.Close()
			return
		}
	}
}

// read forwards decoded messages of one connection to run, ending with an
// error (EOF or protocol).
func (s *Server) read(c net.Conn) {
	defer s.wg.Done()
	r := NewReader(c)
	for {
		m, err := r.Next()
		if errors.Is(err, ErrUnknownType) {
			s.log.Debug("ignoring unknown control message", "error", err)
			continue
		}
		select {
		case s.in <- inbound{conn: c, msg: m, err: err}:
		case <-s.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) run() {
	defer s.wg.Done()
	var (
		st       State
		conn     net.Conn
		helloed  bool
		snap     *Snapshot
		drain    drainReq
		drainMsg = func() Message {
			m := Message{Type: TypeDrain, TimeoutMS: drain.timeout.Milliseconds()}
			if !drain.stopAt.IsZero() {
				// At least 1: 0 would mean "not said".
				m.StopMS = max(time.Until(drain.stopAt).Milliseconds(), 1)
			}
			return m
		}
		book      ledger
		tick      = time.NewTicker(s.cfg.HeartbeatInterval / 2)
		publish   = func() { s.publish(st) }
		closeConn = func() {
			if conn != nil {
				conn.Close()
				conn = nil
			}
			helloed = false
			st.Connected, st.Alive = false, false
		}
		send = func(m Message) {
			if conn == nil {
				return
			}
			b, err := Encode(m)
			if err == nil {
				conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
				_, err = conn.Write(b)
			}
			if err != nil {
				s.log.Warn("cannot write to the service's control socket; dropping the connection", "type", m.Type, "error", err)
				closeConn()
				return
			}
			if m.Type == TypeSnapshot {
				book.wrote(m.Snapshot.Version)
			}
		}
		// refuse answers a protocol error and drops the connection; a false
		// claim is also remembered as the service's violation.
		refuse = func(err error, claim bool) {
			st.LastError, st.ProtoErrors = err.Error(), st.ProtoErrors+1
			if claim && st.Violation == "" {
				st.Violation = err.Error()
			}
			s.log.Warn("control protocol error; dropping the connection", "error", err, "false_claim", claim)
			send(Message{Type: TypeError, Error: err.Error()})
			closeConn()
		}
		checkGates = func(m Message) error {
			if !s.cfg.CheckGates {
				return nil
			}
			return checkGates(m.Type, s.cfg.Gates, m.Gates)
		}
	)
	defer tick.Stop()
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case c := <-s.conns:
			if conn != nil {
				s.log.Info("service reconnected to control socket; closing the old connection")
			}
			closeConn()
			conn = c
			st.Connections++
			s.wg.Add(1)
			go s.read(c)
			publish()
		case in := <-s.in:
			if in.conn != conn {
				in.conn.Close() // a replaced connection's leftovers
				continue
			}
			if in.err != nil {
				if isEOF(in.err) {
					closeConn()
				} else {
					refuse(in.err, false)
				}
				publish()
				continue
			}
			m := in.msg
			if !helloed && m.Type != TypeHello {
				refuse(fmt.Errorf("first control message must be hello, got %s", m.Type), false)
				publish()
				continue
			}
			switch m.Type {
			case TypeHello:
				if m.Protocol != ProtocolVersion {
					refuse(fmt.Errorf("hello.protocol %d: not supported (this executor speaks %d)", m.Protocol, ProtocolVersion), false)
					break
				}
				if err := checkGates(m); err != nil {
					refuse(err, true)
					break
				}
				helloed = true
				st.Connected, st.Alive, st.LastBeat = true, true, time.Now()
				st.Hello = Hello{Protocol: m.Protocol, TaskID: m.TaskID, Service: m.Service, PID: m.PID}
				st.Gates = slices.Clone(m.Gates)
				st.Ready, st.Drained = false, false
				s.log.Info("service said hello on control socket", "task_id", m.TaskID, "service", m.Service, "pid", m.PID)
				send(Message{Type: TypeWelcome, Protocol: ProtocolVersion, HeartbeatMS: s.cfg.HeartbeatInterval.Milliseconds()})
				if snap != nil {
					send(Message{Type: TypeSnapshot, Snapshot: snap})
				}
				if st.Draining {
					send(drainMsg())
				}
			case TypeGates:
				if err := checkGates(m); err != nil {
					refuse(err, true)
					break
				}
				st.Gates = slices.Clone(m.Gates)
			case TypeReady:
				st.Ready = true
			case TypeApplied:
				if err := book.apply("applied.version", m.Version, false); err != nil {
					refuse(err, true)
					break
				}
				st.Applied = book.applied
			case TypeRejected:
				st.Rejected, st.RejectErr = max(st.Rejected, m.Version), m.Error
				s.log.Warn("service rejected link snapshot", "version", m.Version, "error", m.Error)
			case TypeStatus:
				if m.Status.Applied != 0 {
					if err := book.apply("status.applied", m.Status.Applied, true); err != nil {
						refuse(err, true)
						break
					}
				}
				st.Status, st.LastBeat, st.Alive = m.Status, time.Now(), true
				st.Applied = book.applied
			case TypeDrained:
				st.Drained = true
			case TypeError:
				s.log.Warn("service reported a control error", "error", m.Error)
			default:
				s.log.Debug("ignoring control message not meant for the executor", "type", m.Type)
			}
			publish()
		case r := <-s.pushes:
			if r.snap.Version <= st.Pushed {
				r.reply <- fmt.Errorf("cannot push link snapshot version %d: %w (%d)", r.snap.Version, ErrStaleVersion, st.Pushed)
				continue
			}
			cp := r.snap
			snap = &cp
			st.Pushed = cp.Version
			if helloed {
				send(Message{Type: TypeSnapshot, Snapshot: snap})
			}
			r.reply <- nil
			publish()
		case r := <-s.drains:
			st.Draining, drain = true, r
			if helloed {
				send(drainMsg())
			}
			publish()
		case now := <-tick.C:
			if st.Alive && now.Sub(st.LastBeat) > s.cfg.HeartbeatTimeout {
				st.Alive = false
				s.log.Warn("service heartbeat missed", "task_id", st.Hello.TaskID, "silent_for", now.Sub(st.LastBeat).Round(time.Millisecond))
				publish()
			}
		}
	}
}

func (s *Server) publish(st State) {
	old := s.cur.Load()
	s.cur.Store(&published{st: st, changed: make(chan struct{})})
	close(old.changed)
}

func isEOF(err error) bool {
	var ne *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}
