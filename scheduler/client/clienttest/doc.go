// Package clienttest has two schedulers for tests of API clients (the client
// package, the tiltai CLI, end-to-end tests). Fake is an httptest server that
// answers the scheduler's HTTP API as scheduler/api.go does (the same status
// codes and JSON bodies, the same spec parsing, versioning, If-Match,
// dry-run, size limit, token rules and Server-Sent Events with "dropped"
// events), over state the test sets: tasks, links and a scripted status.
// Cluster is the real thing: a scheduler.Scheduler on an embedded Mesos
// (localmesos) whose executors are lightweight in-process ones speaking the
// real executor HTTP API and framework-message contract.
package clienttest
