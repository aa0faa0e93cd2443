package agent

import (
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/res"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// metrics serves the agent's /metrics/snapshot.
func (h *agentHTTP) metrics(w http.ResponseWriter, _ *http.Request) {
	var body []byte
	if !h.onAgent(func(a *Agent) { body = a.snapshot(time.Now()).JSON(nil) }) {
		wire.WriteError(w, errAgentStopping)
		return
	}
	api.WriteJSON(w, body)
}

// snapshot is the agent's /metrics/snapshot in Mesos' names
// (src/slave/metrics.cpp), over the frameworks, executors and tasks the
// Agent holds.
func (a *Agent) snapshot(now time.Time) api.Metrics {
	s := api.Metrics{}
	s["slave/uptime_secs"] = now.Sub(a.started).Seconds()
	s["slave/registered"] = api.Boolf(a.registered)
	s["slave/frameworks_active"] = float64(len(a.frameworks))
	execs := map[execState]int{}
	tasks := map[mesos.TaskState]int{}
	var used res.Resources
	var validUpdates int
	for _, fw := range a.frameworks {
		for _, e := range fw.executors {
			execs[e.state]++
			if e.state != execTerminated && !e.command {
				r, _ := res.FromProto(api.StripAllocation(e.info.Resources))
				used.AddInPlace(r)
			}
		}
		for _, t := range fw.tasks {
			tasks[t.state]++
			validUpdates += len(t.statuses)
			if !api.Terminal(t.state) {
				r, _ := res.FromProto(api.StripAllocation(t.info.Resources))
				used.AddInPlace(r)
			}
		}
	}
	s["slave/executors_registering"] = float64(execs[execLaunching] + execs[execRegistering])
	s["slave/executors_running"] = float64(execs[execRunning])
	s["slave/executors_terminating"] = float64(execs[execTerminating])
	s["slave/executors_terminated"] = float64(execs[execTerminated])
	for _, st := range []mesos.TaskState{mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING,
		mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_LOST, mesos.TASK_GONE} {
		s["slave/tasks_"+api.StateName(st)] = float64(tasks[st])
	}
	s.ResourceGauges("slave/", a.total, used)
	s["slave/valid_status_updates"] = float64(validUpdates)
	s["slave/invalid_framework_messages"] = float64(a.counters.messagesDropped)
	// What localmesos has no concept of: constants (Mesos' defaults where
	// the value is a setting: the 2 GB fetcher cache, one week of
	// --gc_delay).
	for _, k := range []string{"slave/container_launch_errors", "slave/executors_preempted", "slave/invalid_status_updates",
		"slave/recovery_errors", "slave/recovery_time_secs", "slave/valid_framework_messages",
		"containerizer/fetcher/cache_size_used_bytes", "containerizer/fetcher/task_fetches_failed",
		"containerizer/fetcher/task_fetches_succeeded", "containerizer/mesos/container_destroy_errors",
		"containerizer/mesos/provisioner/bind/remove_rootfs_errors", "containerizer/mesos/provisioner/remove_container_errors",
		"gc/path_removals_failed", "gc/path_removals_pending", "gc/path_removals_succeeded",
		"resource_provider_manager/events/disconnect", "resource_provider_manager/events/subscribe",
		"resource_provider_manager/subscribed"} {
		s[k] = 0
	}
	s["containerizer/fetcher/cache_size_total_bytes"] = 2 << 30
	s["slave/executor_directory_max_allowed_age_secs"] = (7 * 24 * time.Hour).Seconds()
	api.SystemSnapshot(s)
	return s
}
