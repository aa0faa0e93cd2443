package agentapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func record(s string) string { return fmt.Sprintf("%d\n%s", len(s), s) }

// fakeAgent answers SUBSCRIBE with the given records and plain calls with
// status, recording what it got.
type fakeAgent struct {
	records []string
	status  int
	text    string
	got     []*http.Request
	bodies  []string
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.got = append(f.got, r)
	f.bodies = append(f.bodies, string(b))
	if f.status != 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.status)
		io.WriteString(w, f.text)
		return
	}
	if strings.Contains(string(b), `"SUBSCRIBE"`) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		for _, rec := range f.records {
			io.WriteString(w, record(rec))
			w.(http.Flusher).Flush()
		}
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func client(t *testing.T, h http.Handler, token string) *Client {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := New(Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Token: token, CallTimeout: 5 * time.Second})
	t.Cleanup(c.CloseIdle)
	return c
}

func TestSubscribeStream(t *testing.T) {
	f := &fakeAgent{records: []string{
		`{"type":"SUBSCRIBED","subscribed":{"executor_info":{"executor_id":{"value":"e"}},"framework_info":{"user":"root","name":"x","capabilities":[{"type":"TASK_KILLING_STATE"}]},"agent_info":{"hostname":"h"}}}`,
		`{"type":"SOMETHING_NEWER","x":1}`,
		`{"type":"MESSAGE","message":{"data":"aGVsbG8="}}`,
		`{"type":"KILL","kill":{"task_id":{"value":"t"},"kill_policy":{"grace_period":{"nanoseconds":2000000000}}}}`,
	}}
	c := client(t, f, "tok")
	call := &executor.Call{Type: executor.Call_SUBSCRIBE, FrameworkID: mesos.FrameworkID{Value: "f"}, ExecutorID: mesos.ExecutorID{Value: "e"}, Subscribe: &executor.Call_Subscribe{UnacknowledgedTasks: []mesos.TaskInfo{}, UnacknowledgedUpdates: []executor.Call_Update{}}}
	s, err := c.Subscribe(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := s.Next()
	if err != nil || ev.Type != executor.Event_SUBSCRIBED || ev.Subscribed.FrameworkInfo.Capabilities[0].GetType() != mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("unknown event: %v", err)
	}
	ev, err = s.Next()
	if err != nil || string(ev.Message.Data) != "hello" {
		t.Fatalf("message %+v, %v", ev, err)
	}
	ev, err = s.Next()
	if err != nil || ev.Kill.KillPolicy.GracePeriod.GetNanoseconds() != 2e9 {
		t.Fatalf("kill %+v, %v", ev, err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	r := f.got[0]
	if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("Accept") != "application/json" || r.URL.Path != "/api/v1/executor" || r.Method != http.MethodPost {
		t.Fatalf("request %s %s %v", r.Method, r.URL, r.Header)
	}
	if want := `{"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"SUBSCRIBE","subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[]}}`; f.bodies[0] != want {
		t.Fatalf("body %s\nwant %s", f.bodies[0], want)
	}
}

func TestCalls(t *testing.T) {
	f := &fakeAgent{}
	c := client(t, f, "")
	if err := c.Call(context.Background(), &executor.Call{Type: executor.Call_MESSAGE, Message: &executor.Call_Message{Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if h := f.got[0].Header.Get("Authorization"); h != "" {
		t.Fatalf("authorization %q sent without a token", h)
	}
	f.status, f.text = 400, "Failed to validate Executor::Call: Expecting 'uuid' to be present"
	err := c.Call(context.Background(), &executor.Call{Type: executor.Call_UPDATE})
	var ae *Error
	if !errors.As(err, &ae) || !ae.Permanent() || !strings.Contains(err.Error(), "agent refused UPDATE: 400 Failed to validate") {
		t.Fatalf("err %v", err)
	}
	f.status, f.text = 503, ""
	err = c.Call(context.Background(), &executor.Call{Type: executor.Call_UPDATE})
	if !errors.As(err, &ae) || ae.Permanent() || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Fatalf("err %v", err)
	}
	f.status, f.text = 401, "Unauthorized"
	_, err = c.Subscribe(context.Background(), &executor.Call{Type: executor.Call_SUBSCRIBE})
	if err == nil || !strings.Contains(err.Error(), "agent refused SUBSCRIBE: 401 Unauthorized") {
		t.Fatalf("err %v", err)
	}
	// No agent at all.
	c2 := New(Config{Endpoint: "127.0.0.1:1", CallTimeout: time.Second})
	if err := c2.Call(context.Background(), &executor.Call{Type: executor.Call_MESSAGE}); err == nil || !strings.Contains(err.Error(), "cannot reach the agent") {
		t.Fatalf("err %v", err)
	}
}
