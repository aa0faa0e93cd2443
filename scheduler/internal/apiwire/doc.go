// Package apiwire is what the scheduler's HTTP API and its test fake
// (scheduler/client/clienttest) share about the wire: error bodies, how a
// request body is read and checked (size, Content-Type, Content-Encoding,
// strict JSON), which names a client may give, and how the query of
// GET /v1/tasks is read and its pages told. The bodies themselves are in
// scheduler/apitypes. One copy, so the fake cannot drift from the real
// handler where it matters.
package apiwire
