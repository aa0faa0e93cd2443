// Package master is the localmesos master: frameworks, agents, offers and
// tasks, the scheduler API (/api/v1/scheduler), the operator API with its
// event stream, maintenance and agent drain, /state, /metrics/snapshot and
// the legacy endpoints. Its state is owned by one goroutine (Run); agents
// reach it only through the messages of package link, so that this package
// does not import the agents'.
package master
