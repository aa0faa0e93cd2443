// Package clienttest has two schedulers for tests of API clients (the client
// package, the tiltai CLI, end-to-end tests). Fake is an httptest server that
// serves the scheduler's own HTTP handler (scheduler/httpapi: the same
// routes, status codes, JSON bodies, size limits, token rules, paging and
// Server-Sent Events with "dropped" events) over an in-memory service: the
// same spec parsing, versioning, If-Match and dry runs, and state the test
// sets (tasks, links, a scripted status).
// Cluster is the real thing: a scheduler.Scheduler on an embedded Mesos
// (localmesos) whose executors are lightweight in-process ones speaking the
// real executor HTTP API and framework-message contract.
package clienttest
