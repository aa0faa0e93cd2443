// Package deploy runs the Tiltai scheduler as a Marathon app: `tiltai deploy`
// creates or updates the app (one instance; an upgradeStrategy with
// minimumHealthCapacity 0 and maximumOverCapacity 0, so Marathon stops the old
// scheduler before it starts the new one and two never run at once; a
// MESOS_HTTP health check on /health; the tiltai binary as a fetch URI; the
// scheduler's state in ZooKeeper via --zk, so a task that moves resumes where
// the last one stopped), follows the deployment with a progress line for each
// step and task change, and then checks the app itself: a deployment that
// disappears from /v2/deployments may have been rolled back or cancelled, so
// success means the app's configuration is the one deployed and its task at
// that configuration is running and healthy. It speaks Marathon's REST API
// through github.com/gambol99/go-marathon.
package deploy
