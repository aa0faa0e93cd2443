// Package conformance checks that a master answers the Mesos 1.11 v1
// scheduler and operator HTTP APIs the way a real Mesos 1.11 master does,
// where a lenient imitation would let a framework pass that a real cluster
// refuses: 403 for a framework without a stream, TASK_ERROR for a task
// without resources, suppressed roles, principal changes, DECLINE filters,
// MULTI_ROLE allocation_info, UPDATE_FRAMEWORK, the operator API's read
// calls and error answers, and maintenance: schedule validation,
// GET_MAINTENANCE_STATUS, inverse offers and unavailability,
// START/STOP_MAINTENANCE, DRAIN_AGENT (max_grace_period as a {seconds,
// nanos} Duration, REASON_AGENT_DRAINING on every update),
// DEACTIVATE/REACTIVATE_AGENT and MARK_AGENT_GONE.
//
// The expectations come from Mesos' own source and documentation
// (src/master/validation.cpp, master.cpp, http.cpp, maintenance.cpp,
// include/mesos/v1/master/master.proto, docs/operator-http-api.md,
// docs/scheduler-http-api.md, docs/maintenance.md) and answers recorded
// from Mesos 1.11, not from localmesos. The checks speak raw
// HTTP and use only mesos-go's types, so they run against any master:
//
//	go test ./localmesos/conformance -master http://127.0.0.1:5050
//
// Without -master they start an in-process localmesos (three agents with
// cpus:4;mem:4096;disk:10000;ports:[31000-32000]) and run against it. The
// master needs at least one agent with 0.5 cpus and 128 MB free that runs
// `sleep`, and no other framework competing for it. The checks that take
// an agent away for good (START_MAINTENANCE, MARK_AGENT_GONE: a real agent
// exits; after MARK_AGENT_GONE it is refused for good) run only
// with -destructive, which the in-process run sets, and only while two
// agents or more are active. A maintenance check leaves the schedule empty
// and every agent it drained or deactivated reactivated.
package conformance
