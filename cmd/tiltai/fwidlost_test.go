package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/examples"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/store"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSchedulerFrameworkIDLost checks docs/reliability.md F14 at the
// command: `tiltai scheduler` on a state file whose framework ID was lost
// while it holds tasks exits 1 with the recovery steps, registers nothing,
// and --framework_id resumes it under the first framework ID.
func TestSchedulerFrameworkIDLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Executors that never subscribe: the tasks stay staging, which is
	// enough for the scheduler to have stored them.
	mc, err := localmesos.New(ctx, localmesos.Config{Listen: "127.0.0.1:0", Agents: 1,
		Resources: "cpus:8;mem:8192;disk:1000;ports:[31000-31999]",
		Launcher:  localmesos.InProcess(func(ctx context.Context, _ localmesos.ExecutorSpec) error { <-ctx.Done(); return nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	state := filepath.Join(t.TempDir(), "state.db")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + l.Addr().String()
	l.Close()
	args := []string{"scheduler", "--master", mc.MasterURL(), "--state", state, "--listen", strings.TrimPrefix(api, "http://"), "--framework_name", "tiltai-f14"}

	// start runs the command until stop is called, and returns its exit code.
	start := func(extra ...string) (stop func() (int, string)) {
		sctx, scancel := context.WithCancel(ctx)
		errb := &lockedBuffer{}
		done := make(chan int, 1)
		go func() {
			done <- run(sctx, append([]string{"tiltai"}, append(args, extra...)...), strings.NewReader(""), io.Discard, errb)
		}()
		return func() (int, string) {
			scancel()
			return <-done, errb.String()
		}
	}
	get := func(path string, v any) bool {
		resp, err := http.Get(api + path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(v) == nil
	}
	taskIDs := func() string {
		var ts []struct {
			ID string `json:"id"`
		}
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if get("/v1/tasks", &ts) && len(ts) == 5 {
				var ids []string
				for _, x := range ts {
					ids = append(ids, x.ID)
				}
				return strings.Join(ids, ",")
			}
			time.Sleep(50 * time.Millisecond) // polling interval, not an assertion
		}
		t.Fatalf("five tasks never appeared: %+v", ts)
		return ""
	}

	stop := start()
	var hl struct {
		FrameworkID string `json:"framework_id"`
	}
	deadline := time.Now().Add(time.Minute)
	for !get("/health", &hl) || hl.FrameworkID == "" {
		if time.Now().After(deadline) {
			code, errs := stop()
			t.Fatalf("the scheduler never subscribed: exit %d\n%s", code, errs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	req, _ := http.NewRequest("PUT", api+"/v1/spec", bytes.NewReader(examples.Pipeline))
	req.Header.Set("Content-Type", "application/yaml")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT /v1/spec: %v %v", resp, err)
	}
	taskIDs()
	if code, errs := stop(); code != 0 {
		t.Fatalf("stopping the scheduler: exit %d\n%s", code, errs)
	}

	// The framework ID is lost; the task records stay.
	st, err := store.OpenBolt(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, map[string][]byte{core.KeyFrameworkID: nil}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	errb := &lockedBuffer{}
	code := run(ctx, append([]string{"tiltai"}, args...), strings.NewReader(""), io.Discard, errb)
	errs := errb.String()
	if code != 1 {
		t.Fatalf("exit %d with the framework ID lost, want 1\n%s", code, errs)
	}
	for _, want := range []string{"tiltai scheduler: ", "5 task records", "but no framework ID", `name "tiltai-f14"`, "restore it", "docs/operations.md"} {
		if !strings.Contains(errs, want) {
			t.Errorf("the error lacks %q:\n%s", want, errs)
		}
	}
	var ms struct {
		Frameworks []struct {
			ID string `json:"id"`
		} `json:"frameworks"`
	}
	if resp, err := http.Get(mc.MasterURL() + "/master/state"); err != nil {
		t.Fatal(err)
	} else {
		json.NewDecoder(resp.Body).Decode(&ms)
		resp.Body.Close()
	}
	if len(ms.Frameworks) != 1 || ms.Frameworks[0].ID != hl.FrameworkID {
		t.Errorf("the master knows frameworks %+v, want only %s", ms.Frameworks, hl.FrameworkID)
	}

	// Recovery, as the message says: restore the ID. (The tasks here never
	// ran, so they may be replaced meanwhile; that the same tasks resume is
	// scheduler's TestFrameworkIDLost.)
	stop = start("--framework_id", hl.FrameworkID)
	var again struct {
		FrameworkID string `json:"framework_id"`
	}
	deadline = time.Now().Add(time.Minute)
	for !get("/health", &again) || again.FrameworkID == "" {
		if time.Now().After(deadline) {
			code, errs := stop()
			t.Fatalf("the recovered scheduler never subscribed: exit %d\n%s", code, errs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	taskIDs()
	if code, errs := stop(); code != 0 {
		t.Fatalf("the recovered scheduler: exit %d\n%s", code, errs)
	}
	if again.FrameworkID != hl.FrameworkID {
		t.Fatalf("recovered under framework %s, want %s", again.FrameworkID, hl.FrameworkID)
	}
}
