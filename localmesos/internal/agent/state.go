package agent

import (
	"fmt"
	"sort"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// renderState builds the agent's /state: a subset of Mesos' shape with what
// operators look for (frameworks, executors, sandboxes, tasks).
func (a *Agent) renderState() []byte {
	fwIDs := make([]string, 0, len(a.frameworks))
	for id := range a.frameworks {
		fwIDs = append(fwIDs, id)
	}
	sort.Strings(fwIDs)
	var fws []ojson.Object
	for _, id := range fwIDs {
		fw := a.frameworks[id]
		execIDs := make([]string, 0, len(fw.executors))
		for eid := range fw.executors {
			execIDs = append(execIDs, eid)
		}
		sort.Strings(execIDs)
		var execs []ojson.Object
		for _, eid := range execIDs {
			e := fw.executors[eid]
			var tasks []ojson.Object
			var taskIDs []string
			for tid, t := range fw.tasks {
				if t.execID == eid {
					taskIDs = append(taskIDs, tid)
				}
			}
			sort.Strings(taskIDs)
			for _, tid := range taskIDs {
				t := fw.tasks[tid]
				r, _ := res.FromProto(api.StripAllocation(t.info.Resources))
				tasks = append(tasks, ojson.Object{
					{K: "id", V: tid}, {K: "name", V: t.info.Name}, {K: "framework_id", V: id},
					{K: "executor_id", V: eid}, {K: "slave_id", V: a.id}, {K: "state", V: t.state.String()},
					{K: "resources", V: api.ResourcesJSON(r)}, {K: "role", V: "*"},
				})
			}
			r, _ := res.FromProto(api.StripAllocation(e.info.Resources))
			source := ""
			if e.info.Source != nil {
				source = *e.info.Source
			}
			execs = append(execs, ojson.Object{
				{K: "id", V: eid}, {K: "name", V: e.info.GetName()}, {K: "source", V: source},
				{K: "container", V: e.containerID}, {K: "directory", V: e.sandbox},
				{K: "resources", V: api.ResourcesJSON(r)}, {K: "role", V: "*"}, {K: "type", V: e.info.GetType().String()},
				{K: "pid", V: e.pid},
				{K: "tasks", V: api.NonNil(tasks)}, {K: "queued_tasks", V: []ojson.Object{}}, {K: "completed_tasks", V: []ojson.Object{}},
			})
		}
		fws = append(fws, ojson.Object{
			{K: "id", V: id}, {K: "name", V: fw.info.Name}, {K: "user", V: fw.info.User},
			{K: "failover_timeout", V: ojson.Double(fw.info.GetFailoverTimeout())}, {K: "checkpoint", V: fw.info.GetCheckpoint()},
			{K: "hostname", V: fw.info.GetHostname()}, {K: "role", V: "*"}, {K: "executors", V: api.NonNil(execs)},
		})
	}
	return ojson.Marshal(ojson.Object{
		{K: "version", V: api.Version},
		{K: "id", V: a.id},
		{K: "pid", V: fmt.Sprintf("slave(1)@%s", a.endpoint())},
		{K: "hostname", V: a.hostname},
		{K: "resources", V: api.ResourcesJSON(a.total)},
		{K: "attributes", V: api.AttributesJSON(a.attributes)},
		{K: "master_hostname", V: a.cfg.Hostname},
		{K: "flags", V: ojson.Object{
			{K: "work_dir", V: a.workDir},
			{K: "executor_registration_timeout", V: api.MesosDuration(a.cfg.ExecutorRegistrationTimeout)},
			{K: "executor_reregistration_timeout", V: api.MesosDuration(a.cfg.ExecutorReregistrationTimeout)},
			{K: "executor_shutdown_grace_period", V: api.MesosDuration(a.cfg.ExecutorShutdownGracePeriod)},
			{K: "recovery_timeout", V: api.MesosDuration(a.cfg.RecoveryTimeout)},
		}},
		{K: "frameworks", V: api.NonNil(fws)},
		{K: "completed_frameworks", V: []ojson.Object{}},
		{K: "counters", V: ojson.Object{
			{K: "status_updates_retried", V: a.counters.updatesRetried},
			{K: "unexpected_acknowledgements", V: a.counters.unexpectedAcks},
			{K: "messages_dropped", V: a.counters.messagesDropped},
			{K: "status_updates_ignored", V: a.counters.updatesIgnored},
		}},
	})
}
