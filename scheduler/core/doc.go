// Package core is the scheduler's decision logic as a pure machine: what
// to store, which Mesos calls to make, what to tell the operator, and when
// to look again, as a function of the inputs it is given and the time they
// are given at. It is not safe for concurrent use and does no I/O: no
// clock, no network, no store, no logger, no metrics registry.
//
// The driver (package scheduler) feeds it inputs with Step, then carries out
// the Ready it returns, in order: Early calls may go at once; Records must
// be stored before any Late call is made (write-ahead); events, logs and
// metric facts are published; the next Step is due at Wake at the latest.
// After each step the driver may publish View, an immutable copy for
// readers on other goroutines. The contract is etcd-io/raft's
// RawNode.Ready, without Advance: the driver stops on any failure to store,
// so there is nothing to acknowledge but Flushed (the outbox's batch went
// out), which is an input like any other.
//
// Vocabulary: a task record is stored per task (phase pending → launched →
// running → killing, or unreachable); the linkspec.Planner decides
// launches, retirements, kills and each service's link table; the core
// gives each table a version, publishes it to every running task of the
// service as a framework MESSAGE and re-sends until acknowledged; it
// places pending tasks on the offers held (place, a pure function), and
// reconciles with the master after every subscription.
package core
