// Package mesossession is the scheduler's link to the Mesos master: one
// subscription kept alive (finding the leader, following redirects to it,
// refusing to mint a second framework ID, watching heartbeats,
// re-subscribing with jittered backoff), its events handed out on a
// channel, and the outbox that makes the calls the scheduler decided,
// batch by batch, a bounded number at a time. It decides nothing: which
// calls to make, and what a failed one means, is the scheduler's.
package mesossession
