package localmesos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/localmesos"
)

// This file is the conformance check with a framework and an executor
// written only against mesos-go: the scheduler below uses httpsched and the
// calls package; the executor is internal/mgoexec, built as a real binary
// and fetched by the agent over HTTP.

var (
	buildOnce sync.Once
	execPath  string
	buildErr  error
)

func executorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mgoexec-")
		if err != nil {
			buildErr = err
			return
		}
		execPath = filepath.Join(dir, "mgoexec")
		out, err := exec.Command("go", "build", "-o", execPath, "github.com/tiltai/tiltai/localmesos/internal/mgoexec/cmd/mgoexec").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build mgoexec: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return execPath
}

// serveFile serves one file over HTTP, as a framework serves its executor.
func serveFile(t *testing.T, path string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(path)
}

// mgoSched is a minimal mesos-go scheduler: one subscription, events on a
// channel.
type mgoSched struct {
	t      *testing.T
	caller calls.Caller
	fwID   string
	events chan *scheduler.Event
	cancel context.CancelFunc
	done   chan struct{}
	seen   []*scheduler.Event // every event passed over by wait
}

func startMgoSched(t *testing.T, url string, codec encoding.MediaType, fi *mesos.FrameworkInfo) *mgoSched {
	t.Helper()
	cli := httpcli.New(httpcli.Endpoint(url), httpcli.Codec(codecs.ByMediaType[codec]))
	caller := httpsched.NewCaller(cli)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := caller.Call(ctx, calls.Subscribe(fi))
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	s := &mgoSched{t: t, caller: caller, events: make(chan *scheduler.Event, 10000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Close()
		for {
			var e scheduler.Event
			if err := resp.Decode(&e); err != nil {
				return
			}
			s.events <- &e
		}
	}()
	e := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_SUBSCRIBED })
	s.fwID = e.Subscribed.FrameworkID.Value
	t.Cleanup(s.stop)
	return s
}

func (s *mgoSched) stop() {
	s.cancel()
	<-s.done
}

// wait returns the first event matching pred, acknowledging every update
// it passes (at-least-once: each update with a uuid is acked).
func (s *mgoSched) wait(pred func(*scheduler.Event) bool) *scheduler.Event {
	s.t.Helper()
	for i, e := range s.seen {
		if pred(e) {
			s.seen = append(s.seen[:i:i], s.seen[i+1:]...)
			return e
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatal("scheduler stream ended")
			}
			if testing.Verbose() {
				s.t.Logf("event %s %s", e.Type, e.String())
			}
			if e.Type == scheduler.Event_UPDATE && e.Update.Status.UUID != nil {
				st := e.Update.Status
				s.call(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
			}
			if pred(e) {
				return e
			}
			s.seen = append(s.seen, e)
		case <-deadline:
			s.t.Fatal("timed out waiting for an event")
		}
	}
}

func (s *mgoSched) call(c *scheduler.Call) {
	s.t.Helper()
	c.FrameworkID = &mesos.FrameworkID{Value: s.fwID}
	resp, err := s.caller.Call(context.Background(), c)
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		s.t.Fatalf("%s: %v", c.Type, err)
	}
}

func update(id string, state mesos.TaskState) func(*scheduler.Event) bool {
	return func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == id && e.Update.Status.GetState() == state
	}
}

func scalar(name string, v float64) mesos.Resource {
	t := mesos.SCALAR
	return mesos.Resource{Name: name, Type: &t, Scalar: &mesos.Value_Scalar{Value: v}}
}

func customTask(id string, o mesos.Offer, execURI, data, codec string) mesos.TaskInfo {
	shell := true
	exe := true
	cmd := "./mgoexec"
	env := &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "MGOEXEC_CODEC", Value: &codec}}}
	var uris []mesos.CommandInfo_URI
	if execURI != "" { // "" for in-process executors: nothing to fetch
		uris = []mesos.CommandInfo_URI{{Value: execURI, Executable: &exe}}
	}
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID, Data: []byte(data),
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Executor: &mesos.ExecutorInfo{
			ExecutorID: mesos.ExecutorID{Value: "exec-" + id}, Name: &id,
			Command:   &mesos.CommandInfo{Shell: &shell, Value: &cmd, URIs: uris, Environment: env},
			Resources: []mesos.Resource{scalar("cpus", 0.05), scalar("mem", 32)},
		},
	}
}

func commandTask(id string, o mesos.Offer, command string) mesos.TaskInfo {
	shell := true
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)},
		Command:   &mesos.CommandInfo{Shell: &shell, Value: &command},
	}
}

func newCluster(t *testing.T, cfg localmesos.Config) *localmesos.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	if os.Getenv("LOCALMESOS_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.AllocationInterval == 0 {
		cfg.AllocationInterval = 50 * time.Millisecond
	}
	c, err := localmesos.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestMesosGoFramework runs custom-executor tasks (a real executor process
// fetched over HTTP) and a command task on both codecs: updates, acks,
// messages both ways, kill, failover within the timeout keeping the task,
// teardown shutting the executor down.
func TestMesosGoFramework(t *testing.T) {
	bin := executorBinary(t)
	for _, codec := range []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf} {
		t.Run(codecs.ByMediaType[codec].Name, func(t *testing.T) {
			c := newCluster(t, localmesos.Config{Agents: 2, SplitPorts: true})
			uri := serveFile(t, bin)
			failover, checkpoint := 60.0, true
			fi := &mesos.FrameworkInfo{User: "root", Name: "mesos-go conformance", FailoverTimeout: &failover, Checkpoint: &checkpoint}
			s := startMgoSched(t, c.SchedulerURL(), codec, fi)
			o := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers[0]
			// Each agent is a machine of its own: 127.0.0.2, 127.0.0.3.
			if (o.Hostname != "127.0.0.2" && o.Hostname != "127.0.0.3") || len(o.Resources) == 0 || o.Resources[0].Name != "ports" {
				t.Fatalf("offer shape: %+v", o)
			}
			name := codecs.ByMediaType[codec].Name
			s.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(
				customTask("stay", o, uri, "", name),
				customTask("done", o, uri, "finish", name),
				commandTask("cmd", o, "echo hello from a command task"),
			)}.WithOffers(o.ID)))
			s.wait(update("stay", mesos.TASK_RUNNING))
			s.wait(update("cmd", mesos.TASK_FINISHED))
			s.wait(update("done", mesos.TASK_FINISHED))
			// The "done" executor exits once its last update is acked: FAILURE
			// with status 0, as Mesos reports a custom executor's exit.
			f := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_FAILURE })
			if f.Failure.ExecutorID.Value != "exec-done" || f.Failure.GetStatus() != 0 {
				t.Fatalf("FAILURE event: %+v", f.Failure)
			}

			s.call(calls.Message(o.AgentID.Value, "exec-stay", []byte("ping")))
			m := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_MESSAGE })
			if string(m.Message.Data) != "echo:ping" || m.Message.ExecutorID.Value != "exec-stay" || m.Message.AgentID.Value != o.AgentID.Value {
				t.Fatalf("MESSAGE from executor: %+v", m.Message)
			}

			// Failover: the scheduler goes away and comes back with its id.
			s.stop()
			fi.ID = &mesos.FrameworkID{Value: s.fwID}
			s2 := startMgoSched(t, c.SchedulerURL(), codec, fi)
			if s2.fwID != s.fwID {
				t.Fatalf("re-subscribed as %s, want %s", s2.fwID, s.fwID)
			}
			s2.call(calls.Reconcile())
			r := s2.wait(update("stay", mesos.TASK_RUNNING))
			if r.Update.Status.GetReason() != mesos.REASON_RECONCILIATION || r.Update.Status.ExecutorID.GetValue() != "exec-stay" {
				t.Fatalf("reconcile answer: %+v", r.Update.Status)
			}
			s2.call(calls.Message(o.AgentID.Value, "exec-stay", []byte("again")))
			s2.wait(func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_MESSAGE && string(e.Message.Data) == "echo:again"
			})
			s2.call(calls.Kill("stay", o.AgentID.Value))
			s2.wait(update("stay", mesos.TASK_KILLED))
			s2.call(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
		})
	}
}

// TestNoFailoverTimeoutTasksDie: a framework without a failover timeout is
// removed when its scheduler disconnects, and its executors are shut down.
func TestNoFailoverTimeoutTasksDie(t *testing.T) {
	bin := executorBinary(t)
	c := newCluster(t, localmesos.Config{ExecutorShutdownGracePeriod: time.Second})
	uri := serveFile(t, bin)
	fi := &mesos.FrameworkInfo{User: "root", Name: "short-lived"}
	s := startMgoSched(t, c.SchedulerURL(), codecs.MediaTypeProtobuf, fi)
	o := s.wait(func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers[0]
	s.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(customTask("t1", o, uri, "", "protobuf"), commandTask("c1", o, "sleep 600"))}.WithOffers(o.ID)))
	s.wait(update("t1", mesos.TASK_RUNNING))
	s.wait(update("c1", mesos.TASK_RUNNING))
	pids := executorPIDs(t, c)
	if len(pids) == 0 {
		t.Fatal("no executor pid in the agent's /state")
	}
	s.stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := masterState(t, c)
		if len(st.Frameworks) == 0 && len(st.CompletedFrameworks) == 1 {
			killed := 0
			for _, tk := range st.CompletedFrameworks[0].CompletedTasks {
				if tk.State == "TASK_KILLED" {
					killed++
				}
			}
			if killed == 2 && allGone(pids) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("framework not removed or executors alive: %+v pids %v", st, pids)
		}
		time.Sleep(20 * time.Millisecond) // polling /state: no event to wait on
	}
}

type stateDoc struct {
	Frameworks          []fwDoc `json:"frameworks"`
	CompletedFrameworks []fwDoc `json:"completed_frameworks"`
}

type fwDoc struct {
	ID             string    `json:"id"`
	Tasks          []taskDoc `json:"tasks"`
	CompletedTasks []taskDoc `json:"completed_tasks"`
}

type taskDoc struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func masterState(t *testing.T, c *localmesos.Cluster) stateDoc {
	t.Helper()
	resp, err := http.Get(c.MasterURL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st stateDoc
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func executorPIDs(t *testing.T, c *localmesos.Cluster) []int {
	var pids []int
	for _, a := range c.Agents() {
		resp, err := http.Get("http://" + a.Endpoint + "/state")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Frameworks []struct {
				Executors []struct {
					Pid int `json:"pid"`
				} `json:"executors"`
			} `json:"frameworks"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		for _, f := range st.Frameworks {
			for _, e := range f.Executors {
				if e.Pid > 0 && e.Pid != os.Getpid() {
					pids = append(pids, e.Pid)
				}
			}
		}
	}
	return pids
}

func allGone(pids []int) bool {
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			// A zombie still answers; check its state.
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(b), ") Z") {
				return false
			}
		}
	}
	return true
}

func newCaller(url string, codec encoding.MediaType) calls.Caller {
	return httpsched.NewCaller(httpcli.New(httpcli.Endpoint(url), httpcli.Codec(codecs.ByMediaType[codec])))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if execPath != "" {
		_ = os.RemoveAll(filepath.Dir(execPath))
	}
	os.Exit(code)
}
