// Package marathontest is a Marathon stand-in for tests and the local demo:
// an HTTP server that implements the part of Marathon's v2 REST API that
// `tiltai deploy` uses, as Marathon's documentation describes it (status
// codes, JSON bodies, {"message", "details"} errors, 409 when a deployment
// locks the app, 401/403 for authentication and authorisation, 422 for an
// invalid app definition), and that really runs the apps it deploys. A
// Runner starts each task (ProcessRunner: a local process with the app's
// command, environment, fetched URIs and host ports, as a Mesos command task
// would get them); the server does the app's MESOS_HTTP health checks itself
// and follows Marathon's deployment rules (upgradeStrategy, restart with
// backoff, lastTaskFailure, rollback on DELETE /v2/deployments/{id}). No
// real Marathon can run here (it needs a JVM build and Mesos), so this is the
// one fake of the deploy path; everything it runs is real.
package marathontest
