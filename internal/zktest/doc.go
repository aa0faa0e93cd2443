// Package zktest runs a real Apache ZooKeeper server for tests: Debian's
// `zookeeper` package (the jars in /usr/share/java, started with java), in
// standalone mode on a free loopback port, with its admin server off and its
// data in the test's temporary directory. A test can stop the server and start
// it again on the same port and data directory ("ZooKeeper down mid-run"), and
// can put a Proxy between its clients and the server to cut them off without
// stopping ZooKeeper (a network partition, which lets the server expire their
// sessions). No fake: the code under test talks to the same server it meets in
// production. When java or the jars are missing the test fails and says to run
// scripts/test, which installs the package.
package zktest
