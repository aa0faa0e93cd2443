package localmesos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Where a real Mesos 1.11 master refuses something, localmesos must refuse
// it too: a framework that works here must not fail on a real cluster. The
// expected texts are Mesos' own (src/master/validation.cpp, master.cpp,
// http.cpp, src/common/resources.cpp).

func (s *rawSched) accept(offerID, tasks string, refuse float64) {
	s.t.Helper()
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[%s]}}],"filters":{"refuse_seconds":%g}}}`,
		s.fwID, offerID, tasks, refuse))
}

func TestStrictTaskValidation(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"strict-tasks"}}}`)
	const cpuMem = `{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}`
	const cmd = `"command":{"value":"sleep 600"}`
	for _, tc := range []struct{ name, task, want string }{
		{"no resources", `"resources":[],` + cmd, "Task uses no resources"},
		{"negative kill grace", `"resources":[` + cpuMem + `],` + cmd + `,"kill_policy":{"grace_period":{"nanoseconds":-1}}`,
			"Task's 'kill_policy.grace_period' must be non-negative"},
		{"overlapping port ranges", `"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31005},{"begin":31003,"end":31004}]}}],` + cmd,
			"Task uses invalid resources: Invalid resources: Invalid ranges resource: overlapping ranges"},
		{"empty resource name", `"resources":[` + cpuMem + `,{"name":"","type":"SCALAR","scalar":{"value":1}}],` + cmd,
			"Task uses invalid resources: Invalid resources: Empty resource name"},
		{"negative executor grace", `"resources":[` + cpuMem + `],"executor":{"executor_id":{"value":"e"},"command":{"value":"true"},"shutdown_grace_period":{"nanoseconds":-1}}`,
			"ExecutorInfo's 'shutdown_grace_period' must be non-negative"},
		{"port of task and executor", `"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}],"executor":{"executor_id":{"value":"e"},"command":{"value":"true"},"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]}}]}`,
			"There are overlapping resources in the task resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
			s.accept(o.ID.Value, fmt.Sprintf(`{"name":"t","task_id":{"value":"t"},"agent_id":{"value":%q},%s}`, o.AgentID.Value, tc.task), 0)
			st := s.next(scheduler.Event_UPDATE).ev.Update.Status
			if st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_INVALID || !strings.HasPrefix(st.GetMessage(), tc.want) {
				t.Fatalf("update %s %s %q, want TASK_ERROR REASON_TASK_INVALID %q", st.GetState(), st.GetReason(), st.GetMessage(), tc.want)
			}
		})
	}
}

func TestStrictExecutorHeartbeatDefault(t *testing.T) {
	if got := (Config{}).withDefaults().ExecutorHeartbeatInterval; got != 30*time.Minute {
		t.Fatalf("default executor heartbeat %v, want Mesos' 30m", got)
	}
}
