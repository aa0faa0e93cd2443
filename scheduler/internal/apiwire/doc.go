// Package apiwire is what the scheduler's HTTP API and its test fake
// (scheduler/client/clienttest) share about the wire: error bodies, how a
// request body is read and checked (size, Content-Type, Content-Encoding,
// strict JSON), which names a client may give, and how GET /v1/tasks is
// filtered, paged and summarised. One copy, so the fake cannot drift from
// the real handler where it matters.
package apiwire
