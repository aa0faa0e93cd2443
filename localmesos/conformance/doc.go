// Package conformance checks that a master answers the Mesos 1.11 v1
// scheduler and operator HTTP APIs the way a real Mesos 1.11 master does,
// where a lenient imitation would let a framework pass that a real cluster
// refuses: 403 for a framework without a stream, TASK_ERROR for a task
// without resources, suppressed roles, principal changes, DECLINE filters,
// MULTI_ROLE allocation_info, UPDATE_FRAMEWORK and the operator API's read
// calls and error answers.
//
// The expectations come from Mesos' own source and documentation
// (src/master/validation.cpp, master.cpp, http.cpp,
// include/mesos/v1/master/master.proto, docs/operator-http-api.md,
// docs/scheduler-http-api.md), not from localmesos. The checks speak raw
// HTTP and use only mesos-go's types, so they run against any master:
//
//	go test ./localmesos/conformance -master http://127.0.0.1:5050
//
// Without -master they start an in-process localmesos (one agent with
// cpus:4;mem:4096;disk:10000;ports:[31000-32000]) and run against it. The
// master needs at least one agent with 0.5 cpus and 128 MB free that runs
// `sleep`, and no other framework competing for it.
package conformance
