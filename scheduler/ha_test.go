package scheduler

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tiltai/tiltai/internal/zkha"
	"github.com/tiltai/tiltai/internal/zktest"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/detect"
	"github.com/tiltai/tiltai/scheduler/ha"
	"github.com/tiltai/tiltai/scheduler/store"
)

// HA on a real ZooKeeper and the embedded Mesos (docs/reliability.md F4, F12, F13):
// several schedulers run Run with HA in this process, each with its own API
// port, on one ZooKeeper (internal/zktest: Debian's server, a process per
// test) and one localmesos with light in-process executors.

// haSession is the ZooKeeper session timeout of the HA tests: short, so a
// partitioned leader's session expires soon, and long enough that a loaded
// 2-core machine keeps healthy sessions alive.
const haSession = 3 * time.Second

// haPatience bounds every wait for an outcome (takeover included).
const haPatience = 45 * time.Second

// syncBuffer collects logs from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureLogger logs at debug level into a buffer (and to stderr with
// TILTAI_TEST_LOG set), and prints the buffer's tail if the test fails.
func captureLogger(t testing.TB, name string) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	var w io.Writer = buf
	if os.Getenv("TILTAI_TEST_LOG") != "" {
		w = io.MultiWriter(buf, os.Stderr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("last log lines of %s:\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name), buf
}

// freeListen returns a loopback address with a port free right now: HA
// needs fixed ports (standbys send clients to the leader's).
func freeListen(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newLightCluster is an embedded Mesos whose executors are light in-process
// ones (fakeexec_test.go).
func newLightCluster(t testing.TB, agents int, mod func(*localmesos.Config)) (*localmesos.Cluster, *lightExecutor) {
	t.Helper()
	lx := newLightExecutor()
	lc := localmesos.Config{
		Listen: "127.0.0.1:0", Agents: agents, SplitPorts: true,
		Resources:         "cpus:16;mem:65536;disk:100000;ports:[31000-39999]",
		HeartbeatInterval: time.Second, AllocationInterval: 100 * time.Millisecond,
		Launcher: lx.Launcher(), Logger: testLogger(t),
	}
	if mod != nil {
		mod(&lc)
	}
	c, err := localmesos.New(context.Background(), lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, lx
}

// countingMaster counts how often a scheduler asked where the master is:
// the first thing it does before any call to Mesos.
type countingMaster struct {
	MasterSource
	asked atomic.Int64
}

func (m *countingMaster) Leader(ctx context.Context) (string, error) {
	m.asked.Add(1)
	return m.MasterSource.Leader(ctx)
}

// haNode is one scheduler instance running Run with HA.
type haNode struct {
	t      testing.TB
	name   string
	addr   string
	master *countingMaster
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func haConfig(t testing.TB, listen string, master MasterSource, log *slog.Logger) Config {
	return Config{
		FrameworkName: "tiltai-ha", Listen: listen, Checkpoint: true, Master: master,
		ExecutorBinary: tinyBinary(t), Logger: log,
		ResendMin: 100 * time.Millisecond, ResendMax: time.Second,
		SubscribeBackoffMin: 100 * time.Millisecond, SubscribeBackoffMax: time.Second,
		Refuse: time.Second,
	}
}

func startHA(t testing.TB, name, zkURL string, master MasterSource) *haNode {
	t.Helper()
	u, err := zkha.ParseURL(zkURL)
	if err != nil {
		t.Fatal(err)
	}
	log, buf := captureLogger(t, name)
	n := &haNode{t: t, name: name, addr: freeListen(t), master: &countingMaster{MasterSource: master}, logs: buf, done: make(chan struct{})}
	cfg := haConfig(t, n.addr, n.master, log)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		n.err = Run(ctx, cfg, &HA{ZK: zkha.Config{URL: u, SessionTimeout: haSession}})
	}()
	t.Cleanup(n.stop)
	return n
}

// stop ends the instance as SIGTERM would, and waits for it.
func (n *haNode) stop() {
	n.cancel()
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Errorf("%s did not stop within 30s of its context ending", n.name)
	}
}

func (n *haNode) url(path string) string { return "http://" + n.addr + path }

// nodeHealth is /health of a leader (Health) or of a standby.
type nodeHealth struct {
	Status      string `json:"status"` // ok (leading), standby, or "" when unreachable
	Subscribed  bool   `json:"subscribed"`
	FrameworkID string `json:"framework_id"`
	Leader      string `json:"leader"` // standby: the leader's address
	SpecVersion int    `json:"spec_version"`
}

// health asks the instance; it fails the test if Run has returned.
func (n *haNode) health() nodeHealth {
	n.t.Helper()
	select {
	case <-n.done:
		n.t.Fatalf("%s: Run returned: %v", n.name, n.err)
	default:
	}
	var h nodeHealth
	code, _, body, err := httpCall(http.MethodGet, n.url("/health"), nil, nil)
	if err != nil || code != http.StatusOK {
		return nodeHealth{}
	}
	json.Unmarshal(body, &h)
	return h
}

func (n *haNode) waitHealth(what string, cond func(nodeHealth) bool) nodeHealth {
	n.t.Helper()
	var h nodeHealth
	eventually(n.t, haPatience, n.name+" "+what, func() (bool, string) {
		h = n.health()
		return cond(h), fmt.Sprintf("%+v", h)
	})
	return h
}

func leading(h nodeHealth) bool { return h.Status == "ok" && h.Subscribed }

// runPipeline waits for n to lead, submits the pipeline to it and waits
// until it runs; it returns n's health then and the task IDs.
func (n *haNode) runPipeline() (nodeHealth, []string) {
	n.t.Helper()
	h := n.waitHealth("leading", leading)
	mustCall(n.t, http.MethodPut, n.url("/v1/spec"), []byte(pipelineSpec), http.StatusOK)
	waitConvergedAt(n.t, "http://"+n.addr, 5)
	return h, apiTaskIDs(n.t, "http://"+n.addr)
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func httpCall(method, u string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// putFollowingRedirects PUTs a spec as most HTTP clients do: a 307 is
// followed with the body sent again.
func putFollowingRedirects(t testing.TB, u, spec string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, strings.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s (following redirects): %s", u, resp.Status)
	}
}

func mustCall(t testing.TB, method, u string, body []byte, want int) (http.Header, []byte) {
	t.Helper()
	code, hdr, b, err := httpCall(method, u, body, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	if code != want {
		t.Fatalf("%s %s: %d %s; want %d", method, u, code, b, want)
	}
	return hdr, b
}

// apiStatus and apiTasks read a scheduler API at base ("http://host:port").
func apiStatus(t testing.TB, base string) (Status, bool) {
	code, _, b, err := httpCall(http.MethodGet, base+"/v1/status", nil, nil)
	var st Status
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

func apiTaskIDs(t testing.TB, base string) []string {
	t.Helper()
	_, b := mustCall(t, http.MethodGet, base+"/v1/tasks", nil, http.StatusOK)
	var ts []TaskInfo
	if err := json.Unmarshal(b, &ts); err != nil {
		t.Fatalf("GET %s/v1/tasks: %v: %s", base, err, b)
	}
	var ids []string
	for _, x := range ts {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

func waitConvergedAt(t testing.TB, base string, tasks int) Status {
	t.Helper()
	var st Status
	eventually(t, haPatience, "convergence at "+base, func() (bool, string) {
		var ok bool
		st, ok = apiStatus(t, base)
		running := 0
		for _, s := range st.Services {
			running += s.Running
		}
		b, _ := json.Marshal(st)
		return ok && st.Converged && st.Subscribed && running == tasks, string(b)
	})
	return st
}

// metricAt reads one unlabelled sample from a Prometheus text page.
func metricAt(t testing.TB, base, name string) float64 {
	t.Helper()
	_, b := mustCall(t, http.MethodGet, base+"/metrics", nil, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s at %s/metrics", name, base)
	return 0
}

// mesosFramework is a framework as the master's /state shows it.
type mesosFramework struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Active       bool     `json:"active"`
	Connected    bool     `json:"connected"`
	Reregistered *float64 `json:"reregistered_time"`
	Principal    string   `json:"principal"`
	Tasks        []struct {
		ID         string `json:"id"`
		State      string `json:"state"`
		ExecutorID string `json:"executor_id"`
		AgentID    string `json:"slave_id"`
	} `json:"tasks"`
	Completed []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"completed_tasks"`
}

func (f mesosFramework) taskIDs() []string {
	var ids []string
	for _, x := range f.Tasks {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

func (f mesosFramework) allRunning() bool {
	for _, x := range f.Tasks {
		if x.State != "TASK_RUNNING" {
			return false
		}
	}
	return len(f.Tasks) > 0
}

// mesosFrameworks is every framework the master knows (active or not),
// and the completed ones.
func mesosFrameworks(t testing.TB, masterURL string) (live, completed []mesosFramework) {
	t.Helper()
	_, b := mustCall(t, http.MethodGet, masterURL+"/state", nil, http.StatusOK)
	var st struct {
		Frameworks []mesosFramework `json:"frameworks"`
		Completed  []mesosFramework `json:"completed_frameworks"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("master /state: %v", err)
	}
	return st.Frameworks, st.Completed
}

// oneFramework asserts the master knows exactly one framework and no
// completed one, and returns it.
func oneFramework(t testing.TB, masterURL string) mesosFramework {
	t.Helper()
	live, completed := mesosFrameworks(t, masterURL)
	if len(live) != 1 || len(completed) != 0 {
		t.Fatalf("master knows %d frameworks and %d completed ones, want exactly 1: %+v %+v", len(live), len(completed), live, completed)
	}
	return live[0]
}

// checkResumed asserts that a scheduler at base resumed fw without
// relaunching anything: the same task IDs, each still running in Mesos
// (none ended), and nothing launched by this scheduler instance.
func checkResumed(t testing.TB, base, masterURL, fwID string, tasks []string) {
	t.Helper()
	if got := apiTaskIDs(t, base); !slices.Equal(got, tasks) {
		t.Fatalf("tasks changed across the failover: %v → %v", tasks, got)
	}
	f := oneFramework(t, masterURL)
	if f.ID != fwID {
		t.Fatalf("framework %s at the master, want %s", f.ID, fwID)
	}
	if got := f.taskIDs(); !slices.Equal(got, tasks) || !f.allRunning() || len(f.Completed) != 0 {
		t.Fatalf("master: tasks %v (all running %v), completed %+v; want %v running and none completed", got, f.allRunning(), f.Completed, tasks)
	}
	if n := metricAt(t, base, "tiltai_scheduler_task_launches_total"); n != 0 {
		t.Fatalf("the new leader launched %v tasks; everything was still running", n)
	}
}

// docs/reliability.md F12: two schedulers on one ZooKeeper: only the leader asks for
// the master, subscribes and launches; the standby answers reads with the
// leader's answers and sends writes to it (307).
func TestHAOnlyTheLeaderActs(t *testing.T) {
	zks := zktest.Start(t)
	cluster, _ := newLightCluster(t, 2, nil)
	master := StaticMaster(cluster.MasterURL())
	a := startHA(t, "a", zks.URL("/tiltai"), master)
	ha := a.waitHealth("leading", leading)
	b := startHA(t, "b", zks.URL("/tiltai"), master)
	hb := b.waitHealth("standing by", func(h nodeHealth) bool { return h.Status == "standby" && h.Leader != "" })
	if hb.Leader != a.addr {
		t.Fatalf("b names %q the leader, want a at %s", hb.Leader, a.addr)
	}

	// A write at the standby is redirected to the leader, with its body.
	hdr, _ := mustCall(t, http.MethodPut, b.url("/v1/spec"), []byte(pipelineSpec), http.StatusTemporaryRedirect)
	if loc := hdr.Get("Location"); loc != a.url("/v1/spec") || hdr.Get("X-Tiltai-Leader") != a.addr {
		t.Fatalf("standby redirected to %q (X-Tiltai-Leader %q), want %s", loc, hdr.Get("X-Tiltai-Leader"), a.url("/v1/spec"))
	}
	putFollowingRedirects(t, b.url("/v1/spec"), pipelineSpec)
	waitConvergedAt(t, "http://"+a.addr, 5)

	// Reads at the standby are the leader's answers.
	want := apiTaskIDs(t, "http://"+a.addr)
	if got := apiTaskIDs(t, "http://"+b.addr); !slices.Equal(got, want) || len(got) != 5 {
		t.Fatalf("standby's /v1/tasks %v, leader's %v", got, want)
	}
	hdr, _ = mustCall(t, http.MethodGet, b.url("/v1/status"), nil, http.StatusOK)
	if hdr.Get("X-Tiltai-Leader") != a.addr {
		t.Fatalf("standby's read was not answered by the leader (X-Tiltai-Leader %q)", hdr.Get("X-Tiltai-Leader"))
	}

	// The master has one framework, subscribed once and never failed over
	// (a second subscription with its ID would replace the first); the
	// standby never even asked where the master is.
	f := oneFramework(t, cluster.MasterURL())
	if f.ID != ha.FrameworkID || !f.Connected || f.Reregistered != nil || len(f.Tasks) != 5 {
		t.Fatalf("master's framework: %+v; want %s connected, subscribed once, 5 tasks", f, ha.FrameworkID)
	}
	if n := b.master.asked.Load(); n != 0 {
		t.Fatalf("the standby asked for the Mesos master %d times; it must not act at all", n)
	}
	if a.master.asked.Load() == 0 {
		t.Fatal("the leader never asked for the master (the count proves nothing)")
	}
}

// docs/reliability.md F12: the leader's ZooKeeper connection is cut (a partition).
// It stops at once, before its session can expire, so before anyone else
// can lead; the other instance takes over with the same framework ID,
// relaunches nothing and keeps the task IDs.
func TestHAPartitionedLeaderIsReplaced(t *testing.T) {
	zks := zktest.Start(t)
	proxy := zktest.NewProxy(t, zks.Addr())
	cluster, lx := newLightCluster(t, 2, nil)
	master := StaticMaster(cluster.MasterURL())
	a := startHA(t, "a", proxy.URL("/tiltai"), master)
	ha, tasks := a.runPipeline()
	b := startHA(t, "b", zks.URL("/tiltai"), master)
	b.waitHealth("standing by", func(h nodeHealth) bool { return h.Status == "standby" && h.Leader == a.addr })
	askedB := b.master.asked.Load()

	// Watch both from the side: a stopped leading when a request made to
	// it is first not answered by a leader (a standby's answer may take a
	// while: it asks ZooKeeper who leads); b leads when an answer says so.
	var aStopped, bLeads atomic.Int64
	watch := func(n *haNode, at *atomic.Int64, stopped bool) {
		for at.Load() == 0 {
			sent := time.Now()
			code, _, body, err := httpCall(http.MethodGet, n.url("/health"), nil, nil)
			var h nodeHealth
			json.Unmarshal(body, &h)
			isLeader := err == nil && code == http.StatusOK && leading(h)
			switch {
			case stopped && !isLeader:
				at.Store(sent.UnixNano())
			case !stopped && isLeader:
				at.Store(time.Now().UnixNano())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cut := time.Now()
	proxy.Block()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); watch(a, &aStopped, true) }()
	go func() { defer wg.Done(); watch(b, &bLeads, false) }()
	t.Cleanup(func() { aStopped.CompareAndSwap(0, 1); bLeads.CompareAndSwap(0, 1); wg.Wait() })
	eventually(t, haPatience, "b to take over", func() (bool, string) {
		return aStopped.Load() != 0 && bLeads.Load() != 0, fmt.Sprintf("a stopped %v, b leads %v", aStopped.Load() != 0, bLeads.Load() != 0)
	})
	stepDown := time.Duration(aStopped.Load() - cut.UnixNano())
	takeover := time.Duration(bLeads.Load() - cut.UnixNano())
	t.Logf("a stood down %v after the cut, b led %v after it (session timeout %v)", stepDown.Round(time.Millisecond), takeover.Round(time.Millisecond), haSession)
	if stepDown >= takeover || stepDown >= haSession {
		t.Fatalf("a stood down %v after the cut, b led %v after it: a must stop before its session can expire (%v), so before anyone else leads", stepDown, takeover, haSession)
	}
	hb := b.health()
	if hb.FrameworkID != ha.FrameworkID {
		t.Fatalf("b leads framework %s, a led %s: a new framework ID was minted", hb.FrameworkID, ha.FrameworkID)
	}
	waitConvergedAt(t, "http://"+b.addr, 5)
	checkResumed(t, "http://"+b.addr, cluster.MasterURL(), ha.FrameworkID, tasks)
	if b.master.asked.Load() == askedB {
		t.Fatal("b leads but never asked for the master")
	}
	if got := lx.Launched(); got != 5 {
		t.Fatalf("%d executors were ever launched, want the 5 of the first leader", got)
	}

	// a comes back from the partition and stands by behind b; it sends
	// its clients to b.
	proxy.Unblock()
	a.waitHealth("standing by behind b", func(h nodeHealth) bool { return h.Status == "standby" && h.Leader == b.addr })
	if got := apiTaskIDs(t, "http://"+a.addr); !slices.Equal(got, tasks) {
		t.Fatalf("a (standby) reads %v, want b's %v", got, tasks)
	}
}

// docs/reliability.md F12: a deposed leader's writes are refused. A scheduler runs on
// the fenced store of a leadership, as Run makes it; the leadership is lost
// to a partition and, unlike under Run, the scheduler is left running. The
// store it writes through refuses every write, a spec submitted to it is
// not accepted, it stops rather than act on state it could not store, and
// nothing of it reaches ZooKeeper.
func TestHADeposedLeaderCannotWrite(t *testing.T) {
	zks := zktest.Start(t)
	proxy := zktest.NewProxy(t, zks.Addr())
	cluster, _ := newLightCluster(t, 1, nil)
	u, err := zkha.ParseURL(proxy.URL("/tiltai"))
	if err != nil {
		t.Fatal(err)
	}
	log, _ := captureLogger(t, "deposed")
	client, err := zkha.New(context.Background(), zkha.Config{URL: u, SessionTimeout: haSession, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), haPatience)
	defer cancel()
	lead, err := client.Campaign(ctx, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	kv := lead.KV()
	cfg := haConfig(t, "127.0.0.1:0", StaticMaster(cluster.MasterURL()), log)
	cfg.Store = kv
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCall(t, http.MethodPut, s.URL()+"/v1/spec", []byte(scaled(pipelineSpec, "encryptor", 1)), http.StatusOK)
	waitConvergedAt(t, s.URL(), 3)

	proxy.Block()
	select {
	case <-lead.Done():
	case <-time.After(haPatience):
		t.Fatal("the partitioned leadership did not end")
	}
	// The store the scheduler writes through refuses every write now (a
	// write of nonsense: had it landed, the state read below would show).
	if err := kv.Apply(ctx, map[string][]byte{"spec": []byte("written by a deposed leader")}); !errors.Is(err, zkha.ErrNotLeader) {
		t.Fatalf("a deposed leader's write: %v, want it refused as not the leader", err)
	}
	code, _, body, err := httpCall(http.MethodPut, s.URL()+"/v1/spec", []byte(pipelineSpec), nil)
	if err == nil && code == http.StatusOK {
		t.Fatalf("a deposed leader accepted a spec: %s", body)
	}
	select {
	case <-s.Done():
	case <-time.After(haPatience):
		t.Fatal("the deposed scheduler kept running after its write was refused")
	}
	// Refused by the fence, or (a write of its own in flight at the cut)
	// unanswered: either way a store failure that ends this leadership.
	if !ha.LostStore(s.Err()) {
		t.Fatalf("the deposed scheduler stopped with %v, want a refused or failed state write", s.Err())
	}
	proxy.Unblock()

	// What ZooKeeper holds is still spec version 1, read by whoever leads
	// next.
	other, err := zkha.New(context.Background(), zkha.Config{URL: zkha.URL{Servers: []string{zks.Addr()}, Path: "/tiltai"}, SessionTimeout: haSession, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	next, err := other.Campaign(ctx, "127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := next.KV().Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := core.New(core.Config{}, stored)
	if err != nil {
		t.Fatal(err)
	}
	if st.SpecVersion() != 1 || st.Spec().Services["encryptor"].Instances != 1 {
		t.Fatalf("ZooKeeper holds spec version %d with %d encryptors; the deposed leader's write landed", st.SpecVersion(), st.Spec().Services["encryptor"].Instances)
	}
}

// countingListener stands where ZooKeeper should be and counts the
// connections made to it; while down it closes them at once, as a host
// with no server on the port does; once up it forwards to target.
type countingListener struct {
	ln     net.Listener
	target string
	conns  atomic.Int64
	up     atomic.Bool
	wg     sync.WaitGroup
}

func newCountingListener(t testing.TB, target string) *countingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln, target: target}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			if !l.up.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			l.wg.Add(2)
			go func() { defer l.wg.Done(); io.Copy(up, c); up.Close(); c.Close() }()
			go func() { defer l.wg.Done(); io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return l
}

// waitAttempts waits until n connections were made to it.
func (l *countingListener) waitAttempts(t testing.TB, n int64) {
	t.Helper()
	eventually(t, haPatience, fmt.Sprintf("%d attempts to reach ZooKeeper", n), func() (bool, string) {
		return l.conns.Load() >= n, fmt.Sprint(l.conns.Load(), " connections")
	})
}

// docs/reliability.md F13: ZooKeeper down at start. A scheduler whose state (and
// framework ID) is in ZooKeeper starts while ZooKeeper is down: it waits,
// registers nothing with the master, and when ZooKeeper is back it leads
// with the stored framework ID and resumes the tasks.
func TestHAZooKeeperDownAtStart(t *testing.T) {
	zks := zktest.Start(t)
	cluster, _ := newLightCluster(t, 1, nil)
	master := StaticMaster(cluster.MasterURL())
	// A first run stores the framework ID and starts the tasks, then stops
	// (SIGTERM: no teardown; the tasks keep running).
	first := startHA(t, "first", zks.URL("/tiltai"), master)
	h1, tasks := first.runPipeline()
	first.stop()

	// ZooKeeper is down; the scheduler starts and keeps trying it.
	zks.Stop()
	gate := newCountingListener(t, zks.Addr())
	n := startHA(t, "second", "zk://"+gate.ln.Addr().String()+"/tiltai", master)
	gate.waitAttempts(t, 3)
	if h := n.health(); h.Status != "standby" {
		t.Fatalf("with ZooKeeper down the scheduler says %+v, want standby", h)
	}
	if n.master.asked.Load() != 0 {
		t.Fatal("with ZooKeeper down the scheduler went to the master")
	}
	if f := oneFramework(t, cluster.MasterURL()); f.ID != h1.FrameworkID || f.Connected {
		t.Fatalf("master: %+v; want only the first framework %s, disconnected", f, h1.FrameworkID)
	}

	zks.Restart()
	gate.up.Store(true)
	h2 := n.waitHealth("leading once ZooKeeper is back", leading)
	if h2.FrameworkID != h1.FrameworkID {
		t.Fatalf("resumed with framework %s, want the stored %s", h2.FrameworkID, h1.FrameworkID)
	}
	waitConvergedAt(t, "http://"+n.addr, 5)
	checkResumed(t, "http://"+n.addr, cluster.MasterURL(), h1.FrameworkID, tasks)
}

// docs/reliability.md F13: ZooKeeper down with nothing stored yet: no framework ID
// is minted (the master never sees a framework) until ZooKeeper answers.
func TestHAZooKeeperDownAtFirstStart(t *testing.T) {
	zks := zktest.Start(t)
	zks.Stop()
	cluster, _ := newLightCluster(t, 1, nil)
	gate := newCountingListener(t, zks.Addr())
	n := startHA(t, "fresh", "zk://"+gate.ln.Addr().String()+"/tiltai", StaticMaster(cluster.MasterURL()))
	gate.waitAttempts(t, 3)
	if live, done := mesosFrameworks(t, cluster.MasterURL()); len(live)+len(done) != 0 || n.master.asked.Load() != 0 {
		t.Fatalf("with ZooKeeper down: master frameworks %+v %+v, master asked %d times; want none", live, done, n.master.asked.Load())
	}
	zks.Restart()
	gate.up.Store(true)
	h := n.waitHealth("leading once ZooKeeper is up", leading)
	if f := oneFramework(t, cluster.MasterURL()); f.ID != h.FrameworkID {
		t.Fatalf("master has %s, the scheduler %s", f.ID, h.FrameworkID)
	}
}

// docs/reliability.md F13: ZooKeeper dies under a running leader: the leader steps
// down at once, the tasks keep running in Mesos, and when ZooKeeper is back
// a leader resumes them (same framework, same tasks, nothing relaunched).
func TestHAZooKeeperDownMidRun(t *testing.T) {
	zks := zktest.Start(t)
	cluster, _ := newLightCluster(t, 2, nil)
	master := StaticMaster(cluster.MasterURL())
	a := startHA(t, "a", zks.URL("/tiltai"), master)
	h1, tasks := a.runPipeline()

	zks.Stop()
	a.waitHealth("standing down", func(h nodeHealth) bool { return h.Status == "standby" })
	// The scheduler is gone from the master (no teardown); the tasks run on.
	eventually(t, haPatience, "the master to see the framework disconnected", func() (bool, string) {
		f := oneFramework(t, cluster.MasterURL())
		return !f.Connected, fmt.Sprintf("%+v", f)
	})
	if f := oneFramework(t, cluster.MasterURL()); !slices.Equal(f.taskIDs(), tasks) || !f.allRunning() {
		t.Fatalf("with the scheduler away the master has %+v; want %v running", f, tasks)
	}

	zks.Restart()
	h2 := a.waitHealth("leading again", leading)
	if h2.FrameworkID != h1.FrameworkID {
		t.Fatalf("resumed with framework %s, want %s", h2.FrameworkID, h1.FrameworkID)
	}
	waitConvergedAt(t, "http://"+a.addr, 5)
	checkResumed(t, "http://"+a.addr, cluster.MasterURL(), h1.FrameworkID, tasks)
}

// mesosMasterNode is a Mesos 1.11 master's membership in ZooKeeper: an
// ephemeral sequential json.info_ znode under path holding its MasterInfo
// as JSON, made by its own session (closing it is the master going away).
type mesosMasterNode struct {
	conn *zk.Conn
	node string
}

type nopZKLogger struct{}

func (nopZKLogger) Printf(string, ...any) {}

func registerMaster(t testing.TB, zkAddr, path string, c *localmesos.Cluster) *mesosMasterNode {
	t.Helper()
	return registerMasterAt(t, zkAddr, path, c, c.Addr())
}

// registerMasterAt registers c's master as reachable at addr.
func registerMasterAt(t testing.TB, zkAddr, path string, c *localmesos.Cluster, addr string) *mesosMasterNode {
	t.Helper()
	var st struct {
		ID, PID, Hostname, Version string
	}
	_, b := mustCall(t, http.MethodGet, c.MasterURL()+"/state", nil, http.StatusOK)
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	ip4 := net.ParseIP(host).To4()
	info := map[string]any{
		"id": st.ID, "ip": uint32(ip4[0]) | uint32(ip4[1])<<8 | uint32(ip4[2])<<16 | uint32(ip4[3])<<24,
		"port": port, "pid": st.PID, "hostname": st.Hostname, "version": st.Version,
		"address":      map[string]any{"hostname": st.Hostname, "ip": host, "port": port},
		"capabilities": []any{map[string]any{"type": "AGENT_UPDATE"}, map[string]any{"type": "AGENT_DRAINING"}, map[string]any{}},
	}
	data, _ := json.Marshal(info)
	conn, _, err := zk.Connect([]string{zkAddr}, 4*time.Second, zk.WithLogger(nopZKLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			conn.Create(path[:i], nil, 0, zk.WorldACL(zk.PermAll))
		}
	}
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	node, err := conn.Create(path+"/json.info_", data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	return &mesosMasterNode{conn: conn, node: node}
}

// docs/reliability.md F4 (zk://): the scheduler finds the master from its json.info_
// node in ZooKeeper and subscribes once. When the node is replaced it
// follows: the same master under a new sequence (nothing to do but stay),
// the master at another address, a restarted master; each time it keeps
// the framework and its tasks and relaunches nothing.
func TestZKMasterDetection(t *testing.T) {
	zks := zktest.Start(t)
	cluster, _ := newLightCluster(t, 2, nil)
	m1 := registerMaster(t, zks.Addr(), "/mesos", cluster)
	log, _ := captureLogger(t, "scheduler")
	det, err := detect.New(context.Background(), zks.URL("/mesos"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	cfg := haConfig(t, "127.0.0.1:0", det, log)
	cfg.Store = store.NewMem()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCall(t, http.MethodPut, s.URL()+"/v1/spec", []byte(pipelineSpec), http.StatusOK)
	waitConvergedAt(t, s.URL(), 5)
	tasks := apiTaskIDs(t, s.URL())
	fw := oneFramework(t, cluster.MasterURL())
	launched := metricAt(t, s.URL(), "tiltai_scheduler_task_launches_total")
	subscriptions := func() float64 { return metricAt(t, s.URL(), "tiltai_scheduler_subscriptions_total") }
	// One subscription: the detector's first "leader found" must not end
	// the subscription just made to that leader (and a second SUBSCRIBE
	// before the new framework ID is stored would be refused for good).
	if n := subscriptions(); n != 1 {
		t.Errorf("%v subscriptions to reach a master that never changed, want 1", n)
	}
	leaderNode := func(node string) {
		t.Helper()
		eventually(t, haPatience, "the detector to report "+node, func() (bool, string) {
			m, err := det.Master(context.Background())
			return err == nil && m.Node == node, fmt.Sprint(m.Node, err)
		})
	}
	unchanged := func() {
		t.Helper()
		waitConvergedAt(t, s.URL(), 5)
		if got := apiTaskIDs(t, s.URL()); !slices.Equal(got, tasks) {
			t.Fatalf("tasks changed: %v → %v", tasks, got)
		}
		if n := metricAt(t, s.URL(), "tiltai_scheduler_task_launches_total"); n != launched {
			t.Fatalf("%v launches after the master change, want none (was %v)", n, launched)
		}
		f := oneFramework(t, cluster.MasterURL())
		if f.ID != fw.ID || !f.Connected || !slices.Equal(f.taskIDs(), tasks) || !f.allRunning() || len(f.Completed) != 0 {
			t.Fatalf("master: %+v; want %s connected with %v running", f, fw.ID, tasks)
		}
	}
	resubscribed := func(after float64) {
		t.Helper()
		eventually(t, haPatience, "a new subscription", func() (bool, string) {
			n := subscriptions()
			return n > after, fmt.Sprint(n, " subscriptions")
		})
		unchanged()
	}

	// The same master joins again under a new sequence and its old node
	// goes: same address, same stream; the scheduler stays subscribed.
	m2 := registerMaster(t, zks.Addr(), "/mesos", cluster)
	m1.conn.Close()
	leaderNode(m2.node)
	unchanged()

	// The leader is now at another address (a proxy to the same master
	// stands in for another master host): the scheduler subscribes there.
	moved := newCountingListener(t, cluster.Addr())
	moved.up.Store(true)
	subs := subscriptions()
	m3 := registerMasterAt(t, zks.Addr(), "/mesos", cluster, moved.ln.Addr().String())
	m2.conn.Close()
	leaderNode(m3.node)
	resubscribed(subs)
	if moved.conns.Load() == 0 {
		t.Fatal("the scheduler never went to the new leader's address")
	}

	// The master restarts (its in-memory state is gone; the agents
	// re-register with their tasks) and joins under a new node.
	subs = subscriptions()
	cluster.StopMaster()
	m3.conn.Close()
	if err := cluster.StartMaster(); err != nil {
		t.Fatal(err)
	}
	registerMaster(t, zks.Addr(), "/mesos", cluster)
	resubscribed(subs)
}

// buildTiltai builds the tiltai binary for tests that run it as a process.
func buildTiltai(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tiltai")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tiltai/tiltai/cmd/tiltai")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tiltai: %v\n%s", err, out)
	}
	return bin
}

// schedProc is a `tiltai scheduler` process.
type schedProc struct {
	name string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startSchedulerProcess(t testing.TB, bin, name string, args ...string) *schedProc {
	t.Helper()
	p := &schedProc{name: name, addr: freeListen(t), done: make(chan struct{}), log: filepath.Join(t.TempDir(), name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, append([]string{"scheduler", "--listen", p.addr, "--log_level", "debug"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("last log lines of %s:\n%s", p.name, strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *schedProc) health(t testing.TB) nodeHealth {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited: %v", p.name, p.cmd.ProcessState)
	default:
	}
	var h nodeHealth
	code, _, body, err := httpCall(http.MethodGet, "http://"+p.addr+"/health", nil, nil)
	if err == nil && code == http.StatusOK {
		json.Unmarshal(body, &h)
	}
	return h
}

// docs/reliability.md F12 with the real binary: two `tiltai scheduler --zk`
// processes; the leader is killed (-9); the other takes over the framework
// and its tasks once ZooKeeper expires the dead leader's session.
func TestHASchedulerProcessesFailover(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	bin := buildTiltai(t)
	zks := zktest.Start(t)
	cluster, _ := newLightCluster(t, 2, nil)
	args := []string{"--master", cluster.MasterURL(), "--zk", zks.URL("/tiltai"), "--framework_name", "tiltai-bin"}
	p1 := startSchedulerProcess(t, bin, "scheduler-1", args...)
	var h1 nodeHealth
	eventually(t, haPatience, "the first scheduler to lead", func() (bool, string) {
		h1 = p1.health(t)
		return leading(h1), fmt.Sprintf("%+v", h1)
	})
	p2 := startSchedulerProcess(t, bin, "scheduler-2", args...)
	eventually(t, haPatience, "the second to stand by", func() (bool, string) {
		h := p2.health(t)
		return h.Status == "standby" && h.Leader == p1.addr, fmt.Sprintf("%+v", h)
	})
	// Submitted at the standby, which redirects it to the leader.
	putFollowingRedirects(t, "http://"+p2.addr+"/v1/spec", pipelineSpec)
	waitConvergedAt(t, "http://"+p1.addr, 5)
	tasks := apiTaskIDs(t, "http://"+p1.addr)

	killed := time.Now()
	if err := p1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p1.done
	var h2 nodeHealth
	eventually(t, haPatience, "the second scheduler to take over", func() (bool, string) {
		h2 = p2.health(t)
		return leading(h2), fmt.Sprintf("%+v", h2)
	})
	t.Logf("scheduler-2 led %v after scheduler-1 was killed", time.Since(killed).Round(time.Millisecond))
	if h2.FrameworkID != h1.FrameworkID {
		t.Fatalf("scheduler-2 leads framework %s, scheduler-1 led %s", h2.FrameworkID, h1.FrameworkID)
	}
	waitConvergedAt(t, "http://"+p2.addr, 5)
	checkResumed(t, "http://"+p2.addr, cluster.MasterURL(), h1.FrameworkID, tasks)
}

// docs/reliability.md F12/F13: the leader's ZooKeeper connection is cut while it is
// writing (specs keep coming in). A write in flight then fails; that must
// make the instance stand by like any other loss of leadership, not exit.
func TestHALeaderCutWhileWriting(t *testing.T) {
	zks := zktest.Start(t)
	proxy := zktest.NewProxy(t, zks.Addr())
	cluster, _ := newLightCluster(t, 2, nil)
	master := StaticMaster(cluster.MasterURL())
	a := startHA(t, "a", proxy.URL("/tiltai"), master)
	a.runPipeline()
	b := startHA(t, "b", zks.URL("/tiltai"), master)
	b.waitHealth("standing by", func(h nodeHealth) bool { return h.Status == "standby" && h.Leader == a.addr })

	// Keep a writing: scale the encryptors up and down as fast as it
	// answers, until it stops answering as the leader.
	stopWriting := make(chan struct{})
	var writes atomic.Int64
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			body := fmt.Sprintf(`{"instances": %d}`, 3+i%2)
			if code, _, _, err := httpCall(http.MethodPost, a.url("/v1/services/encryptor/scale"), []byte(body), nil); err == nil && code == http.StatusOK {
				writes.Add(1)
			}
		}
	}()
	eventually(t, haPatience, "a to be busy writing", func() (bool, string) { return writes.Load() >= 20, fmt.Sprint(writes.Load()) })
	proxy.Block()
	a.waitHealth("standing by", func(h nodeHealth) bool { return h.Status == "standby" })
	close(stopWriting)
	<-writing
	b.waitHealth("leading", leading)
	proxy.Unblock()
	a.waitHealth("standing by behind b", func(h nodeHealth) bool { return h.Status == "standby" && h.Leader == b.addr })
	t.Logf("%d writes before the cut", writes.Load())
}
