// Package api holds what the localmesos master's and agents' HTTP APIs have
// in common: the small endpoints (/health, /version), the operator API's
// request and answer plumbing, the metrics set of /metrics/snapshot, and the
// JSON renderings of resources, attributes, durations and task states that
// both /state documents use. It knows neither the master nor the agents.
package api
