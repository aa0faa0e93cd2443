package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads, which can wait for text to appear.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer holds want, or fails after a deadline.
func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		has, ch := strings.Contains(s.b.String(), want), s.changed
		s.mu.Unlock()
		if has {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %q in:\n%s", want, s.String())
		}
	}
}

// runAsync runs the CLI until ctx ends; the exit code comes on the channel.
func runAsync(ctx context.Context, args ...string) (stdout, stderr *syncBuffer, code <-chan int) {
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	ch := make(chan int, 1)
	go func() { ch <- run(ctx, append([]string{"tiltai"}, args...), strings.NewReader(""), stdout, stderr) }()
	return stdout, stderr, ch
}

func newFake(t *testing.T, cfg clienttest.FakeConfig) *clienttest.Fake {
	t.Helper()
	f := clienttest.NewFake(cfg)
	t.Cleanup(f.Close)
	return f
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The flags that find the scheduler, shared by every command that talks
// to one.
func TestSchedulerFlags(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{Token: "s3cret"})
	tokenFile := writeFile(t, "token", "s3cret\n")
	empty := writeFile(t, "empty", "\n")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "token flag", args: []string{"ps", "--scheduler", f.URL, "--token", "s3cret"}, stdout: "no tasks"},
		{name: "flags after the arguments", args: []string{"ps", "--scheduler=" + f.URL, "--token-file", tokenFile}, stdout: "no tasks"},
		{name: "environment", env: map[string]string{"TILTAI_SCHEDULER": f.URL, "TILTAI_TOKEN": "s3cret"}, args: []string{"ps"}, stdout: "no tasks"},
		{name: "token file from the environment", env: map[string]string{"TILTAI_SCHEDULER": f.URL, "TILTAI_TOKEN_FILE": tokenFile}, args: []string{"ps"}, stdout: "no tasks"},
		{name: "a flag beats the environment", env: map[string]string{"TILTAI_SCHEDULER": dead.URL}, args: []string{"ps", "--scheduler", f.URL, "--token", "s3cret"}, stdout: "no tasks"},
		{name: "no token", args: []string{"ps", "--scheduler", f.URL}, code: 3,
			stderr: "tiltai ps: cannot list the tasks: this scheduler needs a token: pass --token or set TILTAI_TOKEN (HTTP 401 from GET /v1/tasks)"},
		{name: "a wrong token", args: []string{"ps", "--scheduler", f.URL, "--token", "nope"}, code: 3,
			stderr: "the scheduler refused the token (this scheduler needs a token"},
		{name: "token twice", args: []string{"ps", "--scheduler", f.URL, "--token", "a", "--token-file", tokenFile}, code: 2,
			stderr: "tiltai ps: give the token once"},
		{name: "empty token file", args: []string{"ps", "--scheduler", f.URL, "--token-file", empty}, code: 2, stderr: "is empty"},
		{name: "missing token file", args: []string{"ps", "--token-file", "/nonexistent/token"}, code: 2, stderr: "cannot read the token file: open /nonexistent/token"},
		{name: "bad URL", args: []string{"ps", "--scheduler", "ftp://x"}, code: 2, stderr: `tiltai ps: --scheduler: scheduler URL "ftp://x": scheme "ftp" is not http or https`},
		{name: "unreachable", args: []string{"ps", "--scheduler", dead.URL}, code: 3,
			stderr: "tiltai ps: cannot list the tasks: cannot reach the scheduler at " + dead.URL + ": "},
		{name: "unreachable hint", args: []string{"scale", "--scheduler", dead.URL, "a", "1"}, code: 3,
			stderr: "is the scheduler running there? Point to it with --scheduler or TILTAI_SCHEDULER."},
		{name: "not a scheduler", args: []string{"ps", "--scheduler", f.URL + "/prefix", "--token", "s3cret"}, code: 3,
			stderr: `tiltai ps: cannot list the tasks: unexpected answer "404 Not Found": "404 page not found"; is this the URL of a Tiltai scheduler? (HTTP 404 from GET /v1/tasks)` + "\n  check --scheduler (TILTAI_SCHEDULER, now " + f.URL + "/prefix)"},
		{name: "unknown trailing flag", args: []string{"links", "diff", "a.yaml", "--nope"}, code: 2, stderr: "tiltai links diff: unknown flag --nope (see tiltai links diff --help)"},
		{name: "trailing flag without its value", args: []string{"links", "diff", "a.yaml", "--scheduler"}, code: 2, stderr: "tiltai links diff: flag --scheduler needs a value"},
		{name: "stray argument", args: []string{"ps", "extra"}, code: 2, stderr: "usage: tiltai ps [--service SERVICE]"},
		{name: "trailing help", args: []string{"links", "submit", "x.yaml", "--help"}, stdout: "tiltai links submit - submit a link spec"},
		{name: "bad trailing value", args: []string{"links", "submit", "x.yaml", "--timeout", "soon"}, code: 2, stderr: `invalid value "soon" for flag --timeout`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errs := runCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout %q, stderr %q", code, tc.code, out, errs, tc.stdout, tc.stderr)
			}
		})
	}
}
