// Package link carries the messages between the localmesos master and its
// agents. In Mesos they are libprocess messages between daemons; here they
// are plain values posted to the other side's Mailbox, so that each side
// stays the only owner of its state and neither imports the other.
package link
