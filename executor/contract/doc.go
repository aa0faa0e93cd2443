// Package contract is what the scheduler and the executor say to each other:
// TaskData, which the scheduler puts in TaskInfo.data (the service to run,
// its gates, health bounds, grace period), and the framework messages
// (links, ack, nack, status) with their Encode and Decode, each of which
// validates and bounds what it reads. It is a leaf: the executor's runtime
// and the scheduler's core both import it, and it imports neither, nor any
// Mesos transport or HTTP. docs/executor.md describes the contract.
package contract
