// Package supervise runs one service process the way the executor needs it:
// looked up on the service's own PATH, started directly (no shell) in its own
// process group with its output appended to files, signalled as a group, and
// reaped so that nothing of the group outlives it: when the leader exits, the
// rest of its group is killed before the leader's pid is released. It knows
// nothing of Mesos or Tiltai.
package supervise
