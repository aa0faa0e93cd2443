package executor

import (
	"log/slog"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
)

// The machine is the executor's decision logic: a pure state machine, not
// safe for concurrent use. The driver (Run) feeds it inputs with the current
// time and carries out the effects it returns, in order; it never decides
// anything itself. Everything the executor can be asked about (which status
// updates are unacknowledged, which link version was passed on, when to
// SIGKILL) is here, so it is tested by scripts without processes or sockets.
//
// The machine is one type spread over files by section: its inputs and
// effects (machine_io.go), the agent connection (machine_agent.go), status
// updates (machine_status.go), launch, the service's control socket, framework
// messages (machine_links.go), kill, the service's exit, and timers
// (machine_time.go).

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
