// Package detect finds the leading Mesos master from a `--master` value (or
// the MESOS_MASTER environment variable, which the CLI reads into the same
// flag). A value is one of: host[:port] (port 5050 when omitted),
// http(s)://host[:port][/path], zk://[user:password@]host:port[,…]/path, or
// file:///path whose contents are one of those. For the first two the master
// is fixed and redirects (307) are mesos-go's business. For zk:// the
// Detector watches the path in ZooKeeper, where Mesos masters (0.24 and later)
// join an election as ephemeral sequential znodes named json.info_<sequence>
// holding their MasterInfo as JSON; the lowest sequence is the leader. The
// legacy protobuf info_<sequence> nodes of older masters are ignored. A change
// of leader is reported on a channel so the scheduler can point mesos-go's
// httpsched at the new master and subscribe again.
package detect
