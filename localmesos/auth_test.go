package localmesos

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// fakeExecutorAuth hands out "tok-<executor>" and accepts only it.
type fakeExecutorAuth struct{}

func (fakeExecutorAuth) Token(fw, exec string) (string, error) { return "tok-" + exec, nil }

func (fakeExecutorAuth) Authenticate(authorization, fw, exec string) error {
	if authorization != "Bearer tok-"+exec {
		return errors.New("bad token")
	}
	return nil
}

type fakeSchedulerAuth struct{}

func (fakeSchedulerAuth) Authenticate(authorization string) (string, error) {
	if authorization != "Basic cHJpbmNpcGFsOnNlY3JldA==" { // principal:secret
		return "", errors.New("bad credentials")
	}
	return "principal", nil
}

// TestAuthSeams: with the hooks set, the agent answers 401 to an executor
// call without its token while the command executor (which sends the
// MESOS_EXECUTOR_AUTHENTICATION_TOKEN it was given) works, and the master
// answers 401 to a scheduler without credentials.
func TestHMACExecutorAuth(t *testing.T) {
	a, err := NewHMACExecutorAuth(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := a.Token("fw", "ex")
	if a.Authenticate("Bearer "+tok, "fw", "ex") != nil {
		t.Fatal("own token refused")
	}
	for _, bad := range []struct{ auth, fw, ex string }{{"Bearer " + tok, "fw", "other"}, {tok, "fw", "ex"}, {"", "fw", "ex"}, {"Bearer x", "fw", "ex"}} {
		if a.Authenticate(bad.auth, bad.fw, bad.ex) == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestAuthSeams(t *testing.T) {
	cfg := testConfig(t)
	cfg.ExecutorAuth = fakeExecutorAuth{}
	c := startCluster(t, cfg)
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"auth"}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"a","task_id":{"value":"a"},"agent_id":{"value":%q},"command":{"value":"true"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}]}}]}}`,
		s.fwID, o.ID.Value, o.AgentID.Value))
	for {
		e := s.next(scheduler.Event_UPDATE)
		s.ack(e)
		if e.ev.Update.Status.GetState() == mesos.TASK_FINISHED {
			break
		}
	}
	resp := post(t, "http://"+c.Agents()[0].Endpoint+"/api/v1/executor", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"type":"MESSAGE","executor_id":{"value":"a"},"framework_id":{"value":"x"},"message":{"data":""}}`))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("executor call without token: %s", resp.Status)
	}

	cfg2 := testConfig(t)
	cfg2.SchedulerAuth = fakeSchedulerAuth{}
	c2 := startCluster(t, cfg2)
	body := []byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"auth"}}}`)
	resp = post(t, c2.SchedulerURL(), map[string]string{"Content-Type": "application/json"}, body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("scheduler without credentials: %s", resp.Status)
	}
	resp = post(t, c2.SchedulerURL(), map[string]string{"Content-Type": "application/json", "Authorization": "Basic cHJpbmNpcGFsOnNlY3JldA=="}, body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scheduler with credentials: %s", resp.Status)
	}
}
