// Package client talks to a Tiltai scheduler's HTTP API: submit and read
// link specs, scale services, list tasks, links and status, follow the event
// stream, and wait until the running system has converged on a spec version.
//
// The wire types are the leaf package scheduler/apitypes (apitypes.Status,
// apitypes.TaskInfo, …; package scheduler has the same under aliases), so
// this package does not link the scheduler; it adds what a caller needs:
// errors that tell an invalid spec (with its located problems), a conflict
// (with the current version), a missing token, an unknown service and an
// unreachable scheduler apart (errors.Is with ErrInvalidSpec, ErrConflict,
// ErrUnauthorized, ErrNotFound, ErrUnreachable; errors.As with *APIError), a
// Server-Sent Events reader that bounds what it buffers, and WaitConverged,
// which fails clearly when a service keeps crashing. With WithBusyRetry,
// Submit and Scale retry a scheduler that answers 503 (Retry-After honoured,
// capped; backoff without it; bounded in attempts and time). Progress renders
// the wait for a terminal. The tiltai CLI and the end-to-end tests use it; the
// clienttest package has a faithful fake of the API and a real scheduler on
// an embedded Mesos for tests.
package client
