// Package apitypes is the scheduler's HTTP API as data: the JSON bodies of
// GET /health, /v1/spec, /v1/tasks, /v1/links, /v1/status, the answers to
// PUT /v1/spec and POST …/scale, error bodies, the events of
// GET /v1/events, and how GET /v1/tasks is filtered, paged and summarised.
//
// It is a leaf: the scheduler's handler, its test fake and the client
// (scheduler/client) all use it, and it imports no runtime (no store, no
// ZooKeeper, no metrics, no Mesos), so a program that only talks to the
// API does not link the scheduler. client's deps_test.go holds it to that.
package apitypes
