package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

func TestJudgeDrain(t *testing.T) {
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name string
		v    drainView
		want drainVerdict
		line string
	}{
		{"master only, draining", drainView{Found: true, State: "draining"}, drainWaiting, "master: draining"},
		{"master only, drained", drainView{Found: true, State: "drained"}, drainDone, "master: drained"},
		{"master only, removed", drainView{}, drainDone, "master: agent removed"},
		{"master unreachable", drainView{MasterErr: down}, drainWaiting, "master: cannot ask (connection refused), retrying"},
		{"reactivated meanwhile", drainView{Found: true, State: "active", Scheduler: true, Converged: true}, drainFailed,
			"master: the agent is active, no longer draining (reactivated?)"},
		{"tasks left", drainView{Found: true, State: "draining", Scheduler: true, Left: []string{"encryptor.1", "printer.2"}, Running: 3, Wanted: 5},
			drainWaiting, "master: draining; scheduler: 2 tasks left on the agent (encryptor.1, printer.2), 3/5 running"},
		{"many left", drainView{Found: true, State: "draining", Scheduler: true, Left: []string{"a.1", "a.2", "a.3", "a.4"}, Wanted: 4},
			drainWaiting, "master: draining; scheduler: 4 tasks left on the agent (a.1, a.2, a.3, …), 0/4 running"},
		{"drained, replacements waiting", drainView{Found: true, State: "drained", Scheduler: true, Running: 4, Wanted: 5, Waiting: "encryptor waits: hostname:UNIQUE"},
			drainWaiting, "master: drained; scheduler: replacing, 4/5 running (encryptor waits: hostname:UNIQUE)"},
		{"converged, still draining", drainView{Found: true, State: "draining", Scheduler: true, Converged: true, Running: 5, Wanted: 5},
			drainWaiting, "master: draining; scheduler: converged, 5/5 running, none on the agent"},
		{"both done", drainView{Found: true, State: "drained", Scheduler: true, Converged: true, Running: 5, Wanted: 5},
			drainDone, "master: drained; scheduler: converged, 5/5 running, none on the agent"},
		{"scheduler away for a moment", drainView{Found: true, State: "drained", Scheduler: true, SchedErr: down},
			drainWaiting, "master: drained; scheduler: cannot ask (connection refused), retrying"},
		{"converged but a task still recorded there", drainView{Found: true, State: "drained", Scheduler: true, Converged: true, Left: []string{"printer.2"}, Running: 5, Wanted: 5},
			drainWaiting, "master: drained; scheduler: 1 task left on the agent (printer.2), 5/5 running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, line := judgeDrain(tc.v)
			if got != tc.want || line != tc.line {
				t.Errorf("judgeDrain = %v %q\nwant          %v %q", got, line, tc.want, tc.line)
			}
		})
	}
}

// TestDrainWait: tiltai drain --wait on the embedded Mesos with the real
// scheduler. With two agents it returns once the master says DRAINED and
// the scheduler has moved every task to the other agent; tiltai
// reactivate brings the agent back. With one agent the replacements have
// nowhere to go: the wait ends at --timeout (exit 5) or Ctrl-C (exit 130),
// saying the drain goes on; without a scheduler it follows the master
// alone.
func TestDrainWait(t *testing.T) {
	cl := clienttest.StartCluster(t, clienttest.ClusterConfig{Agents: 2})
	t.Setenv("TILTAI_SCHEDULER", cl.URL)
	t.Setenv("MESOS_MASTER", cl.Mesos.Addr())
	if code, _, errs := runCLI(t, "", "links", "submit", "--poll-interval", "50ms", "--timeout", "1m", pipelineFile); code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api, err := client.New(cl.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	tasksOf := func() []scheduler.TaskInfo {
		t.Helper()
		ts, err := api.Tasks(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	tasks := tasksOf()
	host := tasks[0].Host
	onHost := 0
	for _, tk := range tasks {
		if tk.Host == host {
			onHost++
		}
	}

	code, out, errs := runCLI(t, "", "drain", "--wait", "--poll-interval", "50ms", "--timeout", "1m", host)
	if code != 0 {
		t.Fatalf("drain --wait: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	t.Logf("drain --wait (%d tasks on %s):\n%s%s", onHost, host, errs, out)
	for _, want := range []string{"Ctrl-C stops waiting, not the drain", "master: drained; scheduler: converged"} {
		if !strings.Contains(errs, want) {
			t.Errorf("drain --wait progress lacks %q:\n%s", want, errs)
		}
	}
	if !strings.Contains(out, "drained in") || !strings.Contains(out, "tiltai reactivate "+host) {
		t.Errorf("drain --wait stdout:\n%s", out)
	}
	for _, tk := range tasksOf() {
		if tk.Host == host {
			t.Errorf("task %s is still on the drained agent %s (%s)", tk.ID, host, tk.Phase)
		}
	}
	if st := agentStateOf(ctx, t, cl, host); st != "drained" {
		t.Errorf("the master says %s is %s, want drained", host, st)
	}

	if code, out, errs := runCLI(t, "", "reactivate", host); code != 0 || !strings.Contains(out, "reactivated") {
		t.Fatalf("reactivate: exit %d\n%s%s", code, out, errs)
	}
	if st := agentStateOf(ctx, t, cl, host); st != "active" {
		t.Errorf("after reactivate the master says %s is %s, want active", host, st)
	}
	if code, _, errs := runCLI(t, "", "reactivate", host); code != exitFailed || !strings.Contains(errs, "not deactivated") {
		t.Errorf("reactivate of an active agent: exit %d, want %d with the master's reason\n%s", code, exitFailed, errs)
	}

	// No scheduler where --scheduler points: the master alone is followed.
	code, out, errs = runCLI(t, "", "drain", "--wait", "--scheduler", "http://127.0.0.1:1", "--poll-interval", "50ms", "--timeout", "1m", host)
	if code != 0 || !strings.Contains(errs, "waiting for the master only") || !strings.Contains(out, "drained in") {
		t.Errorf("drain --wait without a scheduler: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "", "reactivate", host); code != 0 {
		t.Fatalf("reactivate: exit %d\n%s%s", code, out, errs)
	}

	// The other agent drained too: nowhere left for the tasks.
	other := ""
	for _, tk := range tasksOf() {
		if tk.Host != host && tk.Host != "" {
			other = tk.Host
		}
	}
	if other == "" {
		t.Fatalf("no task on the other agent: %+v", tasksOf())
	}
	// Ctrl-C while waiting.
	ictx, stop := context.WithCancel(context.Background())
	outb, errb := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- run(ictx, []string{"tiltai", "drain", "--wait", "--poll-interval", "50ms", "--timeout", "1m", other}, strings.NewReader(""), outb, errb)
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(errb.String(), "master: drained; scheduler:") {
		if time.Now().After(deadline) {
			t.Fatalf("drain --wait never saw the agent drained:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if code := <-done; code != exitInterrupted || !strings.Contains(errb.String(), "goes on draining") {
		t.Errorf("drain --wait interrupted: exit %d, want %d saying the drain goes on\n%s", code, exitInterrupted, errb.String())
	}
	if st := agentStateOf(ctx, t, cl, other); st != "drained" {
		t.Errorf("the master says %s is %s after the interrupted wait, want drained", other, st)
	}
	// Its timeout: the agent is drained but the scheduler cannot converge.
	code, _, errs = runCLI(t, "", "drain", "--wait", "--poll-interval", "50ms", "--timeout", "1s", other)
	if code != exitTimeout || !strings.Contains(errs, "gave up waiting after 1s") || !strings.Contains(errs, "scheduler: replacing") {
		t.Errorf("drain --wait --timeout 1s with nowhere to go: exit %d, want %d\n%s", code, exitTimeout, errs)
	}
	// Reactivated, the agent takes the tasks again.
	if code, out, errs := runCLI(t, "", "reactivate", other); code != 0 {
		t.Fatalf("reactivate: exit %d\n%s%s", code, out, errs)
	}
	st, err := api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.WaitConverged(ctx, st.SpecVersion, client.WaitOptions{Interval: 50 * time.Millisecond}); err != nil {
		t.Fatalf("after reactivate, the pipeline does not converge: %v", err)
	}
}

func agentStateOf(ctx context.Context, t *testing.T, cl *clienttest.Cluster, host string) string {
	t.Helper()
	agents, err := masterAgents(ctx, cl.Mesos.MasterURL())
	if err != nil {
		t.Fatal(err)
	}
	a, err := findAgent(agents, host)
	if err != nil {
		t.Fatal(err)
	}
	return agentState(a)
}
