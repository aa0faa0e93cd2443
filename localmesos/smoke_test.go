package localmesos

import (
	"fmt"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/tiltai/tiltai/localmesos/internal/api"
)

func TestCommandTaskRuns(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"smoke","failover_timeout":60,"checkpoint":true}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"cmd-1","task_id":{"value":"cmd-1"},"agent_id":{"value":%q},"command":{"shell":true,"value":"env | sort; exit 0"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]}]}}]}}`,
		s.fwID, o.ID.Value, o.AgentID.Value))
	var states []mesos.TaskState
	for len(states) == 0 || !api.Terminal(states[len(states)-1]) {
		e := s.next(scheduler.Event_UPDATE)
		t.Logf("%s", e.raw)
		states = append(states, e.ev.Update.Status.GetState())
		s.ack(e)
	}
	want := []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
}
