package localmesos

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"go.uber.org/goleak"
)

// TestCloseLeavesNothing: after a command task ran and an in-process
// executor was started, Close stops every goroutine the cluster started,
// and is idempotent.
func TestCloseLeavesNothing(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cfg := testConfig(t)
	cfg.Agents = 2
	cfg.Launcher = InProcess(func(ctx context.Context, spec ExecutorSpec) error {
		<-ctx.Done()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := New(ctx, cfg)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"leak","failover_timeout":60}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[
		{"name":"c","task_id":{"value":"c"},"agent_id":{"value":%q},"command":{"value":"sleep 600"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]},
		{"name":"e","task_id":{"value":"e"},"agent_id":{"value":%q},"executor":{"executor_id":{"value":"e"},"command":{"value":"unused"}},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}]}}]}}`,
		s.fwID, o.ID.Value, o.AgentID.Value, o.AgentID.Value))
	for running := 0; running < 1; {
		e := s.next(scheduler.Event_UPDATE)
		s.ack(e)
		if e.ev.Update.Status.GetState().String() == "TASK_RUNNING" {
			running++
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find(before)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // goroutines unwinding after Close
	}
}
