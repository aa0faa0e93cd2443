package scheduler

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/core"
)

// TestTaskFiles reads a task's stdout through the scheduler, which finds
// the task's agent from the master (GET_AGENTS) and reads the agent's
// /files/read: a tail start (no offset), a piece, the token required even
// with open reads, and the refusals.
func TestTaskFiles(t *testing.T) {
	work := t.TempDir()
	h := newHarness(t, 2, func(lc *localmesos.Config, c *Config) {
		lc.WorkDir = work
		c.APIToken, c.OpenReads = "s3cret", true
	})
	if _, err := h.sched.SubmitSpec(context.Background(), "pipeline.yaml", []byte(pipelineSpec), SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatal(err)
	}
	h.waitConverged(20 * time.Second)
	var printer string
	for _, ti := range h.tasks() {
		if ti.Service == "printer" {
			printer = ti.ID
		}
	}
	// The light executors write nothing; put what a service printed in
	// the printer's sandbox, where the agent keeps the executor's run.
	var sandbox string
	_ = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == core.ExecutorID(printer) && !strings.Contains(p, "/meta/") {
			sandbox = filepath.Join(p, "runs", "latest")
			return filepath.SkipAll
		}
		return nil
	})
	if sandbox == "" {
		t.Fatalf("no sandbox for %s under %s", printer, work)
	}
	const out = "received=1 missing=0\nreceived=2 missing=0\n"
	if err := os.WriteFile(filepath.Join(sandbox, "stdout"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	var f TaskFile
	code, body := h.do("GET", "/v1/tasks/"+printer+"/files/stdout?offset=0", nil, auth)
	if code != http.StatusOK || json.Unmarshal(body, &f) != nil || f.Data != out || f.Offset != 0 || f.TaskID != printer || f.File != "stdout" {
		t.Fatalf("read: %d %s", code, body)
	}
	code, body = h.do("GET", "/v1/tasks/"+printer+"/files/stdout", nil, auth)
	if code != http.StatusOK || json.Unmarshal(body, &f) != nil || f.Data != "" || f.Offset != int64(len(out)) {
		t.Errorf("tail start: %d %s", code, body)
	}
	code, body = h.do("GET", "/v1/tasks/"+printer+"/files/stdout?offset=11&length=9", nil, auth)
	if code != http.StatusOK || json.Unmarshal(body, &f) != nil || f.Data != "missing=0" || f.Offset != 11 {
		t.Errorf("a piece: %d %s", code, body)
	}
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		code int
		want string
	}{
		{"/v1/tasks/" + printer + "/files/stdout", nil, 401, "need the scheduler's token"},
		{"/v1/tasks/" + printer + "/files/stderr", auth, 404, "has no stderr"},
		{"/v1/tasks/" + printer + "/files/..%2F..%2Fetc%2Fpasswd", auth, 404, "stdout or stderr"},
		{"/v1/tasks/" + printer + "/files/stdout?offset=-1", auth, 400, "?offset="},
		{"/v1/tasks/" + printer + "/files/stdout?length=99999999", auth, 400, "length at most"},
		{"/v1/tasks/no-such-task/files/stdout", auth, 404, "no task"},
	} {
		code, body := h.do("GET", tc.path, nil, tc.hdr)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d %s, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}
}
