// Package localmesos is an embedded Mesos-compatible cluster: one master and
// N agents in this process, speaking the real Mesos v1 scheduler API
// (/api/v1/scheduler) and executor API (/api/v1/executor) over HTTP in JSON
// and protobuf, shaped after recordings of Mesos 1.11. Any v1 framework runs
// on it unmodified; it is Tiltai's single-machine default and the test bed of
// its scheduler and executor. The master's state is owned by one goroutine
// (calls, agent messages and timers arrive through its mailbox), as is each
// agent's; executors are real processes by default (Launcher), fetched into
// per-executor sandboxes, or lightweight in-process functions for
// benchmarks. Faults gives tests a way to drop, duplicate or delay framework
// messages, black-hole streams, answer 307 or 503, restart agents and the
// master. The master (internal/master) and the agents (internal/agent)
// never import each other: they exchange the messages of internal/link, and
// this package wires them together. docs/localmesos.md lists what is
// implemented and what is not.
package localmesos
