package localmesos_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/localmesos/internal/mgoexec"
)

// inProcessExecutors runs the mesos-go test executor as lightweight
// in-process executors that still speak the executor HTTP API.
func inProcessExecutors() localmesos.Launcher {
	return localmesos.InProcess(func(ctx context.Context, spec localmesos.ExecutorSpec) error {
		cfg, err := mgoexec.ConfigFromEnv(spec.Getenv)
		if err != nil {
			return err
		}
		return mgoexec.Run(ctx, cfg, codecs.MediaTypeProtobuf, spec.Getenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), spec.Dial)
	})
}

func checkpointing() *mesos.FrameworkInfo {
	failover, checkpoint := 3600.0, true
	return &mesos.FrameworkInfo{User: "root", Name: "faults", FailoverTimeout: &failover, Checkpoint: &checkpoint}
}

func firstOffer(s *mgoSched) mesos.Offer {
	return s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers[0]
}

func launch(s *mgoSched, o mesos.Offer, tasks ...mesos.TaskInfo) {
	s.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)))
}

func echo(t *testing.T, s *mgoSched, agentID, execID, data string) {
	t.Helper()
	s.call(calls.Message(agentID, execID, []byte(data)))
	s.wait(func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_MESSAGE && string(e.Message.Data) == "echo:"+data
	})
}

func echoEventually(t *testing.T, s *mgoSched, agentID, execID, data string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s.call(calls.Message(agentID, execID, []byte(data)))
		timeout := time.After(200 * time.Millisecond)
		for {
			select {
			case e := <-s.events:
				if e.Type == scheduler.Event_MESSAGE && string(e.Message.Data) == "echo:"+data {
					return
				}
				s.seen = append(s.seen, e)
				continue
			case <-timeout:
			}
			break
		}
	}
	t.Fatalf("no echo of %q", data)
}

// TestAgentRestartKeepsExecutors: with checkpointing, an agent restart
// keeps a real executor process and a command task running; both
// re-subscribe and work afterwards.
func TestAgentRestartKeepsExecutors(t *testing.T) {
	bin := executorBinary(t)
	c := newCluster(t, localmesos.Config{ExecutorReregistrationTimeout: 10 * time.Second, SubscriptionBackoffMax: 200 * time.Millisecond})
	uri := serveFile(t, bin)
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("exec-task", o, uri, "", "json"), commandTask("cmd-task", o, "sleep 600"))
	s.wait(update("exec-task", mesos.TASK_RUNNING))
	s.wait(update("cmd-task", mesos.TASK_RUNNING))
	pids := executorPIDs(t, c)
	if err := c.RestartAgent(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	// Messages are at most once: one sent before the executor re-subscribed
	// is dropped by the agent, so ask until it answers.
	echoEventually(t, s, o.AgentID.Value, "exec-exec-task", "after restart")
	if got := executorPIDs(t, c); len(got) != len(pids) || got[0] != pids[0] {
		t.Fatalf("executor pids after restart %v, before %v", got, pids)
	}
	s.call(calls.Reconcile())
	s.wait(update("exec-task", mesos.TASK_RUNNING))
	s.wait(update("cmd-task", mesos.TASK_RUNNING))
	s.call(calls.Kill("cmd-task", o.AgentID.Value))
	s.wait(update("cmd-task", mesos.TASK_KILLED))
	s.call(calls.Kill("exec-task", o.AgentID.Value))
	s.wait(update("exec-task", mesos.TASK_KILLED))
}

// TestAgentRestartExecutorGone: an executor that died while its agent was
// down is found gone at recovery; its task is lost with a reason.
func TestAgentRestartExecutorGone(t *testing.T) {
	bin := executorBinary(t)
	c := newCluster(t, localmesos.Config{})
	uri := serveFile(t, bin)
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("doomed", o, uri, "", "protobuf"))
	s.wait(update("doomed", mesos.TASK_RUNNING))
	pids := executorPIDs(t, c)
	if err := c.StopAgent(0); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(pids[0], syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for !allGone(pids) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // waiting on another process's death
	}
	if err := c.StartAgent(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	e := s.wait(update("doomed", mesos.TASK_LOST))
	if e.Update.Status.GetReason() != mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT {
		t.Fatalf("reason %s", e.Update.Status.GetReason())
	}
}

// TestMasterRestart: the master stops and starts on the same address; the
// agent re-registers with its tasks, the scheduler re-subscribes with its
// framework id and finds its task running.
func TestMasterRestart(t *testing.T) {
	c := newCluster(t, localmesos.Config{Launcher: inProcessExecutors()})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("survivor", o, "", "", "protobuf"))
	s.wait(update("survivor", mesos.TASK_RUNNING))
	addr := c.Addr()
	c.StopMaster()
	if err := c.StartMaster(); err != nil {
		t.Fatal(err)
	}
	if c.Addr() != addr {
		t.Fatalf("master moved from %s to %s", addr, c.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	s.stop()
	fi := checkpointing()
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	s2 := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, fi)
	s2.call(calls.Reconcile())
	s2.wait(update("survivor", mesos.TASK_RUNNING))
	echo(t, s2, o.AgentID.Value, "exec-survivor", "hello again")
}

// TestHTTPFaults: 307 to another master and 503 without a leader, then
// back to normal.
func TestHTTPFaults(t *testing.T) {
	c := newCluster(t, localmesos.Config{})
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x"}}}`
	do := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, c.SchedulerURL(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	c.Faults().Redirect("//127.0.0.1:1")
	if r := do(); r.StatusCode != http.StatusTemporaryRedirect || r.Header.Get("Location") != "//127.0.0.1:1" {
		t.Fatalf("redirect: %s %q", r.Status, r.Header.Get("Location"))
	}
	c.Faults().Redirect("")
	c.Faults().Unavailable(true)
	if r := do(); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("unavailable: %s", r.Status)
	}
	c.Faults().Unavailable(false)
	r := do()
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("after faults: %s", r.Status)
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestStopHeartbeats: streams go half-open (connected, silent); a new
// subscription after ResumeHeartbeats gets heartbeats again.
func TestStopHeartbeats(t *testing.T) {
	c := newCluster(t, localmesos.Config{HeartbeatInterval: 50 * time.Millisecond})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, checkpointing())
	s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_HEARTBEAT })
	c.Faults().StopHeartbeats()
	// Drain what was in flight, then expect silence on a live connection.
	quiet := time.After(300 * time.Millisecond)
drain:
	for {
		select {
		case <-s.events:
		case <-quiet:
			break drain
		}
	}
	select {
	case e, ok := <-s.events:
		if ok {
			t.Fatalf("event on a half-open stream: %s", e.Type)
		}
		t.Fatal("stream closed; want it open and silent")
	case <-time.After(500 * time.Millisecond):
	}
	if c.Faults().Counts().EventsBlackHoled == 0 {
		t.Fatal("no heartbeat was swallowed")
	}
	c.Faults().ResumeHeartbeats()
	s.stop()
	fi := checkpointing()
	fi.ID = &mesos.FrameworkID{Value: s.fwID}
	s2 := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, fi)
	s2.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_HEARTBEAT })
}

// TestMessageFaults: dropped messages never arrive and are counted;
// duplicated ones arrive twice; delayed ones arrive late.
func TestMessageFaults(t *testing.T) {
	c := newCluster(t, localmesos.Config{Launcher: inProcessExecutors(), FaultSeed: 1})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("m", o, "", "", "protobuf"))
	s.wait(update("m", mesos.TASK_RUNNING))
	agentID := o.AgentID.Value

	c.Faults().SetMessageFaults(localmesos.MessageFaults{Drop: 1})
	s.call(calls.Message(agentID, "exec-m", []byte("lost")))
	select {
	case e := <-s.events:
		if e.Type == scheduler.Event_MESSAGE {
			t.Fatalf("dropped message arrived: %s", e.Message.Data)
		}
	case <-time.After(300 * time.Millisecond):
	}
	if c.Faults().Counts().MessagesDropped != 1 {
		t.Fatalf("dropped count %d", c.Faults().Counts().MessagesDropped)
	}

	c.Faults().SetMessageFaults(localmesos.MessageFaults{Duplicate: 1})
	s.call(calls.Message(agentID, "exec-m", []byte("twice")))
	for i := 0; i < 4; i++ { // duplicated on the way in and on the way back
		s.wait(func(e *scheduler.Event) bool {
			return e.Type == scheduler.Event_MESSAGE && string(e.Message.Data) == "echo:twice"
		})
	}

	c.Faults().SetMessageFaults(localmesos.MessageFaults{Delay: 1, DelayBy: 300 * time.Millisecond})
	start := time.Now()
	echo(t, s, agentID, "exec-m", "late")
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Fatalf("delayed both ways by 300ms, arrived after %v", d)
	}
	c.Faults().SetMessageFaults(localmesos.MessageFaults{})
	echo(t, s, agentID, "exec-m", "normal")
}

// TestOffersTimeoutDeclineSuppress: unused offers are rescinded after the
// offer timeout; DECLINE filters an agent for refuse_seconds; SUPPRESS
// stops offers and REVIVE brings them back.
func TestOffersTimeoutDeclineSuppress(t *testing.T) {
	c := newCluster(t, localmesos.Config{OfferTimeout: 200 * time.Millisecond})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, checkpointing())
	o := firstOffer(s)
	r := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_RESCIND })
	if r.Rescind.OfferID != o.ID {
		t.Fatalf("rescinded %s, offered %s", r.Rescind.OfferID.Value, o.ID.Value)
	}
	o = firstOffer(s)
	s.call(calls.Decline(o.ID).With(calls.RefuseSeconds(time.Second)))
	declined := time.Now()
	o2 := firstOffer(s)
	if d := time.Since(declined); d < 900*time.Millisecond {
		t.Fatalf("re-offered after %v despite refuse_seconds 1", d)
	}
	s.call(calls.Suppress())
	s.call(calls.Decline(o2.ID).With(calls.RefuseSeconds(10 * time.Millisecond)))
	select {
	case e := <-s.events:
		if e.Type == scheduler.Event_OFFERS {
			t.Fatal("offer while suppressed")
		}
	case <-time.After(300 * time.Millisecond):
	}
	s.call(calls.Revive())
	firstOffer(s)
}

// TestUpdatesRetriedUntilAcknowledged: an update the scheduler does not
// acknowledge comes again, with the same uuid.
func TestUpdatesRetriedUntilAcknowledged(t *testing.T) {
	c := newCluster(t, localmesos.Config{Launcher: inProcessExecutors(), StatusUpdateRetry: 100 * time.Millisecond})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("r", o, "", "", "protobuf"))
	var first []byte
	for n := 0; n < 2; {
		select {
		case e := <-s.events:
			if e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "r" {
				if first == nil {
					first = e.Update.Status.UUID
				} else if string(e.Update.Status.UUID) != string(first) {
					t.Fatal("a retry carries another uuid")
				}
				n++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no retry")
		}
	}
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: "r"}, AgentID: &o.AgentID, UUID: first}
	s.call(calls.Acknowledge(st.AgentID.Value, "r", st.UUID))
}

// TestExecutorCrash: an executor exiting with status 1 fails its task with
// REASON_EXECUTOR_TERMINATED and yields a FAILURE event with the status.
func TestExecutorCrash(t *testing.T) {
	c := newCluster(t, localmesos.Config{Launcher: inProcessExecutors()})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	o := firstOffer(s)
	launch(s, o, customTask("crash", o, "", "crash", "protobuf"))
	e := s.wait(update("crash", mesos.TASK_FAILED))
	if e.Update.Status.GetReason() != mesos.REASON_EXECUTOR_TERMINATED || e.Update.Status.GetSource() != mesos.SOURCE_AGENT || e.Update.Status.UUID == nil {
		t.Fatalf("crash update: %+v", e.Update.Status)
	}
	f := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_FAILURE })
	if f.Failure.GetStatus() != 256 {
		t.Fatalf("FAILURE status %d, want 256 (exit 1)", f.Failure.GetStatus())
	}
}

// TestUnimplementedFeaturesRefused: a launch that needs what localmesos
// does not implement gets TASK_ERROR naming it.
func TestUnimplementedFeaturesRefused(t *testing.T) {
	c := newCluster(t, localmesos.Config{})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, checkpointing())
	o := firstOffer(s)
	docker := commandTask("docker", o, "true")
	docker.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum()}
	reserved := commandTask("reserved", o, "true")
	role := "web"
	reserved.Resources[0].Role = &role
	launch(s, o, docker, reserved)
	for id, want := range map[string]string{"docker": "container", "reserved": "reservations"} {
		e := s.wait(update(id, mesos.TASK_ERROR))
		if !strings.Contains(e.Update.Status.GetMessage(), want) || !strings.Contains(e.Update.Status.GetMessage(), "not implemented by localmesos") {
			t.Errorf("%s: message %q", id, e.Update.Status.GetMessage())
		}
	}
}

// TestExecutorEnvironment compares a command task's environment with the
// one Mesos 1.11 gives (02-command-task-stdout.txt): the same variable
// names, and the durations written the Mesos way.
func TestExecutorEnvironment(t *testing.T) {
	c := newCluster(t, localmesos.Config{})
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeJSON, checkpointing())
	o := firstOffer(s)
	launch(s, o, commandTask("env", o, "env | sort"))
	s.wait(update("env", mesos.TASK_FINISHED))
	out := readSandboxFile(t, c, "env", "stdout")
	got := envNames(out)
	want := envNames(mustRead(t, "testdata/mesos-1.11/02-command-task-stdout.txt"))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("command task env names\n got %v\nwant %v", got, want)
	}
	for _, kv := range []string{"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs", "MESOS_RECOVERY_TIMEOUT=15mins", "MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs",
		"MESOS_CHECKPOINT=1", "MESOS_HTTP_COMMAND_EXECUTOR=0", "LIBPROCESS_PORT=0", "MESOS_ALLOCATION_ROLE=*", "MESOS_EXECUTOR_ID=env"} {
		if !strings.Contains(out, kv+"\n") {
			t.Errorf("missing %s", kv)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func envNames(s string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, _, ok := strings.Cut(sc.Text(), "="); ok && (strings.HasPrefix(k, "MESOS_") || strings.HasPrefix(k, "LIBPROCESS_") || k == "PATH" || k == "PWD") {
			names = append(names, k)
		}
	}
	return names
}

func readSandboxFile(t *testing.T, c *localmesos.Cluster, execID, name string) string {
	t.Helper()
	for _, a := range c.Agents() {
		matches, _ := filepath.Glob(a.WorkDir + "/slaves/*/frameworks/*/executors/" + execID + "/runs/latest/" + name)
		for _, m := range matches {
			return mustRead(t, m)
		}
	}
	t.Fatalf("no sandbox file %s of executor %s", name, execID)
	return ""
}

// TestGarbageOnSockets: random bytes, truncated requests and oversized
// bodies on the master's and an agent's ports are answered or dropped;
// both keep serving.
func TestGarbageOnSockets(t *testing.T) {
	c := newCluster(t, localmesos.Config{})
	targets := []string{c.Addr(), c.Agents()[0].Endpoint}
	junk := [][]byte{
		[]byte("\x00\x01\x02garbage\r\n\r\n"),
		[]byte("POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nContent-Type: application/x-protobuf\r\n\r\nabc"),
		[]byte("POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\n\r\n\xff\xff\xff\xff\xff"),
		[]byte("GET / HTTP/1.1\r\nHost: " + strings.Repeat("x", 200000) + "\r\n\r\n"),
	}
	for _, addr := range targets {
		for _, j := range junk {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = conn.Write(j)
			buf := make([]byte, 512)
			_, _ = conn.Read(buf)
			conn.Close()
		}
	}
	big := strings.NewReader(strings.Repeat("x", 17<<20))
	resp, err := http.Post(c.SchedulerURL(), "application/json", big)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %s", resp.Status)
	}
	for _, addr := range targets {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s unhealthy after garbage: %v", addr, err)
		}
		resp.Body.Close()
	}
}

// TestAgentRemoved: an agent that stays away past AgentRemovalTimeout has
// its tasks lost (unreachable for a partition-aware framework). When it
// comes back, the partition-aware task is running again; the other one,
// already reported lost, is killed.
func TestAgentRemoved(t *testing.T) {
	c := newCluster(t, localmesos.Config{Launcher: inProcessExecutors(), AgentRemovalTimeout: 300 * time.Millisecond,
		ExecutorReregistrationTimeout: 10 * time.Second, SubscriptionBackoffMax: 100 * time.Millisecond})
	plain := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, checkpointing())
	pafi := checkpointing()
	pafi.Name = "partition-aware"
	pafi.Capabilities = []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE}}
	o := firstOffer(plain)
	launch(plain, o, customTask("plain", o, "", "", "protobuf"))
	plain.wait(update("plain", mesos.TASK_RUNNING))
	pa := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, pafi)
	o2 := firstOffer(pa)
	launch(pa, o2, customTask("pa", o2, "", "", "protobuf"))
	pa.wait(update("pa", mesos.TASK_RUNNING))

	if err := c.StopAgent(0); err != nil {
		t.Fatal(err)
	}
	lost := plain.wait(update("plain", mesos.TASK_LOST))
	if lost.Update.Status.GetReason() != mesos.REASON_AGENT_REMOVED || lost.Update.Status.GetSource() != mesos.SOURCE_MASTER {
		t.Fatalf("lost update: %+v", lost.Update.Status)
	}
	pa.wait(update("pa", mesos.TASK_UNREACHABLE))

	if err := c.StartAgent(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	plain.wait(update("plain", mesos.TASK_KILLED))
	deadline := time.Now().Add(20 * time.Second)
	for {
		pa.call(calls.Reconcile(calls.ReconcileTasks(map[string]string{"pa": o2.AgentID.Value})))
		e := pa.wait(func(e *scheduler.Event) bool {
			return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "pa"
		})
		if e.Update.Status.GetState() == mesos.TASK_RUNNING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pa task after the agent came back: %s", e.Update.Status.GetState())
		}
		time.Sleep(50 * time.Millisecond) // until the agent has re-registered
	}
}
