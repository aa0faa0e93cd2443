// Package console is the scheduler's web console: a page served at "/" on
// the API's own listener that draws the running topology (services as
// nodes, gates as ports, links as edges with live rates), drills down into
// a service's tasks, link table and events, and scales services or applies
// a spec after a dry run. The page only speaks the public HTTP API, so this
// package needs nothing from the scheduler but a place to be mounted; its
// files are embedded, and it loads nothing from the network.
package console
