package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/executor/internal/agentapi"
	"github.com/tiltai/tiltai/executor/internal/supervise"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/uuid"
)

// Files and directories the executor makes in the sandbox.
const (
	// StdoutFile and StderrFile receive the service's output, as Mesos names
	// them.
	StdoutFile = "stdout"
	StderrFile = "stderr"
	// LogFile receives the executor's own log (see the tiltai executor
	// command).
	LogFile = "executor.log"
	// binDir holds the `tiltai` symlink put first on the service's PATH.
	binDir = ".tiltai/bin"
	// maxSocketPath keeps the control socket path under the 108-byte limit
	// of a unix socket address.
	maxSocketPath = 100
)

// Run runs the executor until its work is done: the task ended and its
// terminal status was acknowledged (or could not be), the agent was lost for
// good, or the agent shut the executor down. Cancelling ctx is a request to
// stop, handled like SHUTDOWN: the service is drained and stopped within the
// shutdown grace period and TASK_KILLED reported; Run returns after that. It
// returns an error only when it cannot start or never reached its agent.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start the executor: %w", err)
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot find the tiltai executable to offer the service: %w", err)
		}
		cfg.Executable = exe
	}
	log := cfg.Logger.With("executor_id", cfg.ExecutorID, "framework_id", cfg.FrameworkID)
	if cfg.AgentID != "" {
		log = log.With("agent_id", cfg.AgentID)
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &driver{
		cfg:    cfg,
		log:    log,
		ctx:    life,
		cancel: cancel,
		in:     make(chan input, 64),
		api:    agentapi.New(agentapi.Config{Endpoint: cfg.AgentEndpoint, Token: string(cfg.AuthToken), CallTimeout: cfg.CallTimeout}),
		m: newMachine(machineConfig{
			FrameworkID:     cfg.FrameworkID,
			ExecutorID:      cfg.ExecutorID,
			Checkpoint:      cfg.Checkpoint,
			RecoveryTimeout: cfg.RecoveryTimeout,
			BackoffMax:      cfg.SubscriptionBackoffMax,
			ShutdownGrace:   cfg.ShutdownGracePeriod,
			StatusInterval:  cfg.StatusInterval,
			AckTimeout:      cfg.AckTimeout,
			NewUUID:         func() []byte { return uuid.New().Bytes() },
			Rand:            mrand.Float64,
		}, time.Now()),
	}
	d.calls = make(chan *executor.Call, 1024)
	d.wg.Add(1)
	go d.sendCalls()
	log.Info("executor starting", "agent", cfg.AgentEndpoint, "checkpoint", cfg.Checkpoint,
		"recovery_timeout", cfg.RecoveryTimeout.String(), "backoff_max", cfg.SubscriptionBackoffMax.String(), "sandbox", cfg.Sandbox)
	exit := d.loop(ctx)
	d.close()
	log.Info("executor exiting", "reason", exit.Reason, "code", exit.Code)
	if exit.Code != 0 {
		return fmt.Errorf("executor stopped: %s", exit.Reason)
	}
	return nil
}

// driver carries out the machine's effects and feeds it what happens. One
// goroutine (loop) owns the machine and everything below except the
// channels.
type driver struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // lives until Run returns, whatever the caller's ctx does
	cancel context.CancelFunc
	m      *machine
	api    *agentapi.Client
	in     chan input
	queue  []input
	calls  chan *executor.Call
	wg     sync.WaitGroup

	sub     *subscription
	server  *control.Server
	proc    *supervise.Process
	sockDir string // a temporary directory of the control socket, if any
	exit    *doExit
}

type subscription struct {
	gen    int
	cancel context.CancelFunc
}

// post hands an input to the loop from another goroutine.
func (d *driver) post(in input) {
	select {
	case d.in <- in:
	case <-d.ctx.Done():
	}
}

func (d *driver) loop(ctx context.Context) doExit {
	timer := time.NewTimer(0)
	defer timer.Stop()
	stop := ctx.Done()
	d.step(inTick{})
	for d.exit == nil {
		if next := d.m.NextDeadline(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		} else {
			timer.Stop()
		}
		select {
		case in := <-d.in:
			d.step(in)
		case <-timer.C:
			d.step(inTick{})
		case <-stop:
			stop = nil
			sig := "context cancelled"
			if c := context.Cause(ctx); c != nil && c != context.Canceled {
				sig = c.Error()
			}
			d.step(inTerminate{Signal: sig})
		}
	}
	return *d.exit
}

// step feeds in and everything its effects feed back, in order.
func (d *driver) step(in input) {
	if _, ok := in.(inExited); ok && d.server != nil {
		// The exit can overtake the service's last words on the control
		// socket (drained, its final counters): the service is gone, so the
		// connection ends at once; once the server has read to its end,
		// take the latest state first.
		ctx, cancel := context.WithTimeout(d.ctx, 200*time.Millisecond)
		st, err := d.server.Wait(ctx, func(s control.State) bool { return !s.Connected })
		cancel()
		if err != nil {
			st = d.server.State()
		}
		d.queue = append(d.queue, inService{State: st})
	}
	d.queue = append(d.queue, in)
	for len(d.queue) > 0 && d.exit == nil {
		next := d.queue[0]
		d.queue = d.queue[1:]
		for _, e := range d.m.Step(time.Now(), next) {
			d.do(e)
		}
	}
}

func (d *driver) do(e effect) {
	switch e := e.(type) {
	case doLog:
		d.log.Log(d.ctx, e.Level, e.Msg, e.Attrs...)
	case doSubscribe:
		d.subscribe(e)
	case doDisconnect:
		if d.sub != nil && d.sub.gen < e.Gen {
			d.sub.cancel()
			d.sub = nil
		}
	case doCall:
		select {
		case d.calls <- e.Call:
		default:
			// The agent is not taking calls; what is lost is counted, and an
			// update travels again with the next SUBSCRIBE.
			var uuid []byte
			if e.Call.Update != nil {
				uuid = e.Call.Update.Status.UUID
			}
			d.queue = append(d.queue, inCallFailed{UUID: uuid, Err: errors.New("too many calls queued for the agent")})
		}
	case doLaunch:
		d.launch(e)
	case doPush:
		if d.server != nil {
			if err := d.server.Push(e.Snapshot); err != nil {
				d.log.Error("cannot pass a link snapshot to the service", "version", e.Snapshot.Version, "error", err)
			}
		}
	case doDrain:
		if srv := d.server; srv != nil {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				_ = srv.DrainStop(d.ctx, e.Timeout, e.Stop) // the outcome arrives as state
			}()
		}
	case doSignal:
		if d.proc != nil {
			d.log.Info("signalling the service's process group", "signal", signalName(e.Signal), "pid", d.proc.PID())
			if err := d.proc.Signal(e.Signal); err != nil {
				d.log.Error("cannot signal the service", "error", err)
			}
		}
	case doExit:
		d.exit = &e
	}
}

func (d *driver) subscribe(e doSubscribe) {
	if d.sub != nil {
		d.sub.cancel()
	}
	ctx, cancel := context.WithCancel(d.ctx)
	d.sub = &subscription{gen: e.Gen, cancel: cancel}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel()
		stream, err := d.api.Subscribe(ctx, e.Call)
		if err != nil {
			d.post(inDisconnected{Gen: e.Gen, Err: err})
			return
		}
		defer stream.Close()
		for {
			ev, err := stream.Next()
			if errors.Is(err, agentapi.ErrUnknownEvent) {
				d.log.Debug("ignoring an unknown agent event", "error", err)
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					err = errors.New("closed by the executor")
				}
				d.post(inDisconnected{Gen: e.Gen, Err: err})
				return
			}
			d.post(inAgent{Gen: e.Gen, Event: ev})
		}
	}()
}

// sendCalls posts plain calls in order, one at a time: the agent must see a
// task's updates in the order they were made.
func (d *driver) sendCalls() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case c := <-d.calls:
			ctx, cancel := context.WithTimeout(d.ctx, d.cfg.CallTimeout)
			err := d.api.Call(ctx, c)
			cancel()
			if err == nil {
				continue
			}
			var uuid []byte
			if c.Update != nil {
				uuid = c.Update.Status.UUID
			}
			var ae *agentapi.Error
			permanent := errors.As(err, &ae) && ae.Permanent()
			d.post(inCallFailed{UUID: uuid, Err: err, Permanent: permanent})
		}
	}
}

func (d *driver) launch(e doLaunch) {
	if err := d.startService(e); err != nil {
		if d.server != nil {
			d.server.Close()
			d.server = nil
		}
		d.queue = append(d.queue, inStartFailed{Err: err})
	}
}

func (d *driver) startService(e doLaunch) error {
	sandbox := d.cfg.Sandbox
	bin := filepath.Join(sandbox, binDir)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", bin, err)
	}
	link := filepath.Join(bin, "tiltai")
	_ = os.Remove(link)
	if err := os.Symlink(d.cfg.Executable, link); err != nil {
		return fmt.Errorf("cannot link tiltai into %s: %w", bin, err)
	}
	sock, err := d.socketPath()
	if err != nil {
		return err
	}
	srv, err := control.Listen(d.ctx, sock, control.ServerConfig{
		Logger:            d.log,
		HeartbeatInterval: e.HeartbeatInterval,
		HeartbeatTimeout:  e.Data.LivenessTimeout(),
		Gates:             e.Data.GateSpecs(),
		CheckGates:        true,
	})
	if err != nil {
		return err
	}
	d.server = srv
	d.wg.Add(1)
	go d.watch(srv)

	base := d.cfg.Environ
	if base == nil {
		base = os.Environ()
	}
	env := serviceEnv(base, e.Data, e.TaskID, srv.Addr(), bin)
	path, err := supervise.LookPath(e.Data.Command, lookup(env, "PATH"), sandbox)
	if err != nil {
		return err
	}
	dir := sandbox
	if e.Data.Image != "" {
		// The agent started the executor in the image's working
		// directory (docker/runtime); the service starts there too.
		if wd, err := os.Getwd(); err == nil {
			dir = wd
		}
	}
	p, err := supervise.Start(supervise.Spec{
		Path: path, Args: e.Data.Args, Env: env, Dir: dir,
		Stdout: filepath.Join(sandbox, StdoutFile), Stderr: filepath.Join(sandbox, StderrFile),
	})
	if err != nil {
		return err
	}
	d.proc = p
	d.log.Info("service process started", "task_id", e.TaskID, "pid", p.PID(), "path", path, "control", srv.Addr())
	d.queue = append(d.queue, inStarted{PID: p.PID()})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-p.Done()
		d.post(inExited{Status: p.Status(), StderrTail: supervise.Tail(filepath.Join(sandbox, StderrFile), 2048)})
	}()
	return nil
}

// socketPath picks the control socket's path: in the sandbox when the path
// fits a unix socket address, else in a private temporary directory.
func (d *driver) socketPath() (string, error) {
	p := filepath.Join(d.cfg.Sandbox, ".tiltai", "control.sock")
	if len(p) <= maxSocketPath {
		return p, nil
	}
	dir, err := os.MkdirTemp("", "tiltai-exec-")
	if err != nil {
		return "", fmt.Errorf("cannot make a directory for the control socket: %w", err)
	}
	d.sockDir = dir
	return filepath.Join(dir, "control.sock"), nil
}

// watch forwards every change of the control socket's state that matters.
func (d *driver) watch(srv *control.Server) {
	defer d.wg.Done()
	var last control.State
	for {
		st, err := srv.Wait(d.ctx, func(s control.State) bool { return !sameState(s, last) })
		if err != nil {
			return
		}
		last = st
		d.post(inService{State: st})
	}
}

// sameState compares the fields the machine looks at; Status is a new
// pointer with every heartbeat.
func sameState(a, b control.State) bool {
	return a.Connected == b.Connected && a.Connections == b.Connections && a.Ready == b.Ready &&
		a.Applied == b.Applied && a.Rejected == b.Rejected && a.Status == b.Status &&
		a.Drained == b.Drained && a.ProtoErrors == b.ProtoErrors && a.Violation == b.Violation &&
		slices.Equal(a.Gates, b.Gates)
}

// close stops everything the driver started and waits for it.
func (d *driver) close() {
	if d.proc != nil {
		select {
		case <-d.proc.Done():
		default:
			// The machine only exits once the service is gone; this is a
			// last resort should that ever not hold.
			d.log.Error("service still running at exit; killing it", "pid", d.proc.PID())
			_ = d.proc.Signal(syscall.SIGKILL)
			<-d.proc.Done()
		}
	}
	if d.sub != nil {
		d.sub.cancel()
	}
	if d.server != nil {
		d.server.Close()
	}
	d.cancel()
	d.wg.Wait()
	d.api.CloseIdle()
	if d.sockDir != "" {
		os.RemoveAll(d.sockDir)
	}
}

// serviceEnv is the service's environment: the executor's own, less its
// secret and any TILTAI_* control variables it may have inherited, plus the
// task's env, PATH with binDir first, and the TILTAI_* variables of the task.
func serviceEnv(base []string, d contract.TaskData, taskID, controlAddr, binDir string) []string {
	env := map[string]string{}
	for _, kv := range base {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == EnvAuthToken || contract.ValidEnvKey(k) != nil {
			continue
		}
		env[k] = v
	}
	for k, v := range d.Env {
		env[k] = v
	}
	path := env["PATH"]
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env["PATH"] = binDir + string(os.PathListSeparator) + path
	tenv := control.Env{Control: controlAddr, TaskID: taskID, Service: d.Service, Gates: d.GateSpecs()}
	for _, kv := range tenv.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func lookup(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return s.String()
}
