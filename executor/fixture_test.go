package executor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"go.uber.org/goleak"

	"github.com/tiltai/tiltai/examples/pipeline"
	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate"
	"github.com/tiltai/tiltai/internal/recordio"
	"github.com/tiltai/tiltai/localmesos"
)

// This file holds the fixtures of the tests that run the executor for real:
// the test binary is also the executor (as `tiltai executor` would be) and,
// reached through the `tiltai` symlink the executor puts on the service's
// PATH, a gate-using demo service; and a small scheduler written against the
// v1 scheduler HTTP API, talking to localmesos.

const roleEnv = "TILTAI_EXECUTOR_TEST_ROLE"

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "tiltai" {
		os.Exit(serviceMain(os.Args[1:]))
	}
	if os.Getenv(roleEnv) == "executor" {
		os.Exit(executorMain())
	}
	goleak.VerifyTestMain(m)
}

// executorMain is `tiltai executor` with test settings.
func executorMain() int {
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, closer, err := executor.OpenLog(cfg.Sandbox, slog.LevelDebug, "text")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer closer.Close()
	// A deliberate late start, so that a test can send a framework message
	// before the executor has subscribed.
	if d, err := time.ParseDuration(os.Getenv("TEST_EXECUTOR_START_DELAY")); err == nil {
		time.Sleep(d)
	}
	cfg.Logger = log
	cfg.StatusInterval = 200 * time.Millisecond
	cfg.AckTimeout = 5 * time.Second
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := executor.Run(ctx, cfg); err != nil {
		log.Error("executor failed", "error", err)
		return 1
	}
	return 0
}

// serviceMain is `tiltai demo feeder|printer` as the demo command runs them:
// gates from the TILTAI_* environment, SIGTERM ends it gracefully.
func serviceMain(args []string) int {
	if len(args) < 2 || args[0] != "demo" {
		fmt.Fprintf(os.Stderr, "usage: tiltai demo feeder|printer [flags] (got %q)\n", args)
		return 2
	}
	fs := flag.NewFlagSet(args[1], flag.ContinueOnError)
	rate := fs.Float64("rate", 1000, "messages per second")
	count := fs.Uint64("count", 0, "messages to send")
	report := fs.Duration("report", 200*time.Millisecond, "printer summary interval")
	if err := fs.Parse(args[2:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := gate.FromEnv(ctx, log, gate.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer h.Close()
	// 32-byte payloads: the printer takes a feeder's message for an
	// encryptor's (origin, sequence, sha256), so the two can be wired
	// directly.
	cfg := pipeline.Config{Origin: os.Getenv("TILTAI_TASK_ID"), Rate: *rate, Size: 32, Count: *count, Report: *report}
	switch args[1] {
	case "feeder":
		n, err := pipeline.Feeder(ctx, h, cfg, log)
		fmt.Printf("feeder final: sent=%d\n", n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case "printer":
		if _, err := pipeline.Printer(ctx, h, cfg, os.Stdout, log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown demo %q\n", args[1])
		return 2
	}
	return 0
}

// --- the cluster ---

// freePorts asks the kernel for n free ports, so that parallel tests (and
// other packages' tests) do not hand out the same in-gate ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

type clusterOpt func(*localmesos.Config)

func startCluster(t *testing.T, opts ...clusterOpt) *localmesos.Cluster {
	t.Helper()
	var ranges []string
	for _, p := range freePorts(t, 6) {
		ranges = append(ranges, fmt.Sprintf("%d-%d", p, p))
	}
	cfg := localmesos.Config{
		Resources:                     "cpus:8;mem:8192;disk:1000;ports:[" + strings.Join(ranges, ",") + "]",
		WorkDir:                       t.TempDir(),
		HeartbeatInterval:             15 * time.Second,
		AllocationInterval:            50 * time.Millisecond,
		StatusUpdateRetry:             500 * time.Millisecond,
		ExecutorShutdownGracePeriod:   5 * time.Second,
		ExecutorReregistrationTimeout: 10 * time.Second,
		SubscriptionBackoffMax:        500 * time.Millisecond,
		RecoveryTimeout:               time.Minute,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localmesos.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// --- the scheduler ---

// sched is a minimal framework on the v1 scheduler API: it launches tasks
// with the executor under test, acknowledges updates, and records updates and
// the executors' framework messages.
type sched struct {
	t       *testing.T
	c       *localmesos.Cluster
	http    *http.Client
	url     string
	stream  string
	fwID    string
	exe     string
	offers  chan []mesos.Offer
	body    io.ReadCloser
	done    chan struct{}
	noAcks  bool
	mu      sync.Mutex
	changed chan struct{}
	updates map[string][]mesos.TaskStatus       // by task id
	msgs    map[string][]contract.Message       // by task id
	raw     map[string][][]byte                 // undecodable messages, by executor id
	agentOf map[string]mesos.AgentID            // task id → agent
	execOf  map[string]string                   // task id → executor id
	fails   map[string]*scheduler.Event_Failure // executor id → FAILURE
}

func subscribe(t *testing.T, c *localmesos.Cluster, checkpoint bool, caps ...mesos.FrameworkInfo_Capability_Type) *sched {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &sched{
		t: t, c: c, http: &http.Client{}, url: c.SchedulerURL(), exe: exe,
		offers: make(chan []mesos.Offer, 16), done: make(chan struct{}), changed: make(chan struct{}),
		updates: map[string][]mesos.TaskStatus{}, msgs: map[string][]contract.Message{}, raw: map[string][][]byte{},
		agentOf: map[string]mesos.AgentID{}, execOf: map[string]string{}, fails: map[string]*scheduler.Event_Failure{},
	}
	fw := mesos.FrameworkInfo{User: "root", Name: "executor-test", Checkpoint: &checkpoint, FailoverTimeout: ptr(3600.0)}
	for _, c := range caps {
		fw.Capabilities = append(fw.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
	}
	call := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: &fw}}
	resp, err := s.post(call)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SUBSCRIBE: %s %s", resp.Status, b)
	}
	s.stream, s.body = resp.Header.Get("Mesos-Stream-Id"), resp.Body
	subscribed := make(chan string, 1)
	go s.read(recordio.NewReader(resp.Body, 16<<20), subscribed)
	select {
	case s.fwID = <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("no SUBSCRIBED")
	}
	t.Cleanup(func() {
		s.checkRaces()
		if t.Failed() {
			s.dumpSandboxes()
		}
		s.body.Close()
		<-s.done
		s.http.CloseIdleConnections()
	})
	return s
}

// checkRaces fails the test if the race detector spoke in an executor or a
// service (their stderr is the sandbox's stderr).
func (s *sched) checkRaces() {
	for _, d := range s.sandboxes() {
		b, _ := os.ReadFile(filepath.Join(d, "stderr"))
		if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			s.t.Errorf("data race reported in %s:\n%s", d, b)
		}
	}
}

func (s *sched) sandboxes() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for task, e := range s.execOf {
		dirs, _ := filepath.Glob(filepath.Join(s.c.WorkDir(), "agents", "*", "slaves", "*", "frameworks", s.fwID, "executors", e, "runs", "*"))
		for _, d := range dirs {
			if filepath.Base(d) != "latest" {
				out[task] = d
			}
		}
	}
	return out
}

// dumpSandboxes logs the end of every task's files, to see why a test failed.
func (s *sched) dumpSandboxes() {
	s.mu.Lock()
	execs := map[string]string{}
	for task, e := range s.execOf {
		execs[task] = e
	}
	s.mu.Unlock()
	for task, e := range execs {
		dirs, _ := filepath.Glob(filepath.Join(s.c.WorkDir(), "agents", "*", "slaves", "*", "frameworks", s.fwID, "executors", e, "runs", "latest"))
		for _, d := range dirs {
			for _, f := range []string{executor.LogFile, "stderr", "stdout"} {
				b, _ := os.ReadFile(filepath.Join(d, f))
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				s.t.Logf("--- %s %s:\n%s", task, f, b)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func (s *sched) post(call *scheduler.Call) (*http.Response, error) {
	if s.fwID != "" {
		call.FrameworkID = &mesos.FrameworkID{Value: s.fwID}
	}
	b, err := json.Marshal(call)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if s.stream != "" {
		req.Header.Set("Mesos-Stream-Id", s.stream)
	}
	return s.http.Do(req)
}

// call sends a call and wants 202.
func (s *sched) call(call *scheduler.Call) {
	s.t.Helper()
	resp, err := s.post(call)
	if err != nil {
		s.t.Fatalf("%s: %v", call.Type, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("%s: %s %s", call.Type, resp.Status, b)
	}
}

func (s *sched) read(rd *recordio.Reader, subscribed chan<- string) {
	defer close(s.done)
	for {
		rec, err := rd.Read()
		if err != nil {
			return
		}
		var ev scheduler.Event
		if err := json.Unmarshal(rec, &ev); err != nil {
			continue
		}
		switch ev.Type {
		case scheduler.Event_SUBSCRIBED:
			subscribed <- ev.Subscribed.FrameworkID.Value
		case scheduler.Event_OFFERS:
			s.offers <- ev.Offers.Offers
		case scheduler.Event_UPDATE:
			st := ev.Update.Status
			s.record(func() { s.updates[st.TaskID.Value] = append(s.updates[st.TaskID.Value], st) })
			if st.UUID != nil && !s.noAcks && st.AgentID != nil {
				go s.ack(*st.AgentID, st.TaskID, st.UUID)
			}
		case scheduler.Event_MESSAGE:
			m, err := contract.Decode(ev.Message.Data)
			s.record(func() {
				if err != nil {
					s.raw[ev.Message.ExecutorID.Value] = append(s.raw[ev.Message.ExecutorID.Value], ev.Message.Data)
					return
				}
				s.msgs[m.TaskID] = append(s.msgs[m.TaskID], m)
			})
		case scheduler.Event_FAILURE:
			if ev.Failure.ExecutorID != nil {
				f := ev.Failure
				s.record(func() { s.fails[f.ExecutorID.Value] = f })
			}
		}
	}
}

func (s *sched) ack(agent mesos.AgentID, task mesos.TaskID, uuid []byte) {
	resp, err := s.post(&scheduler.Call{Type: scheduler.Call_ACKNOWLEDGE, Acknowledge: &scheduler.Call_Acknowledge{AgentID: agent, TaskID: task, UUID: uuid}})
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func (s *sched) record(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// wait waits until cond holds (under the lock), or fails the test.
func (s *sched) wait(what string, timeout time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("timed out after %s waiting for %s\nupdates: %s", timeout, what, s.describe())
		}
	}
}

func (s *sched) describe() string {
	var b strings.Builder
	for id, ups := range s.updates {
		for _, u := range ups {
			fmt.Fprintf(&b, "\n  %s %s %q", id, u.GetState(), u.GetMessage())
		}
	}
	return b.String()
}

// taskSpec is one task to launch with the executor under test.
type taskSpec struct {
	id   string
	data contract.TaskData
	// raw, when set, is sent as TaskInfo.data instead of data.
	raw []byte
	// env is added to the executor's environment.
	env map[string]string
	// ports are filled in for the in-gates (Port 0) from the offer.
}

// launch launches the tasks in one ACCEPT, giving in-gates ports from the
// offer, and returns the tasks' data as launched (with ports).
func (s *sched) launch(specs ...taskSpec) map[string]contract.TaskData {
	s.t.Helper()
	var offers []mesos.Offer
	select {
	case offers = <-s.offers:
	case <-time.After(20 * time.Second):
		s.t.Fatal("no offer")
	}
	o := offers[0]
	var free []int
	for _, r := range o.Resources {
		if r.Name == "ports" && r.Ranges != nil {
			for _, rg := range r.Ranges.Range {
				for p := rg.Begin; p <= rg.End; p++ {
					free = append(free, int(p))
				}
			}
		}
	}
	out := map[string]contract.TaskData{}
	var infos []mesos.TaskInfo
	for _, sp := range specs {
		d := sp.data
		d.Gates = append([]contract.Gate(nil), d.Gates...)
		var ranges []mesos.Value_Range
		for i, g := range d.Gates {
			if g.In() {
				if len(free) == 0 {
					s.t.Fatal("offer has too few ports")
				}
				d.Gates[i].Port = free[0]
				ranges = append(ranges, mesos.Value_Range{Begin: uint64(free[0]), End: uint64(free[0])})
				free = free[1:]
			}
		}
		data := sp.raw
		if data == nil {
			var err error
			if data, err = contract.EncodeTaskData(d); err != nil {
				s.t.Fatal(err)
			}
		}
		env := []mesos.Environment_Variable{{Name: roleEnv, Value: ptr("executor")}}
		for k, v := range sp.env {
			env = append(env, mesos.Environment_Variable{Name: k, Value: ptr(v)})
		}
		res := []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}
		if len(ranges) > 0 {
			res = append(res, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}})
		}
		execID := sp.id + ".exec"
		infos = append(infos, mesos.TaskInfo{
			Name: sp.id, TaskID: mesos.TaskID{Value: sp.id}, AgentID: o.AgentID, Resources: res, Data: data,
			Executor: &mesos.ExecutorInfo{
				Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: execID},
				FrameworkID: &mesos.FrameworkID{Value: s.fwID}, Name: ptr("tiltai executor " + sp.id),
				Resources: []mesos.Resource{scalar("cpus", 0.05), scalar("mem", 32)},
				Command: &mesos.CommandInfo{Shell: ptr(false), Value: ptr(s.exe), Arguments: []string{s.exe},
					Environment: &mesos.Environment{Variables: env}},
			},
		})
		s.mu.Lock()
		s.agentOf[sp.id], s.execOf[sp.id] = o.AgentID, execID
		s.mu.Unlock()
		out[sp.id] = d
	}
	ids := []mesos.OfferID{o.ID}
	s.call(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs:   ids,
		Operations: []mesos.Offer_Operation{{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: infos}}},
		Filters:    &mesos.Filters{RefuseSeconds: ptr(0.0)},
	}})
	return out
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

// state waits for the task to reach state and returns that update.
func (s *sched) state(task string, state mesos.TaskState) mesos.TaskStatus {
	s.t.Helper()
	var got mesos.TaskStatus
	s.wait(fmt.Sprintf("%s %s", task, state), 60*time.Second, func() bool {
		for _, u := range s.updates[task] {
			if u.GetState() == state {
				got = u
				return true
			}
		}
		return false
	})
	return got
}

// states returns the states the task went through, in order.
func (s *sched) states(task string) []mesos.TaskState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mesos.TaskState
	for _, u := range s.updates[task] {
		if len(out) == 0 || out[len(out)-1] != u.GetState() {
			out = append(out, u.GetState())
		}
	}
	return out
}

// send sends a framework message to the task's executor.
func (s *sched) send(task string, data []byte) {
	s.t.Helper()
	s.mu.Lock()
	agent, exec := s.agentOf[task], s.execOf[task]
	s.mu.Unlock()
	s.call(&scheduler.Call{Type: scheduler.Call_MESSAGE, Message: &scheduler.Call_Message{AgentID: agent, ExecutorID: mesos.ExecutorID{Value: exec}, Data: data}})
}

func (s *sched) links(task string, version uint64, out map[string][]string) []byte {
	s.t.Helper()
	snap := linkSnapshot(version, out)
	b, err := contract.Encode(contract.Message{Type: contract.TypeLinks, TaskID: task, Snapshot: &snap})
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// publish sends a link snapshot and re-sends it with backoff until it is
// acknowledged, as the scheduler does.
func (s *sched) publish(task string, version uint64, out map[string][]string) {
	s.t.Helper()
	b := s.links(task, version, out)
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(60 * time.Second)
	for {
		s.send(task, b)
		acked := false
		s.waitUntil(backoff, func() bool { acked = s.ackedLocked(task) >= version; return acked })
		if acked {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("link version %d of %s never acknowledged; updates: %s", version, task, s.describe())
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// waitUntil waits up to d for cond; it reports nothing.
func (s *sched) waitUntil(d time.Duration, cond func() bool) {
	deadline := time.After(d)
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			return
		}
	}
}

func (s *sched) ackedLocked(task string) uint64 {
	var v uint64
	for _, m := range s.msgs[task] {
		if m.Type == contract.TypeAck {
			v = max(v, m.Version)
		}
	}
	return v
}

// status waits for a status message of the task that satisfies cond.
func (s *sched) status(task, what string, cond func(contract.Message) bool) contract.Message {
	s.t.Helper()
	var got contract.Message
	s.wait(task+" status: "+what, 60*time.Second, func() bool {
		ms := s.msgs[task]
		for i := len(ms) - 1; i >= 0; i-- {
			if ms[i].Type == contract.TypeStatus && cond(ms[i]) {
				got = ms[i]
				return true
			}
		}
		return false
	})
	return got
}

func (s *sched) messages(task string) []contract.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]contract.Message(nil), s.msgs[task]...)
}

func (s *sched) kill(task string) {
	s.t.Helper()
	s.mu.Lock()
	agent := s.agentOf[task]
	s.mu.Unlock()
	s.call(&scheduler.Call{Type: scheduler.Call_KILL, Kill: &scheduler.Call_Kill{TaskID: mesos.TaskID{Value: task}, AgentID: &agent}})
}

// sandbox returns the task's executor sandbox.
func (s *sched) sandbox(task string) string {
	s.t.Helper()
	s.mu.Lock()
	exec := s.execOf[task]
	s.mu.Unlock()
	dirs, _ := filepath.Glob(filepath.Join(s.c.WorkDir(), "agents", "*", "slaves", "*", "frameworks", s.fwID, "executors", exec, "runs", "latest"))
	if len(dirs) != 1 {
		s.t.Fatalf("sandbox of %s: found %q", task, dirs)
	}
	return dirs[0]
}

// agentCounter reads a counter from agent 0's /state.
func agentCounter(t *testing.T, c *localmesos.Cluster, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.Agents()[0].Endpoint + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Counters map[string]float64 `json:"counters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Counters[name]
}

// waitFor polls cond (for things outside the scheduler's view: files,
// processes) until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// pidIn finds "(pid N)" in a status message.
func pidIn(t *testing.T, msg string) int {
	t.Helper()
	_, rest, ok := strings.Cut(msg, "(pid ")
	if !ok {
		t.Fatalf("no pid in %q", msg)
	}
	n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ')')])
	if err != nil {
		t.Fatalf("no pid in %q", msg)
	}
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}
