package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/localmesos"
)

// These tests run real executors (this test binary as `tiltai executor`)
// launched by localmesos, each running a real service process: the demo
// feeder and printer on the gate library, or plain programs.

func linkSnapshot(version uint64, out map[string][]string) control.Snapshot {
	s := control.Snapshot{Version: version, Out: map[string]control.OutLink{}}
	for gate, peers := range out {
		s.Out[gate] = control.OutLink{Pattern: control.Push, Peers: peers}
	}
	return s
}

func printerSpec(id string) taskSpec {
	return taskSpec{id: id, data: contract.TaskData{
		Service: "printer", Command: "tiltai", Args: []string{"demo", "printer", "--report", "100ms"},
		Gates:           []contract.Gate{{Name: "ciphertext", Pattern: control.Pull}},
		Health:          contract.Health{ReadyTimeout: contract.D(30 * time.Second), LivenessTimeout: contract.D(5 * time.Second)},
		KillGracePeriod: contract.D(8 * time.Second),
	}}
}

func feederSpec(id string, args ...string) taskSpec {
	return taskSpec{id: id, data: contract.TaskData{
		Service: "feeder", Command: "tiltai", Args: append([]string{"demo", "feeder"}, args...),
		Gates:           []contract.Gate{{Name: "plaintext", Pattern: control.Push}},
		KillGracePeriod: contract.D(5 * time.Second),
	}}
}

func peer(d contract.TaskData, gate string) string {
	for _, g := range d.Gates {
		if g.Name == gate {
			return fmt.Sprintf("tcp://127.0.0.1:%d", g.Port)
		}
	}
	panic("no gate " + gate)
}

var finalLine = regexp.MustCompile(`printer final: origins=(\d+) received=(\d+) duplicates=(\d+) missing=(\d+)`)

// printerFinal parses the printer's last summary from its sandbox stdout.
func printerFinal(t *testing.T, stdout string) (received, dups, missing uint64) {
	t.Helper()
	m := finalLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no final summary in the printer's stdout:\n%s", stdout)
	}
	n := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
	return n(m[2]), n(m[3]), n(m[4])
}

// TestPipeline is the "done when": a gate-using service launched on
// localmesos by the Tiltai executor gets and acknowledges link updates, and
// drains on kill with nothing lost. The feeder sends sequence-numbered
// messages to the printer; the printer is then stopped the planned way
// (removed from the feeder's links, acknowledged, killed) and must have
// processed every message the feeder delivered to it.
func TestPipeline(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	tasks := s.launch(printerSpec("printer.1"), feederSpec("feeder.1", "--rate", "3000"))

	running := s.state("printer.1", mesos.TASK_RUNNING)
	wantMsg := fmt.Sprintf(":%d)", tasks["printer.1"].Gates[0].Port)
	if !strings.Contains(running.GetMessage(), wantMsg) {
		t.Errorf("RUNNING says %q, want it to mention %q", running.GetMessage(), wantMsg)
	}
	if running.GetSource() != mesos.SOURCE_EXECUTOR || running.UUID == nil {
		t.Errorf("RUNNING update %+v lacks source or uuid", running)
	}
	s.state("feeder.1", mesos.TASK_RUNNING)

	s.publish("feeder.1", 1, map[string][]string{"plaintext": {peer(tasks["printer.1"], "ciphertext")}})
	st := s.status("printer.1", "messages flowing", func(m contract.Message) bool { return m.Counters["printer.received"] > 1000 })
	if st.Counters["printer.missing"] != 0 || st.Gates["ciphertext"].Received == 0 || st.State != "running" {
		t.Fatalf("printer status %+v", st)
	}

	// Planned removal: the feeder stops sending to the printer first; its
	// version 2 is acknowledged once what it sent the printer is delivered.
	s.publish("feeder.1", 2, map[string][]string{"plaintext": {}})
	fst := s.status("feeder.1", "version 2 applied, nothing in flight", func(m contract.Message) bool {
		// The counters must come from a heartbeat after the feeder sent:
		// a status sent before the service's first heartbeat has no gates,
		// and its zero values would pass for "nothing in flight".
		g, ok := m.Gates["plaintext"]
		return ok && g.Sent > 0 && m.Version >= 2 && g.InFlight == 0 && g.Peers == 0
	})
	delivered := fst.Gates["plaintext"].Sent
	if delivered < 1000 {
		t.Fatalf("feeder delivered only %d messages: %+v", delivered, fst)
	}

	s.kill("printer.1")
	s.state("printer.1", mesos.TASK_KILLING)
	killed := s.state("printer.1", mesos.TASK_KILLED)
	// Drained and gone by itself, before any signal. Whether the service's
	// "drained" report beat its exit decides the wording.
	if msg := killed.GetMessage(); !strings.HasPrefix(msg, "killed by the scheduler; service ") || !strings.Contains(msg, "exited with status 0") ||
		strings.Contains(msg, "SIG") {
		t.Errorf("TASK_KILLED says %q", msg)
	}
	sandbox := s.sandbox("printer.1")
	received, dups, missing := printerFinal(t, readFile(t, filepath.Join(sandbox, "stdout")))
	if received != delivered || dups != 0 || missing != 0 {
		t.Fatalf("printer processed %d (duplicates %d, missing %d); the feeder delivered %d", received, dups, missing, delivered)
	}
	t.Logf("drained on kill: %d of %d delivered messages processed, none missing", received, delivered)

	// The sandbox keeps the service's output and the executor's log apart.
	if log := readFile(t, filepath.Join(sandbox, executor.LogFile)); !strings.Contains(log, "executor starting") || strings.Contains(log, "printer final") {
		t.Errorf("executor.log does not look like the executor's log:\n%.2000s", log)
	}
	if errs := readFile(t, filepath.Join(sandbox, "stderr")); strings.Contains(errs, "executor starting") {
		t.Errorf("the executor logs into the service's stderr")
	}

	s.kill("feeder.1")
	// The feeder drains too; what it queued for no peer it may hold until
	// SIGKILL (the gate's own drain timeout is longer than its grace).
	s.state("feeder.1", mesos.TASK_KILLED)
	want := []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED}
	if got := s.states("printer.1"); !slices.Equal(got, want) {
		t.Errorf("printer went through %v, want %v", got, want)
	}
	// Both executors exit, cleanly, once their last update is acknowledged.
	s.wait("both executors exited", 30*time.Second, func() bool { return s.fails["printer.1.exec"] != nil && s.fails["feeder.1.exec"] != nil })
	for _, e := range []string{"printer.1.exec", "feeder.1.exec"} {
		if f := s.fails[e]; f.GetStatus() != 0 {
			t.Errorf("executor %s exited with status %d", e, f.GetStatus())
		}
	}
}

// TestLinkMessages: duplicate and out-of-order link versions are never
// applied twice or backwards, a lost ack heals on the resend, and garbage,
// foreign and misdirected messages are ignored (and counted), never fatal.
func TestLinkMessages(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	tasks := s.launch(feederSpec("feeder.1", "--rate", "200"), printerSpec("printer.1"))
	s.state("feeder.1", mesos.TASK_RUNNING)
	s.state("printer.1", mesos.TASK_RUNNING)
	p := peer(tasks["printer.1"], "ciphertext")

	for _, junk := range [][]byte{
		[]byte("\x00\xffnot json at all"),
		[]byte(`{"type":"links"}`),
		[]byte(`{"type":"links","task_id":"someone.else","snapshot":{"version":99,"out":{}}}`),
		[]byte(`{"type":"ack","task_id":"feeder.1","version":1}`),
		[]byte(`{"type":"teleport","task_id":"feeder.1"}`),
		[]byte(`[1,2,3]`),
	} {
		s.send("feeder.1", junk)
	}
	s.publish("feeder.1", 3, map[string][]string{"plaintext": {p}})
	for _, v := range []uint64{3, 2, 1, 3} { // duplicates and older versions
		s.send("feeder.1", s.links("feeder.1", v, map[string][]string{"plaintext": {}}))
	}
	s.publish("feeder.1", 5, map[string][]string{"plaintext": {p}})
	s.send("feeder.1", s.links("feeder.1", 4, map[string][]string{"plaintext": {}}))
	// A snapshot that does not fit the task is refused with a nack.
	bad := control.Snapshot{Version: 6, Out: map[string]control.OutLink{"audit": {Pattern: control.Pub, Peers: []string{p}}}}
	b, _ := contract.Encode(contract.Message{Type: contract.TypeLinks, TaskID: "feeder.1", Snapshot: &bad})
	s.send("feeder.1", b)
	s.wait("nack of version 6", 30*time.Second, func() bool {
		return slices.ContainsFunc(s.msgs["feeder.1"], func(m contract.Message) bool { return m.Type == contract.TypeNack && m.Version == 6 })
	})
	// A status made after all of the above (statuses made before may still
	// be arriving).
	st := s.status("feeder.1", "version 5 and the counts", func(m contract.Message) bool {
		return m.Version == 5 && m.Executor["messages_ignored"] >= 6 && m.Executor["links_stale"] >= 5 && m.Executor["links_refused"] >= 1
	})
	if st.Pushed != 5 || st.Executor["links_refused"] != 1 || st.Executor["messages_ignored"] != 6 {
		t.Fatalf("status %+v", st)
	}
	// The printer still gets messages: version 5 (not 4, nor the empty
	// resends of 3) is in force.
	now := s.status("printer.1", "a count", func(contract.Message) bool { return true }).Counters["printer.received"]
	s.status("printer.1", "messages still flowing", func(m contract.Message) bool { return m.Counters["printer.received"] > now+100 })

	var last uint64
	for _, m := range s.messages("feeder.1") {
		if m.Type == contract.TypeStatus || m.Type == contract.TypeAck {
			if m.Version < last {
				t.Fatalf("applied version went back from %d to %d: %+v", last, m.Version, m)
			}
			last = m.Version
		}
	}
	acks := 0
	for _, m := range s.messages("feeder.1") {
		if m.Type == contract.TypeAck && m.Version == 3 {
			acks++
		}
	}
	if acks < 2 {
		t.Errorf("version 3 acknowledged %d times; the resends of 3 must be acknowledged again", acks)
	}
	s.state("feeder.1", mesos.TASK_RUNNING) // still running, nothing crashed
	if got := s.states("feeder.1"); got[len(got)-1] != mesos.TASK_RUNNING {
		t.Fatalf("feeder states %v", got)
	}
}

// TestMessageBeforeSubscribe is docs/reliability.md F8: a link message sent
// before the executor subscribed is dropped by the agent; the scheduler's
// resend gets it through.
func TestMessageBeforeSubscribe(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	sp := feederSpec("feeder.1")
	sp.env = map[string]string{"TEST_EXECUTOR_START_DELAY": "1s"}
	s.launch(sp)
	s.send("feeder.1", s.links("feeder.1", 1, map[string][]string{"plaintext": {}}))
	waitFor(t, "the agent to drop the early message", 20*time.Second, func() bool { return agentCounter(t, c, "messages_dropped") >= 1 })
	s.publish("feeder.1", 1, map[string][]string{"plaintext": {}})
	s.state("feeder.1", mesos.TASK_RUNNING)
}

// TestAgentRestart is docs/reliability.md F9, first half: the agent goes away and
// comes back; the executor re-subscribes within its backoff and meanwhile the
// gates keep forwarding.
func TestAgentRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	tasks := s.launch(printerSpec("printer.1"), feederSpec("feeder.1", "--rate", "1000"))
	s.state("printer.1", mesos.TASK_RUNNING)
	s.state("feeder.1", mesos.TASK_RUNNING)
	s.publish("feeder.1", 1, map[string][]string{"plaintext": {peer(tasks["printer.1"], "ciphertext")}})
	s.status("printer.1", "messages flowing", func(m contract.Message) bool { return m.Counters["printer.received"] > 100 })
	stdout := filepath.Join(s.sandbox("printer.1"), "stdout")
	execLog := filepath.Join(s.sandbox("feeder.1"), executor.LogFile)

	if err := c.StopAgent(0); err != nil {
		t.Fatal(err)
	}
	// With the agent gone the printer's own summaries show the traffic going on.
	before := lastReceived(readFile(t, stdout))
	waitFor(t, "messages flowing while the agent is down", 20*time.Second, func() bool { return lastReceived(readFile(t, stdout)) > before+500 })
	ctx := t.Context()
	if err := c.StartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the executor to re-subscribe", 20*time.Second, func() bool {
		return strings.Count(readFile(t, execLog), `msg="subscribed to the agent"`) >= 2
	})
	// Links flow again through the new subscription.
	s.publish("feeder.1", 2, map[string][]string{"plaintext": {peer(tasks["printer.1"], "ciphertext")}})
	st := s.status("printer.1", "status after the restart", func(m contract.Message) bool { return uint64(m.Counters["printer.received"]) > before+1000 })
	if st.Counters["printer.missing"] != 0 || st.Counters["printer.duplicates"] != 0 {
		t.Fatalf("messages lost or duplicated across the agent restart: %+v", st.Counters)
	}
	for _, id := range []string{"printer.1", "feeder.1"} {
		if got := s.states(id); got[len(got)-1] != mesos.TASK_RUNNING {
			t.Errorf("%s states %v", id, got)
		}
	}
}

var summaryLine = regexp.MustCompile(`received=(\d+)`)

func lastReceived(stdout string) uint64 {
	all := summaryLine.FindAllStringSubmatch(stdout, -1)
	if len(all) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(all[len(all)-1][1], 10, 64)
	return n
}

// TestAgentGoneForGood is docs/reliability.md F9, second half: past
// MESOS_RECOVERY_TIMEOUT without its agent the executor stops its service and
// exits cleanly.
func TestAgentGoneForGood(t *testing.T) {
	t.Parallel()
	c := startCluster(t, func(cfg *localmesos.Config) { cfg.RecoveryTimeout = 2 * time.Second })
	s := subscribe(t, c, true)
	s.launch(feederSpec("feeder.1"))
	running := s.state("feeder.1", mesos.TASK_RUNNING)
	svc := pidIn(t, running.GetMessage())
	exe := int(running.GetContainerStatus().GetExecutorPID())
	if exe == 0 || !alive(exe) || !alive(svc) {
		t.Fatalf("executor pid %d, service pid %d not running", exe, svc)
	}
	execLog := filepath.Join(s.sandbox("feeder.1"), executor.LogFile)
	start := time.Now()
	if err := c.StopAgent(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the service and the executor to stop", 30*time.Second, func() bool { return !alive(svc) && !alive(exe) })
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("gave up after %s, before the 2s recovery timeout", d)
	}
	log := readFile(t, execLog)
	for _, want := range []string{"could not re-subscribe to the agent within the recovery timeout", `reason="lost the agent" code=0`} {
		if !strings.Contains(log, want) {
			t.Errorf("executor log lacks %q:\n%s", want, log)
		}
	}
}

// TestServiceExits is docs/reliability.md F10 at the executor: a service that
// exits by itself is TASK_FINISHED or TASK_FAILED with its exit status or
// signal, and the last line of its stderr.
func TestServiceExits(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	sh := func(id, script string) taskSpec {
		return taskSpec{id: id, data: contract.TaskData{Service: id, Command: "/bin/sh", Args: []string{"-c", script}}}
	}
	s.launch(
		sh("ok", "echo all good"),
		sh("crash", "echo working; echo 'fatal: cannot open /data/key' >&2; exit 3"),
		sh("segv", "kill -SEGV $$"),
		taskSpec{id: "missing", data: contract.TaskData{Service: "missing", Command: "no-such-program"}},
	)
	for _, tc := range []struct {
		task  string
		state mesos.TaskState
		msg   string
	}{
		{"ok", mesos.TASK_FINISHED, "service exited with status 0"},
		{"crash", mesos.TASK_FAILED, "service exited with status 3; last line of its stderr: fatal: cannot open /data/key"},
		{"segv", mesos.TASK_FAILED, "service was killed by signal 11 (segmentation fault)"},
		{"missing", mesos.TASK_FAILED, `cannot start service "missing": cannot find "no-such-program" in the service's PATH`},
	} {
		st := s.state(tc.task, tc.state)
		if !strings.Contains(st.GetMessage(), tc.msg) {
			t.Errorf("%s: %s says %q, want %q", tc.task, tc.state, st.GetMessage(), tc.msg)
		}
	}
	if st := s.state("missing", mesos.TASK_FAILED); st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
		t.Errorf("start failure reason %v", st.GetReason())
	}
	if out := readFile(t, filepath.Join(s.sandbox("crash"), "stdout")); out != "working\n" {
		t.Errorf("crash stdout %q", out)
	}
}

// TestHealth: readiness and liveness end in TASK_FAILED with the reason; a
// service that ignores SIGTERM is killed at the end of its grace period.
func TestHealth(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	hung := printerSpec("hung")
	hung.data.Health.LivenessTimeout = contract.D(2 * time.Second) // generous on a loaded machine: it must not trip before the SIGSTOP
	hung.data.KillGracePeriod = contract.D(1 * time.Second)
	s.launch(
		taskSpec{id: "never-ready", data: contract.TaskData{Service: "x", Command: "/bin/sleep", Args: []string{"60"},
			Gates:           []contract.Gate{{Name: "in", Pattern: control.Pull}},
			Health:          contract.Health{ReadyTimeout: contract.D(time.Second)},
			KillGracePeriod: contract.D(time.Second)}},
		hung,
		taskSpec{id: "stubborn", data: contract.TaskData{Service: "x", Command: "/bin/sh", Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 1; done`},
			KillGracePeriod: contract.D(time.Second)}},
	)
	nr := s.state("never-ready", mesos.TASK_FAILED)
	if want := "service not ready within 1s: it never connected to its control socket"; !strings.Contains(nr.GetMessage(), want) {
		t.Errorf("never-ready: %q, want %q", nr.GetMessage(), want)
	}

	running := s.state("hung", mesos.TASK_RUNNING)
	pid := pidIn(t, running.GetMessage())
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	hf := s.state("hung", mesos.TASK_FAILED)
	if !strings.Contains(hf.GetMessage(), "service hung: no heartbeat on its control socket for") || hf.Healthy == nil || *hf.Healthy {
		t.Errorf("hung: %q healthy=%v", hf.GetMessage(), hf.Healthy)
	}
	waitFor(t, "the hung service to be killed", 20*time.Second, func() bool { return !alive(pid) })

	s.state("stubborn", mesos.TASK_RUNNING)
	waitFor(t, "the stubborn service to start", 20*time.Second, func() bool {
		return strings.Contains(readFile(t, filepath.Join(s.sandbox("stubborn"), "stdout")), "ready")
	})
	s.kill("stubborn")
	sk := s.state("stubborn", mesos.TASK_KILLED)
	if want := "killed by signal 9 (killed) after SIGKILL at the end of the 1s grace period"; !strings.Contains(sk.GetMessage(), want) {
		t.Errorf("stubborn: %q, want %q", sk.GetMessage(), want)
	}
}

// TestTaskDataErrors: task data that is not a valid TaskData fails the task
// with TASK_ERROR listing every problem.
func TestTaskDataErrors(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	s := subscribe(t, c, true)
	s.launch(taskSpec{id: "bad", raw: []byte(`{"service":"","command":"x","gates":[{"name":"in","pattern":"pull"}],"colour":"blue"}`)})
	st := s.state("bad", mesos.TASK_ERROR)
	for _, want := range []string{"invalid task data", `unknown field "colour"`, "service is empty", `gates[0] "in": in-gate pattern "pull" needs the port`} {
		if !strings.Contains(st.GetMessage(), want) {
			t.Errorf("TASK_ERROR %q lacks %q", st.GetMessage(), want)
		}
	}
	if st.GetReason() != mesos.REASON_TASK_INVALID {
		t.Errorf("reason %v", st.GetReason())
	}
	s.wait("the executor to exit", 30*time.Second, func() bool { return s.fails["bad.exec"] != nil })
}

type tokenAuth struct{ accept bool }

func (tokenAuth) Token(_, exec string) (string, error) { return "tok-" + exec, nil }

func (a tokenAuth) Authenticate(header, _, exec string) error {
	if !a.accept || header != "Bearer tok-"+exec {
		return errors.New("bad token")
	}
	return nil
}

// TestAuthAndEnvironment: the executor authenticates its calls with the
// agent's token (docs/reliability.md S1), never hands the token to the service, and
// gives the service its TILTAI_* environment, the sandbox as working
// directory and `tiltai` first on its PATH.
func TestAuthAndEnvironment(t *testing.T) {
	t.Parallel()
	c := startCluster(t, func(cfg *localmesos.Config) { cfg.ExecutorAuth = tokenAuth{accept: true} })
	s := subscribe(t, c, true)
	s.launch(taskSpec{id: "env.1", data: contract.TaskData{
		Service: "envdump", Command: "/bin/sh", Args: []string{"-c", `env > env.txt; command -v tiltai > which.txt; pwd > pwd.txt; exec sleep 60`},
		Env:   map[string]string{"GREETING": "hello"},
		Gates: []contract.Gate{{Name: "out-1", Pattern: control.Push}},
	}})
	s.state("env.1", mesos.TASK_RUNNING)
	sb := s.sandbox("env.1")
	waitFor(t, "the service to write its environment", 20*time.Second, func() bool { return readFile(t, filepath.Join(sb, "pwd.txt")) != "" })
	env := readFile(t, filepath.Join(sb, "env.txt"))
	real, _ := filepath.EvalSymlinks(sb)
	for _, want := range []string{
		"TILTAI_TASK_ID=env.1\n", "TILTAI_SERVICE=envdump\n", "TILTAI_GATE_OUT_1=push>\n", "TILTAI_CONTROL=unix:///", "GREETING=hello\n",
		"PATH=" + filepath.Join(real, ".tiltai", "bin") + ":",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("service environment lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "MESOS_EXECUTOR_AUTHENTICATION_TOKEN") || strings.Contains(env, "tok-") {
		t.Errorf("the service got the executor's token:\n%s", env)
	}
	if which := strings.TrimSpace(readFile(t, filepath.Join(sb, "which.txt"))); which != filepath.Join(real, ".tiltai", "bin", "tiltai") {
		t.Errorf("tiltai resolves to %q", which)
	}
	if pwd := strings.TrimSpace(readFile(t, filepath.Join(sb, "pwd.txt"))); pwd != real {
		t.Errorf("working directory %q, want the sandbox %q", pwd, real)
	}
	s.kill("env.1")
	if st := s.state("env.1", mesos.TASK_KILLED); !strings.Contains(st.GetMessage(), "killed by signal 15 (terminated) after SIGTERM") {
		t.Errorf("TASK_KILLED says %q", st.GetMessage())
	}
}

// TestAuthRefused: with a token the agent refuses, the executor cannot
// subscribe; it gives up at its recovery timeout and exits non-zero.
func TestAuthRefused(t *testing.T) {
	t.Parallel()
	c := startCluster(t, func(cfg *localmesos.Config) {
		cfg.ExecutorAuth = tokenAuth{accept: false}
		cfg.RecoveryTimeout = time.Second
	})
	s := subscribe(t, c, true)
	s.launch(feederSpec("feeder.1"))
	s.wait("the executor to give up", 30*time.Second, func() bool { return s.fails["feeder.1.exec"] != nil })
	if st := s.fails["feeder.1.exec"].GetStatus(); st == 0 {
		t.Errorf("executor exit status %d, want non-zero", st)
	}
	log := readFile(t, filepath.Join(s.sandbox("feeder.1"), executor.LogFile))
	if !strings.Contains(log, "agent refused SUBSCRIBE: 401") || !strings.Contains(log, `reason="could not subscribe to the agent" code=1`) {
		t.Errorf("executor log:\n%s", log)
	}
}

// TestShutdown: at TEARDOWN the agent sends SHUTDOWN; the executor stops the
// service within the shutdown grace period and exits.
func TestShutdown(t *testing.T) {
	t.Parallel()
	// Mesos' default grace: the executor exits unacknowledged (the
	// framework is gone) 500 ms before the agent would kill it; with 3 s
	// the margin was 300 ms, which a machine under heavy load can miss.
	c := startCluster(t, func(cfg *localmesos.Config) { cfg.ExecutorShutdownGracePeriod = 5 * time.Second })
	s := subscribe(t, c, true)
	s.launch(feederSpec("feeder.1"))
	running := s.state("feeder.1", mesos.TASK_RUNNING)
	svc, exe := pidIn(t, running.GetMessage()), int(running.GetContainerStatus().GetExecutorPID())
	execLog := filepath.Join(s.sandbox("feeder.1"), executor.LogFile)
	s.call(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	waitFor(t, "the service and the executor to stop", 20*time.Second, func() bool { return !alive(svc) && !alive(exe) })
	log := readFile(t, execLog)
	for _, want := range []string{"agent asked the executor to shut down", `grace=4s`, `msg="executor exiting"`} {
		if !strings.Contains(log, want) {
			t.Errorf("executor log lacks %q:\n%s", want, log)
		}
	}
}

// TestInProcess runs the executor as a function in this process (localmesos'
// InProcess launcher), so that the goroutine-leak check at the end of the
// tests and the race detector cover Run itself: launch, links, kill, and a
// stop by cancellation (the agent's kill of an in-process executor).
func TestInProcess(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runs := make(chan error, 2)
	launcher := localmesos.InProcess(func(ctx context.Context, spec localmesos.ExecutorSpec) error {
		cfg, err := executor.ConfigFromEnv(spec.Getenv)
		if err != nil {
			return err
		}
		log, closer, err := executor.OpenLog(cfg.Sandbox, slog.LevelDebug, "text")
		if err != nil {
			return err
		}
		defer closer.Close()
		cfg.Logger, cfg.Executable, cfg.Environ = log, exe, spec.Env
		cfg.StatusInterval = 200 * time.Millisecond
		err = executor.Run(ctx, cfg)
		runs <- err
		return err
	})
	c := startCluster(t, func(cfg *localmesos.Config) { cfg.Launcher = launcher })
	s := subscribe(t, c, true)
	tasks := s.launch(printerSpec("printer.1"), feederSpec("feeder.1", "--rate", "500"))
	s.state("printer.1", mesos.TASK_RUNNING)
	s.state("feeder.1", mesos.TASK_RUNNING)
	s.publish("feeder.1", 1, map[string][]string{"plaintext": {peer(tasks["printer.1"], "ciphertext")}})
	s.status("printer.1", "messages flowing", func(m contract.Message) bool { return m.Counters["printer.received"] > 50 })
	s.kill("feeder.1")
	s.state("feeder.1", mesos.TASK_KILLED)
	if err := <-runs; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Closing the cluster cancels the printer's executor: it stops its service
	// and returns.
	running := s.state("printer.1", mesos.TASK_RUNNING)
	svc := pidIn(t, running.GetMessage())
	c.Close()
	select {
	case err := <-runs:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled executor did not return")
	}
	if alive(svc) {
		t.Fatalf("service %d outlived its executor", svc)
	}
}
