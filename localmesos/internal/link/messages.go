package link

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Agent is how the master reaches one agent.
type Agent interface{ Post(m any) bool }

// --- agent → master ---

// AgentRegister (re-)registers an agent with everything it runs, after it
// started or restarted, or after the master (re)started.
type AgentRegister struct {
	AgentID    string // "" for a new agent
	Hostname   string
	IP         string
	Attributes []mesos.Attribute
	Port       int
	Total      res.Resources
	Link       Agent
	Frameworks []mesos.FrameworkInfo
	Executors  []ReportedExecutor
	Tasks      []ReportedTask
}

// ReportedExecutor is an executor an agent runs, in AgentRegister.
type ReportedExecutor struct {
	FrameworkID string
	Info        mesos.ExecutorInfo
	Command     bool // the built-in command executor of a command task
}

// ReportedTask is a task an agent knows, in AgentRegister.
type ReportedTask struct {
	FrameworkID string
	Info        mesos.TaskInfo // executor_id set for custom-executor tasks
	ExecutorID  string         // "" for command tasks
	State       mesos.TaskState
	Latest      *mesos.TaskStatus
}

// AgentDisconnected: the agent stopped (restart in progress or gone).
type AgentDisconnected struct{ AgentID string }

// StatusUpdate forwards a status update (uuid set) from an agent. stored is
// the status as /state shows it (the executor's own timestamp, 0 if none).
type StatusUpdate struct {
	AgentID     string
	FrameworkID string
	Status      mesos.TaskStatus
	Stored      mesos.TaskStatus
}

// ExecutorToFramework carries an executor MESSAGE to its scheduler.
type ExecutorToFramework struct {
	AgentID, FrameworkID, ExecutorID string
	Data                             []byte
}

// ExecutorExited says an executor terminated; its resources are free.
type ExecutorExited struct {
	AgentID, FrameworkID, ExecutorID string
	Status                           int32
	Command                          bool
}

// --- master → agent ---

// AgentRegistered gives an agent its id (Mesos' SlaveRegisteredMessage).
type AgentRegistered struct{ AgentID string }

// AgentShutdown tells an agent to shut down (Mesos' ShutdownMessage): its
// machine went DOWN, it was marked gone, or it may not register. It kills
// every executor and stops registering, as a Mesos agent exits.
type AgentShutdown struct{ Message string }

// DrainAgent starts draining: every task is killed, with its kill policy's
// grace period capped by maxGrace when set; every update of a killing or
// terminal task carries REASON_AGENT_DRAINING.
type DrainAgent struct{ MaxGrace *time.Duration }

// AgentReactivated ends draining.
type AgentReactivated struct{}

// RunTask launches a task (Mesos' RunTaskMessage).
type RunTask struct {
	Framework mesos.FrameworkInfo
	Task      mesos.TaskInfo
}

// KillTask kills a task with its kill policy, if any.
type KillTask struct {
	FrameworkID, TaskID string
	Policy              *mesos.KillPolicy
}

// ShutdownExecutor shuts an executor down.
type ShutdownExecutor struct{ FrameworkID, ExecutorID string }

// ShutdownFramework shuts down every executor of a framework.
type ShutdownFramework struct{ FrameworkID string }

// FrameworkToExecutor carries a scheduler MESSAGE to its executor.
type FrameworkToExecutor struct {
	FrameworkID, ExecutorID string
	Data                    []byte
}

// StatusAck acknowledges a status update by its uuid.
type StatusAck struct {
	FrameworkID, TaskID string
	UUID                []byte
}

// UpdateFramework gives agents a framework's new FrameworkInfo.
type UpdateFramework struct{ Info mesos.FrameworkInfo }
