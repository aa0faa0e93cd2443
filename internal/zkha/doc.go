// Package zkha keeps Tiltai's scheduler state in ZooKeeper and elects one
// leader among several `tiltai scheduler` instances. It parses the `--zk`
// value (zk://[user:pass@]host:port[,host:port…]/path; the path is the chroot
// under which everything lives), holds one ZooKeeper session per process and
// follows it (connection loss, expiry), runs the classic election recipe
// (ephemeral sequential znodes, each contender watching only its predecessor,
// so a departure wakes one process, not the herd), and hands the winner a
// Leadership that reports its loss. All writes go through the Leadership and
// are conditional twice over: on the key's znode version, and on the leader's
// own election znode still existing (a ZooKeeper multi with a check op), so a
// deposed leader's write fails instead of landing. Values larger than what
// one znode can hold (jute.maxbuffer, 1 MB by default) are split into chunk
// znodes and published by one conditional write of a small manifest, so a
// reader never sees half a value. Reads tell "key does not exist" (ErrNotFound)
// apart from "could not read" (ErrUnavailable): the scheduler must never
// mistake the second for the first and mint a new framework ID.
package zkha
