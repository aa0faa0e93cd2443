package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// Against the real scheduler on the embedded Mesos: what the fake answers
// is what the scheduler answers, and a wait ends when the tasks run and
// their executors have acknowledged the link tables.
func TestRealScheduler(t *testing.T) {
	cl := clienttest.StartCluster(t, clienttest.ClusterConfig{Agents: 2, Token: "s3cret"})
	c := newClient(t, cl.URL, "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := func(version int) apitypes.Status {
		t.Helper()
		var polls int
		st, err := c.WaitConverged(ctx, version, client.WaitOptions{Interval: 50 * time.Millisecond, Progress: func(apitypes.Status) { polls++ }})
		if err != nil {
			t.Fatal(err)
		}
		if polls == 0 {
			t.Fatal("no progress was reported")
		}
		return st
	}

	events, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	// 401 without the token, reads included.
	if _, err := newClient(t, cl.URL, "").Status(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	// 422 with located problems.
	var ae *client.APIError
	_, err = c.Submit(ctx, "bad.yaml", []byte("services:\n  a:\n    command: x\n    instances: 0\n    gates: {out: push}\nlinks:\n  - {from: a.out, to: b.in}\n"))
	if !errors.Is(err, client.ErrInvalidSpec) || !errors.As(err, &ae) || len(ae.Problems) == 0 || ae.Problems[0].File != "bad.yaml" {
		t.Fatalf("invalid: %v", err)
	}

	res, err := c.Submit(ctx, "pipeline.yaml", []byte(pipeline), client.IfMatch(0))
	if err != nil || res.Version != 1 || !res.Changed {
		t.Fatalf("submit: %+v %v", res, err)
	}
	st := wait(1)
	if len(st.Services) != 3 || st.Services[0].Name != "encryptor" || st.Services[0].Running != 3 || st.Services[0].Unacked != 0 {
		t.Fatalf("status: %+v", st)
	}
	tasks, err := c.Tasks(ctx, "encryptor")
	if err != nil || len(tasks) != 3 {
		t.Fatalf("tasks: %+v %v", tasks, err)
	}
	for _, ti := range tasks {
		if ti.Phase != "running" || ti.Ports["plaintext"] == 0 || ti.Links.Acked != ti.Links.Version {
			t.Fatalf("task: %+v", ti)
		}
	}
	links, err := c.Links(ctx)
	if err != nil || len(links) != 5 {
		t.Fatalf("links: %+v %v", links, err)
	}
	for _, l := range links {
		if l.Service == "feeder" && len(l.Table.Out["plaintext"].Peers) != 3 {
			t.Fatalf("feeder's table: %+v", l.Table)
		}
	}
	spec, err := c.Spec(ctx)
	if err != nil || spec.Version != 1 || spec.Source != pipeline {
		t.Fatalf("spec: %+v %v", spec, err)
	}
	if p, err := spec.Parse(); err != nil || p.Services["encryptor"].Instances != 3 {
		t.Fatalf("spec parse: %v", err)
	}

	// 409, then a scale that converges with the new encryptors linked.
	if _, err := c.Scale(ctx, "encryptor", 5, client.IfMatch(0)); !errors.Is(err, client.ErrConflict) || !errors.As(err, &ae) || ae.CurrentVersion != 1 {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := c.Scale(ctx, "nosuch", 5); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	res, err = c.Scale(ctx, "encryptor", 5, client.IfMatch(1))
	if err != nil || res.Version != 2 {
		t.Fatalf("scale: %+v %v", res, err)
	}
	st = wait(2)
	if st.Services[0].Running != 5 {
		t.Fatalf("after scale: %+v", st)
	}

	// A crashing service fails the wait with its last failure, while the
	// rest keeps running.
	crash := strings.Replace(pipeline, "command: printer", "command: "+clienttest.FailCommand, 1)
	before, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.Submit(ctx, "crash.yaml", []byte(crash))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitConverged(ctx, res.Version, client.WaitOptions{Interval: 50 * time.Millisecond, MaxFailures: 2, Baseline: &before})
	var sf *client.ServiceFailedError
	if !errors.As(err, &sf) || sf.Service != "printer" || !strings.Contains(sf.LastFailure, "TASK_FAILED") || !strings.Contains(sf.LastFailure, "exit status 1") {
		t.Fatalf("crash: %v", err)
	}

	// The events of all this came through the stream.
	want := map[string]bool{"spec_accepted": false, "task_running": false, "links_acked": false}
	for missing := len(want); missing > 0; {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("events: %v (still missing %v)", err, want)
		}
		if seen, ok := want[ev.Type]; ok && !seen {
			want[ev.Type] = true
			missing--
		}
	}
}

// The fake answers as the scheduler does: the same requests, in the same
// order, against both, get the same status codes and bodies. When the
// scheduler's API changes, this fails until the fake follows.
func TestFakeIsFaithful(t *testing.T) {
	cl := clienttest.StartCluster(t, clienttest.ClusterConfig{Token: "s3cret"})
	f := fake(t, clienttest.FakeConfig{Token: "s3cret"})
	changed := strings.Replace(pipeline, "instances: 3", "instances: 4", 1)
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	with := func(kv ...string) map[string]string {
		h := map[string]string{"Authorization": "Bearer s3cret"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	for _, rq := range []struct {
		method, path string
		header       map[string]string
		body         string
	}{
		{"GET", "/v1/status", nil, ""},
		{"PUT", "/v1/spec", map[string]string{"Authorization": "Bearer wrong"}, pipeline},
		{"GET", "/v1/spec", auth, ""},
		{"PUT", "/v1/spec?name=bad.yaml", auth, "services:\n  a:\n    command: x\n    instances: -1\n    gates: {out: push, spare: pull}\n"},
		{"PUT", "/v1/spec?name=bad.json", with("Content-Type", "application/json"), `{"services": {"a": {"command": 1}}}`},
		{"PUT", "/v1/spec", with("If-Match", "x"), pipeline},
		{"PUT", "/v1/spec", auth, pipeline + "# " + strings.Repeat("x", 1<<20) + "\n"},
		{"PUT", "/v1/spec?name=p.yaml&dry_run=1", auth, pipeline},
		{"PUT", "/v1/spec?name=p.yaml", with("If-Match", `"0"`), pipeline},
		{"PUT", "/v1/spec?name=p.yaml", auth, pipeline},
		{"PUT", "/v1/spec?name=p.yaml", with("If-Match", `W/"0"`), changed},
		{"GET", "/v1/spec?format=source", auth, ""},
		{"POST", "/v1/services/nosuch/scale", auth, `{"instances": 2}`},
		{"POST", "/v1/services/encryptor/scale", auth, `{"instances": 10001}`},
		{"POST", "/v1/services/encryptor/scale", auth, `{"replicas": 2}`},
		{"POST", "/v1/services/encryptor/scale", with("If-Match", "7"), `{"instances": 2}`},
		{"POST", "/v1/services/encryptor/scale?dry_run=true", auth, `{"instances": 5}`},
		{"POST", "/v1/services/encryptor/scale", auth, `{"instances": 5}`},
		{"GET", "/v1/spec", auth, ""},
		{"GET", "/v1/tasks?service=nosuch", auth, ""},
		{"DELETE", "/v1/spec", auth, ""},
	} {
		real, fakeAns := call(t, cl.URL, rq.method, rq.path, rq.header, rq.body), call(t, f.URL, rq.method, rq.path, rq.header, rq.body)
		if real != fakeAns {
			t.Errorf("%s %s:\nscheduler: %s\nfake:      %s", rq.method, rq.path, real, fakeAns)
		}
	}
}

// call makes a raw request and renders the answer without what differs by
// nature (times, the Date).
func call(t *testing.T, base, method, path string, header map[string]string, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v any
	if json.Unmarshal(data, &v) == nil {
		if m, ok := v.(map[string]any); ok {
			delete(m, "accepted")
		}
		data, _ = json.Marshal(v)
	}
	return fmt.Sprintf("%d etag=%s auth=%q type=%q %s", resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"), data)
}
