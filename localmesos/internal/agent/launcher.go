package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/tiltai/tiltai/internal/backoff"
)

// ExecutorSpec is everything needed to start one executor: what the agent
// fetched into the sandbox and the environment Mesos would set.
type ExecutorSpec struct {
	FrameworkID, ExecutorID, ContainerID string
	Command                              mesos.CommandInfo
	// Env is the complete environment (MESOS_*, LIBPROCESS_*, PATH and the
	// command's own variables), as "NAME=value".
	Env     []string
	Sandbox string // working directory; stdout and stderr files live here
	// Dial reaches this cluster's agents in memory (any other address over
	// TCP). An in-process executor should use it for its HTTP transport
	// (http.Transport{DialContext: spec.Dial}): it speaks the same executor
	// HTTP API without a socket, so thousands fit in one process.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// container is set for an executor that runs in a container image.
	container *containerLaunch
}

// Getenv returns the value of one variable of the spec's environment.
func (s ExecutorSpec) Getenv(name string) string {
	for i := len(s.Env) - 1; i >= 0; i-- {
		if len(s.Env[i]) > len(name) && s.Env[i][len(name)] == '=' && s.Env[i][:len(name)] == name {
			return s.Env[i][len(name)+1:]
		}
	}
	return ""
}

// Process is a running executor.
type Process interface {
	// Pid is the OS process id (this process for an in-process executor).
	Pid() int
	// Done is closed when the executor has exited.
	Done() <-chan struct{}
	// WaitStatus is the raw wait status (as Mesos reports it in FAILURE
	// events: exit code << 8, or the signal); valid after Done.
	WaitStatus() int32
	// Signal asks the executor to stop (SIGTERM for a process); Kill ends it.
	Signal() error
	Kill() error
}

// Launcher starts executors. The default runs real processes; InProcess
// runs Go functions, for tests and benchmarks with thousands of executors.
// A launcher outlives agent restarts, so an executor it started keeps
// running while its agent restarts, as with Mesos checkpointing.
type Launcher interface {
	Launch(ctx context.Context, spec ExecutorSpec) (Process, error)
}

// Recoverer is implemented by launchers that can find an executor again
// after its agent restarted, from what the agent checkpointed.
type Recoverer interface {
	Recover(containerID string, pid int) (Process, error)
}

// ProcessLauncher runs each executor as an OS process in its own process
// group (so a kill reaches its children), in the sandbox, with stdout and
// stderr going to the sandbox files.
type ProcessLauncher struct {
	mu      sync.Mutex
	running map[string]*osProcess // by container id
}

// NewProcessLauncher returns the default launcher.
func NewProcessLauncher() *ProcessLauncher {
	return &ProcessLauncher{running: map[string]*osProcess{}}
}

// Launch starts the command: "sh -c value" when shell is true (the Mesos
// default), else value exec'd with arguments as argv.
func (l *ProcessLauncher) Launch(ctx context.Context, spec ExecutorSpec) (Process, error) {
	cmd, err := spec.buildCommand()
	if err != nil {
		return nil, err
	}
	stdout, err := os.OpenFile(spec.Sandbox+"/stdout", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the sandbox stdout: %w", err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(spec.Sandbox+"/stderr", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the sandbox stderr: %w", err)
	}
	defer stderr.Close()
	// A just-fetched executor binary may still be open for writing in a
	// child that another goroutine is forking right now (it holds the
	// descriptor until it execs): exec then fails with ETXTBSY ("text file
	// busy", golang.org/issue/22315). It clears within milliseconds; retry
	// with a fresh command.
	retry := backoff.Policy{Initial: 2 * time.Millisecond, Factor: 2}
	for attempt := 0; ; attempt++ {
		if spec.container == nil {
			cmd.Dir = spec.Sandbox
			cmd.Env = append(spec.Env, "PWD="+spec.Sandbox)
			// Own process group: the executor survives the agent
			// (checkpointing) and a kill reaches everything it started.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || attempt >= 10 {
			return nil, fmt.Errorf("cannot start executor %q: %w", spec.ExecutorID, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot start executor %q: %w", spec.ExecutorID, ctx.Err())
		case <-time.After(retry.Envelope(attempt)):
		}
		if cmd, err = spec.buildCommand(); err != nil {
			return nil, err
		}
	}
	p := &osProcess{pid: cmd.Process.Pid, done: make(chan struct{})}
	l.mu.Lock()
	l.running[spec.ContainerID] = p
	l.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.status = waitStatusOf(cmd.ProcessState, err)
		close(p.done)
		l.mu.Lock()
		delete(l.running, spec.ContainerID)
		l.mu.Unlock()
	}()
	return p, nil
}

// Recover finds a checkpointed executor: one this launcher started (still
// its child), or a process that outlived a previous localmesos and is
// watched by polling.
func (l *ProcessLauncher) Recover(containerID string, pid int) (Process, error) {
	l.mu.Lock()
	p, ok := l.running[containerID]
	l.mu.Unlock()
	if ok {
		return p, nil
	}
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return nil, fmt.Errorf("executor process %d is gone", pid)
	}
	op := &osProcess{pid: pid, done: make(chan struct{}), status: -1}
	l.mu.Lock()
	l.running[containerID] = op // so that killAll reaches it too
	l.mu.Unlock()
	go func() {
		// Not our child, so there is nothing to wait on: poll until it is
		// gone. Its exit status is unknown.
		for syscall.Kill(pid, 0) == nil && !zombie(pid) {
			time.Sleep(100 * time.Millisecond)
		}
		close(op.done)
		l.mu.Lock()
		delete(l.running, containerID)
		l.mu.Unlock()
	}()
	return op, nil
}

// killAll kills every executor still running and waits for each to be
// reaped (bounded: a process stuck in the kernel is given up on).
func (l *ProcessLauncher) killAll() {
	l.mu.Lock()
	procs := make([]*osProcess, 0, len(l.running))
	for _, p := range l.running {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// zombie reports whether pid has exited but not been reaped by its parent.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// buildCommand is the executor's command, in its container if it has one
// (which sets its own directory, environment and process attributes).
func (s ExecutorSpec) buildCommand() (*exec.Cmd, error) {
	if s.container != nil {
		return containerCommand(s.container, s.Sandbox, s.Command, s.Env)
	}
	return buildCommand(s.Command)
}

func buildCommand(c mesos.CommandInfo) (*exec.Cmd, error) {
	if c.GetValue() == "" {
		return nil, errors.New("the executor's CommandInfo has no value")
	}
	if c.Shell == nil || *c.Shell {
		return exec.Command("/bin/sh", "-c", c.GetValue()), nil
	}
	cmd := exec.Command(c.GetValue())
	if len(c.Arguments) > 0 {
		cmd.Args = append([]string(nil), c.Arguments...)
	}
	return cmd, nil
}

func waitStatusOf(ps *os.ProcessState, err error) int32 {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return int32(ws)
	}
	if err != nil {
		return 1 << 8
	}
	return 0
}

type osProcess struct {
	pid    int
	done   chan struct{}
	status int32
}

func (p *osProcess) Pid() int              { return p.pid }
func (p *osProcess) Done() <-chan struct{} { return p.done }
func (p *osProcess) WaitStatus() int32     { return p.status }
func (p *osProcess) Signal() error         { return signalGroup(p.pid, syscall.SIGTERM) }
func (p *osProcess) Kill() error           { return signalGroup(p.pid, syscall.SIGKILL) }

func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return syscall.Kill(pid, sig)
	}
	return nil
}

// ExecutorFunc is an in-process executor. It must speak the executor HTTP
// API to its agent (MESOS_AGENT_ENDPOINT in spec.Env) like a real one, and
// return when ctx is cancelled (the agent's kill) or it is done; a nil error
// is exit status 0.
type ExecutorFunc func(ctx context.Context, spec ExecutorSpec) error

// InProcess returns a launcher that runs fn in a goroutine per executor.
// Executors it runs survive agent restarts; Close of the cluster cancels
// them and waits.
func InProcess(fn ExecutorFunc) Launcher {
	return &funcLauncher{fn: fn, running: map[string]*funcProcess{}}
}

type funcLauncher struct {
	fn      ExecutorFunc
	mu      sync.Mutex
	running map[string]*funcProcess
}

type funcProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	status int32
}

func (l *funcLauncher) Launch(ctx context.Context, spec ExecutorSpec) (Process, error) {
	// The executor's life is bound to the cluster (ctx), not to the call.
	ectx, cancel := context.WithCancel(ctx)
	p := &funcProcess{cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	l.running[spec.ContainerID] = p
	l.mu.Unlock()
	go func() {
		defer close(p.done)
		defer cancel()
		if err := l.fn(ectx, spec); err != nil {
			p.status = 1 << 8
		}
		l.mu.Lock()
		delete(l.running, spec.ContainerID)
		l.mu.Unlock()
	}()
	return p, nil
}

// wait returns once every executor it started has returned.
func (l *funcLauncher) wait() {
	l.mu.Lock()
	procs := make([]*funcProcess, 0, len(l.running))
	for _, p := range l.running {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	for _, p := range procs {
		p.cancel()
		<-p.done
	}
}

func (l *funcLauncher) Recover(containerID string, _ int) (Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.running[containerID]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("in-process executor of container %s is gone", containerID)
}

func (p *funcProcess) Pid() int              { return os.Getpid() } // the process hosting it
func (p *funcProcess) Done() <-chan struct{} { return p.done }
func (p *funcProcess) WaitStatus() int32     { return p.status }
func (p *funcProcess) Signal() error         { p.cancel(); return nil }
func (p *funcProcess) Kill() error           { p.cancel(); return nil }

// sortedEnv turns a map into "NAME=value" lines in name order.
func sortedEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// StopLaunched waits for the executors of a launcher from InProcess (they
// end with their context) and kills every process a ProcessLauncher
// started; other launchers are left alone.
func StopLaunched(l Launcher) {
	switch l := l.(type) {
	case *funcLauncher:
		l.wait()
	case *ProcessLauncher:
		l.killAll()
	}
}
