package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLocalmesosCommand runs `tiltai localmesos` in-process: it prints
// where it listens, serves /health, and stops cleanly when its context
// ends (as on SIGINT/SIGTERM).
func TestLocalmesosCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"tiltai", "localmesos", "--listen", "127.0.0.1:0", "--agents", "2", "--work_dir", t.TempDir()},
			strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`master listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatal("no listening address printed")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %s", resp.Status)
	}
	// A task whose process must die with localmesos.
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid := runSleepTask(t, url, pidFile)
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("localmesos did not stop")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("task process %d survived localmesos", pid)
	}
}

// runSleepTask launches a command task through the scheduler API (raw
// HTTP, JSON) and returns the pid of its process once it runs.
func runSleepTask(t *testing.T, url, pidFile string) int {
	t.Helper()
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"cli-test","failover_timeout":60}}}`
	resp, err := http.Post(url+"/api/v1/scheduler", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	streamID := resp.Header.Get("Mesos-Stream-Id")
	rd := bufio.NewReader(resp.Body)
	var fwID string
	for {
		var n int
		if _, err := fmt.Fscanf(rd, "%d\n", &n); err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(rd, rec); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Type       string
			Subscribed struct {
				FrameworkID struct{ Value string } `json:"framework_id"`
			}
			Offers struct {
				Offers []struct {
					ID      struct{ Value string }
					AgentID struct{ Value string } `json:"agent_id"`
				}
			}
		}
		if err := json.Unmarshal(rec, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "SUBSCRIBED" {
			fwID = ev.Subscribed.FrameworkID.Value
		}
		if ev.Type == "OFFERS" {
			o := ev.Offers.Offers[0]
			call := fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"s","task_id":{"value":"s"},"agent_id":{"value":%q},"command":{"value":"echo $$ > %s; exec sleep 600"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}]}}]}}`,
				fwID, o.ID.Value, o.AgentID.Value, pidFile)
			req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/scheduler", strings.NewReader(call))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Mesos-Stream-Id", streamID)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusAccepted {
				t.Fatalf("ACCEPT: %s", r.Status)
			}
		}
		// TASK_STARTING is enough: RUNNING waits for its acknowledgement.
		if ev.Type == "UPDATE" && strings.Contains(string(rec), "TASK_STARTING") {
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the task never wrote its pid")
		}
		time.Sleep(10 * time.Millisecond) // the shell writes the file right after RUNNING
	}
}

func TestLocalmesosCommandBadFlags(t *testing.T) {
	var stderr strings.Builder
	code := run(context.Background(), []string{"tiltai", "localmesos", "--resources", "cpus:x", "--agents", "-1"}, strings.NewReader(""), io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "cpus:x") || !strings.Contains(stderr.String(), "agents") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

// TestLocalmesosAgentAttributes: --agent_attributes once per agent (commas
// inside ranges kept), each agent on its own loopback address.
func TestLocalmesosAgentAttributes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"tiltai", "localmesos", "--listen", "127.0.0.1:0", "--agents", "2", "--work_dir", t.TempDir(),
			"--agent_attributes", "rack:r1;slots:[1-2,5-6]", "--agent_attributes", "rack:r2"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	agents := 0
	for agents < 2 && sc.Scan() {
		if m := regexp.MustCompile(`master listening on (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
		if regexp.MustCompile(`agent \d+ \S+ on 127\.0\.0\.[23]:\d+`).MatchString(sc.Text()) {
			agents++
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" || agents != 2 {
		t.Fatalf("want the master and two agents on 127.0.0.2 and 127.0.0.3 printed (url %q, agents %d)", url, agents)
	}
	resp, err := http.Post(url+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_AGENTS"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"hostname":"127.0.0.2"`, `{"name":"slots","type":"RANGES","ranges":{"range":[{"begin":1,"end":2},{"begin":5,"end":6}]}}`, `{"name":"rack","type":"TEXT","text":{"value":"r2"}}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET_AGENTS lacks %s:\n%s", want, body)
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit %d", c)
	}
	var stderr strings.Builder
	if c := run(context.Background(), []string{"tiltai", "localmesos", "--agents", "2", "--agent_attributes", "a:1", "--agent_attributes", "b:2", "--agent_attributes", "c:{x,y}"},
		strings.NewReader(""), io.Discard, &stderr); c != 2 || !strings.Contains(stderr.String(), "3 agent attributes for 2 agents") || !strings.Contains(stderr.String(), "set values are not allowed") {
		t.Errorf("bad --agent_attributes: exit %d, %s", c, stderr.String())
	}
}

// TestAgentAttributesFlagRefused: both commands that start the embedded
// Mesos refuse a wrong --agent_attributes count or a set value before
// starting anything, naming every problem.
func TestAgentAttributesFlagRefused(t *testing.T) {
	for _, cmd := range []string{"localmesos", "up"} {
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"more than agents", []string{"--agents", "2", "--agent_attributes", "a:1", "--agent_attributes", "b:2", "--agent_attributes", "c:3"},
				[]string{"3 agent attributes for 2 agents (give one for all, or one per agent)"}},
			{"fewer than agents", []string{"--agents", "3", "--agent_attributes", "a:1", "--agent_attributes", "b:2"},
				[]string{"2 agent attributes for 3 agents (give one for all, or one per agent)"}},
			{"set value and count", []string{"--agents", "2", "--agent_attributes", "a:1", "--agent_attributes", "b:2", "--agent_attributes", "s:{x,y}"},
				[]string{"3 agent attributes for 2 agents", `agent 2 attributes: attribute "s": set values are not allowed for attributes`}},
			{"no value", []string{"--agent_attributes", "rack"}, []string{`agent 0 attributes: invalid attribute key:value pair "rack"`}},
		} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				code, _, stderr := runCLI(t, "", append([]string{cmd, "--listen", "127.0.0.1:0"}, tc.args...)...)
				if code != 2 || !strings.HasPrefix(stderr, "tiltai "+cmd+": ") {
					t.Errorf("exit %d, stderr %q; want 2 and tiltai %s: …", code, stderr, cmd)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr lacks %q: %s", w, stderr)
					}
				}
			})
		}
	}
}

// TestUpAgentAttributes: `tiltai up --agents 2 --agent_attributes X` gives
// every agent X, each agent on its own loopback address. The agents are too
// small for any task, so nothing is launched.
func TestUpAgentAttributes(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "idle.yaml")
	if err := os.WriteFile(spec, []byte("services:\n  idle:\n    command: sleep 600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"tiltai", "up", "--listen", "127.0.0.1:0", "--master_listen", "127.0.0.1:0", "--agents", "2",
			"--resources", "cpus:0.01;mem:1;disk:1;ports:[31000-31001]", "--report", "0", "--work_dir", t.TempDir(),
			"--agent_attributes", "rack:r1;level:2", spec}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for url == "" && sc.Scan() {
		if m := regexp.MustCompile(`Mesos master (http://127\.0\.0\.1:\d+), 2 agent`).FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" {
		t.Fatal("tiltai up printed no Mesos master with 2 agents")
	}
	resp, err := http.Post(url+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_AGENTS"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var agents struct {
		GetAgents struct {
			Agents []struct {
				AgentInfo struct {
					Hostname   string            `json:"hostname"`
					Attributes []json.RawMessage `json:"attributes"`
				} `json:"agent_info"`
			} `json:"agents"`
		} `json:"get_agents"`
	}
	if err := json.Unmarshal(body, &agents); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, a := range agents.GetAgents.Agents {
		hosts[a.AgentInfo.Hostname] = true
		var attrs []string
		for _, r := range a.AgentInfo.Attributes {
			attrs = append(attrs, string(r))
		}
		if got, want := strings.Join(attrs, ","), `{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}}`; got != want {
			t.Errorf("agent %s attributes %s, want %s", a.AgentInfo.Hostname, got, want)
		}
	}
	if len(hosts) != 2 || !hosts["127.0.0.2"] || !hosts["127.0.0.3"] {
		t.Errorf("agents %v, want 127.0.0.2 and 127.0.0.3", hosts)
	}
	cancel()
	select {
	case <-code:
	case <-time.After(30 * time.Second):
		t.Fatal("tiltai up did not stop")
	}
}

// TestUpImageFlags: `tiltai up` has the agents' image flags, with help,
// turns --image_providers=docker on when a registry is given, and checks
// them with the rest of the embedded Mesos' flags before starting anything.
func TestUpImageFlags(t *testing.T) {
	_, help, _ := runCLI(t, "", "up", "--help")
	for _, f := range []string{"--docker_registry", "--image_providers", "--docker_store_dir", "--isolation", "CGO_ENABLED=0"} {
		if !strings.Contains(help, f) {
			t.Errorf("up --help lacks %s:\n%s", f, help)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"providers without a registry", []string{"--image_providers", "docker"}, "image providers 'docker' need a docker registry"},
		{"registry turns images on", []string{"--docker_registry", t.TempDir(), "--isolation", "posix/cpu"}, `need isolation "filesystem/linux" (got "posix/cpu")`},
		{"unknown provider", []string{"--image_providers", "appc", "--docker_registry", t.TempDir()}, `image providers "appc": only 'docker' is supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", append([]string{"up", "--listen", "127.0.0.1:0", "--master_listen", "127.0.0.1:0"}, tc.args...)...)
			if code != 2 || !strings.HasPrefix(stderr, "tiltai up: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}
