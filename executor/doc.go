// Package executor is the Tiltai executor: the custom Mesos executor that runs
// one task's service process, hands it link snapshots over the local control
// socket (package gate/control) and reports back. It speaks the Mesos v1
// executor HTTP API to its agent (subscribe, status updates with uuids re-sent
// until acknowledged, re-subscription with backoff when checkpointing), starts
// the service in its own process group with the TILTAI_* environment, reports
// TASK_RUNNING once the service's in-gates are bound, watches its heartbeats,
// and on KILL or SHUTDOWN drains it before SIGTERM and SIGKILL. The contract
// with the scheduler, TaskData (TaskInfo.data) and the framework messages, is
// the leaf package executor/contract, which the scheduler imports instead of
// this runtime. The decisions are made by a pure state
// machine (machine, fed events with the time, returning effects as data); Run
// is the thin driver that turns those effects into HTTP calls, signals and
// control-socket actions. docs/executor.md describes the behaviour.
package executor
