package localmesos

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Messages between the master and its agents. In Mesos they are libprocess
// messages between daemons; here they travel between the two components'
// mailboxes, so each side stays the only owner of its state.

// agentLink is how the master reaches one agent.
type agentLink interface{ post(m any) bool }

// --- agent → master ---

// agentRegister (re-)registers an agent with everything it runs, after it
// started or restarted, or after the master (re)started.
type agentRegister struct {
	agentID    string // "" for a new agent
	hostname   string
	ip         string
	attributes []mesos.Attribute
	port       int
	total      res.Resources
	link       agentLink
	frameworks []mesos.FrameworkInfo
	executors  []reportedExecutor
	tasks      []reportedTask
}

type reportedExecutor struct {
	frameworkID string
	info        mesos.ExecutorInfo
	command     bool // the built-in command executor of a command task
}

type reportedTask struct {
	frameworkID string
	info        mesos.TaskInfo // executor_id set for custom-executor tasks
	executorID  string         // "" for command tasks
	state       mesos.TaskState
	latest      *mesos.TaskStatus
}

// agentDisconnected: the agent stopped (restart in progress or gone).
type agentDisconnected struct{ agentID string }

// statusUpdate forwards a status update (uuid set) from an agent. stored is
// the status as /state shows it (the executor's own timestamp, 0 if none).
type statusUpdate struct {
	agentID string
	fwID    string
	status  mesos.TaskStatus
	stored  mesos.TaskStatus
}

// executorToFramework carries an executor MESSAGE to its scheduler.
type executorToFramework struct {
	agentID, fwID, execID string
	data                  []byte
}

// executorExited says an executor terminated; its resources are free.
type executorExited struct {
	agentID, fwID, execID string
	status                int32
	command               bool
}

// --- master → agent ---

type agentRegistered struct{ agentID string }

// agentShutdown tells an agent to shut down (Mesos' ShutdownMessage): its
// machine went DOWN, it was marked gone, or it may not register. It kills
// every executor and stops registering, as a Mesos agent exits.
type agentShutdown struct{ message string }

// drainAgent starts draining: every task is killed, with its kill policy's
// grace period capped by maxGrace when set; every update of a killing or
// terminal task carries REASON_AGENT_DRAINING.
type drainAgent struct{ maxGrace *time.Duration }

// agentReactivated ends draining.
type agentReactivated struct{}

type runTask struct {
	framework mesos.FrameworkInfo
	task      mesos.TaskInfo
}

type killTask struct {
	fwID, taskID string
	policy       *mesos.KillPolicy
}

type shutdownExecutor struct{ fwID, execID string }

type shutdownFramework struct{ fwID string }

type frameworkToExecutor struct {
	fwID, execID string
	data         []byte
}

type statusAck struct {
	fwID, taskID string
	uuid         []byte
}

type updateFramework struct{ info mesos.FrameworkInfo }
