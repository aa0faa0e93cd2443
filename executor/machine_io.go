package executor

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/executor/internal/supervise"
	"github.com/tiltai/tiltai/gate/control"
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

// doDrain: ask the service to drain within Timeout, telling it that SIGTERM
// comes after Stop.
type doDrain struct{ Timeout, Stop time.Duration }

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
