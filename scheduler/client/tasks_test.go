package client_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// Tasks fetches every page; TasksPage one, with the cursor and the total;
// TaskSummary the counts.
func TestTaskPages(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{})
	c := newClient(t, f.URL, "")
	ctx := context.Background()
	const n = apitypes.MaxTaskLimit + 7
	ts := make([]apitypes.TaskInfo, n)
	for i := range ts {
		svc := map[bool]string{true: "a", false: "b"}[i%3 == 0]
		ts[i] = apitypes.TaskInfo{ID: fmt.Sprintf("%s.%d", svc, i+1), Service: svc, Phase: "pending"}
	}
	f.SetTasks(ts)
	all, err := c.Tasks(ctx, "")
	if err != nil || len(all) != n || all[n-1].ID != ts[n-1].ID {
		t.Fatalf("Tasks: %d tasks, %v", len(all), err)
	}
	p, err := c.TasksPage(ctx, apitypes.TaskQuery{Service: "a", Limit: 2})
	if err != nil || len(p.Tasks) != 2 || p.Next != "a.4" || p.Total != (n+2)/3 {
		t.Fatalf("first page of a: %+v %v", p, err)
	}
	p, err = c.TasksPage(ctx, apitypes.TaskQuery{Service: "a", Limit: 2, After: p.Next})
	if err != nil || len(p.Tasks) != 2 || p.Tasks[0].ID != "a.7" {
		t.Fatalf("second page of a: %+v %v", p, err)
	}
	sum, err := c.TaskSummary(ctx, apitypes.TaskQuery{})
	if err != nil || sum.Total != n || len(sum.Services) != 2 || sum.Services[0].Phases["pending"] != (n+2)/3 {
		t.Fatalf("summary: %+v %v", sum, err)
	}
}

// A file name that the scheduler would refuse as ?name= is sent escaped,
// and shortened to its end when too long.
func TestSubmitNameMadeSafe(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{})
	c := newClient(t, f.URL, "")
	ctx := context.Background()
	for _, c2 := range []struct{ name, want string }{
		{"a\x1b]0;pwned\x07.yaml", `a\x1b]0;pwned\x07.yaml`},
		{strings.Repeat("d/", 200) + "spec.yaml", strings.Repeat("d/", 123) + "spec.yaml"},
	} {
		if _, err := c.Submit(ctx, c2.name, []byte(pipeline)); err != nil {
			t.Fatalf("%q: %v", c2.name, err)
		}
		reqs := f.Requests()
		if got := reqs[len(reqs)-1].Query.Get("name"); got != c2.want {
			t.Fatalf("sent name %q, want %q", got, c2.want)
		}
	}
}

func TestFormatServiceEscapes(t *testing.T) {
	ss := apitypes.ServiceStatus{Name: "a", Wanted: 1, Failures: 1, LastFailure: "a.1 failed \x1b]0;pwned\x07\x1b[2J\r\u202e\nfake line"}
	want := `0/1 running, 1 failure; last failure: a.1 failed \x1b]0;pwned\x07\x1b[2J\r\u202e\nfake line`
	if got := client.FormatService(ss, ss.HeldUntil); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	var out strings.Builder
	p := &client.Progress{W: &out, Version: 1}
	p.Retry(fmt.Errorf("busy \x1b[2J"))
	if strings.ContainsRune(out.String(), 0x1b) || !strings.Contains(out.String(), `busy \x1b[2J; retrying`) {
		t.Fatalf("progress line %q", out.String())
	}
}
