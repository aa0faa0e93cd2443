package executor

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/executor/internal/supervise"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/backoff"
)

// The machine is the executor's decision logic: a pure state machine, not
// safe for concurrent use. The driver (Run) feeds it inputs with the current
// time and carries out the effects it returns, in order; it never decides
// anything itself. Everything the executor can be asked about (which status
// updates are unacknowledged, which link version was passed on, when to
// SIGKILL) is here, so it is tested by scripts without processes or sockets.

// machineConfig is the machine's fixed configuration.
type machineConfig struct {
	FrameworkID, ExecutorID string
	Checkpoint              bool
	// RecoveryTimeout bounds the time without an agent (checkpointing only).
	RecoveryTimeout time.Duration
	// BackoffMax caps the delay between subscription attempts.
	BackoffMax time.Duration
	// ShutdownGrace is the agent's grace after SHUTDOWN.
	ShutdownGrace  time.Duration
	StatusInterval time.Duration
	AckTimeout     time.Duration
	// NewUUID returns a fresh 16-byte status update uuid.
	NewUUID func() []byte
	// Rand returns a uniform random number in [0, 1), for jitter.
	Rand func() float64
}

// phase is where the task is in its life.
type phase int

const (
	phaseNone      phase = iota // no task launched yet
	phaseLaunching              // start requested, process not yet started
	phaseStarting               // process running, not yet ready
	phaseRunning                // TASK_RUNNING sent
	phaseKilling                // being stopped: drain, SIGTERM, SIGKILL
	phaseDone                   // terminal update sent; the process is gone
)

func (p phase) String() string {
	return [...]string{"none", "launching", "starting", "running", "killing", "done"}[p]
}

// killCause says why the service is being stopped; it decides the terminal
// state.
type killCause int

const (
	causeKill       killCause = iota // KILL from the scheduler
	causeShutdown                    // SHUTDOWN from the agent
	causeTerminate                   // the executor itself was signalled
	causeAgentGone                   // the agent could not be reached in time
	causeHung                        // no heartbeat for the liveness timeout
	causeNotReady                    // in-gates not bound within the ready timeout
	causeFalseClaim                  // the service claimed something false on its control socket
)

// --- inputs ---

type input interface{ isInput() }

// inAgent is an event from the agent on subscription gen.
type inAgent struct {
	Gen   int
	Event *executor.Event
}

// inDisconnected: subscription gen failed or ended.
type inDisconnected struct {
	Gen int
	Err error
}

// inTerminate: the executor process was asked to stop (SIGTERM, SIGINT).
type inTerminate struct{ Signal string }

// inStarted: the service process started.
type inStarted struct{ PID int }

// inStartFailed: the service could not be started.
type inStartFailed struct{ Err error }

// inService: the control socket's state changed.
type inService struct{ State control.State }

// inExited: the service process exited and was reaped.
type inExited struct {
	Status supervise.Status
	// StderrTail is the last line of the service's stderr, if any.
	StderrTail string
}

// inCallFailed: a call to the agent failed.
type inCallFailed struct {
	// UUID is the status update's uuid, nil for a MESSAGE.
	UUID      []byte
	Err       error
	Permanent bool
}

// inTick: time passed (a deadline may be due).
type inTick struct{}

func (inAgent) isInput()        {}
func (inDisconnected) isInput() {}
func (inTerminate) isInput()    {}
func (inStarted) isInput()      {}
func (inStartFailed) isInput()  {}
func (inService) isInput()      {}
func (inExited) isInput()       {}
func (inCallFailed) isInput()   {}
func (inTick) isInput()         {}

// --- effects ---

type effect interface{ isEffect() }

// doSubscribe: open subscription gen with this SUBSCRIBE call.
type doSubscribe struct {
	Gen  int
	Call *executor.Call
}

// doDisconnect: close every subscription older than Gen.
type doDisconnect struct {
	Gen    int
	Reason string
}

// doCall: send a plain call (UPDATE, MESSAGE), in order.
type doCall struct{ Call *executor.Call }

// doLaunch: set up the control socket and start the service.
type doLaunch struct {
	TaskID string
	Data   contract.TaskData
	// HeartbeatInterval is what the service is asked to beat at.
	HeartbeatInterval time.Duration
}

// doPush: hand a link snapshot to the service.
type doPush struct{ Snapshot control.Snapshot }

// doDrain: ask the service to drain within Timeout.
type doDrain struct{ Timeout time.Duration }

// doSignal: signal the service's process group.
type doSignal struct{ Signal syscall.Signal }

// doLog: something worth logging.
type doLog struct {
	Level slog.Level
	Msg   string
	Attrs []any
}

// doExit: the executor is done.
type doExit struct {
	Code   int
	Reason string
}

func (doSubscribe) isEffect()  {}
func (doDisconnect) isEffect() {}
func (doCall) isEffect()       {}
func (doLaunch) isEffect()     {}
func (doPush) isEffect()       {}
func (doDrain) isEffect()      {}
func (doSignal) isEffect()     {}
func (doLog) isEffect()        {}
func (doExit) isEffect()       {}

// --- state ---

type pendingUpdate struct {
	status mesos.TaskStatus
	// sent: posted, or included in a SUBSCRIBE.
	sent bool
}

type killState struct {
	cause    killCause
	why      string // first part of the terminal message
	start    time.Time
	grace    time.Duration
	drainBy  time.Time // SIGTERM then, unless the service is gone
	graceEnd time.Time // SIGKILL then
	drain    bool      // a drain was requested
	term     bool      // SIGTERM sent
	kill     bool      // SIGKILL sent
}

type task struct {
	info  mesos.TaskInfo
	id    string
	data  contract.TaskData
	phase phase
	pid   int
	// infoAcked: the agent acknowledged one of its updates, so it no longer
	// goes in SUBSCRIBE's unacknowledged_tasks.
	infoAcked bool

	startedAt time.Time
	readyBy   time.Time

	svc      control.State // latest control-socket state
	helloed  bool          // the service has connected at least once
	lastBeat time.Time
	// distrusted: the service made a false claim (control.State.Violation);
	// nothing it says is passed on to the scheduler any more.
	distrusted bool

	passed   uint64 // newest link version passed on to the service
	ackedVer uint64 // newest applied version acknowledged to the scheduler
	nacked   uint64 // newest version refused to the scheduler

	kill *killState
	// pending is a stop asked for while the process was being started.
	pending *pendingStop
}

type pendingStop struct {
	cause killCause
	why   string
	grace time.Duration
}

// counters are the executor's own counts, reported in status messages.
type counters struct {
	MessagesIgnored uint64 // framework messages malformed, foreign or for another task
	LinksStale      uint64 // links versions not newer than the one passed on
	LinksRefused    uint64 // links versions refused (nack)
	MessagesFailed  uint64 // MESSAGE calls that failed: an ack or status lost
	UpdatesRefused  uint64 // UPDATE calls the agent refused for good
	Subscriptions   uint64 // SUBSCRIBE calls made
	EventsIgnored   uint64 // agent events ignored (unknown, stale, unexpected)
}

type connState int

const (
	connDown connState = iota
	connSubscribing
	connUp
)

type machine struct {
	cfg   machineConfig
	now   time.Time
	start time.Time
	out   []effect

	// the agent
	conn           connState
	gen            int
	everSubscribed bool
	downSince      time.Time
	nextSubscribe  time.Time
	attempts       int  // subscription attempts since the last success
	killingState   bool // the framework understands TASK_KILLING
	gaveUp         bool
	// Agents that send HEARTBEAT events (Mesos 1.x, every 30 minutes by
	// default; test agents often much more often) let a silent subscription
	// be noticed: lastEvent is when anything last arrived, beatGap the gap
	// between the last two heartbeats (0 until two arrived on this
	// subscription). The agent runs on the same host, so its death closes
	// the connection at once; this only catches an agent that hangs.
	lastEvent time.Time
	lastBeat  time.Time
	beatGap   time.Duration

	task       *task
	unacked    []pendingUpdate
	nextStatus time.Time
	doneAt     time.Time
	shutdown   bool
	shutdownBy time.Time // exit by then, acknowledged or not
	exited     bool
	count      counters
}

func newMachine(cfg machineConfig, now time.Time) *machine {
	return &machine{cfg: cfg, now: now, start: now, downSince: now, nextSubscribe: now}
}

// Step feeds one input at time now and returns the effects to carry out.
func (m *machine) Step(now time.Time, in input) []effect {
	if now.After(m.now) {
		m.now = now
	}
	m.out = nil
	if m.exited {
		return nil
	}
	switch in := in.(type) {
	case inAgent:
		m.agentEvent(in)
	case inDisconnected:
		m.disconnected(in)
	case inTerminate:
		m.log(slog.LevelInfo, "executor asked to stop", "signal", in.Signal)
		m.beginShutdown(causeTerminate, "killed: the executor was asked to stop ("+in.Signal+")")
	case inStarted:
		m.started(in)
	case inStartFailed:
		m.startFailed(in)
	case inService:
		m.serviceState(in.State)
	case inExited:
		m.serviceExited(in)
	case inCallFailed:
		m.callFailed(in)
	case inTick:
	}
	m.timers()
	m.maybeExit()
	return m.out
}

func (m *machine) emit(e effect) { m.out = append(m.out, e) }

func (m *machine) log(level slog.Level, msg string, attrs ...any) {
	has := false
	for i := 0; i < len(attrs); i += 2 {
		has = has || attrs[i] == "task_id"
	}
	if m.task != nil && !has {
		attrs = append([]any{"task_id", m.task.id}, attrs...)
	}
	m.emit(doLog{Level: level, Msg: msg, Attrs: attrs})
}

// alive reports whether the service process may be running.
func (t *task) alive() bool {
	return t != nil && (t.phase == phaseLaunching || t.phase == phaseStarting || t.phase == phaseRunning || t.phase == phaseKilling)
}

// --- the agent ---

func (m *machine) agentEvent(in inAgent) {
	if in.Gen != m.gen || m.conn == connDown {
		m.count.EventsIgnored++
		return // a closed subscription's leftovers
	}
	ev := in.Event
	m.lastEvent = m.now
	if m.conn == connSubscribing && ev.Type != executor.Event_SUBSCRIBED && ev.Type != executor.Event_ERROR {
		m.log(slog.LevelWarn, "agent sent an event before SUBSCRIBED; ignoring it", "event", ev.Type.String())
		m.count.EventsIgnored++
		return
	}
	switch ev.Type {
	case executor.Event_SUBSCRIBED:
		m.subscribed(ev.Subscribed)
	case executor.Event_LAUNCH:
		if ev.Launch == nil {
			m.count.EventsIgnored++
			return
		}
		m.launch(ev.Launch.Task)
	case executor.Event_LAUNCH_GROUP:
		if ev.LaunchGroup == nil {
			m.count.EventsIgnored++
			return
		}
		for _, t := range ev.LaunchGroup.TaskGroup.Tasks {
			m.refuseTask(t, "the Tiltai executor runs single tasks (LAUNCH), not task groups")
		}
	case executor.Event_KILL:
		if ev.Kill == nil {
			m.count.EventsIgnored++
			return
		}
		var grace *time.Duration
		if kp := ev.Kill.KillPolicy; kp != nil && kp.GracePeriod != nil {
			g := time.Duration(kp.GracePeriod.GetNanoseconds())
			grace = &g
		}
		m.killEvent(ev.Kill.TaskID.Value, grace)
	case executor.Event_ACKNOWLEDGED:
		if ev.Acknowledged == nil {
			m.count.EventsIgnored++
			return
		}
		m.acknowledged(ev.Acknowledged.TaskID.Value, ev.Acknowledged.UUID)
	case executor.Event_MESSAGE:
		if ev.Message == nil {
			m.count.EventsIgnored++
			return
		}
		m.message(ev.Message.Data)
	case executor.Event_SHUTDOWN:
		m.log(slog.LevelInfo, "agent asked the executor to shut down")
		m.beginShutdown(causeShutdown, "killed: the agent shut the executor down")
	case executor.Event_ERROR:
		msg := ""
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		m.log(slog.LevelWarn, "agent reported an error; re-subscribing", "error", msg)
		m.reconnect("agent error: " + msg)
	case executor.Event_HEARTBEAT:
		if !m.lastBeat.IsZero() {
			m.beatGap = m.now.Sub(m.lastBeat)
		}
		m.lastBeat = m.now
	default:
		m.count.EventsIgnored++
		m.log(slog.LevelDebug, "ignoring agent event", "event", ev.Type.String())
	}
}

func (m *machine) subscribed(s *executor.Event_Subscribed) {
	m.conn = connUp
	m.lastBeat, m.beatGap = time.Time{}, 0
	m.everSubscribed = true
	m.attempts = 0
	if s != nil {
		m.killingState = slices.ContainsFunc(s.FrameworkInfo.Capabilities, func(c mesos.FrameworkInfo_Capability) bool {
			return c.GetType() == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE
		})
	}
	m.log(slog.LevelInfo, "subscribed to the agent", "unacknowledged_updates", len(m.unacked))
	for i := range m.unacked {
		if !m.unacked[i].sent {
			m.unacked[i].sent = true
			m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: m.unacked[i].status}})})
		}
	}
	if t := m.task; t != nil && t.phase == phaseDone {
		m.doneAt = m.now // the re-sent updates get a fresh ack timeout
	}
	if t := m.task; t.alive() {
		// A lost ack heals without waiting for the scheduler to resend.
		if t.ackedVer > 0 {
			m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: t.ackedVer})
		}
		m.nextStatus = m.now
	}
}

func (m *machine) disconnected(in inDisconnected) {
	if in.Gen != m.gen || m.conn == connDown {
		return
	}
	m.goDown(fmt.Sprintf("subscription ended: %v", in.Err))
}

// reconnect drops the current subscription and schedules a new one.
func (m *machine) reconnect(reason string) {
	if m.conn == connDown {
		return
	}
	m.goDown(reason)
	m.emit(doDisconnect{Gen: m.gen, Reason: reason})
}

func (m *machine) goDown(reason string) {
	wasUp := m.conn == connUp
	m.conn = connDown
	m.gen++ // whatever the old subscription still says is stale
	if wasUp {
		m.downSince = m.now
	}
	switch {
	case wasUp && !m.cfg.Checkpoint:
		m.log(slog.LevelWarn, "lost the agent and the framework does not checkpoint: stopping", "reason", reason)
		m.giveUp("the executor lost its agent and the framework does not checkpoint")
	case m.gaveUp:
	default:
		m.scheduleSubscribe()
		m.log(slog.LevelWarn, "not subscribed to the agent; retrying", "reason", reason, "retry_in", m.nextSubscribe.Sub(m.now).String())
	}
}

// scheduleSubscribe picks the next attempt: exponential from 100ms, capped
// by the backoff max (Mesos: every executor must retry within it), with
// equal jitter (half..all of the step).
func (m *machine) scheduleSubscribe() {
	p := backoff.Policy{Initial: 100 * time.Millisecond, Max: m.cfg.BackoffMax, Factor: 2, Jitter: backoff.Equal}
	m.nextSubscribe = m.now.Add(p.Next(m.attempts, m.cfg.Rand()))
	m.attempts++
}

// subscribeDeadline is when trying to reach the agent stops.
func (m *machine) subscribeDeadline() time.Time {
	switch {
	case m.cfg.Checkpoint:
		return m.downSince.Add(m.cfg.RecoveryTimeout)
	case !m.everSubscribed:
		return m.start.Add(initialSubscribeTimeout)
	}
	return m.downSince // without checkpointing a lost agent is final
}

func (m *machine) giveUp(why string) {
	if m.gaveUp {
		return
	}
	m.gaveUp = true
	if t := m.task; t.alive() {
		m.stop(causeAgentGone, "killed: "+why, t.data.GracePeriod())
	}
}

func (m *machine) subscribeNow() {
	m.gen++
	m.conn = connSubscribing
	m.count.Subscriptions++
	// Empty lists, not absent ones: mesos-go writes a nil slice as null,
	// which is not a JSON array.
	tasks := []mesos.TaskInfo{}
	if t := m.task; t != nil && !t.infoAcked {
		tasks = append(tasks, t.info)
	}
	updates := []executor.Call_Update{}
	for i := range m.unacked {
		m.unacked[i].sent = true
		updates = append(updates, executor.Call_Update{Status: m.unacked[i].status})
	}
	m.emit(doSubscribe{Gen: m.gen, Call: m.call(&executor.Call{
		Type:      executor.Call_SUBSCRIBE,
		Subscribe: &executor.Call_Subscribe{UnacknowledgedTasks: tasks, UnacknowledgedUpdates: updates},
	})})
}

func (m *machine) call(c *executor.Call) *executor.Call {
	c.FrameworkID = mesos.FrameworkID{Value: m.cfg.FrameworkID}
	c.ExecutorID = mesos.ExecutorID{Value: m.cfg.ExecutorID}
	return c
}

// --- status updates ---

type statusOpt func(*mesos.TaskStatus)

func withReason(r mesos.TaskStatus_Reason) statusOpt {
	return func(s *mesos.TaskStatus) { s.Reason = &r }
}

func withHealthy(h bool) statusOpt {
	return func(s *mesos.TaskStatus) { s.Healthy = &h }
}

// update queues a status update: posted now when subscribed, otherwise in
// the next SUBSCRIBE; kept until the agent acknowledges its uuid.
func (m *machine) update(taskID string, state mesos.TaskState, msg string, opts ...statusOpt) {
	src := mesos.SOURCE_EXECUTOR
	ts := float64(m.now.UnixNano()) / 1e9
	st := mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: taskID},
		State:      &state,
		Message:    &msg,
		Source:     &src,
		ExecutorID: &mesos.ExecutorID{Value: m.cfg.ExecutorID},
		Timestamp:  &ts,
		UUID:       m.cfg.NewUUID(),
	}
	for _, o := range opts {
		o(&st)
	}
	p := pendingUpdate{status: st}
	if m.conn == connUp {
		p.sent = true
		m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: st}})})
	}
	m.unacked = append(m.unacked, p)
	m.log(slog.LevelInfo, "status update", "task_id", taskID, "state", state.String(), "message", msg)
}

func (m *machine) acknowledged(taskID string, uuid []byte) {
	i := slices.IndexFunc(m.unacked, func(p pendingUpdate) bool { return string(p.status.UUID) == string(uuid) })
	if i < 0 {
		m.count.EventsIgnored++
		m.log(slog.LevelDebug, "acknowledgement of an unknown status update", "ack_task_id", taskID)
		return
	}
	m.unacked = slices.Delete(m.unacked, i, i+1)
	if t := m.task; t != nil && t.id == taskID {
		t.infoAcked = true
	}
}

func (m *machine) callFailed(in inCallFailed) {
	if in.UUID == nil {
		m.count.MessagesFailed++
		m.log(slog.LevelWarn, "framework message to the scheduler lost", "error", in.Err)
		return
	}
	i := slices.IndexFunc(m.unacked, func(p pendingUpdate) bool { return string(p.status.UUID) == string(in.UUID) })
	if i < 0 {
		return // acknowledged meanwhile
	}
	if in.Permanent {
		// Sending it again cannot help; keeping it would block the exit.
		m.count.UpdatesRefused++
		st := m.unacked[i].status
		m.log(slog.LevelError, "agent refused a status update; dropping it", "state", st.GetState().String(), "error", in.Err)
		m.unacked = slices.Delete(m.unacked, i, i+1)
		return
	}
	// The next SUBSCRIBE carries every unacknowledged update.
	m.reconnect(fmt.Sprintf("status update failed: %v", in.Err))
}

// send queues a framework message to the scheduler; lost if not subscribed.
func (m *machine) send(msg contract.Message) {
	if m.conn != connUp {
		m.count.MessagesFailed++
		return
	}
	b, err := contract.Encode(msg)
	if err != nil {
		m.count.MessagesFailed++
		m.log(slog.LevelError, "cannot encode a framework message", "error", err)
		return
	}
	m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_MESSAGE, Message: &executor.Call_Message{Data: b}})})
}

// --- launch ---

func (m *machine) refuseTask(info mesos.TaskInfo, why string) {
	m.log(slog.LevelWarn, "refusing a task", "refused_task_id", info.TaskID.Value, "reason", why)
	m.update(info.TaskID.Value, mesos.TASK_ERROR, why, withReason(mesos.REASON_TASK_INVALID))
}

func (m *machine) launch(info mesos.TaskInfo) {
	id := info.TaskID.Value
	switch {
	case m.task != nil && m.task.id == id:
		m.count.EventsIgnored++
		m.log(slog.LevelInfo, "ignoring a repeated LAUNCH of the task")
		return
	case m.task != nil:
		m.refuseTask(info, fmt.Sprintf("this executor already runs task %q; the Tiltai scheduler gives every task its own executor", m.task.id))
		return
	case m.shutdown || m.gaveUp:
		m.refuseTask(info, "the executor is shutting down")
		return
	}
	t := &task{info: info, id: id}
	m.task = t
	data, err := contract.DecodeTaskData(info.Data)
	if err != nil {
		t.phase = phaseDone
		m.doneAt = m.now
		m.update(id, mesos.TASK_ERROR, err.Error(), withReason(mesos.REASON_TASK_INVALID))
		return
	}
	t.data = data
	if kp := info.KillPolicy; kp != nil && kp.GracePeriod != nil {
		g := contract.Duration(kp.GracePeriod.GetNanoseconds())
		if g >= 0 {
			t.data.KillGracePeriod = &g
		}
	}
	t.phase = phaseLaunching
	m.update(id, mesos.TASK_STARTING, fmt.Sprintf("starting service %q: %s", data.Service, commandLine(data)))
	m.emit(doLaunch{TaskID: id, Data: data, HeartbeatInterval: heartbeatInterval(data.LivenessTimeout())})
}

// heartbeatInterval is what the service is asked to beat at: five beats per
// liveness timeout, at most one a second.
func heartbeatInterval(liveness time.Duration) time.Duration {
	if liveness <= 0 {
		return time.Second
	}
	return min(time.Second, max(liveness/5, 10*time.Millisecond))
}

func commandLine(d contract.TaskData) string {
	parts := append([]string{d.Command}, d.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"\\$") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	s := strings.Join(parts, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (m *machine) started(in inStarted) {
	t := m.task
	if t == nil || t.phase != phaseLaunching {
		return
	}
	t.pid, t.startedAt = in.PID, m.now
	t.phase = phaseStarting
	t.readyBy = m.now.Add(t.data.ReadyTimeout())
	m.log(slog.LevelInfo, "service started", "pid", in.PID)
	if len(t.data.InGates()) == 0 {
		t.phase = phaseRunning
		m.update(t.id, mesos.TASK_RUNNING, fmt.Sprintf("service started (pid %d); it has no in-gates to wait for", in.PID))
	}
	m.checkReady()
	if p := t.pending; p != nil {
		t.pending = nil
		m.startKill(p.cause, p.why, p.grace)
	}
	m.nextStatus = m.now
}

// checkReady moves a starting task to running once the service reports its
// in-gates bound.
func (m *machine) checkReady() {
	t := m.task
	if t.phase == phaseStarting && t.svc.Connected && t.svc.Ready && len(unbound(t.data, t.svc)) == 0 {
		t.phase = phaseRunning
		m.update(t.id, mesos.TASK_RUNNING, readyMessage(t.data, t.svc, t.pid))
	}
}

func (m *machine) startFailed(in inStartFailed) {
	t := m.task
	if t == nil || t.phase != phaseLaunching {
		return
	}
	t.phase = phaseDone
	m.doneAt = m.now
	m.update(t.id, mesos.TASK_FAILED, fmt.Sprintf("cannot start service %q: %v", t.data.Service, in.Err), withReason(mesos.REASON_CONTAINER_LAUNCH_FAILED))
}

// --- the service's control socket ---

func (m *machine) serviceState(st control.State) {
	t := m.task
	if !t.alive() {
		return
	}
	prev := t.svc
	t.svc = st
	if st.Connected && (!prev.Connected || st.Connections != prev.Connections) {
		if !t.helloed {
			m.log(slog.LevelInfo, "service connected to the control socket", "pid", st.Hello.PID)
		}
		t.helloed = true
		t.lastBeat = m.now
	}
	if st.Status != nil && st.Status != prev.Status {
		t.lastBeat = m.now
	}
	if st.Violation != "" && !t.distrusted {
		// A service that lies about its gates or about what it applied
		// cannot be trusted to have drained anything: its acks would let
		// the scheduler stop tasks with messages still in flight to them.
		t.distrusted = true
		why := "service broke the control protocol: " + st.Violation
		m.log(slog.LevelError, "service made a false claim on its control socket; stopping it", "reason", st.Violation)
		m.stop(causeFalseClaim, why, t.data.GracePeriod())
	}
	m.checkReady()
	if st.Applied > t.ackedVer && !t.distrusted {
		t.ackedVer = st.Applied
		m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: st.Applied})
	}
	if st.Rejected > t.nacked && st.Rejected > st.Applied {
		t.nacked = st.Rejected
		m.count.LinksRefused++
		m.log(slog.LevelWarn, "service refused a link snapshot", "version", st.Rejected, "error", st.RejectErr)
		m.send(contract.Message{Type: contract.TypeNack, TaskID: t.id, Version: st.Rejected, Error: "service refused it: " + st.RejectErr})
	}
	if k := t.kill; k != nil && st.Drained && !prev.Drained {
		m.log(slog.LevelInfo, "service drained its in-gates", "after", m.now.Sub(k.start).String())
	}
}

func readyMessage(d contract.TaskData, st control.State, pid int) string {
	var bound []string
	for _, g := range d.InGates() {
		addr := ""
		for _, gi := range st.Gates {
			if gi.Name == g.Name {
				addr = gi.Bound
			}
		}
		if addr == "" {
			addr = control.Endpoint{Host: "0.0.0.0", Port: g.Port}.String()
		}
		bound = append(bound, g.Name+" on "+addr)
	}
	return fmt.Sprintf("service ready (pid %d): in-gates bound (%s)", pid, strings.Join(bound, ", "))
}

// unbound lists the task's in-gates the service has not reported bound on
// their own port: peers are told that port, so any other is no good.
func unbound(d contract.TaskData, st control.State) []string {
	var missing []string
	for _, g := range d.InGates() {
		i := slices.IndexFunc(st.Gates, func(gi control.GateInfo) bool { return gi.Name == g.Name })
		switch {
		case i < 0 || st.Gates[i].Bound == "":
			missing = append(missing, fmt.Sprintf("%s (port %d)", g.Name, g.Port))
		default:
			ep, err := control.ParseBindEndpoint(st.Gates[i].Bound)
			if err != nil || ep.Port != g.Port {
				missing = append(missing, fmt.Sprintf("%s (bound on %s, not on its port %d)", g.Name, st.Gates[i].Bound, g.Port))
			}
		}
	}
	return missing
}

// notReadyWhy says what the service still lacks at the ready timeout.
func notReadyWhy(t *task) string {
	to := t.data.ReadyTimeout()
	if !t.helloed {
		return fmt.Sprintf("service not ready within %s: it never connected to its control socket (a service with in-gates must open them with the gate library)", to)
	}
	missing := unbound(t.data, t.svc)
	if len(missing) == 0 {
		return fmt.Sprintf("service not ready within %s: it has not reported its in-gates bound", to)
	}
	return fmt.Sprintf("service not ready within %s: in-gates not bound: %s", to, strings.Join(missing, ", "))
}

// --- framework messages ---

func (m *machine) message(data []byte) {
	msg, err := contract.Decode(data)
	if err != nil {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring a framework message", "error", err, "bytes", len(data))
		return
	}
	if msg.Type != contract.TypeLinks {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring a framework message not meant for an executor", "type", msg.Type)
		return
	}
	t := m.task
	if t == nil || msg.TaskID != t.id {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring links for another task", "links_task_id", msg.TaskID)
		return
	}
	if !t.alive() {
		m.count.MessagesIgnored++
		return
	}
	snap := *msg.Snapshot
	v := snap.Version
	if v <= t.passed {
		m.count.LinksStale++
		if t.ackedVer >= v {
			// Applied already: the scheduler's resend means our ack was lost.
			m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: t.ackedVer})
		}
		return
	}
	if err := snap.CheckDeclared(t.data.GateSpecs()); err != nil {
		m.count.LinksRefused++
		m.log(slog.LevelWarn, "refusing a link snapshot", "version", v, "error", err)
		if v > t.nacked {
			t.nacked = v
		}
		m.send(contract.Message{Type: contract.TypeNack, TaskID: t.id, Version: v, Error: err.Error()})
		return
	}
	t.passed = v
	m.emit(doPush{Snapshot: snap})
	if !hasOutGates(t.data) && v > t.ackedVer {
		// Nothing to rewire: a task without out-gates runs any version as
		// it is, whether or not its service speaks the control protocol (a
		// plain program never would, and the scheduler would wait forever).
		t.ackedVer = v
		m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: v})
	}
}

func hasOutGates(d contract.TaskData) bool {
	for _, g := range d.Gates {
		if !g.In() {
			return true
		}
	}
	return false
}

func (m *machine) statusMessage() contract.Message {
	t := m.task
	msg := contract.Message{Type: contract.TypeStatus, TaskID: t.id, State: t.phase.String(), Version: t.ackedVer, Pushed: t.passed}
	if s := t.svc.Status; s != nil {
		msg.Gates = maps.Clone(s.Gates)
		msg.Counters = maps.Clone(s.App)
	}
	c := m.count
	msg.Executor = map[string]uint64{
		"messages_ignored":        c.MessagesIgnored,
		"links_stale":             c.LinksStale,
		"links_refused":           c.LinksRefused,
		"messages_failed":         c.MessagesFailed,
		"updates_refused":         c.UpdatesRefused,
		"subscriptions":           c.Subscriptions,
		"events_ignored":          c.EventsIgnored,
		"control_connections":     uint64(t.svc.Connections),
		"control_protocol_errors": uint64(t.svc.ProtoErrors),
	}
	return msg
}

// --- kill ---

func (m *machine) killEvent(taskID string, grace *time.Duration) {
	t := m.task
	if t == nil || t.id != taskID {
		m.count.EventsIgnored++
		m.log(slog.LevelWarn, "KILL for a task this executor does not run", "kill_task_id", taskID)
		return
	}
	g := t.data.GracePeriod()
	if grace != nil && *grace >= 0 {
		g = *grace
	}
	if !t.alive() {
		m.log(slog.LevelInfo, "KILL for a task that has already ended")
		return
	}
	m.stop(causeKill, "killed by the scheduler", g)
}

// stop stops the service now, or as soon as it has started.
func (m *machine) stop(cause killCause, why string, grace time.Duration) {
	t := m.task
	switch {
	case t.phase == phaseLaunching && t.pending == nil:
		t.pending = &pendingStop{cause: cause, why: why, grace: grace}
	case t.phase == phaseLaunching:
		t.pending.grace = min(t.pending.grace, grace)
	case t.alive():
		m.startKill(cause, why, grace)
	}
}

func (m *machine) shutdownGrace(t *task) time.Duration {
	s := m.cfg.ShutdownGrace
	reserve := min(max(s/5, 100*time.Millisecond), time.Second)
	return max(0, min(t.data.GracePeriod(), s-reserve))
}

func (m *machine) beginShutdown(cause killCause, why string) {
	if m.shutdown {
		return
	}
	m.shutdown = true
	s := m.cfg.ShutdownGrace
	m.shutdownBy = m.now.Add(s - min(max(s/10, 50*time.Millisecond), 500*time.Millisecond))
	if t := m.task; t.alive() {
		m.stop(cause, why, m.shutdownGrace(t))
	}
}

// drainBudget is the part of the grace period the service gets to drain and
// exit by itself before SIGTERM: all of it but a quarter (at most 2s) kept for
// SIGTERM to work.
func drainBudget(grace time.Duration) time.Duration {
	return grace - min(grace/4, 2*time.Second)
}

// startKill begins (or, with a shorter grace, hastens) stopping the service.
func (m *machine) startKill(cause killCause, why string, grace time.Duration) {
	t := m.task
	if k := t.kill; k != nil {
		if end := m.now.Add(grace); end.Before(k.graceEnd) {
			k.graceEnd = end
			k.grace = end.Sub(k.start)
			if db := m.now.Add(drainBudget(grace)); db.Before(k.drainBy) {
				k.drainBy = db
			}
			m.log(slog.LevelInfo, "kill hastened", "grace", grace.String())
		}
		return
	}
	k := &killState{cause: cause, why: why, start: m.now, grace: grace, graceEnd: m.now.Add(grace)}
	t.kill = k
	t.phase = phaseKilling
	m.log(slog.LevelInfo, "stopping the service", "reason", why, "grace", grace.String())
	if m.killingState && (cause == causeKill || cause == causeShutdown || cause == causeTerminate) {
		m.update(t.id, mesos.TASK_KILLING, "draining the service before stopping it")
	}
	// A hung or never-connected service cannot drain: go straight to SIGTERM.
	// A lying one's "drained" would mean nothing.
	canDrain := t.helloed && cause != causeHung && cause != causeNotReady && cause != causeFalseClaim && grace > 0
	if canDrain {
		k.drain = true
		k.drainBy = m.now.Add(drainBudget(grace))
		m.emit(doDrain{Timeout: (drainBudget(grace) * 2 / 3).Truncate(time.Millisecond)})
	} else {
		k.drainBy = m.now
	}
}

// --- the service exits ---

func (m *machine) serviceExited(in inExited) {
	t := m.task
	if t == nil || !t.alive() {
		return
	}
	st := in.Status
	elapsed := m.now.Sub(t.startedAt).Round(time.Millisecond)
	t.phase = phaseDone
	m.doneAt = m.now
	m.log(slog.LevelInfo, "service exited", "status", st.String(), "pid", t.pid, "ran_for", elapsed.String())
	k := t.kill
	if k == nil {
		switch {
		case st.Signal == 0 && st.Code == 0:
			m.update(t.id, mesos.TASK_FINISHED, "service exited with status 0")
		default:
			msg := "service " + st.String()
			if in.StderrTail != "" {
				msg += "; last line of its stderr: " + in.StderrTail
			}
			m.update(t.id, mesos.TASK_FAILED, msg)
		}
		return
	}
	how := "service " + st.String()
	switch {
	case k.kill:
		how += fmt.Sprintf(" after SIGKILL at the end of the %s grace period", k.grace)
	case k.term:
		how += " after SIGTERM"
	case k.drain && t.svc.Drained:
		how = "service drained and " + st.String()
	case k.drain:
		how += " while draining"
	}
	how += fmt.Sprintf(" (%s after the stop began)", m.now.Sub(k.start).Round(time.Millisecond))
	msg := k.why + "; " + how
	switch k.cause {
	case causeHung:
		m.update(t.id, mesos.TASK_FAILED, msg, withHealthy(false))
	case causeNotReady, causeFalseClaim:
		m.update(t.id, mesos.TASK_FAILED, msg)
	case causeAgentGone:
		m.update(t.id, mesos.TASK_FAILED, msg, withReason(mesos.REASON_AGENT_DISCONNECTED))
	default:
		m.update(t.id, mesos.TASK_KILLED, msg)
	}
}

// --- time ---

func (m *machine) timers() {
	now := m.now
	if m.conn != connUp && !m.gaveUp {
		if dl := m.subscribeDeadline(); !now.Before(dl) {
			if m.conn == connSubscribing {
				// Stop the attempt in flight: past the deadline even a
				// success would come too late.
				m.gen++
				m.conn = connDown
				m.emit(doDisconnect{Gen: m.gen, Reason: "recovery timeout"})
			}
			if m.everSubscribed {
				m.log(slog.LevelError, "could not re-subscribe to the agent within the recovery timeout; stopping", "recovery_timeout", m.cfg.RecoveryTimeout.String())
				m.giveUp(fmt.Sprintf("the executor could not reach its agent for %s (MESOS_RECOVERY_TIMEOUT)", m.cfg.RecoveryTimeout))
			} else {
				m.log(slog.LevelError, "could not subscribe to the agent; stopping", "after", now.Sub(m.start).String())
				m.giveUp("the executor could not subscribe to its agent")
			}
		} else if m.conn == connDown && !now.Before(m.nextSubscribe) {
			m.subscribeNow()
		}
	}
	if dl := m.silenceDeadline(); !dl.IsZero() && !now.Before(dl) {
		m.reconnect(fmt.Sprintf("nothing from the agent for %s though it sends heartbeats every %s", now.Sub(m.lastEvent).Round(time.Millisecond), m.beatGap.Round(time.Millisecond)))
	}
	t := m.task
	if t == nil {
		return
	}
	switch t.phase {
	case phaseStarting:
		if !now.Before(t.readyBy) {
			why := notReadyWhy(t)
			m.log(slog.LevelWarn, "service not ready in time", "reason", why)
			m.stop(causeNotReady, why, t.data.GracePeriod())
		}
	}
	if (t.phase == phaseStarting || t.phase == phaseRunning) && t.helloed {
		if lt := t.data.LivenessTimeout(); lt > 0 && !now.Before(t.lastBeat.Add(lt)) {
			why := fmt.Sprintf("service hung: no heartbeat on its control socket for %s", now.Sub(t.lastBeat).Round(time.Millisecond))
			m.log(slog.LevelWarn, "service hung", "reason", why)
			m.stop(causeHung, why, t.data.GracePeriod())
		}
	}
	if k := t.kill; k != nil && t.phase == phaseKilling {
		if !k.term && !now.Before(k.drainBy) && now.Before(k.graceEnd) {
			k.term = true
			m.emit(doSignal{Signal: syscall.SIGTERM})
		}
		if !k.kill && !now.Before(k.graceEnd) {
			k.kill = true
			m.emit(doSignal{Signal: syscall.SIGKILL})
		}
	}
	if m.conn == connUp && t.alive() && t.phase != phaseLaunching && !now.Before(m.nextStatus) {
		m.send(m.statusMessage())
		m.nextStatus = now.Add(m.cfg.StatusInterval)
	}
}

func (m *machine) maybeExit() {
	t := m.task
	if t.alive() {
		return
	}
	exit := func(reason string) {
		m.exited = true
		m.emit(doExit{Code: 0, Reason: reason})
	}
	switch {
	case m.gaveUp && !m.everSubscribed:
		m.exited = true
		m.emit(doExit{Code: 1, Reason: "could not subscribe to the agent"})
	case m.gaveUp:
		exit("lost the agent")
	case t == nil:
		if m.shutdown {
			exit("shut down before any task was launched")
		}
	case len(m.unacked) == 0:
		exit("the task ended and the agent acknowledged its status")
	case m.shutdown && !m.now.Before(m.shutdownBy):
		exit(fmt.Sprintf("shutdown grace period ends; %d status updates unacknowledged", len(m.unacked)))
	case m.conn == connUp && !m.now.Before(m.doneAt.Add(m.cfg.AckTimeout)):
		exit(fmt.Sprintf("the agent did not acknowledge %d status updates within %s", len(m.unacked), m.cfg.AckTimeout))
	}
}

// silenceDeadline is when a subscription that has gone quiet is given up:
// three heartbeat gaps (at least 5s) after the last event.
func (m *machine) silenceDeadline() time.Time {
	if m.conn != connUp || m.beatGap <= 0 {
		return time.Time{}
	}
	return m.lastEvent.Add(max(3*m.beatGap, 5*time.Second))
}

// NextDeadline is when the machine next needs a tick (zero: no deadline).
func (m *machine) NextDeadline() time.Time {
	var next time.Time
	at := func(t time.Time) {
		// A deadline that has passed without effect cannot be helped by
		// ticking again; leaving it out keeps the driver from spinning.
		if t.After(m.now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if m.exited {
		return next
	}
	if m.conn == connDown && !m.gaveUp {
		at(m.nextSubscribe)
	}
	if m.conn != connUp && !m.gaveUp {
		at(m.subscribeDeadline())
	}
	at(m.silenceDeadline())
	if t := m.task; t != nil {
		if t.phase == phaseStarting {
			at(t.readyBy)
		}
		if (t.phase == phaseStarting || t.phase == phaseRunning) && t.helloed && t.data.LivenessTimeout() > 0 {
			at(t.lastBeat.Add(t.data.LivenessTimeout()))
		}
		if k := t.kill; k != nil && t.phase == phaseKilling {
			if !k.term && k.drainBy.Before(k.graceEnd) {
				at(k.drainBy)
			}
			if !k.kill {
				at(k.graceEnd)
			}
		}
		if m.conn == connUp && t.alive() && t.phase != phaseLaunching {
			at(m.nextStatus)
		}
		if t.phase == phaseDone && len(m.unacked) > 0 && m.conn == connUp {
			at(m.doneAt.Add(m.cfg.AckTimeout))
		}
	}
	if m.shutdown && !m.task.alive() {
		at(m.shutdownBy)
	}
	return next
}
