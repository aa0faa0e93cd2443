package supervise

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("SUPERVISE_TEST_PARENT") != "" {
		parentHelper()
		return
	}
	goleak.VerifyTestMain(m)
}

// parentHelper starts a long sleeper and dies at once, as a crashing
// executor would.
func parentHelper() {
	dir := os.Getenv("SUPERVISE_TEST_PARENT")
	p, err := Start(Spec{Path: "/bin/sleep", Args: []string{"300"}, Dir: dir, Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(p.PID())
	os.Exit(0)
}

func spec(t *testing.T, script string) Spec {
	dir := t.TempDir()
	return Spec{Path: "/bin/sh", Args: []string{"-c", script}, Dir: dir, Env: []string{"PATH=/usr/bin:/bin", "GREETING=hi"},
		Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr")}
}

func wait(t *testing.T, p *Process) Status {
	t.Helper()
	select {
	case <-p.Done():
		return p.Status()
	case <-time.After(20 * time.Second):
		t.Fatal("process did not end")
	}
	return Status{}
}

func TestExitStatusAndOutput(t *testing.T) {
	s := spec(t, `echo "out $GREETING $(pwd)"; echo "err line 1" >&2; echo "last words" >&2; exit 3`)
	if err := os.WriteFile(s.Stdout, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, p); st != (Status{Code: 3}) || st.String() != "exited with status 3" {
		t.Fatalf("status %+v %q", st, st)
	}
	out, _ := os.ReadFile(s.Stdout)
	if want := "earlier\nout hi " + s.Dir + "\n"; string(out) != want {
		t.Fatalf("stdout %q, want %q (appended, in the working directory, with the environment)", out, want)
	}
	if tail := Tail(s.Stderr, 1024); tail != "last words" {
		t.Fatalf("tail %q", tail)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie waits for its reaper but runs no more.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if n, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupOutlivesNothing: a grandchild left behind by the service dies with
// it.
func TestGroupOutlivesNothing(t *testing.T) {
	s := spec(t, `sleep 300 & echo $! > child.pid; while [ ! -s child.pid ]; do :; done; exit 0`)
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	child := readPID(t, filepath.Join(s.Dir, "child.pid"))
	if st := wait(t, p); st.Code != 0 {
		t.Fatalf("status %v", st)
	}
	waitGone(t, child)
}

func TestSignalGroup(t *testing.T) {
	s := spec(t, `sleep 300 & echo $! > child.pid; wait`)
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	child := readPID(t, filepath.Join(s.Dir, "child.pid"))
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := wait(t, p)
	if st.Signal != syscall.SIGTERM || st.String() != "was killed by signal 15 (terminated)" {
		t.Fatalf("status %+v %q", st, st)
	}
	waitGone(t, child)
	// Signalling a reaped process is a no-op, never a stray signal.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// TestParentDeath: should the executor die, its service gets SIGKILL.
func TestParentDeath(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SUPERVISE_TEST_PARENT="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper printed %q", out)
	}
	waitGone(t, pid)
}

func TestStartErrors(t *testing.T) {
	s := spec(t, "true")
	s.Path = filepath.Join(s.Dir, "missing")
	if _, err := Start(s); err == nil {
		t.Fatal("started a missing program")
	}
	s = spec(t, "true")
	s.Stdout = filepath.Join(s.Dir, "no", "such", "dir", "stdout")
	if _, err := Start(s); err == nil || !strings.Contains(err.Error(), "output file") {
		t.Fatalf("err %v", err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "svc"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "data"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(bin, "adir"), 0o755)
	os.WriteFile(filepath.Join(dir, "local"), []byte("#!/bin/sh\n"), 0o755)
	for _, tc := range []struct {
		file, path, want, err string
	}{
		{"svc", "/nonexistent:" + bin, filepath.Join(bin, "svc"), ""},
		{"sh", "/nonexistent:/bin", "/bin/sh", ""},
		{"data", bin, "", "cannot find"},
		{"adir", bin, "", "cannot find"},
		{"nothing", bin + ":/nonexistent", "", `cannot find "nothing" in the service's PATH (` + bin + ":/nonexistent)"},
		{"./local", "", "./local", ""},
		{"bin/svc", "", "bin/svc", ""},
		{"bin/data", "", "", "not executable"},
		{"/bin/sh", "", "/bin/sh", ""},
		{"", bin, "", "no program"},
	} {
		got, err := LookPath(tc.file, tc.path, dir)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LookPath(%q) = %q, %v; want error %q", tc.file, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("LookPath(%q) = %q, %v; want %q", tc.file, got, err, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		limit   int
		want    string
	}{
		{"", 100, ""},
		{"one\ntwo\n\n  \n", 100, "two"},
		{"single line no newline", 100, "single line no newline"},
		{strings.Repeat("x", 50) + "\n", 10, "…xxxxxxxxx"},
		{"a\n\xff\xfebad utf8\n", 100, "?bad utf8"},
	} {
		p := filepath.Join(dir, "f")
		os.WriteFile(p, []byte(tc.content), 0o644)
		if got := Tail(p, tc.limit); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.content, tc.limit, got, tc.want)
		}
	}
	if Tail(filepath.Join(dir, "none"), 10) != "" {
		t.Error("tail of a missing file")
	}
}
