// Package agentapi is a small client of the Mesos v1 executor HTTP API
// (POST /api/v1/executor on the agent) in JSON: SUBSCRIBE returning a
// RecordIO stream of events, read with a bound on each record, and the plain
// calls (UPDATE, MESSAGE) that the agent answers with 202 Accepted. It carries
// the Bearer token of MESOS_EXECUTOR_AUTHENTICATION_TOKEN and keeps the
// agent's error text. It makes no decisions: retrying, backoff and what to do
// with events belong to the executor.
package agentapi
