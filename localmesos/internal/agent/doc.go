// Package agent is a localmesos agent: it launches executors into
// sandboxes (real processes, in-process functions or container images),
// serves their executor API and the agent's own endpoints (/state,
// /files, /metrics/snapshot, the operator API), checkpoints what survives a
// restart, and keeps each task's status updates until the scheduler
// acknowledges them. Its state is owned by one goroutine (Run); the master
// is reached only through the messages of package link, so that this
// package does not import the master's.
package agent
