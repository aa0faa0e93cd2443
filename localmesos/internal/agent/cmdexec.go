package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/recordio"
	"github.com/tiltai/tiltai/internal/uuid"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/containerizer"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The built-in command executor runs command tasks (a TaskInfo with a
// command and no executor), as Mesos' mesos-executor does: it is an
// executor like any other, speaking the executor HTTP API to its agent, but
// it runs in this process (one goroutine per task) while the task's command
// is a real process. It reports TASK_STARTING, TASK_RUNNING and then
// TASK_FINISHED / TASK_FAILED ("Command exited with status N") or
// TASK_KILLED, and exits once its last update is acknowledged.

const defaultKillGrace = 3 * time.Second

// CommandExecutor returns the built-in command executor; it reaches its
// agent with client.
func CommandExecutor(client *http.Client, log *slog.Logger) ExecutorFunc {
	return func(ctx context.Context, spec ExecutorSpec) error {
		ce := &cmdExec{
			spec: spec, client: client,
			url:     "http://" + spec.Getenv("MESOS_AGENT_ENDPOINT") + "/api/v1/executor",
			log:     log.With("executor_id", spec.ExecutorID, "framework_id", spec.FrameworkID),
			unacked: map[string]mesos.TaskStatus{}, exited: make(chan int32, 1),
		}
		return ce.run(ctx)
	}
}

type cmdExec struct {
	spec   ExecutorSpec
	client *http.Client
	url    string
	log    *slog.Logger

	fw        mesos.FrameworkInfo
	task      *mesos.TaskInfo
	proc      *os.Process
	exited    chan int32
	killing   bool
	killTimer *time.Timer
	shutdown  bool
	unacked   map[string]mesos.TaskStatus
	terminal  string // uuid of the terminal update, once sent
	done      bool
}

func (c *cmdExec) run(ctx context.Context) error {
	checkpoint := c.spec.Getenv("MESOS_CHECKPOINT") == "1"
	recovery := 15 * time.Minute
	backoffMax := 2 * time.Second
	if d, err := parseMesosDuration(c.spec.Getenv("MESOS_RECOVERY_TIMEOUT")); err == nil {
		recovery = d
	}
	if d, err := parseMesosDuration(c.spec.Getenv("MESOS_SUBSCRIPTION_BACKOFF_MAX")); err == nil {
		backoffMax = d
	}
	defer c.killNow()
	var disconnected time.Time
	retry := backoff.Policy{Initial: 100 * time.Millisecond, Max: backoffMax, Factor: 2}
	for attempt := 0; ; attempt++ {
		err := c.session(ctx)
		if c.done {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !checkpoint {
			return fmt.Errorf("disconnected from the agent without checkpointing: %w", err)
		}
		if disconnected.IsZero() {
			disconnected = time.Now()
		}
		if time.Since(disconnected) > recovery {
			return fmt.Errorf("could not re-subscribe within the recovery timeout %v: %w", recovery, err)
		}
		t := time.NewTimer(retry.Envelope(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case code := <-c.exited:
			t.Stop()
			c.processExited(ctx, code) // reported once re-subscribed
		}
	}
}

// killNow kills the task's process group and waits (boundedly) until the
// process is reaped, so that no task outlives a closed cluster.
func (c *cmdExec) killNow() {
	if c.proc != nil {
		_ = syscall.Kill(-c.proc.Pid, syscall.SIGKILL)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
		}
	}
	if c.killTimer != nil {
		c.killTimer.Stop()
	}
}

// session subscribes and handles events until the stream ends.
func (c *cmdExec) session(ctx context.Context) error {
	sub := &executor.Call{
		FrameworkID: mesos.FrameworkID{Value: c.spec.FrameworkID}, ExecutorID: mesos.ExecutorID{Value: c.spec.ExecutorID},
		Type: executor.Call_SUBSCRIBE, Subscribe: &executor.Call_Subscribe{},
	}
	if c.task != nil {
		sub.Subscribe.UnacknowledgedTasks = []mesos.TaskInfo{*c.task}
	}
	for _, st := range c.unacked {
		sub.Subscribe.UnacknowledgedUpdates = append(sub.Subscribe.UnacknowledgedUpdates, executor.Call_Update{Status: st})
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.post(sctx, sub)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("subscribe answered %s: %s", resp.Status, msg)
	}
	events := make(chan *executor.Event)
	readErr := make(chan error, 1)
	go func() {
		rd := recordio.NewReader(resp.Body, 16<<20)
		for {
			rec, err := rd.Read()
			if err != nil {
				readErr <- err
				return
			}
			e := new(executor.Event)
			if err := e.Unmarshal(rec); err != nil {
				readErr <- err
				return
			}
			select {
			case events <- e:
			case <-sctx.Done():
				readErr <- sctx.Err()
				return
			}
		}
	}()
	// Updates not yet acknowledged were re-sent in SUBSCRIBE; a process
	// that ended while disconnected is reported now.
	for {
		var killC <-chan time.Time
		if c.killTimer != nil {
			killC = c.killTimer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case e := <-events:
			c.handle(ctx, e)
		case code := <-c.exited:
			c.processExited(ctx, code)
		case <-killC:
			c.killTimer = nil
			if c.proc != nil {
				_ = syscall.Kill(-c.proc.Pid, syscall.SIGKILL)
			}
		}
		if c.done {
			return nil
		}
	}
}

func (c *cmdExec) handle(ctx context.Context, e *executor.Event) {
	switch e.Type {
	case executor.Event_SUBSCRIBED:
		c.fw = e.Subscribed.FrameworkInfo
	case executor.Event_LAUNCH:
		if c.task != nil {
			return // a re-delivery after re-subscribing
		}
		t := e.Launch.Task
		c.task = &t
		c.launch(ctx)
	case executor.Event_KILL:
		var policy *mesos.KillPolicy
		if e.Kill.KillPolicy != nil {
			policy = e.Kill.KillPolicy
		}
		c.kill(ctx, policy)
	case executor.Event_SHUTDOWN:
		c.shutdown = true
		c.kill(ctx, nil)
		if c.proc == nil {
			c.done = true
		}
	case executor.Event_ACKNOWLEDGED:
		delete(c.unacked, string(e.Acknowledged.UUID))
		if c.terminal != "" && string(e.Acknowledged.UUID) == c.terminal {
			c.done = true
		}
	case executor.Event_ERROR:
		c.log.Warn("the agent sent ERROR", "message", e.Error.Message)
	}
}

func (c *cmdExec) launch(ctx context.Context) {
	t := c.task
	c.update(ctx, mesos.TASK_STARTING, "", nil)
	cmd, err := c.taskCommand(*t.Command)
	if err == nil {
		var stdout, stderr *os.File
		if stdout, err = os.OpenFile(c.spec.Sandbox+"/stdout", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			defer stdout.Close()
			if stderr, err = os.OpenFile(c.spec.Sandbox+"/stderr", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				defer stderr.Close()
				cmd.Stdout, cmd.Stderr = stdout, stderr
				err = cmd.Start()
			}
		}
	}
	if err != nil {
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		c.update(ctx, mesos.TASK_FAILED, "Failed to launch the command: "+err.Error(), &reason)
		return
	}
	c.proc = cmd.Process
	go func() {
		err := cmd.Wait()
		c.exited <- waitStatusOf(cmd.ProcessState, err)
	}()
	c.update(ctx, mesos.TASK_RUNNING, "", nil)
}

// taskCommand is the task's process: on the host in the sandbox, or in
// the executor's container image with the image's ENV under the task's.
func (c *cmdExec) taskCommand(tc mesos.CommandInfo) (*exec.Cmd, error) {
	env := append([]string(nil), c.spec.Env...)
	env = append(env, "MESOS_ALLOCATION_ROLE=*")
	if cl := c.spec.container; cl != nil {
		env = setEnv(env, containerizer.ImageEnv(cl.image.Config)...)
	} else {
		env = append(env, "PWD="+c.spec.Sandbox)
	}
	if tc.Environment != nil {
		for _, v := range tc.Environment.Variables {
			env = setEnv(env, v.Name+"="+v.GetValue())
		}
	}
	if cl := c.spec.container; cl != nil {
		return containerCommand(cl, c.spec.Sandbox, tc, env)
	}
	cmd, err := buildCommand(tc)
	if err != nil {
		return nil, err
	}
	cmd.Env, cmd.Dir = env, c.spec.Sandbox
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

func (c *cmdExec) kill(ctx context.Context, policy *mesos.KillPolicy) {
	if c.proc == nil || c.killing {
		return
	}
	c.killing = true
	grace := defaultKillGrace
	if policy == nil && c.task != nil {
		policy = c.task.KillPolicy
	}
	if policy != nil && policy.GracePeriod != nil {
		grace = time.Duration(policy.GracePeriod.GetNanoseconds())
	}
	for _, cp := range c.fw.Capabilities {
		if cp.Type == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
			c.update(ctx, mesos.TASK_KILLING, "", nil)
		}
	}
	_ = syscall.Kill(-c.proc.Pid, syscall.SIGTERM)
	c.killTimer = time.NewTimer(grace)
}

func (c *cmdExec) processExited(ctx context.Context, status int32) {
	ws := syscall.WaitStatus(status)
	c.proc = nil
	if c.killTimer != nil {
		c.killTimer.Stop()
		c.killTimer = nil
	}
	switch {
	case c.killing && !ws.Signaled() && ws.Exited():
		// A task that exits on SIGTERM (recording 13's k-trap).
		c.update(ctx, mesos.TASK_KILLED, fmt.Sprintf("Command exited with status %d", ws.ExitStatus()), nil)
	case c.killing:
		sig := "Killed"
		if ws.Signaled() {
			sig = signalName(ws.Signal())
		}
		c.update(ctx, mesos.TASK_KILLED, "Command terminated with signal "+sig, nil)
	case ws.Signaled():
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		c.update(ctx, mesos.TASK_FAILED, "Command terminated with signal "+signalName(ws.Signal()), &reason)
	case ws.ExitStatus() == 0:
		c.update(ctx, mesos.TASK_FINISHED, "Command exited with status 0", nil)
	default:
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		c.update(ctx, mesos.TASK_FAILED, fmt.Sprintf("Command exited with status %d", ws.ExitStatus()), &reason)
	}
}

func signalName(s syscall.Signal) string {
	name := s.String()
	if len(name) > 0 {
		return string(bytes.ToUpper([]byte(name[:1]))) + name[1:]
	}
	return name
}

// update sends a status update; one the agent did not take stays
// unacknowledged and goes out again with the next SUBSCRIBE.
func (c *cmdExec) update(ctx context.Context, state mesos.TaskState, message string, reason *mesos.TaskStatus_Reason) {
	ts := api.NowSeconds()
	st := mesos.TaskStatus{
		TaskID: c.task.TaskID, State: state.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(),
		ExecutorID: &mesos.ExecutorID{Value: c.spec.ExecutorID}, Timestamp: &ts, UUID: uuid.New().Bytes(), Reason: reason,
	}
	if message != "" {
		st.Message = &message
	}
	c.unacked[string(st.UUID)] = st
	if api.Terminal(state) {
		c.terminal = string(st.UUID)
	}
	call := &executor.Call{
		FrameworkID: mesos.FrameworkID{Value: c.spec.FrameworkID}, ExecutorID: mesos.ExecutorID{Value: c.spec.ExecutorID},
		Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: st},
	}
	resp, err := c.post(ctx, call)
	if err != nil {
		c.log.Warn("cannot send a status update; it goes out again on re-subscription", "task_id", c.task.TaskID.Value, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.log.Warn("status update refused", "task_id", c.task.TaskID.Value, "status", resp.Status)
	}
}

func (c *cmdExec) post(ctx context.Context, call *executor.Call) (*http.Response, error) {
	body, err := call.Marshal()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", wire.MediaProtobuf)
	req.Header.Set("Accept", wire.MediaProtobuf)
	if tok := c.spec.Getenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return c.client.Do(req)
}

// parseMesosDuration reads "5secs", "15mins", "100ms", "2.5hrs".
func parseMesosDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"weeks", 7 * 24 * time.Hour}, {"days", 24 * time.Hour}, {"hrs", time.Hour}, {"mins", time.Minute},
		{"secs", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}, {"ns", time.Nanosecond}}
	for _, u := range units {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			var v float64
			if _, err := fmt.Sscanf(s[:len(s)-len(u.suffix)], "%g", &v); err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, errors.New("invalid duration " + s)
}
