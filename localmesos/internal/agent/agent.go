package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/uuid"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/containerizer"
	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// Agent is one Mesos agent: it launches executors, serves their executor
// API, and keeps each task's status updates until the scheduler
// acknowledges them. Fields below box are owned by run.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	index     int
	toMaster  func(any) bool // posts to the current master; false if none
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	launcher  Launcher
	cmdLaunch Launcher // the built-in command executor
	// images is the docker store (nil without --image_providers);
	// imageLaunch starts custom executors in images.
	images      *containerizer.Store
	imageLaunch Launcher
	execCtx     context.Context // executors live as long as the cluster
	runCtx      context.Context // this incarnation: fetches end with it
	httpClient  *http.Client
	box         *link.Mailbox
	hostname    string
	ip          string
	port        int
	workDir     string
	files       *FileTable // what /files serves: the sandboxes
	total       res.Resources
	started     time.Time // for slave/uptime_secs
	done        chan struct{}
	wg          sync.WaitGroup // launch and wait goroutines

	attributes []mesos.Attribute

	id         string
	registered bool
	refused    bool // told to shut down: registers no more (a Mesos agent exits)
	draining   bool // DRAIN_AGENT: updates of killed tasks say REASON_AGENT_DRAINING
	frameworks map[string]*agentFramework
	dirty      map[*agentExecutor]bool
	closing    bool
	counters   agentCounters
}

type agentCounters struct {
	updatesRetried, unexpectedAcks, messagesDropped, updatesIgnored int64
}

type agentFramework struct {
	info        mesos.FrameworkInfo
	executors   map[string]*agentExecutor
	tasks       map[string]*agentTask
	terminating bool
}

type execState int

const (
	execLaunching execState = iota
	execRegistering
	execRunning
	execTerminating
	execTerminated
)

type agentExecutor struct {
	fwID        string
	info        mesos.ExecutorInfo
	containerID string
	sandbox     string
	command     bool
	state       execState
	proc        Process
	pid         int
	stream      *wire.Stream
	queued      []mesos.TaskInfo
	launched    map[string]bool
	timer       *time.Timer
	timeoutWhy  mesos.TaskStatus_Reason // which (re-)registration timeout applies
	timedOut    bool                    // killed because it did not subscribe in time
	recovering  bool                    // recovered after an agent restart, not re-subscribed yet
	kills       []executor.Event_Kill   // kills that came while it was not subscribed
	// early holds calls from an executor that reached the agent before
	// its launch was reported: answered once the agent knows its pid, as
	// Mesos' agent always does (it forks before the executor can speak).
	early []execCall
}

type agentTask struct {
	info     mesos.TaskInfo
	execID   string
	state    mesos.TaskState
	latest   *mesos.TaskStatus
	statuses []mesos.TaskStatus // every update, as GET_TASKS shows them
	pending  []pendingUpdate
	retry    *time.Timer
	attempts int // resends of the oldest pending update
}

type pendingUpdate struct {
	Status       mesos.TaskStatus
	Stored       mesos.TaskStatus
	FromExecutor bool
}

// --- messages inside the agent ---

type execLaunched struct {
	fwID, execID, containerID string
	proc                      Process
	err                       error
}

type execTerminatedMsg struct {
	fwID, execID, containerID string
	status                    int32
}

type execTimeout struct{ fwID, execID, containerID string }

type retryUpdate struct {
	fwID, taskID string
	uuid         string
}

type masterChanged struct{}

type execCall struct {
	call  *executor.Call
	codec wire.Codec
	reply chan execReply
}

type execReply struct {
	err    *wire.Error
	stream *wire.Stream
}

type execStreamEnded struct {
	fwID, execID string
	stream       *wire.Stream
}

type agentStateRequest struct{ reply chan []byte }

type killAll struct{ done chan struct{} }

func (a *Agent) Post(m any) bool { return a.box.Post(m) }

func (a *Agent) endpoint() string { return fmt.Sprintf("%s:%d", a.ip, a.port) }

func (a *Agent) after(d time.Duration, msg any) *time.Timer {
	return time.AfterFunc(d, func() { a.box.Post(msg) })
}

// Run is the agent's state goroutine: it registers with the master and
// handles messages until ctx ends, then stops.
func (a *Agent) Run(ctx context.Context) {
	a.runCtx = ctx
	defer close(a.done)
	defer a.stop()
	a.register()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.box.Notify():
		}
		for _, msg := range a.box.Take() {
			a.handle(msg)
		}
		a.flushCheckpoints()
	}
}

// stop ends this agent incarnation: executors of checkpointing frameworks
// keep running for the next one to recover; the others are killed.
func (a *Agent) stop() {
	for _, fw := range a.frameworks {
		for _, e := range fw.executors {
			if e.timer != nil {
				e.timer.Stop()
			}
			if e.stream != nil {
				e.stream.Close()
			}
			if (!fw.info.GetCheckpoint() || a.closing) && e.proc != nil {
				_ = e.proc.Kill()
			}
		}
		for _, t := range fw.tasks {
			if t.retry != nil {
				t.retry.Stop()
			}
		}
	}
	a.box.Close()
	if a.id != "" {
		a.toMaster(link.AgentDisconnected{AgentID: a.id})
	}
}

func (a *Agent) handle(msg any) {
	switch x := msg.(type) {
	case link.AgentRegistered:
		a.registered = true
		if a.id != x.AgentID {
			a.id = x.AgentID
			if err := a.saveAgentID(); err != nil {
				a.log.Error("cannot checkpoint the agent id", "agent_id", a.id, "error", err)
			}
		}
		a.log.Info("agent registered with the master", "agent_id", a.id)
		// Everything unacknowledged goes to the (new) master again.
		for fwID, fw := range a.frameworks {
			for _, t := range fw.tasks {
				if len(t.pending) > 0 {
					a.forward(fwID, t)
				}
			}
		}
	case masterChanged:
		a.registered = false
		if !a.refused {
			a.register()
		}
	case link.AgentShutdown:
		a.shutdown(x)
	case link.DrainAgent:
		a.drain(x)
	case link.AgentReactivated:
		a.draining = false
	case link.UpdateFramework:
		if fw := a.frameworks[x.Info.ID.Value]; fw != nil {
			fw.info = x.Info
		}
	case link.RunTask:
		a.runTask(x)
	case execLaunched:
		a.execLaunched(x)
	case execTerminatedMsg:
		a.execTerminated(x)
	case execTimeout:
		a.execTimeout(x)
	case execCall:
		if e := a.executor(x.call.FrameworkID.Value, x.call.ExecutorID.Value); e != nil && e.state == execLaunching {
			e.early = append(e.early, x)
			return
		}
		x.reply <- a.execCall(x)
	case execStreamEnded:
		if e := a.executor(x.fwID, x.execID); e != nil && e.stream == x.stream && e.state == execRunning {
			// The executor went away without exiting (or the agent is
			// closing its side); it may re-subscribe.
			e.stream = nil
		}
	case link.StatusAck:
		a.ack(x)
	case retryUpdate:
		a.retry(x)
	case link.KillTask:
		a.killTask(x)
	case link.ShutdownExecutor:
		if e := a.executor(x.FrameworkID, x.ExecutorID); e != nil {
			a.shutdownExecutor(e)
		}
	case link.ShutdownFramework:
		a.shutdownFramework(x.FrameworkID)
	case link.FrameworkToExecutor:
		e := a.executor(x.FrameworkID, x.ExecutorID)
		if e == nil || e.stream == nil || e.state != execRunning {
			a.counters.messagesDropped++
			a.log.Warn("dropping message for an executor that does not exist or is not subscribed", "framework_id", x.FrameworkID, "executor_id", x.ExecutorID)
			return
		}
		e.stream.Send(&executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: x.Data}})
	case agentStateRequest:
		x.reply <- a.renderState()
	case agentFunc:
		x(a)
	case agentIDRequest:
		if a.registered {
			x.reply <- []byte(a.id)
		} else {
			x.reply <- nil
		}
	case killAll:
		a.closing = true
		for _, fw := range a.frameworks {
			for _, e := range fw.executors {
				if e.proc != nil {
					_ = e.proc.Kill()
				}
			}
		}
		close(x.done)
	default:
		a.log.Error("agent got an unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

func (a *Agent) register() {
	var reg = link.AgentRegister{AgentID: a.id, Hostname: a.hostname, IP: a.ip, Attributes: a.attributes, Port: a.port, Total: a.total, Link: a}
	for fwID, fw := range a.frameworks {
		if fw.terminating {
			continue
		}
		reg.Frameworks = append(reg.Frameworks, fw.info)
		for _, e := range fw.executors {
			if e.state != execTerminated {
				reg.Executors = append(reg.Executors, link.ReportedExecutor{FrameworkID: fwID, Info: e.info, Command: e.command})
			}
		}
		for _, t := range fw.tasks {
			execID := ""
			if e := fw.executors[t.execID]; e != nil && !e.command {
				execID = t.execID
			}
			reg.Tasks = append(reg.Tasks, link.ReportedTask{FrameworkID: fwID, Info: t.info, ExecutorID: execID, State: t.state, Latest: t.latest})
		}
	}
	a.toMaster(reg)
}

func (a *Agent) executor(fwID, execID string) *agentExecutor {
	if fw := a.frameworks[fwID]; fw != nil {
		return fw.executors[execID]
	}
	return nil
}

// --- launching ---

func (a *Agent) runTask(x link.RunTask) {
	fwID := x.Framework.ID.Value
	fw := a.frameworks[fwID]
	if fw == nil {
		fw = &agentFramework{info: x.Framework, executors: map[string]*agentExecutor{}, tasks: map[string]*agentTask{}}
		a.frameworks[fwID] = fw
	}
	fw.info = x.Framework
	t := x.Task
	var info mesos.ExecutorInfo
	command := t.Executor == nil
	if command {
		info = commandExecutorInfo(fwID, t)
	} else {
		info = *t.Executor
	}
	execID := info.ExecutorID.Value
	at := &agentTask{info: t, execID: execID, state: mesos.TASK_STAGING}
	fw.tasks[t.TaskID.Value] = at
	e := fw.executors[execID]
	if e != nil && (e.state == execTerminating || e.state == execTerminated) {
		a.agentUpdate(fwID, at, mesos.TASK_LOST, mesos.REASON_EXECUTOR_TERMINATED, "Executor terminating", e)
		return
	}
	if e == nil {
		e = &agentExecutor{fwID: fwID, info: info, containerID: uuid.New().String(), command: command, launched: map[string]bool{}}
		e.sandbox = filepath.Join(a.workDir, "slaves", a.id, "frameworks", fwID, "executors", execID, "runs", e.containerID)
		a.files.attachSandbox(e.sandbox, fwID, execID)
		fw.executors[execID] = e
		e.queued = append(e.queued, t)
		a.launchExecutor(fw, e)
		a.dirty[e] = true
		return
	}
	if e.state == execRunning && e.stream != nil {
		a.sendLaunch(e, t)
	} else {
		e.queued = append(e.queued, t)
	}
	a.dirty[e] = true
}

// commandExecutorInfo is the ExecutorInfo Mesos makes for a command task.
func commandExecutorInfo(fwID string, t mesos.TaskInfo) mesos.ExecutorInfo {
	name := fmt.Sprintf("Command Executor (Task: %s) (Command: sh -c '%s')", t.TaskID.Value, t.Command.GetValue())
	if t.Command.Shell != nil && !*t.Command.Shell {
		name = fmt.Sprintf("Command Executor (Task: %s) (Command: [%s])", t.TaskID.Value, strings.Join(t.Command.Arguments, ", "))
	}
	source := t.TaskID.Value
	typ := mesos.ExecutorInfo_CUSTOM
	return mesos.ExecutorInfo{
		Type: typ, ExecutorID: mesos.ExecutorID{Value: t.TaskID.Value}, FrameworkID: &mesos.FrameworkID{Value: fwID},
		Command: t.Command, Name: &name, Source: &source,
	}
}

func (a *Agent) sendLaunch(e *agentExecutor, t mesos.TaskInfo) {
	e.launched[t.TaskID.Value] = true
	e.stream.Send(&executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: t}})
}

func (a *Agent) launchExecutor(fw *agentFramework, e *agentExecutor) {
	e.state = execLaunching
	spec := ExecutorSpec{
		FrameworkID: e.fwID, ExecutorID: e.info.ExecutorID.Value, ContainerID: e.containerID,
		Sandbox: e.sandbox, Env: a.executorEnv(fw, e), Dial: a.dial,
	}
	if e.info.Command != nil {
		spec.Command = *e.info.Command
	}
	launcher := a.launcher
	// A command task's ContainerInfo is its command executor's, as in Mesos.
	container := e.info.Container
	if e.command && len(e.queued) > 0 {
		container = e.queued[0].Container
	}
	if e.command {
		launcher = a.cmdLaunch
	} else if container != nil && a.imageLaunch != nil {
		launcher = a.imageLaunch
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		msg := execLaunched{fwID: e.fwID, execID: spec.ExecutorID, containerID: spec.ContainerID}
		if err := os.MkdirAll(spec.Sandbox, 0o755); err != nil {
			msg.err = fmt.Errorf("cannot create the sandbox: %w", err)
		} else if container != nil {
			// Mesos provisions the image before it fetches the URIs.
			msg.err = a.provision(a.runCtx, container, e.command, &spec)
		}
		if msg.err == nil {
			latest := filepath.Join(filepath.Dir(spec.Sandbox), "latest")
			_ = os.Remove(latest)
			_ = os.Symlink(spec.ContainerID, latest)
			msg.err = fetchURIs(a.runCtx, a.httpClient, spec.Command.URIs, spec.Sandbox)
		}
		if msg.err == nil {
			msg.proc, msg.err = launcher.Launch(a.execCtx, spec)
		}
		if !a.box.Post(msg) && msg.proc != nil {
			// This agent incarnation is gone; the next one recovers the
			// executor from its checkpoint, or it is killed below.
			_ = msg.proc
		}
	}()
}

// executorEnv is the environment Mesos 1.11 gives an executor.
func (a *Agent) executorEnv(fw *agentFramework, e *agentExecutor) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	grace := a.cfg.ExecutorShutdownGracePeriod
	if g := e.info.ShutdownGracePeriod; g != nil {
		grace = time.Duration(g.GetNanoseconds())
	}
	env := map[string]string{
		"LIBPROCESS_IP":                        a.ip,
		"LIBPROCESS_PORT":                      "0",
		"MESOS_AGENT_ENDPOINT":                 a.endpoint(),
		"MESOS_CHECKPOINT":                     "0",
		"MESOS_DIRECTORY":                      e.sandbox,
		"MESOS_SANDBOX":                        e.sandbox,
		"MESOS_EXECUTOR_ID":                    e.info.ExecutorID.Value,
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": api.MesosDuration(grace),
		"MESOS_FRAMEWORK_ID":                   e.fwID,
		"MESOS_HTTP_COMMAND_EXECUTOR":          "0",
		"MESOS_SLAVE_ID":                       a.id,
		"MESOS_SLAVE_PID":                      fmt.Sprintf("slave(1)@%s", a.endpoint()),
		"PATH":                                 path,
	}
	if fw.info.GetCheckpoint() {
		env["MESOS_CHECKPOINT"] = "1"
		env["MESOS_RECOVERY_TIMEOUT"] = api.MesosDuration(a.cfg.RecoveryTimeout)
		env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = api.MesosDuration(a.cfg.SubscriptionBackoffMax)
	}
	if a.cfg.ExecutorAuth != nil {
		if tok, err := a.cfg.ExecutorAuth.Token(e.fwID, e.info.ExecutorID.Value); err == nil && tok != "" {
			env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = tok
		} else if err != nil {
			a.log.Error("cannot make an executor token", "framework_id", e.fwID, "executor_id", e.info.ExecutorID.Value, "error", err)
		}
	}
	if !e.command && e.info.Command != nil && e.info.Command.Environment != nil {
		for _, v := range e.info.Command.Environment.Variables {
			if v.GetType() == mesos.Environment_Variable_VALUE || v.Type == nil {
				env[v.Name] = v.GetValue()
			}
		}
	}
	return sortedEnv(env)
}

func (a *Agent) execLaunched(x execLaunched) {
	e := a.executor(x.fwID, x.execID)
	if e != nil && e.containerID == x.containerID && len(e.early) > 0 {
		early := e.early
		e.early = nil
		defer func() {
			for _, c := range early {
				c.reply <- a.execCall(c)
			}
		}()
	}
	if e == nil || e.containerID != x.containerID || e.state == execTerminating || e.state == execTerminated {
		if x.proc != nil {
			_ = x.proc.Kill() // shut down while launching
		}
		if e != nil && e.containerID == x.containerID && e.state == execTerminating {
			a.executorGone(a.frameworks[x.fwID], e, -1)
		}
		return
	}
	if x.err != nil {
		a.log.Error("executor launch failed", "framework_id", x.fwID, "executor_id", x.execID, "error", x.err)
		fw := a.frameworks[x.fwID]
		for _, t := range e.queued {
			if at := fw.tasks[t.TaskID.Value]; at != nil {
				a.agentUpdate(x.fwID, at, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED, x.err.Error(), e)
			}
		}
		e.queued = nil
		a.executorGone(fw, e, 1<<8)
		return
	}
	e.proc, e.pid = x.proc, x.proc.Pid()
	if e.state == execLaunching {
		e.state = execRegistering
		e.timeoutWhy = mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT
		e.timer = a.after(a.cfg.ExecutorRegistrationTimeout, execTimeout{fwID: x.fwID, execID: x.execID, containerID: x.containerID})
	} // else: a fast executor already subscribed before its launch was reported
	a.watch(e)
	a.dirty[e] = true
}

// watch waits for the executor's exit in a goroutine of this incarnation.
func (a *Agent) watch(e *agentExecutor) {
	proc, fwID, execID, cid := e.proc, e.fwID, e.info.ExecutorID.Value, e.containerID
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-proc.Done():
			a.box.Post(execTerminatedMsg{fwID: fwID, execID: execID, containerID: cid, status: proc.WaitStatus()})
		case <-a.done:
		}
	}()
}

func (a *Agent) execTimeout(x execTimeout) {
	e := a.executor(x.fwID, x.execID)
	if e == nil || e.containerID != x.containerID {
		return
	}
	switch e.state {
	case execRegistering:
		a.log.Warn("executor did not (re-)subscribe in time; killing it", "framework_id", x.fwID, "executor_id", x.execID)
		e.state, e.timedOut = execTerminating, true
		if e.proc != nil {
			_ = e.proc.Kill()
		}
	case execTerminating:
		if e.proc != nil {
			_ = e.proc.Kill()
		}
	}
}

func (a *Agent) execTerminated(x execTerminatedMsg) {
	fw := a.frameworks[x.fwID]
	e := a.executor(x.fwID, x.execID)
	if fw == nil || e == nil || e.containerID != x.containerID {
		return
	}
	a.executorGone(fw, e, x.status)
}

// executorGone ends an executor: its unfinished tasks fail (or are lost
// when it never re-subscribed), the master is told, the executor record
// goes away once nothing refers to it.
func (a *Agent) executorGone(fw *agentFramework, e *agentExecutor, status int32) {
	reason := mesos.REASON_EXECUTOR_TERMINATED
	state := mesos.TASK_FAILED
	msg := "Executor terminated"
	if (e.timedOut || e.recovering) && e.timeoutWhy == mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT {
		reason, state, msg = e.timeoutWhy, mesos.TASK_LOST, "Executor did not re-subscribe after the agent restarted"
	} else if e.timedOut {
		reason, msg = e.timeoutWhy, "Executor did not subscribe in time"
	}
	e.state = execTerminated
	if e.timer != nil {
		e.timer.Stop()
	}
	if e.stream != nil {
		e.stream.Close()
		e.stream = nil
	}
	if !fw.terminating {
		ids := make([]string, 0)
		for id, t := range fw.tasks {
			if t.execID == e.info.ExecutorID.Value && !api.Terminal(t.state) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			a.agentUpdate(e.fwID, fw.tasks[id], state, reason, msg, e)
		}
	}
	delete(fw.executors, e.info.ExecutorID.Value)
	a.removeCheckpoint(e)
	a.destroyContainer(e)
	a.toMaster(link.ExecutorExited{AgentID: a.id, FrameworkID: e.fwID, ExecutorID: e.info.ExecutorID.Value, Status: status, Command: e.command})
	a.maybeRemoveFramework(e.fwID)
}

func (a *Agent) maybeRemoveFramework(fwID string) {
	fw := a.frameworks[fwID]
	if fw == nil || len(fw.executors) > 0 {
		return
	}
	if fw.terminating || len(fw.tasks) == 0 {
		delete(a.frameworks, fwID)
	}
}

func (a *Agent) shutdownExecutor(e *agentExecutor) {
	if e.state == execTerminating || e.state == execTerminated {
		return
	}
	grace := a.cfg.ExecutorShutdownGracePeriod
	if g := e.info.ShutdownGracePeriod; g != nil {
		grace = time.Duration(g.GetNanoseconds())
	}
	e.state = execTerminating
	if e.stream != nil {
		// As Mesos: the executor gets SHUTDOWN and the grace period to wind
		// down (report its tasks, exit); only then is it killed.
		e.stream.Send(&executor.Event{Type: executor.Event_SHUTDOWN})
	} else if e.proc != nil {
		_ = e.proc.Kill()
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = a.after(grace, execTimeout{fwID: e.fwID, execID: e.info.ExecutorID.Value, containerID: e.containerID})
}

func (a *Agent) shutdownFramework(fwID string) {
	fw := a.frameworks[fwID]
	if fw == nil {
		return
	}
	fw.terminating = true
	for _, t := range fw.tasks {
		if t.retry != nil {
			t.retry.Stop()
		}
		t.pending = nil
	}
	for _, e := range fw.executors {
		if e.state == execLaunching {
			e.state = execTerminating
			continue
		}
		a.shutdownExecutor(e)
	}
	a.maybeRemoveFramework(fwID)
}

func (a *Agent) killTask(x link.KillTask) {
	fw := a.frameworks[x.FrameworkID]
	if fw == nil {
		return
	}
	t := fw.tasks[x.TaskID]
	if t == nil {
		return
	}
	e := fw.executors[t.execID]
	if e == nil {
		return
	}
	for i, q := range e.queued {
		if q.TaskID.Value == x.TaskID {
			e.queued = append(e.queued[:i], e.queued[i+1:]...)
			a.agentUpdate(x.FrameworkID, t, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "Killed before delivery to the executor", e)
			if len(e.queued) == 0 && len(e.launched) == 0 {
				a.shutdownExecutor(e)
			}
			return
		}
	}
	kill := executor.Event_Kill{TaskID: t.info.TaskID, KillPolicy: x.Policy}
	if e.stream != nil && e.state == execRunning {
		e.stream.Send(&executor.Event{Type: executor.Event_KILL, Kill: &kill})
		return
	}
	// Delivered when the executor (re-)subscribes.
	e.kills = append(e.kills, kill)
}

// --- status updates: at least once, in order per task ---

// agentUpdate makes an update of the agent's own (source SOURCE_AGENT).
func (a *Agent) agentUpdate(fwID string, t *agentTask, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string, e *agentExecutor) {
	ts := api.NowSeconds()
	st := mesos.TaskStatus{
		TaskID: t.info.TaskID, State: state.Enum(), Message: &message, Source: mesos.SOURCE_AGENT.Enum(),
		Reason: reason.Enum(), Timestamp: &ts, UUID: uuid.New().Bytes(), AgentID: &mesos.AgentID{Value: a.id},
	}
	if e != nil && !e.command {
		st.ExecutorID = &mesos.ExecutorID{Value: e.info.ExecutorID.Value}
	}
	a.enqueue(fwID, t, pendingUpdate{Status: st, Stored: st}, e)
}

func (a *Agent) enqueue(fwID string, t *agentTask, u pendingUpdate, e *agentExecutor) {
	if st := u.Status.GetState(); a.draining && (st == mesos.TASK_KILLING || api.Terminal(st)) {
		// As Mesos' agent while draining: every update of a killed task,
		// TASK_KILLING included, says why.
		u.Status.Reason = mesos.REASON_AGENT_DRAINING.Enum()
		u.Stored.Reason = mesos.REASON_AGENT_DRAINING.Enum()
	}
	t.state = u.Status.GetState()
	latest := u.Status
	t.latest = &latest
	t.statuses = append(t.statuses, u.Status)
	t.pending = append(t.pending, u)
	if e != nil && api.Terminal(t.state) {
		delete(e.launched, t.info.TaskID.Value)
	}
	if e != nil {
		a.dirty[e] = true
	}
	if len(t.pending) == 1 {
		t.attempts = 0
		a.forward(fwID, t)
	}
}

// forward sends the head of a task's update stream to the master and arms
// the retry timer.
func (a *Agent) forward(fwID string, t *agentTask) {
	if len(t.pending) == 0 {
		return
	}
	head := t.pending[0]
	if a.registered {
		a.toMaster(link.StatusUpdate{AgentID: a.id, FrameworkID: fwID, Status: head.Status, Stored: head.Stored})
	}
	if t.retry != nil {
		t.retry.Stop()
	}
	// Mesos' agent resends doubling the interval, up to 10 minutes.
	interval := backoff.Policy{Initial: a.cfg.StatusUpdateRetry, Max: 10 * time.Minute, Factor: 2}.Envelope(t.attempts)
	t.retry = a.after(interval, retryUpdate{fwID: fwID, taskID: t.info.TaskID.Value, uuid: string(head.Status.UUID)})
}

func (a *Agent) retry(x retryUpdate) {
	fw := a.frameworks[x.fwID]
	if fw == nil || fw.terminating {
		return
	}
	t := fw.tasks[x.taskID]
	if t == nil || len(t.pending) == 0 || string(t.pending[0].Status.UUID) != x.uuid {
		return
	}
	a.counters.updatesRetried++
	t.attempts++
	a.forward(x.fwID, t)
}

func (a *Agent) ack(x link.StatusAck) {
	fw := a.frameworks[x.FrameworkID]
	var t *agentTask
	if fw != nil {
		t = fw.tasks[x.TaskID]
	}
	if t == nil || len(t.pending) == 0 || string(t.pending[0].Status.UUID) != string(x.UUID) {
		a.counters.unexpectedAcks++
		a.log.Error("unexpected status update acknowledgement", "framework_id", x.FrameworkID, "task_id", x.TaskID)
		return
	}
	t.pending = t.pending[1:]
	if t.retry != nil {
		t.retry.Stop()
		t.retry = nil
	}
	e := fw.executors[t.execID]
	if e != nil {
		a.dirty[e] = true
	}
	if len(t.pending) > 0 {
		t.attempts = 0
		a.forward(x.FrameworkID, t)
		return
	}
	if api.Terminal(t.state) {
		delete(fw.tasks, x.TaskID)
		a.maybeRemoveFramework(x.FrameworkID)
	}
}

// --- the executor API ---

func (a *Agent) execCall(x execCall) execReply {
	c := x.call
	fw := a.frameworks[c.FrameworkID.Value]
	if fw == nil {
		return execReply{err: wire.BadRequest("Framework cannot be found")}
	}
	e := fw.executors[c.ExecutorID.Value]
	if e == nil {
		return execReply{err: wire.BadRequest("Executor cannot be found")}
	}
	switch c.Type {
	case executor.Call_SUBSCRIBE:
		return a.execSubscribe(fw, e, x)
	case executor.Call_UPDATE:
		if e.state == execTerminated {
			return execReply{err: wire.BadRequest("Executor has terminated")}
		}
		if fw.terminating {
			a.counters.updatesIgnored++
			a.log.Warn("ignoring status update for a terminating framework", "framework_id", e.fwID, "task_id", c.Update.Status.TaskID.Value)
			return execReply{}
		}
		a.executorUpdate(fw, e, c.Update.Status)
	case executor.Call_MESSAGE:
		a.toMaster(link.ExecutorToFramework{AgentID: a.id, FrameworkID: e.fwID, ExecutorID: e.info.ExecutorID.Value, Data: c.Message.Data})
	case executor.Call_HEARTBEAT:
	}
	return execReply{}
}

func (a *Agent) execSubscribe(fw *agentFramework, e *agentExecutor, x execCall) execReply {
	if e.state == execTerminating || e.state == execTerminated {
		return execReply{err: &wire.Error{Status: http.StatusForbidden, Text: "Executor is terminating"}}
	}
	sub := x.call.Subscribe
	for _, ti := range sub.UnacknowledgedTasks {
		if _, ok := fw.tasks[ti.TaskID.Value]; !ok {
			fw.tasks[ti.TaskID.Value] = &agentTask{info: ti, execID: e.info.ExecutorID.Value, state: mesos.TASK_STAGING}
			e.launched[ti.TaskID.Value] = true
		}
	}
	for _, u := range sub.UnacknowledgedUpdates {
		t := fw.tasks[u.Status.TaskID.Value]
		if t == nil {
			continue
		}
		known := false
		for _, p := range t.pending {
			if string(p.Status.UUID) == string(u.Status.UUID) {
				known = true
			}
		}
		if !known && !api.Terminal(t.state) {
			a.executorUpdate(fw, e, u.Status)
		}
	}
	if e.stream != nil {
		e.stream.Close()
	}
	stream := wire.NewStream(x.codec, "")
	e.stream, e.state, e.timedOut, e.recovering = stream, execRunning, false, false
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	agentInfo := mesos.AgentInfo{
		Hostname: a.hostname, Port: ptrInt32(int32(a.port)), ID: &mesos.AgentID{Value: a.id},
		Resources: a.total.ToProto(res.Plain, false), Attributes: a.attributes,
	}
	cid := mesos.ContainerID{Value: e.containerID}
	stream.Send(&executor.Event{Type: executor.Event_SUBSCRIBED, Subscribed: &executor.Event_Subscribed{
		ExecutorInfo: e.info, FrameworkInfo: fw.info, AgentInfo: agentInfo, ContainerID: &cid,
	}})
	for _, t := range e.queued {
		a.sendLaunch(e, t)
	}
	e.queued = nil
	for i := range e.kills {
		stream.Send(&executor.Event{Type: executor.Event_KILL, Kill: &e.kills[i]})
	}
	e.kills = nil
	a.dirty[e] = true
	return execReply{stream: stream}
}

func ptrInt32(v int32) *int32 { return &v }

// executorUpdate takes an UPDATE from an executor into the task's stream:
// the agent adds agent_id, a timestamp and container_status, not
// executor_id (the command executor sets that itself).
func (a *Agent) executorUpdate(fw *agentFramework, e *agentExecutor, st mesos.TaskStatus) {
	t := fw.tasks[st.TaskID.Value]
	if t == nil {
		t = &agentTask{info: mesos.TaskInfo{TaskID: st.TaskID, AgentID: mesos.AgentID{Value: a.id}}, execID: e.info.ExecutorID.Value}
		fw.tasks[st.TaskID.Value] = t
	}
	stored := st
	st.AgentID = &mesos.AgentID{Value: a.id}
	if st.Timestamp == nil {
		ts := api.NowSeconds()
		st.Timestamp = &ts
	}
	pid := uint32(e.pid)
	proto, ip := mesos.IPv4, a.ip
	cs := &mesos.ContainerStatus{
		ContainerID:  &mesos.ContainerID{Value: e.containerID},
		NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{Protocol: &proto, IPAddress: &ip}}}},
	}
	if e.pid > 0 {
		cs.ExecutorPID = &pid
	}
	st.ContainerStatus = cs
	stored.ContainerStatus = cs
	stored.AgentID = st.AgentID
	a.enqueue(e.fwID, t, pendingUpdate{Status: st, Stored: stored, FromExecutor: true}, e)
	// As Mesos' agent (Slave::___statusUpdate): the executor hears
	// ACKNOWLEDGED once the agent holds the update, not when the scheduler
	// acknowledges it; from then on retrying it is the agent's job
	// (recording 03: ACKNOWLEDGED reaches the executor before the
	// scheduler has even seen the update).
	if e.stream != nil && len(st.UUID) > 0 {
		e.stream.Send(&executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &executor.Event_Acknowledged{TaskID: st.TaskID, UUID: st.UUID}})
	}
}

// RegisteredID is the id the master gave the agent ("" until registered
// or once stopped).
func (a *Agent) RegisteredID() string {
	reply := make(chan []byte, 1)
	if !a.box.Post(agentIDRequest{reply: reply}) {
		return ""
	}
	select {
	case b := <-reply:
		return string(b)
	case <-a.done:
		return ""
	}
}

type agentIDRequest struct{ reply chan []byte }
