package localmesos

import "github.com/tiltai/tiltai/localmesos/internal/agent"

// The launchers belong to the agents (package internal/agent); these names
// keep them part of the cluster's API, as Config.Launcher.
type (
	// ExecutorSpec is everything needed to start one executor: what the
	// agent fetched into the sandbox and the environment Mesos would set.
	ExecutorSpec = agent.ExecutorSpec
	// Process is a running executor.
	Process = agent.Process
	// Launcher starts executors. The default runs real processes;
	// InProcess runs Go functions, for tests and benchmarks with thousands
	// of executors. A launcher outlives agent restarts, so an executor it
	// started keeps running while its agent restarts, as with Mesos
	// checkpointing.
	Launcher = agent.Launcher
	// Recoverer is implemented by launchers that can find an executor
	// again after its agent restarted, from what the agent checkpointed.
	Recoverer = agent.Recoverer
	// ProcessLauncher runs each executor as an OS process in its own
	// process group (so a kill reaches its children), in the sandbox, with
	// stdout and stderr going to the sandbox files.
	ProcessLauncher = agent.ProcessLauncher
	// ExecutorFunc is an in-process executor. It must speak the executor
	// HTTP API to its agent (MESOS_AGENT_ENDPOINT in spec.Env) like a real
	// one, and return when ctx is cancelled (the agent's kill) or it is
	// done; a nil error is exit status 0.
	ExecutorFunc = agent.ExecutorFunc
)

// NewProcessLauncher returns the default launcher.
func NewProcessLauncher() *ProcessLauncher { return agent.NewProcessLauncher() }

// InProcess returns a launcher that runs fn in a goroutine per executor.
// Executors it runs survive agent restarts; Close of the cluster cancels
// them and waits.
func InProcess(fn ExecutorFunc) Launcher { return agent.InProcess(fn) }
