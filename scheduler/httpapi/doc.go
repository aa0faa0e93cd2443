// Package httpapi is the scheduler's HTTP API: the handler (routes, the
// token rules, request checks, error bodies, paging of GET /v1/tasks,
// Server-Sent Events) over a Service, the small set of reads and writes it
// needs. The scheduler implements Service over the immutable view it
// publishes after each step and its loop; scheduler/client/clienttest
// implements it in memory, so the test fake serves this very handler and
// cannot drift from it. The bodies are in scheduler/apitypes.
package httpapi
