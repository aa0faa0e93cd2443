// Package ha runs one of several scheduler instances on one ZooKeeper: it
// campaigns for leadership (internal/zkha), starts a scheduler on the
// fenced ZooKeeper store while it leads, stops it at once when the
// leadership is lost, and between leaderships serves a standby API that
// says so, answers reads by asking the leader and points writes at it.
// It knows nothing of the scheduler: Run is given a function that starts
// one on a store.
package ha
