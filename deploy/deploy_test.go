package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/deploy/marathontest"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The test binary doubles as the tiltai binary that Marathon fetches and
// runs: with TILTAI_DEPLOY_FAKE set it behaves as `tiltai scheduler` would
// towards Marathon (serves /health on --listen), and shows its command line
// on /args.
func TestMain(m *testing.M) {
	mode := os.Getenv("TILTAI_DEPLOY_FAKE")
	if mode == "" {
		goleak.VerifyTestMain(m)
		return
	}
	fakeScheduler(mode)
}

func fakeScheduler(mode string) {
	args := os.Args[1:]
	listen := ""
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			listen = args[i+1]
		}
	}
	if len(args) == 0 || args[0] != "scheduler" || listen == "" || mode == "fail" {
		fmt.Fprintf(os.Stderr, "fake scheduler: mode %s, args %q\n", mode, args)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "not leading, no master", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/args", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(args)
	})
	_ = http.ListenAndServe(listen, mux)
	os.Exit(1)
}

const patience = 60 * time.Second

type env struct {
	marathon *marathontest.Server
	binURL   string
	client   *http.Client
}

// newEnv starts the Marathon stand-in (with users) and a file server that
// serves this test binary as the tiltai binary.
func newEnv(t *testing.T) *env {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, exe)
	}))
	t.Cleanup(files.Close)
	s, err := marathontest.New(context.Background(), marathontest.Options{
		Runner:         &marathontest.ProcessRunner{Dir: t.TempDir()},
		Users:          map[string]string{"ops": "s3cret", "viewer": "v"},
		ReadOnly:       map[string]bool{"viewer": true},
		HealthInterval: 50 * time.Millisecond,
		BackoffScale:   0.02,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{marathon: s, binURL: files.URL + "/tiltai-v1", client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (e *env) config(mode string) Config {
	return Config{
		Marathon: e.marathon.URL(), User: "ops", Password: "s3cret",
		AppID: "/tiltai", BinaryURL: e.binURL,
		ZK: "zk://zk1:2181,zk2:2181/tiltai", Master: "zk://zk1:2181/mesos",
		SchedulerArgs: []string{"--framework_name", "tiltai prod"},
		Env:           map[string]string{"TILTAI_DEPLOY_FAKE": mode},
		Timeout:       patience, PollInterval: 50 * time.Millisecond,
		HTTPClient: e.client,
	}
}

// syncBuffer collects progress lines written while a deploy runs.
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

func TestAppDefinitionGolden(t *testing.T) {
	cfg := Config{
		AppID: "/infra/tiltai", BinaryURL: "https://releases.example.com/tiltai-v1.2.3-linux-amd64",
		ZK: "zk://zk1:2181,zk2:2181/tiltai", Master: "zk://zk1:2181/mesos",
		SchedulerArgs: []string{"--framework_name", "tiltai prod", "--mesos_role=tiltai"},
		Env:           map[string]string{"TZ": "UTC"},
	}
	app := App(cfg)
	app.AddLabel("tiltai.version", "test") // the build's version varies
	got, err := json.MarshalIndent(app, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "app.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy -update to create it)", err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("app definition changed; if intended, run go test ./deploy -update\ngot:\n%s", got)
	}
	// The properties that matter, said outright.
	us := app.UpgradeStrategy
	if *us.MinimumHealthCapacity != 0 || *us.MaximumOverCapacity != 0 || *app.Instances != 1 {
		t.Errorf("upgrade strategy %+v, instances %d", us, *app.Instances)
	}
	hc := (*app.HealthChecks)[0]
	if hc.Protocol != "MESOS_HTTP" || *hc.Path != "/health" || *hc.PortIndex != 0 {
		t.Errorf("health check %+v", hc)
	}
	if f := (*app.Fetch)[0]; f.URI != cfg.BinaryURL || !f.Executable || f.Extract {
		t.Errorf("fetch %+v", f)
	}
	if !strings.HasPrefix(*app.Cmd, "exec ./tiltai-v1.2.3-linux-amd64 scheduler ") ||
		!strings.Contains(*app.Cmd, `--listen "0.0.0.0:$PORT0" --advertise "$HOST" --framework_name 'tiltai prod'`) {
		t.Errorf("cmd %s", *app.Cmd)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	err := Config{
		Marathon: "marathon:8080", User: "ops", AppID: "tiltai",
		ZK: "zk://zk1/", Master: "ftp://m", BinaryURL: "https://x/tiltai.tar.gz",
		SchedulerArgs: []string{"--zk=zk://other/x"}, Mem: 8,
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"--marathon \"marathon:8080\"", "--marathon-user and --marathon-password go together",
		"--app-id \"tiltai\"", "--zk: invalid ZooKeeper URL", "invalid --master", "not an archive",
		"scheduler flag --zk is set by tiltai deploy", "--mem 8",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if err := (Config{Marathon: "http://m:8080", ZK: "zk://z/t", Master: "m:5050"}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

func TestDeployCreatesThenUpdatesAndVerifies(t *testing.T) {
	e := newEnv(t)
	var out syncBuffer
	res, err := Run(context.Background(), e.config("healthy"), &out)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, out.String())
	}
	if !res.Created || res.Version == "" || len(res.Tasks) != 1 {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"Marathon " + marathontest.MarathonVersion, "created app /tiltai", "StartApplication /tiltai",
		"TASK_RUNNING on 127.0.0.1:", "healthy", "is running and healthy at version " + res.Version} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, out.String())
		}
	}
	// The running task got the command line deploy built.
	addr := strings.TrimPrefix(res.Tasks[0][strings.Index(res.Tasks[0], " on ")+4:], "")
	var args []string
	resp, err := e.client.Get("http://" + addr + "/args")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&args)
	resp.Body.Close()
	got := strings.Join(args, " ")
	if !strings.HasPrefix(got, "scheduler --master zk://zk1:2181/mesos --zk zk://zk1:2181,zk2:2181/tiltai --listen 0.0.0.0:") ||
		!strings.HasSuffix(got, "--advertise 127.0.0.1 --framework_name tiltai prod") {
		t.Fatalf("scheduler args %q", args)
	}

	// Deploying again updates the app: a restart with a new version.
	cfg := e.config("healthy")
	cfg.SchedulerArgs = []string{"--framework_name", "tiltai-2"}
	var out2 syncBuffer
	res2, err := Run(context.Background(), cfg, &out2)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, out2.String())
	}
	if res2.Created || res2.Version <= res.Version || !strings.Contains(out2.String(), "RestartApplication /tiltai") {
		t.Fatalf("update result %+v\n%s", res2, out2.String())
	}
}

func TestDeployReportsARollback(t *testing.T) {
	e := newEnv(t)
	if _, err := Run(context.Background(), e.config("healthy"), io.Discard); err != nil {
		t.Fatal(err)
	}
	// The new version never gets healthy; an operator rolls it back while
	// deploy follows. The deployment vanishes from /v2/deployments, which
	// WaitOnDeployment would call success.
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		_, err := Run(context.Background(), e.config("unhealthy"), &out)
		done <- err
	}()
	var dep string
	deadline := time.After(patience)
	for dep == "" {
		select {
		case <-deadline:
			t.Fatal("no deployment appeared")
		case <-time.After(20 * time.Millisecond):
		}
		if ids := e.marathon.Deployments(); len(ids) == 1 && strings.Contains(out.String(), "updating app") {
			dep = ids[0]
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, e.marathon.URL()+"/v2/deployments/"+dep, nil)
	req.SetBasicAuth("ops", "s3cret")
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE deployment: %v %v", resp, err)
	}
	resp.Body.Close()
	err = <-done
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "rolled the deployment back") {
		t.Fatalf("err = %v\nprogress:\n%s", err, out.String())
	}
}

func TestDeployThatNeverGetsHealthyFailsWithTheTaskFailure(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("fail")
	cfg.Timeout = 3 * time.Second
	var out syncBuffer
	_, err := Run(context.Background(), cfg, &out)
	if err == nil {
		t.Fatal("a deployment whose task always fails succeeded")
	}
	for _, want := range []string{"did not finish within 3s", "last task failure", "TASK_FAILED", "exit status 2",
		"curl -X DELETE " + e.marathon.URL() + "/v2/deployments/"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if !strings.Contains(out.String(), "task failed:") {
		t.Errorf("progress does not show the failures:\n%s", out.String())
	}

	// That deployment locks the app: a second deploy says so, and --force
	// overrides it.
	cfg = e.config("healthy")
	_, err = Run(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "(409)") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("deploy onto a locked app = %v", err)
	}
	cfg.Force = true
	if _, err := Run(context.Background(), cfg, io.Discard); err != nil {
		t.Fatalf("forced deploy: %v", err)
	}
}

func TestDeployErrors(t *testing.T) {
	e := newEnv(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String()
	closed.Close()

	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"unreachable", func(c *Config) { c.Marathon = deadURL }, []string{"cannot reach Marathon at " + deadURL, "connection refused"}},
		{"no credentials", func(c *Config) { c.User, c.Password = "", "" }, []string{"refused the credentials (401: Invalid username or password.)"}},
		{"wrong password", func(c *Config) { c.Password = "nope" }, []string{"(401"}},
		{"read-only user", func(c *Config) { c.User, c.Password = "viewer", "v" }, []string{"cannot create app /tiltai", "may not do this (403)", "Not Authorized"}},
		{"invalid app", func(c *Config) { c.AppID = "/Tiltai" }, []string{"rejected the app definition (422)", "path: '/id'", "must fully match"}},
		{"not marathon", func(c *Config) { c.Marathon = e.marathon.URL() + "/nothing" }, []string{"answered 404 Not Found to GET /v2/info"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config("healthy")
			tt.mod(&cfg)
			_, err := Run(context.Background(), cfg, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestTokenIsSentAsMarathonExpects(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message":"bad token"}`)
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	_, err := Run(context.Background(), Config{
		Marathon: srv.URL, Token: "abc", ZK: "zk://z/t", Master: "m:5050",
		HTTPClient: &http.Client{Transport: tr},
	}, io.Discard)
	if got != "token=abc" || err == nil || !strings.Contains(err.Error(), "bad token") {
		t.Fatalf("Authorization %q, err %v", got, err)
	}
}

// A deployment cancelled with force=true also vanishes from
// /v2/deployments, leaving the new configuration without a healthy task:
// deploy must not call that a success.
func TestDeployCancelledWithForceIsUnhealthy(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("unhealthy")
	cfg.Timeout = 4 * time.Second
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		_, err := Run(context.Background(), cfg, &out)
		done <- err
	}()
	var dep string
	deadline := time.After(patience)
	for dep == "" {
		select {
		case <-deadline:
			t.Fatal("no deployment appeared")
		case <-time.After(20 * time.Millisecond):
		}
		if ids := e.marathon.Deployments(); len(ids) == 1 && strings.Contains(out.String(), "created app") {
			dep = ids[0]
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, e.marathon.URL()+"/v2/deployments/"+dep+"?force=true", nil)
	req.SetBasicAuth("ops", "s3cret")
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("forced DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	err = <-done
	if !errors.Is(err, ErrUnhealthy) || errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v\nprogress:\n%s", err, out.String())
	}
}
