package marathontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the app the server runs (the helper-process
// pattern): with MARATHONTEST_HELPER set it serves /health on $PORT0.
func TestMain(m *testing.M) {
	switch os.Getenv("MARATHONTEST_HELPER") {
	case "":
		goleak.VerifyTestMain(m)
		return
	case "fail":
		fmt.Fprintln(os.Stderr, "helper: failing on purpose")
		os.Exit(3)
	default:
		serveHelper(os.Getenv("MARATHONTEST_HELPER"))
	}
}

func serveHelper(mode string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "not well", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"PORT0", "PORT", "PORTS", "PORT_API", "HOST", "MARATHON_APP_ID", "MARATHON_APP_VERSION", "MESOS_TASK_ID", "MESOS_SANDBOX", "GREETING"} {
			env[k] = os.Getenv(k)
		}
		_ = json.NewEncoder(w).Encode(env)
	})
	_ = http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT0"), mux)
	os.Exit(1)
}

const patience = 60 * time.Second

func newServer(t *testing.T, mod ...func(*Options)) *Server {
	t.Helper()
	opts := Options{
		Runner:         &ProcessRunner{Dir: t.TempDir()},
		HealthInterval: 50 * time.Millisecond,
		BackoffScale:   0.05,
	}
	for _, m := range mod {
		m(&opts)
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// helperApp is an app definition running this test binary in mode.
func helperApp(t *testing.T, id, mode string) map[string]any {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"id": id, "cmd": "exec '" + exe + "'", "instances": 1, "cpus": 0.1, "mem": 32,
		"env":             map[string]string{"MARATHONTEST_HELPER": mode, "GREETING": "hello"},
		"portDefinitions": []map[string]any{{"port": 0, "protocol": "tcp", "name": "api"}},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0,
			"gracePeriodSeconds": 30, "intervalSeconds": 10, "timeoutSeconds": 5, "maxConsecutiveFailures": 3}},
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
	}
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("cannot decode %s: %v", a.body, err)
	}
}

func call(t *testing.T, method, url string, body any, auth ...string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", patience, what)
		case <-tick.C:
		}
	}
}

type appView struct {
	ID              string            `json:"id"`
	Version         string            `json:"version"`
	Env             map[string]string `json:"env"`
	VersionInfo     VersionInfo       `json:"versionInfo"`
	TasksRunning    int               `json:"tasksRunning"`
	TasksHealthy    int               `json:"tasksHealthy"`
	Deployments     []idRef           `json:"deployments"`
	LastTaskFailure *lastTaskFailure  `json:"lastTaskFailure"`
	Tasks           []struct {
		ID                 string          `json:"id"`
		Host               string          `json:"host"`
		Ports              []int           `json:"ports"`
		State              string          `json:"state"`
		Version            string          `json:"version"`
		HealthCheckResults []*healthResult `json:"healthCheckResults"`
	} `json:"tasks"`
}

func getApp(t *testing.T, s *Server, id string) (appView, int) {
	a := call(t, "GET", s.URL()+"/v2/apps"+id, nil)
	var w struct {
		App appView `json:"app"`
	}
	if a.code == http.StatusOK {
		a.json(t, &w)
	}
	return w.App, a.code
}

func settled(t *testing.T, s *Server, id, version string) appView {
	t.Helper()
	var app appView
	waitFor(t, "app "+id+" healthy at "+version, func() bool {
		var code int
		app, code = getApp(t, s, id)
		return code == 200 && len(app.Deployments) == 0 && app.TasksHealthy == 1 && len(app.Tasks) == 1 &&
			app.Tasks[0].Version == version
	})
	return app
}

func TestDeploysAndRunsAnApp(t *testing.T) {
	s := newServer(t)
	a := call(t, "POST", s.URL()+"/v2/apps", helperApp(t, "/demo/web", "serve"))
	if a.code != http.StatusCreated || a.header.Get("Marathon-Deployment-Id") == "" ||
		a.header.Get("Location") != s.URL()+"/v2/apps/demo/web" {
		t.Fatalf("POST /v2/apps = %d %v %s", a.code, a.header, a.body)
	}
	var created appView
	a.json(t, &created)
	if created.Version == "" || created.VersionInfo.LastConfigChangeAt != created.Version || len(created.Deployments) != 1 {
		t.Fatalf("created app %+v", created)
	}
	var deps []deploymentView
	call(t, "GET", s.URL()+"/v2/deployments", nil).json(t, &deps)
	if len(deps) != 1 || deps[0].ID != created.Deployments[0].ID || deps[0].CurrentActions[0].Action != "StartApplication" {
		t.Fatalf("deployments %+v", deps)
	}

	app := settled(t, s, "/demo/web", created.Version)
	tk := app.Tasks[0]
	if tk.State != "TASK_RUNNING" || len(tk.Ports) != 1 || !tk.HealthCheckResults[0].Alive {
		t.Fatalf("task %+v", tk)
	}
	// The task got Marathon's environment.
	var env map[string]string
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/env", tk.Host, tk.Ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	port := fmt.Sprint(tk.Ports[0])
	if env["PORT0"] != port || env["PORT"] != port || env["PORTS"] != port || env["PORT_API"] != port ||
		env["HOST"] != "127.0.0.1" || env["MARATHON_APP_ID"] != "/demo/web" || env["MESOS_TASK_ID"] != tk.ID ||
		env["MARATHON_APP_VERSION"] != created.Version || env["GREETING"] != "hello" || env["MESOS_SANDBOX"] == "" {
		t.Fatalf("task env %v", env)
	}

	// A restart with minimumHealthCapacity 0 and maximumOverCapacity 0 never
	// runs two tasks at once.
	def := helperApp(t, "/demo/web", "serve")
	def["env"].(map[string]string)["GREETING"] = "bonjour"
	a = call(t, "PUT", s.URL()+"/v2/apps/demo/web", def)
	var dep struct{ DeploymentID, Version string }
	a.json(t, &dep)
	if a.code != 200 || dep.DeploymentID == "" || dep.Version <= created.Version {
		t.Fatalf("PUT = %d %s", a.code, a.body)
	}
	waitFor(t, "the restart", func() bool {
		app, _ := getApp(t, s, "/demo/web")
		if len(app.Tasks) > 1 {
			t.Fatalf("%d tasks at once during a restart with maximumOverCapacity 0", len(app.Tasks))
		}
		return len(app.Deployments) == 0 && app.TasksHealthy == 1 && app.Tasks[0].Version == dep.Version
	})
}

func TestErrorAnswersAsMarathonDocumentsThem(t *testing.T) {
	s := newServer(t, func(o *Options) {
		o.Users = map[string]string{"admin": "pw", "viewer": "pw2"}
		o.ReadOnly = map[string]bool{"viewer": true}
	})
	as := []string{"admin", "pw"}
	url := s.URL()

	a := call(t, "GET", url+"/v2/apps", nil)
	if a.code != 401 || !strings.Contains(string(a.body), `"message":"Invalid username or password."`) {
		t.Fatalf("no credentials: %d %s", a.code, a.body)
	}
	if a := call(t, "GET", url+"/v2/apps", nil, "admin", "wrong"); a.code != 401 {
		t.Fatalf("wrong password: %d", a.code)
	}
	if a := call(t, "GET", url+"/v2/apps", nil, "viewer", "pw2"); a.code != 200 {
		t.Fatalf("read-only GET: %d %s", a.code, a.body)
	}
	a = call(t, "POST", url+"/v2/apps", helperApp(t, "/x", "serve"), "viewer", "pw2")
	if a.code != 403 || !strings.Contains(string(a.body), "Not Authorized to perform this action!") {
		t.Fatalf("read-only POST: %d %s", a.code, a.body)
	}
	if a := call(t, "GET", url+"/ping", nil); a.code != 200 || string(a.body) != "pong\n" {
		t.Fatalf("/ping = %d %q", a.code, a.body)
	}

	a = call(t, "GET", url+"/v2/apps/nope", nil, as...)
	if a.code != 404 || string(bytes.TrimSpace(a.body)) != `{"message":"App '/nope' does not exist"}` {
		t.Fatalf("unknown app: %d %s", a.code, a.body)
	}
	a = call(t, "POST", url+"/v2/apps", "{not json", as...)
	if a.code != 400 || !strings.Contains(string(a.body), `"message":"Invalid JSON"`) {
		t.Fatalf("bad JSON: %d %s", a.code, a.body)
	}
	a = call(t, "POST", url+"/v2/apps", `{"id":"/x","cmd":"true","cpus":"lots"}`, as...)
	if a.code != 400 || !strings.Contains(string(a.body), `"path":"/cpus"`) {
		t.Fatalf("wrong type: %d %s", a.code, a.body)
	}
	bad := helperApp(t, "/Bad_Id", "serve")
	bad["upgradeStrategy"] = map[string]any{"minimumHealthCapacity": 2}
	a = call(t, "POST", url+"/v2/apps", bad, as...)
	var eb errorBody
	a.json(t, &eb)
	if a.code != 422 || eb.Message != "Object is not valid" || len(eb.Details) != 2 ||
		eb.Details[0].Path != "/id" || eb.Details[1].Path != "/upgradeStrategy/minimumHealthCapacity" ||
		eb.Details[1].Errors[0] != "is greater than 1" {
		t.Fatalf("invalid app: %d %s", a.code, a.body)
	}

	// A failing app keeps its deployment open: changes are locked.
	a = call(t, "POST", url+"/v2/apps", helperApp(t, "/locked", "fail"), as...)
	if a.code != 201 {
		t.Fatalf("POST: %d %s", a.code, a.body)
	}
	if a := call(t, "POST", url+"/v2/apps", helperApp(t, "/locked", "fail"), as...); a.code != 409 ||
		!strings.Contains(string(a.body), "An app with id [/locked] already exists.") {
		t.Fatalf("duplicate POST: %d %s", a.code, a.body)
	}
	a = call(t, "PUT", url+"/v2/apps/locked", helperApp(t, "/locked", "serve"), as...)
	a.json(t, &eb)
	if a.code != 409 || !strings.HasPrefix(eb.Message, "App is locked by one or more deployments.") || len(eb.Deployments) != 1 {
		t.Fatalf("PUT while deploying: %d %s", a.code, a.body)
	}
	waitFor(t, "a recorded task failure", func() bool {
		a := call(t, "GET", url+"/v2/apps/locked", nil, as...)
		var w struct{ App appView }
		a.json(t, &w)
		f := w.App.LastTaskFailure
		return f != nil && f.State == "TASK_FAILED" && f.Version == w.App.Version && strings.Contains(f.Message, "exit status 3")
	})
	a = call(t, "PUT", url+"/v2/apps/locked?force=true", helperApp(t, "/locked", "serve"), as...)
	if a.code != 200 {
		t.Fatalf("forced PUT: %d %s", a.code, a.body)
	}
	if a := call(t, "DELETE", url+"/v2/deployments/no-such-id", nil, as...); a.code != 404 ||
		!strings.Contains(string(a.body), "DeploymentPlan no-such-id does not exist") {
		t.Fatalf("unknown deployment: %d %s", a.code, a.body)
	}
}

func TestDeleteDeploymentRollsBack(t *testing.T) {
	s := newServer(t)
	a := call(t, "POST", s.URL()+"/v2/apps", helperApp(t, "/app", "serve"))
	var v1 appView
	a.json(t, &v1)
	settled(t, s, "/app", v1.Version)

	// A broken new version never gets healthy; an operator rolls it back.
	a = call(t, "PUT", s.URL()+"/v2/apps/app", helperApp(t, "/app", "unhealthy"))
	var dep struct{ DeploymentID, Version string }
	a.json(t, &dep)
	waitFor(t, "the broken version's task", func() bool {
		app, _ := getApp(t, s, "/app")
		return len(app.Tasks) == 1 && app.Tasks[0].Version == dep.Version && app.Tasks[0].State == "TASK_RUNNING"
	})
	a = call(t, "DELETE", s.URL()+"/v2/deployments/"+dep.DeploymentID, nil)
	var rb struct{ DeploymentID, Version string }
	a.json(t, &rb)
	if a.code != 200 || rb.DeploymentID == "" || rb.DeploymentID == dep.DeploymentID {
		t.Fatalf("DELETE deployment: %d %s", a.code, a.body)
	}
	app := settled(t, s, "/app", rb.Version)
	if app.Env["MARATHONTEST_HELPER"] != "serve" || app.VersionInfo.LastConfigChangeAt != rb.Version {
		t.Fatalf("after rollback: %+v", app)
	}

	// force=true only cancels.
	a = call(t, "PUT", s.URL()+"/v2/apps/app", helperApp(t, "/app", "unhealthy"))
	a.json(t, &dep)
	if a := call(t, "DELETE", s.URL()+"/v2/deployments/"+dep.DeploymentID+"?force=true", nil); a.code != 202 || len(a.body) != 0 {
		t.Fatalf("forced DELETE: %d %s", a.code, a.body)
	}
	app, _ = getApp(t, s, "/app")
	if len(app.Deployments) != 0 || app.Version != dep.Version {
		t.Fatalf("after forced cancel: %+v", app)
	}
	if ids := s.Deployments(); len(ids) != 0 {
		t.Fatalf("deployments left: %v", ids)
	}
}
