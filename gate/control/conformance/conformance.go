// Package conformance drives a service command through the control protocol
// the way a Tiltai executor would, and reports each step: the environment and
// the control socket, hello (checked against the gates it was given), ready
// with every in-gate bound on its assigned port, two snapshots applied (the
// second removes the first's peers), heartbeats within the liveness bound,
// drain, drained and a clean exit. It is what `tiltai conformance control`
// runs, and a Go test helper for a service's own tests. It checks the
// protocol, not the traffic: whether "applied" really means "drained" can
// only be seen under load (docs/control-protocol.md, §8).
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// Config is one conformance run.
type Config struct {
	// Command is the service: a program and its arguments.
	Command []string
	// Gates are the service's gates as its environment declares them. An
	// in-gate bound on port 0 is given a free port, as an executor gives one
	// from the offer.
	Gates []control.GateSpec
	// Environ is the service's base environment (nil: this process's).
	Environ []string
	// TaskID and Service go into TILTAI_TASK_ID and TILTAI_SERVICE.
	TaskID, Service string
	// Timeout bounds each step. Default 10s.
	Timeout time.Duration
	// HeartbeatInterval is the heartbeat_ms asked for. Default 200ms; the
	// liveness bound is five intervals, as the executor's default.
	HeartbeatInterval time.Duration
	// Beats is how many heartbeats are timed. Default 3.
	Beats int
	// Stdout and Stderr receive the service's output (nil: discarded).
	Stdout, Stderr io.Writer
}

// Validate lists every problem with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Command) == 0 || c.Command[0] == "" {
		errs = append(errs, errors.New("command: want the service's program and arguments"))
	}
	seen := map[string]bool{}
	for i, g := range c.Gates {
		if err := control.ValidName(g.Name); err != nil {
			errs = append(errs, fmt.Errorf("gates[%d]: %w", i, err))
		}
		if seen[g.Name] {
			errs = append(errs, fmt.Errorf("gates[%d]: gate %q declared twice", i, g.Name))
		}
		seen[g.Name] = true
		if !g.Pattern.ValidFor(g.Dir) {
			errs = append(errs, fmt.Errorf("gates[%d]: pattern %q is not valid for an %s-gate", i, g.Pattern, g.Dir))
		}
		if len(g.Peers) > 0 {
			errs = append(errs, fmt.Errorf("gates[%d]: gate %q has static peers; under an executor peers come from snapshots", i, g.Name))
		}
	}
	if c.Timeout < 0 || c.HeartbeatInterval < 0 || c.Beats < 0 {
		errs = append(errs, errors.New("timeout, heartbeat interval and beats must not be negative"))
	}
	return errors.Join(errs...)
}

// Step is the outcome of one step.
type Step struct {
	Name   string
	OK     bool
	Detail string // what was seen, or what went wrong
	Took   time.Duration
}

func (s Step) String() string {
	verdict := "PASS"
	if !s.OK {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%s %-10s %s (%s)", verdict, s.Name, s.Detail, s.Took.Round(time.Millisecond))
}

// Report is every step run, in order; a run stops at the first failure.
type Report struct{ Steps []Step }

// Err returns the first failed step as an error, or nil.
func (r Report) Err() error {
	for _, s := range r.Steps {
		if !s.OK {
			return fmt.Errorf("conformance step %s failed: %s", s.Name, s.Detail)
		}
	}
	if len(r.Steps) == 0 {
		return errors.New("conformance run did not start")
	}
	return nil
}

// Run drives the service and returns the report; onStep, if not nil, is
// called as each step ends. The service is killed (its process group) if it
// is still running when Run returns.
func Run(ctx context.Context, cfg Config, onStep func(Step)) Report {
	r := &runner{cfg: cfg, onStep: onStep}
	if cfg.Timeout == 0 {
		r.cfg.Timeout = 10 * time.Second
	}
	if cfg.HeartbeatInterval == 0 {
		r.cfg.HeartbeatInterval = 200 * time.Millisecond
	}
	if cfg.Beats == 0 {
		r.cfg.Beats = 3
	}
	defer r.close()
	r.run(ctx)
	return r.report
}

type runner struct {
	cfg    Config
	onStep func(Step)
	report Report

	dir     string
	srv     *control.Server
	peer    net.Listener
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process is reaped
	exitErr error         // cmd.Wait's result, set before exited closes
	stderr  tail
	wg      sync.WaitGroup
}

func (r *runner) run(ctx context.Context) {
	steps := []struct {
		name string
		f    func(context.Context) (string, error)
	}{
		{"start", r.start},
		{"hello", r.hello},
		{"ready", r.ready},
		{"applied", r.applied},
		{"heartbeat", r.heartbeats},
		{"drained", r.drained},
		{"exit", r.exit},
	}
	for _, s := range steps {
		t0 := time.Now()
		detail, err := s.f(ctx)
		st := Step{Name: s.name, OK: err == nil, Detail: detail, Took: time.Since(t0)}
		if err != nil {
			st.Detail = err.Error()
		}
		r.report.Steps = append(r.report.Steps, st)
		if r.onStep != nil {
			r.onStep(st)
		}
		if err != nil {
			return
		}
	}
}

func (r *runner) start(ctx context.Context) (string, error) {
	if err := r.cfg.Validate(); err != nil {
		return "", fmt.Errorf("invalid configuration: %w", err)
	}
	gates := slices.Clone(r.cfg.Gates)
	var assigned []string
	for i, g := range gates {
		if g.Dir != control.In {
			continue
		}
		if g.Bind == "" {
			g.Bind = "tcp://0.0.0.0:0"
		}
		ep, err := control.ParseBindEndpoint(g.Bind)
		if err != nil {
			return "", fmt.Errorf("gate %q: %w", g.Name, err)
		}
		if ep.Port == 0 {
			if ep.Port, err = freePort(ep); err != nil {
				return "", fmt.Errorf("gate %q: cannot find a free port: %w", g.Name, err)
			}
		}
		gates[i].Bind = ep.String()
		assigned = append(assigned, g.Name+" on "+ep.String())
	}
	r.cfg.Gates = gates
	// t.TempDir-style paths can exceed the 108-byte unix socket limit.
	dir, err := os.MkdirTemp("", "tiltai-conformance-")
	if err != nil {
		return "", fmt.Errorf("cannot make a directory for the control socket: %w", err)
	}
	r.dir = dir
	r.srv, err = control.Listen(ctx, filepath.Join(dir, "control.sock"), control.ServerConfig{
		HeartbeatInterval: r.cfg.HeartbeatInterval,
		HeartbeatTimeout:  r.liveness(),
		Gates:             gates,
		CheckGates:        true,
	})
	if err != nil {
		return "", err
	}
	// Out-gates are pointed at a local listener that takes connections and
	// closes them: a peer to dial, removed again by the second snapshot.
	if r.peer, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return "", fmt.Errorf("cannot open the stand-in peer: %w", err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := r.peer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	env := control.Env{Control: r.srv.Addr(), TaskID: r.cfg.TaskID, Service: r.cfg.Service, Gates: gates}
	if env.TaskID == "" {
		env.TaskID = "conformance-1"
	}
	if env.Service == "" {
		env.Service = filepath.Base(r.cfg.Command[0])
	}
	base := r.cfg.Environ
	if base == nil {
		base = os.Environ()
	}
	r.cmd = exec.Command(r.cfg.Command[0], r.cfg.Command[1:]...)
	r.cmd.Env = append(withoutTiltai(base), env.Environ()...)
	r.stderr.w, r.stderr.out = r.cfg.Stderr, r.cfg.Stdout
	r.cmd.Stdout = stdout{&r.stderr}
	r.cmd.Stderr = &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return "", fmt.Errorf("cannot start %s: %w", r.cfg.Command[0], err)
	}
	r.exited = make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.exitErr = r.cmd.Wait()
		close(r.exited)
	}()
	detail := fmt.Sprintf("pid %d, %s=%s", r.cmd.Process.Pid, control.EnvControl, env.Control)
	if len(assigned) > 0 {
		detail += ", in-gates " + strings.Join(assigned, ", ")
	}
	return detail, nil
}

func (r *runner) liveness() time.Duration { return 5 * r.cfg.HeartbeatInterval }

// wait waits up to the step timeout for cond, failing early on a protocol
// error, a false claim or the service's exit.
func (r *runner) wait(ctx context.Context, what string, cond func(control.State) bool) (control.State, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-r.exited:
			stop(errExited)
		case <-ctx.Done():
		}
	}()
	st, err := r.srv.Wait(ctx, func(st control.State) bool { return st.ProtoErrors > 0 || cond(st) })
	switch {
	case st.Violation != "":
		return st, fmt.Errorf("false claim refused by the executor: %s", st.Violation)
	case st.ProtoErrors > 0:
		return st, fmt.Errorf("protocol error: %s", st.LastError)
	case err == nil:
		return st, nil
	case errors.Is(context.Cause(ctx), errExited):
		// What it wrote before exiting may still be in the socket: the
		// server has read it all once it sees the connection close.
		fctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if st, err := r.srv.Wait(fctx, func(st control.State) bool { return !st.Connected || cond(st) }); err == nil && cond(st) {
			return st, nil
		}
		return st, fmt.Errorf("service ended (%s) while waiting for %s%s", exitString(r.exitErr), what, r.stderr.last())
	case ctx.Err() != nil:
		return st, fmt.Errorf("no %s within %s%s", what, r.cfg.Timeout, r.stderr.last())
	}
	return st, err
}

var errExited = errors.New("exited")

func (r *runner) hello(ctx context.Context) (string, error) {
	st, err := r.wait(ctx, "hello on "+r.srv.Addr(), func(st control.State) bool { return st.Connected })
	if err != nil {
		return "", err
	}
	h := st.Hello
	return fmt.Sprintf("task_id %q, service %q, pid %d, %d gates", h.TaskID, h.Service, h.PID, len(st.Gates)), nil
}

func (r *runner) ready(ctx context.Context) (string, error) {
	var in []string
	for _, g := range r.cfg.Gates {
		if g.Dir == control.In {
			in = append(in, g.Name)
		}
	}
	st, err := r.wait(ctx, fmt.Sprintf("ready with in-gates %v bound", in), func(st control.State) bool {
		if !st.Connected || !st.Ready {
			return false
		}
		for _, name := range in {
			if !slices.ContainsFunc(st.Gates, func(g control.GateInfo) bool { return g.Name == name && g.Bound != "" }) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return "", err
	}
	var bound []string
	for _, g := range st.Gates {
		if g.Bound != "" {
			bound = append(bound, g.Name+" on "+g.Bound)
		}
	}
	if len(bound) == 0 {
		return "no in-gates", nil
	}
	return "bound " + strings.Join(bound, ", "), nil
}

func (r *runner) applied(ctx context.Context) (string, error) {
	peer := "tcp://" + r.peer.Addr().String()
	for v := uint64(1); v <= 2; v++ {
		snap := control.Snapshot{Version: v, Out: map[string]control.OutLink{}}
		for _, g := range r.cfg.Gates {
			if g.Dir != control.Out {
				continue
			}
			l := control.OutLink{Pattern: g.Pattern, Peers: []string{}}
			if v == 1 {
				l.Peers = []string{peer}
			}
			snap.Out[g.Name] = l
		}
		if err := r.srv.Push(snap); err != nil {
			return "", err
		}
		st, err := r.wait(ctx, fmt.Sprintf("applied %d", v), func(st control.State) bool { return st.Applied >= v || st.Rejected >= v })
		if err != nil {
			return "", err
		}
		if st.Applied < v {
			return "", fmt.Errorf("snapshot %d rejected: %s", v, st.RejectErr)
		}
	}
	return fmt.Sprintf("snapshot 1 (out-gates to %s) and 2 (no peers) applied", peer), nil
}

func (r *runner) heartbeats(ctx context.Context) (string, error) {
	bound := r.liveness()
	st := r.srv.State()
	var gaps []string
	for range r.cfg.Beats {
		prev := st.Status
		last := st.LastBeat
		if last.IsZero() {
			last = time.Now()
		}
		cctx, cancel := context.WithDeadline(ctx, last.Add(bound))
		var err error
		st, err = r.wait(cctx, "status", func(s control.State) bool { return s.Status != nil && s.Status != prev })
		cancel()
		if err != nil {
			return "", fmt.Errorf("%w (heartbeat_ms %d: a status is due every %s, the executor's liveness bound is %s)",
				err, r.cfg.HeartbeatInterval.Milliseconds(), r.cfg.HeartbeatInterval, bound)
		}
		if prev != nil && st.Status.Seq <= prev.Seq {
			return "", fmt.Errorf("status.seq %d after %d: want it to increase", st.Status.Seq, prev.Seq)
		}
		if !last.IsZero() && prev != nil {
			gaps = append(gaps, st.LastBeat.Sub(last).Round(time.Millisecond).String())
		}
	}
	return fmt.Sprintf("%d status messages, gaps %s (bound %s)", r.cfg.Beats, strings.Join(gaps, " "), bound), nil
}

func (r *runner) drained(ctx context.Context) (string, error) {
	drainTO := r.cfg.Timeout / 2
	done := make(chan error, 1)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- r.srv.Drain(dctx, drainTO) }()
	if _, err := r.wait(ctx, fmt.Sprintf("drained (drain timeout_ms %d)", drainTO.Milliseconds()), func(st control.State) bool { return st.Drained }); err != nil {
		return "", err
	}
	cancel()
	<-done
	return "drained", nil
}

func (r *runner) exit(ctx context.Context) (string, error) {
	select {
	case <-r.exited:
	case <-time.After(r.cfg.Timeout):
		return "", fmt.Errorf("still running %s after drained: a drained service should close its out-gates and exit", r.cfg.Timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if r.exitErr != nil {
		return "", fmt.Errorf("service ended (%s) after drained, want exit status 0%s", exitString(r.exitErr), r.stderr.last())
	}
	return "exited with status 0", nil
}

func (r *runner) close() {
	if r.cmd != nil && r.cmd.Process != nil {
		select {
		case <-r.exited:
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	if r.peer != nil {
		r.peer.Close()
	}
	if r.srv != nil {
		r.srv.Close()
	}
	r.wg.Wait()
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

// freePort asks the kernel for a port free on ep's host now; an executor
// takes it from the offer instead.
func freePort(ep control.Endpoint) (int, error) {
	ln, err := net.Listen("tcp", ep.Addr())
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// withoutTiltai drops inherited TILTAI_* variables: the run sets its own.
func withoutTiltai(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "TILTAI_") })
}

func exitString(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tail keeps the last line of the service's stderr for error messages and
// passes its output on; one lock for both, as they may share a writer.
type tail struct {
	mu     sync.Mutex
	w, out io.Writer // stderr, stdout
	buf    []byte
}

// stdout passes the service's stdout on under the tail's lock.
type stdout struct{ t *tail }

func (s stdout) Write(p []byte) (int, error) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.t.out != nil {
		s.t.out.Write(p)
	}
	return len(p), nil
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	if t.w != nil {
		t.w.Write(p)
	}
	return len(p), nil
}

func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return ""
	}
	return "; last line of its stderr: " + s
}
