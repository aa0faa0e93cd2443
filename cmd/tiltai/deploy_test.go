package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestDeployFlagsReachMarathon runs `tiltai deploy` against a server that
// answers /v2/info and records the app definition it is sent, then refuses
// it as Marathon would (422), so the flags' path to the app is visible.
func TestDeployFlagsReachMarathon(t *testing.T) {
	var mu sync.Mutex
	var sent map[string]any
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/v2/info":
			_, _ = io.WriteString(w, `{"name":"marathon","version":"1.11.24","leader":"m:8080","elected":true}`)
		case r.Method == "GET" && r.URL.Path == "/v2/apps/infra/tiltai":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"App '/infra/tiltai' does not exist"}`)
		case r.Method == "POST" && r.URL.Path == "/v2/apps":
			mu.Lock()
			_ = json.NewDecoder(r.Body).Decode(&sent)
			auth = r.Header.Get("Authorization")
			mu.Unlock()
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"message":"Object is not valid","details":[{"path":"/mem","errors":["too much"]}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	t.Setenv("TILTAI_MARATHON_PASSWORD", "pw")
	t.Setenv("MESOS_MASTER", "zk://zk1:2181/mesos")
	code, _, stderr := runCLI(t, "", "deploy", "--marathon", srv.URL, "--marathon-user", "ops",
		"--app-id", "/infra/tiltai", "--zk", "zk://zk1:2181/tiltai", "--binary-url", "http://files/tiltai-v2",
		"--cpus", "1", "--mem", "512", "--env", "TZ=UTC", "--timeout", "30s",
		"--", "--framework_name", "tiltai prod")
	if code != 1 || !strings.Contains(stderr, "rejected the app definition (422)") || !strings.Contains(stderr, "path: '/mem'") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Basic b3BzOnB3" { // ops:pw
		t.Errorf("Authorization %q", auth)
	}
	cmd, _ := sent["cmd"].(string)
	if sent["id"] != "/infra/tiltai" || sent["cpus"] != 1.0 || sent["mem"] != 512.0 ||
		!strings.Contains(cmd, "exec ./tiltai-v2 scheduler --master zk://zk1:2181/mesos --zk zk://zk1:2181/tiltai") ||
		!strings.HasSuffix(cmd, "--framework_name 'tiltai prod'") {
		t.Errorf("app sent: %v", sent)
	}
	if env, _ := sent["env"].(map[string]any); env["TZ"] != "UTC" {
		t.Errorf("env sent: %v", sent["env"])
	}
}

func TestDeployBadInput(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + closed.Addr().String()
	closed.Close()
	t.Setenv("MESOS_MASTER", "") // restored after the test
	os.Unsetenv("MESOS_MASTER")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"deploy"}, []string{`Required flags "marathon, zk, master" not set`}},
		{[]string{"deploy", "--marathon", "marathon:8080", "--zk", "zk://z", "--master", "m:x"},
			[]string{"cannot deploy:", `--marathon "marathon:8080"`, "--zk: invalid ZooKeeper URL", `invalid --master "m:x" at column 3`}},
		{[]string{"deploy", "--marathon", dead, "--zk", "zk://z/t", "--master", "m:5050", "--env", "NOEQUALS"},
			[]string{`--env "NOEQUALS": want KEY=VALUE`}},
		{[]string{"deploy", "--marathon", dead, "--zk", "zk://z/t", "--master", "m:5050", "--", "--zk", "zk://other/x"},
			[]string{"scheduler flag --zk is set by tiltai deploy"}},
		{[]string{"deploy", "--marathon", dead, "--zk", "zk://z/t", "--master", "m:5050"},
			[]string{"deploy failed: cannot reach Marathon at " + dead}},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code == 0 {
			t.Errorf("%v: exit 0", tt.args)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, stderr)
			}
		}
	}
}
