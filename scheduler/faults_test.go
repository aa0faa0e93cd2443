package scheduler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/mesossession"
	"github.com/tiltai/tiltai/scheduler/store"
)

// linksSynced: every running task has applied its service's current table.
func (h *harness) linksSynced() (bool, string) {
	_, body := h.do("GET", "/v1/links", nil, nil)
	var ls []TaskLinks
	json.Unmarshal(body, &ls)
	for _, l := range ls {
		if got := h.exec.Applied(l.TaskID); got != l.Version {
			return false, fmt.Sprintf("%s applied %d, current %d", l.TaskID, got, l.Version)
		}
	}
	return true, ""
}

func (h *harness) scale(service string, n int) {
	h.t.Helper()
	code, body := h.do("POST", "/v1/services/"+service+"/scale", []byte(fmt.Sprintf(`{"instances": %d}`, n)), nil)
	if code != http.StatusOK {
		h.t.Fatalf("scale: %d %s", code, body)
	}
}

func (h *harness) taskIDs() []string {
	var ids []string
	for _, t := range h.tasks() {
		ids = append(ids, t.ID)
	}
	return ids
}

// docs/reliability.md F7: framework messages dropped, duplicated or delayed: every
// executor converges to the latest link version within a bounded time, and
// never applies an older one.
func TestLinksConvergeThroughMessageFaults(t *testing.T) {
	h := newHarness(t, 2, nil)
	h.cluster.Faults().SetMessageFaults(localmesos.MessageFaults{Drop: 0.3, Duplicate: 0.2, Delay: 0.2, DelayBy: 300 * time.Millisecond})
	h.submit(pipelineSpec)
	for _, n := range []int{5, 2, 4} {
		h.waitConverged(30 * time.Second)
		h.scale("encryptor", n)
	}
	start := time.Now()
	h.waitConverged(30 * time.Second)
	eventually(t, 30*time.Second, "every executor on its current table", h.linksSynced)
	t.Logf("converged %s after the last change; faults: %+v", time.Since(start).Round(time.Millisecond), h.cluster.Faults().Counts())
	if c := h.cluster.Faults().Counts(); c.MessagesDropped == 0 || c.MessagesDuplicated == 0 {
		t.Fatalf("the faults did not happen: %+v", c)
	}
	// Exact: every running task's executor is on its service's current
	// version, none on an older or an unrecorded newer one.
	eventually(t, 10*time.Second, "acked versions equal to the current ones", h.linksSynced)
}

// docs/reliability.md F5: a half-open subscription (heartbeats stop, TCP stays up)
// is noticed after a few missed heartbeats and replaced.
func TestHalfOpenSubscription(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	before := h.taskIDs()
	stopped := time.Now()
	h.cluster.Faults().StopHeartbeats()
	eventually(t, 15*time.Second, "the scheduler to notice the silent stream", func() (bool, string) {
		var hl Health
		_, b := h.do("GET", "/health", nil, nil)
		json.Unmarshal(b, &hl)
		return !hl.Subscribed, string(b)
	})
	noticed := time.Since(stopped)
	// Interval 1s, 3 missed: noticed after 3–4 s, not never.
	if noticed < 2*time.Second || noticed > 10*time.Second {
		t.Fatalf("noticed after %s, want about 3 heartbeat intervals", noticed)
	}
	h.cluster.Faults().ResumeHeartbeats()
	h.waitConverged(20 * time.Second)
	if after := h.taskIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("tasks changed across the re-subscription: %v → %v", before, after)
	}
}

// docs/reliability.md F4: the master goes away and comes back; the scheduler follows
// with bounded backoff, reconciles, and relaunches nothing.
func TestMasterRestart(t *testing.T) {
	h := newHarness(t, 2, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	before := h.taskIDs()
	h.cluster.Faults().Unavailable(true) // 503 while it "elects"
	h.cluster.StopMaster()
	time.Sleep(500 * time.Millisecond) // the master is down for a while
	h.cluster.Faults().Unavailable(false)
	if err := h.cluster.StartMaster(); err != nil {
		t.Fatal(err)
	}
	if err := h.cluster.WaitRegistered(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitConverged(30 * time.Second)
	if after := h.taskIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("tasks changed across the master restart (relaunch storm?): %v → %v", before, after)
	}
}

// docs/reliability.md F4: a 307 from a master that is not the leader is followed.
func TestFollowsRedirectToLeader(t *testing.T) {
	var redirected int
	var mu sync.Mutex
	h := newHarness(t, 1, func(lc *localmesos.Config, c *Config) {})
	real, _ := url.Parse(h.cluster.MasterURL())
	// A non-leading master answers every scheduler call with 307 to the
	// leader, scheme-relative like Mesos ("//host:port").
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		redirected++
		mu.Unlock()
		w.Header().Set("Location", "//"+real.Host)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer old.Close()
	h.sched.Close()
	// A new framework (the first one may have registered already).
	h.store = store.NewMem()
	h.cfg.Store, h.cfg.FrameworkName = h.store, "tiltai-test-2"
	h.cfg.Master = StaticMaster(old.URL)
	h.start()
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if redirected == 0 {
		t.Fatal("the non-leader was never asked")
	}
}

// docs/reliability.md F3: a crash after the launch intent is stored but before the
// ACCEPT is sent, and a crash after the ACCEPT but before any status
// update: each task ends up launched exactly once, nothing unknown runs.
func TestCrashAroundLaunch(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   func(c *Config, cr *crash)
	}{
		{"after intent stored, before ACCEPT", func(c *Config, cr *crash) {
			c.Store = &crashStore{Store: c.Store, c: cr, crashAfter: launchedRecord}
		}},
		{"after ACCEPT, before the first update", func(c *Config, cr *crash) {
			c.Store = &crashStore{Store: c.Store, c: cr}
			c.wrapCaller = func(next mesossession.Caller) mesossession.Caller {
				return &crashCaller{next: next, c: cr, after: func(call *scheduler.Call) bool { return call.Type == scheduler.Call_ACCEPT }}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := newCrash()
			h := newHarness(t, 1, func(lc *localmesos.Config, c *Config) { tc.at(c, cr) })
			h.do("PUT", "/v1/spec", []byte(pipelineSpec), nil)
			select {
			case <-cr.crashed:
			case <-time.After(20 * time.Second):
				t.Fatal("the crash point was never reached")
			}
			<-h.sched.Done()
			h.sched.Close()
			h.cfg.Store, h.cfg.wrapCaller = h.store, nil
			h.start()
			h.waitConverged(30 * time.Second)
			// Exactly the spec's five tasks run in Mesos: none twice, no
			// stray task from the crashed launch.
			eventually(t, 20*time.Second, "Mesos to run exactly the scheduler's tasks", func() (bool, string) {
				ours := map[string]bool{}
				for _, id := range h.taskIDs() {
					ours[id] = true
				}
				running := h.mesosRunning()
				if len(running) != 5 || len(ours) != 5 {
					return false, fmt.Sprintf("mesos runs %v; scheduler has %v", running, ours)
				}
				for _, id := range running {
					if !ours[id] {
						return false, fmt.Sprintf("mesos runs %s, unknown to the scheduler", id)
					}
				}
				return true, ""
			})
		})
	}
}

// mesosRunning lists the non-terminal tasks of our framework in the
// master's /state.
func (h *harness) mesosRunning() []string {
	resp, err := http.Get(h.cluster.MasterURL() + "/state")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Frameworks []struct {
			Name  string `json:"name"`
			Tasks []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"tasks"`
		} `json:"frameworks"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	var ids []string
	for _, f := range st.Frameworks {
		if f.Name != h.cfg.FrameworkName {
			continue
		}
		for _, t := range f.Tasks {
			switch t.State {
			case "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING":
				ids = append(ids, t.ID)
			}
		}
	}
	return ids
}

// docs/reliability.md F2 (in-process): a stopped scheduler tears nothing down; a new
// one on the same store resumes the same tasks and link versions.
func TestRestartResumes(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	before := h.taskIDs()
	_, l1 := h.do("GET", "/v1/links", nil, nil)
	h.restart()
	h.waitConverged(20 * time.Second)
	if after := h.taskIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("tasks changed across the restart: %v → %v", before, after)
	}
	_, l2 := h.do("GET", "/v1/links", nil, nil)
	var a, b []TaskLinks
	json.Unmarshal(l1, &a)
	json.Unmarshal(l2, &b)
	for i := range a {
		if a[i].Version != b[i].Version {
			t.Fatalf("%s: link version %d became %d across the restart", a[i].TaskID, a[i].Version, b[i].Version)
		}
	}
}

// docs/reliability.md B1: invalid specs get a 4xx JSON answer listing every
// problem; the accepted spec and its version do not change.
func TestInvalidSpecsRefused(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	_, before := h.do("GET", "/v1/spec", nil, nil)
	cases := []struct {
		name string
		body []byte
		code int
		want []string
	}{
		{"several problems", []byte("services:\n  a:\n    command: x\n    instances: 20000\n    bogus: 1\nlinks:\n  - {from: a.out, to: b.in}\n"), 422,
			[]string{"instances 20000 is out of range", `unknown field \"bogus\"`, `service \"a\" has no gate \"out\"`}},
		{"wrong types", []byte("services:\n  a:\n    command: [x]\n    cpus: lots\n"), 422, []string{"command must be a string", "cpus must be a number"}},
		{"alias bomb", aliasBomb(), 422, []string{"expands to more than"}},
		{"invalid utf-8", []byte("services:\n  a:\n    command: \"caf\xe9\"\n"), 422, []string{"invalid UTF-8"}},
		{"oversized", bytes.Repeat([]byte("#"), 2<<20), 413, []string{"larger than"}},
		{"json syntax", []byte(`{"services": {"a": {"command": "x",}}}`), 422, []string{"JSON syntax error"}},
	}
	for _, c := range cases {
		code, body := h.do("PUT", "/v1/spec", c.body, nil)
		if code != c.code {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.code, body)
		}
		for _, w := range c.want {
			if !strings.Contains(string(body), w) {
				t.Errorf("%s: answer lacks %q: %s", c.name, w, body)
			}
		}
	}
	_, after := h.do("GET", "/v1/spec", nil, nil)
	if !bytes.Equal(before, after) {
		t.Fatalf("the accepted spec changed:\n%s\n%s", before, after)
	}
}

func aliasBomb() []byte {
	var b strings.Builder
	b.WriteString("a: &a [x,x,x,x,x,x,x,x,x]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		fmt.Fprintf(&b, "%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	return []byte(b.String())
}

// docs/reliability.md B2: concurrent submissions based on the same version: one
// wins, the other gets 409.
func TestConcurrentSubmissions(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	codes := make(chan int, 2)
	var wg sync.WaitGroup
	for _, n := range []int{4, 5} {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			code, _ := h.do("PUT", "/v1/spec", []byte(scaled(pipelineSpec, "encryptor", n)), map[string]string{"If-Match": `"1"`})
			codes <- code
		}(n)
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[200] != 1 || got[409] != 1 {
		t.Fatalf("answers %v, want one 200 and one 409", got)
	}
	code, body := h.do("PUT", "/v1/spec", []byte(pipelineSpec), map[string]string{"If-Match": `"1"`})
	if code != 409 || !strings.Contains(string(body), `"current_version": 2`) {
		t.Fatalf("stale If-Match: %d %s", code, body)
	}
}

// docs/reliability.md S2: with a token, writes need it; reads too unless opened;
// health, metrics and the executor binary stay open.
func TestAPIToken(t *testing.T) {
	for _, open := range []bool{false, true} {
		h := newHarness(t, 1, func(lc *localmesos.Config, c *Config) { c.APIToken, c.OpenReads = "s3cret", open })
		auth := map[string]string{"Authorization": "Bearer s3cret"}
		bad := map[string]string{"Authorization": "Bearer nope"}
		if code, _ := h.do("PUT", "/v1/spec", []byte(pipelineSpec), nil); code != 401 {
			t.Fatalf("write without token: %d", code)
		}
		if code, _ := h.do("PUT", "/v1/spec", []byte(pipelineSpec), bad); code != 401 {
			t.Fatalf("write with a wrong token: %d", code)
		}
		if code, b := h.do("PUT", "/v1/spec", []byte(pipelineSpec), auth); code != 200 {
			t.Fatalf("write with the token: %d %s", code, b)
		}
		wantRead := 401
		if open {
			wantRead = 200
		}
		if code, _ := h.do("GET", "/v1/tasks", nil, nil); code != wantRead {
			t.Fatalf("read without token (open=%v): %d", open, code)
		}
		if code, _ := h.do("GET", "/v1/tasks", nil, auth); code != 200 {
			t.Fatalf("read with token: %d", code)
		}
		for _, p := range []string{"/health", "/metrics", "/v1/artifacts/" + h.sched.art.Name()} {
			if code, _ := h.do("GET", p, nil, nil); code != 200 {
				t.Fatalf("GET %s without token: %d", p, code)
			}
		}
	}
}

// docs/reliability.md S4: the executor binary is served byte for byte, named by its
// hash; another name is not served.
func TestArtifactIsExact(t *testing.T) {
	h := newHarness(t, 1, func(lc *localmesos.Config, c *Config) { c.ExecutorBinary = os.Args[0] })
	want, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	name := h.sched.art.Name()
	if name != "tiltai-"+hex.EncodeToString(sum[:])[:16] {
		t.Fatalf("artifact name %s does not carry the binary's hash", name)
	}
	resp, err := http.Get(h.url("/v1/artifacts/" + name))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, want) || resp.Header.Get("X-Checksum-Sha256") != hex.EncodeToString(sum[:]) {
		t.Fatal("served bytes differ from the binary")
	}
	if code, _ := h.do("GET", "/v1/artifacts/tiltai-0000000000000000", nil, nil); code != 404 {
		t.Fatalf("another name: %d", code)
	}
}

// metric reads one counter from /metrics.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	_, body := h.do("GET", "/metrics", nil, nil)
	var total float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += v
		}
	}
	return total
}

// docs/reliability.md F6: duplicated and late status updates each take effect once;
// every update with a uuid is acknowledged, none without.
func TestDuplicateAndLateUpdates(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.exec.Duplicate = true
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	// A late TASK_STARTING after TASK_RUNNING did not undo RUNNING.
	for _, ti := range h.tasks() {
		if ti.Phase != "running" {
			t.Fatalf("%s is %s after a late STARTING", ti.ID, ti.Phase)
		}
	}
	// A duplicated TASK_FAILED counts one failure.
	victim := ""
	for _, ti := range h.tasks() {
		if ti.Service == "encryptor" {
			victim = ti.ID
			break
		}
	}
	acksSettled := func() (bool, string) {
		acked := h.metric("tiltai_scheduler_status_updates_acknowledged_total")
		sent := h.metric(`tiltai_scheduler_mesos_calls_total{call="ACKNOWLEDGE",result="ok"}`)
		return acked > 0 && acked == sent, fmt.Sprintf("acked %v, ACKNOWLEDGE calls %v", acked, sent)
	}
	eventually(t, 10*time.Second, "every uuid update acknowledged", acksSettled)
	failedAt := time.Now()
	if !h.exec.Fail(victim) {
		t.Fatal("cannot fail", victim)
	}
	eventually(t, 20*time.Second, "a replacement", func() (bool, string) {
		st := h.status()
		for _, ss := range st.Services {
			if ss.Name == "encryptor" {
				return ss.Failures == 1 && ss.Running == 3, fmt.Sprintf("%+v", ss)
			}
		}
		return false, ""
	})
	// docs/reliability.md F10 (in-process): the replacement waited out the backoff
	// (1s after a first failure) and the feeder's table lost the failed
	// endpoint and gained the new one.
	for _, ti := range h.tasks() {
		if ti.Service == "encryptor" && ti.Created.After(failedAt) && ti.Created.Sub(failedAt) < 900*time.Millisecond {
			t.Fatalf("replacement %s launched %s after the failure, before the 1s backoff", ti.ID, ti.Created.Sub(failedAt))
		}
	}
	eventually(t, 10*time.Second, "the feeder's table without the failed task", func() (bool, string) {
		var feeder string
		ports := map[string]bool{}
		for _, ti := range h.tasks() {
			if ti.Service == "feeder" {
				feeder = ti.ID
			}
			if ti.Service == "encryptor" {
				ports[fmt.Sprintf("tcp://%s:%d", ti.Host, ti.Ports["plaintext"])] = true
			}
		}
		m, _ := h.exec.Table(feeder)
		peers := m.Snapshot.Out["plaintext"].Peers
		if len(peers) != 3 {
			return false, fmt.Sprint(peers)
		}
		for _, p := range peers {
			if !ports[p] {
				return false, fmt.Sprintf("%s is not a running encryptor", p)
			}
		}
		return true, ""
	})
	eventually(t, 10*time.Second, "every uuid update acknowledged", acksSettled)
	// Reconciliation answers (no uuid) come after a restart.
	h.restart()
	h.waitConverged(20 * time.Second)
	eventually(t, 10*time.Second, "no update without uuid acknowledged", func() (bool, string) {
		acked := h.metric("tiltai_scheduler_status_updates_acknowledged_total")
		sent := h.metric(`tiltai_scheduler_mesos_calls_total{call="ACKNOWLEDGE",result="ok"}`)
		return acked == sent, fmt.Sprintf("acked %v, ACKNOWLEDGE calls %v", acked, sent)
	})
	if n := h.metric("tiltai_scheduler_status_updates_without_uuid_total"); n == 0 {
		t.Fatal("no reconciliation answers seen after the restart")
	}
}

// docs/reliability.md F11: an agent is lost: its tasks are replaced and leave every
// table at once; when the agent comes back, the old task is killed and its
// endpoint is never advertised again.
func TestAgentLost(t *testing.T) {
	h := newHarness(t, 2, func(lc *localmesos.Config, c *Config) {
		lc.AgentRemovalTimeout = 500 * time.Millisecond
		lc.ExecutorReregistrationTimeout = 10 * time.Second
		lc.SubscriptionBackoffMax = 100 * time.Millisecond
		lc.ExecutorReregistrationTimeout = 10 * time.Second
	})
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	// Lose the agent that does not run the feeder, and an encryptor on it
	// (tasks of a service are spread over agents, so there is one).
	var feeder string
	var feederAgent string
	for _, ti := range h.tasks() {
		if ti.Service == "feeder" {
			feeder, feederAgent = ti.ID, ti.AgentID
		}
	}
	lostAgent := -1
	for _, a := range h.cluster.Agents() {
		if a.ID != feederAgent {
			lostAgent = a.Index
		}
	}
	var victim TaskInfo
	for _, ti := range h.tasks() {
		if ti.Service == "encryptor" && ti.AgentID != feederAgent {
			victim = ti
		}
	}
	if lostAgent < 0 || victim.ID == "" {
		t.Fatalf("no encryptor away from the feeder: %+v", h.tasks())
	}
	victimEP := fmt.Sprintf("tcp://%s:%d", victim.Host, victim.Ports["plaintext"])
	if err := h.cluster.StopAgent(lostAgent); err != nil {
		t.Fatal(err)
	}
	lostAt := len(h.exec.SeenTables(feeder))
	eventually(t, 30*time.Second, "the lost task replaced and out of the feeder's table", func() (bool, string) {
		st := h.status()
		m, _ := h.exec.Table(feeder)
		peers := m.Snapshot.Out["plaintext"].Peers
		for _, p := range peers {
			if p == victimEP {
				return false, "still advertised: " + p
			}
		}
		for _, ss := range st.Services {
			if ss.Name == "encryptor" && ss.Running == 3 && len(peers) == 3 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v %v", st.Services, peers)
	})
	if err := h.cluster.StartAgent(context.Background(), lostAgent); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the returned task killed", func() (bool, string) {
		for _, ti := range h.tasks() {
			if ti.ID == victim.ID {
				return false, fmt.Sprintf("%s is %s (orphan %v)", ti.ID, ti.Phase, ti.Orphan)
			}
		}
		for _, id := range h.mesosRunning() {
			if id == victim.ID {
				return false, id + " still runs in Mesos"
			}
		}
		return true, ""
	})
	h.waitConverged(20 * time.Second)
	// Never advertised again after it was lost.
	for i, m := range h.exec.SeenTables(feeder) {
		if i < lostAt {
			continue
		}
		if i == lostAt {
			continue // may be the table still in flight when it was lost
		}
		for _, p := range m.Snapshot.Out["plaintext"].Peers {
			if p == victimEP {
				t.Fatalf("table v%d advertised the lost task again: %v", m.Snapshot.Version, m.Snapshot.Out)
			}
		}
	}
}

// An operator tears the framework down on the master (POST
// /master/teardown, the step docs/operations.md gives for a lost framework
// ID): its tasks are killed and the scheduler stops with a clear error
// rather than registering a new framework behind the operator's back.
func TestOperatorTeardown(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	var hl Health
	_, b := h.do("GET", "/health", nil, nil)
	json.Unmarshal(b, &hl)
	post := func(form string) (int, string) {
		resp, err := http.Post(h.cluster.MasterURL()+"/master/teardown", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(""); code != 400 || !strings.Contains(body, "frameworkId") {
		t.Fatalf("teardown without an ID: %d %s", code, body)
	}
	if code, body := post("frameworkId=nope"); code != 400 || !strings.Contains(body, "No framework found") {
		t.Fatalf("teardown of an unknown ID: %d %s", code, body)
	}
	resp, err := http.Get(h.cluster.MasterURL() + "/master/teardown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET teardown: %s, want 405", resp.Status)
	}
	if code, body := post("frameworkId=" + url.QueryEscape(hl.FrameworkID)); code != 200 {
		t.Fatalf("teardown: %d %s", code, body)
	}
	select {
	case <-h.sched.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler did not stop after its framework was torn down")
	}
	if err := h.sched.Err(); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("scheduler stopped with %v, want the master's 'removed'", err)
	}
	eventually(t, 20*time.Second, "the framework's tasks gone", func() (bool, string) {
		r := h.mesosRunning()
		return len(r) == 0, fmt.Sprint(r)
	})
}

// docs/reliability.md F14: the framework ID is lost while tasks exist. A store that
// still has task records refuses to start; an empty store refuses to
// register while the master knows a framework of our name; and
// --framework_id restores the ID, after which the same tasks are resumed.
func TestFrameworkIDLost(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	before := h.taskIDs()
	var hl Health
	_, b := h.do("GET", "/health", nil, nil)
	json.Unmarshal(b, &hl)
	h.sched.Close()

	// Only the ID is lost: the records say tasks exist.
	h.store.Apply(context.Background(), map[string][]byte{core.KeyFrameworkID: nil})
	_, err := New(context.Background(), h.cfg)
	var lost *FrameworkIDLostError
	if !errors.As(err, &lost) || lost.Tasks != 5 || !strings.Contains(err.Error(), "docs/operations.md") {
		t.Fatalf("New with tasks but no framework ID: %v", err)
	}

	// The whole store is lost: the master still has our framework.
	fresh := store.NewMem()
	cfg := h.cfg
	cfg.Store = fresh
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a scheduler with an empty store registered next to the live framework")
	}
	s.Close()
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), hl.FrameworkID) || !strings.Contains(err.Error(), "--framework_id") {
		t.Fatalf("stopped with %v; want the live framework's ID and the recovery flag", err)
	}
	if kv, _ := fresh.Load(context.Background(), ""); len(kv) != 0 {
		t.Fatalf("the refused scheduler wrote %v", kv)
	}

	// Recovery: restore the ID into the store that still has the tasks.
	h.cfg.FrameworkID = hl.FrameworkID
	h.start()
	h.waitConverged(20 * time.Second)
	if after := h.taskIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("tasks after recovery %v, before %v", after, before)
	}
}

// docs/reliability.md B3 (the scheduler's API): garbage on the socket gets an
// error or a closed connection; the scheduler keeps serving.
func TestGarbageOnTheAPI(t *testing.T) {
	h := newHarness(t, 1, nil)
	addr := strings.TrimPrefix(h.sched.URL(), "http://")
	for _, junk := range [][]byte{
		[]byte("\x00\xff\xfe garbage \r\n\r\n"),
		append([]byte("GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX: "), bytes.Repeat([]byte("a"), 2<<20)...),
		[]byte("PUT /v1/spec HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\nxx"),
	} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		conn.Write(junk)
		reply, _ := io.ReadAll(io.LimitReader(conn, 4096))
		conn.Close()
		if len(reply) > 0 && !bytes.HasPrefix(reply, []byte("HTTP/1.1 4")) {
			t.Fatalf("garbage answered with %.80q", reply)
		}
	}
	if code, _ := h.do("GET", "/health", nil, nil); code != 200 {
		t.Fatalf("unhealthy after garbage: %d", code)
	}
}

// A Mesos call that fails while the subscription stays up (a timeout, a
// 5xx) is repaired: the tasks of a lost ACCEPT are reconciled and
// relaunched, a lost REVIVE is sent again.
func TestFailedCallsRepaired(t *testing.T) {
	var mu sync.Mutex
	fail := map[scheduler.Call_Type]int{scheduler.Call_ACCEPT: 1}
	h := newHarness(t, 1, func(lc *localmesos.Config, c *Config) {
		c.StagingReconcile = 2 * time.Second
		c.wrapCaller = func(next mesossession.Caller) mesossession.Caller {
			return &crashCaller{next: next, c: newCrash(), before: func(call *scheduler.Call) error {
				mu.Lock()
				defer mu.Unlock()
				if fail[call.Type] > 0 {
					fail[call.Type]--
					return errors.New("injected: 500 Internal Server Error")
				}
				return nil
			}}
		}
	})
	h.submit(pipelineSpec)
	h.waitConverged(30 * time.Second)
	if n := h.metric(`tiltai_scheduler_mesos_calls_repaired_total{call="ACCEPT"}`); n != 1 {
		t.Fatalf("repaired ACCEPTs: %v", n)
	}
	// Converged and suppressed; now a REVIVE is lost.
	mu.Lock()
	fail[scheduler.Call_REVIVE] = 1
	mu.Unlock()
	h.scale("encryptor", 4)
	h.waitConverged(30 * time.Second)
	if n := h.metric(`tiltai_scheduler_mesos_calls_repaired_total{call="REVIVE"}`); n != 1 {
		t.Fatalf("repaired REVIVEs: %v", n)
	}
}

// A service that exits 0 at once is relaunched with backoff, not in a hot
// loop (docs/reliability.md F10: no crash loop hammering).
func TestFinishingServiceBacksOff(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit("version: 1\nservices:\n  oneshot:\n    command: finish\n    backoff: {initial: 500ms, factor: 2, max: 10s}\n")
	time.Sleep(4 * time.Second) // a window to count launches in, not a wait for a condition
	launches := h.metric("tiltai_scheduler_task_launches_total")
	// 0 + 0.5 + 1 + 2 s: at most 4 launches fit in 4 s (a hot loop makes dozens).
	if launches < 2 || launches > 5 {
		t.Fatalf("%v launches in 4 s of a service that exits at once", launches)
	}
	st := h.status()
	if st.Services[0].Failures < 2 || !strings.Contains(st.Services[0].LastFailure, "TASK_FINISHED") {
		t.Fatalf("status %+v", st.Services[0])
	}
}

// Finding: a link table sent before a write that failed leaves executors
// on a version the scheduler never recorded. A restarted scheduler that
// meets it republishes under a fresh version, and status is not
// "converged" before every executor runs the recorded table.
func TestUnrecordedVersionHealed(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	h.waitConverged(20 * time.Second)
	var feeder, victim string
	for _, ti := range h.tasks() {
		switch ti.Service {
		case "feeder":
			feeder = ti.ID
		case "encryptor":
			victim = ti.ID
		}
	}
	before, _ := h.exec.Table(feeder)
	// The store fails, then an encryptor fails: the feeder's new table (a
	// task event) goes out before the write, the write fails, the
	// scheduler stops.
	h.store.SetFail(errors.New("disk full"))
	h.exec.Fail(victim)
	select {
	case <-h.sched.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler went on although its store failed")
	}
	eventually(t, 10*time.Second, "the feeder on the unrecorded table", func() (bool, string) {
		m, _ := h.exec.Table(feeder)
		return m.Snapshot.Version > before.Snapshot.Version, fmt.Sprint(m.Snapshot.Version)
	})
	h.sched.Close()
	h.store.SetFail(nil)
	h.start()
	h.waitConverged(30 * time.Second)
	eventually(t, 20*time.Second, "every executor on the recorded table", h.linksSynced)
	m, _ := h.exec.Table(feeder)
	running := map[string]bool{}
	for _, ti := range h.tasks() {
		if ti.Service == "encryptor" {
			running[fmt.Sprintf("tcp://%s:%d", ti.Host, ti.Ports["plaintext"])] = true
		}
	}
	peers := m.Snapshot.Out["plaintext"].Peers
	if len(peers) != 3 {
		t.Fatalf("feeder's table %v; want the 3 running encryptors", peers)
	}
	for _, p := range peers {
		if !running[p] {
			t.Fatalf("feeder's table lists %s, which is not a running encryptor", p)
		}
	}
	// Whether the restarted scheduler counts a divergence here depends on
	// timing: if it publishes the feeder a fresh table before the
	// executor reports the unrecorded version, the executor simply moves
	// on. The counted path is pinned by the core's script
	// (testdata/unrecorded-version.txt); this test holds the outcome.
}
