package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pythonPipeline is p with the Python encryptor between the Go feeder and
// printer, run as examples/python.yaml runs it: `tiltai python -m
// tiltai.demo encryptor` (the Python gates embedded in tiltai), with PYTHON
// set to $TILTAI_PYTHON (default /usr/bin/python3).
func pythonPipeline(tb testing.TB, p pipeline) pipeline {
	tb.Helper()
	py := os.Getenv("TILTAI_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(py); err != nil {
		tb.Skipf("no Python interpreter %s: the Python encryptor cannot run", py)
	}
	p.EncryptorCommand = []string{"tiltai", "python", "-m", "tiltai.demo", "encryptor"}
	p.EncryptorEnv = map[string]string{"PYTHON": py}
	return p
}

// TestPythonEncryptorPlannedChanges is TestPlannedChangesLoseNothing with
// Python encryptors: rolled to a new definition, scaled 3 → 10 → 1 under
// traffic, nothing lost and nothing duplicated.
func TestPythonEncryptorPlannedChanges(t *testing.T) {
	t.Parallel()
	plannedChanges(t, pythonPipeline(t, pipeline{Rate: 400, Encryptors: 3}))
}

// TestPythonExample runs examples/python.yaml as it is, with the python3 on
// PATH, as `tiltai up examples/python.yaml` does: every encryptor hashes,
// and what the feeder sent reaches the printer.
func TestPythonExample(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("python3", "-c", "import sys; sys.exit(sys.version_info < (3, 11))").CombinedOutput(); err != nil {
		t.Skipf("no python3 3.11 or later on PATH: %v %s", err, out)
	}
	spec, err := os.ReadFile("../examples/python.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := newSystem(t)
	s.startScheduler()
	s.converge(s.submit(string(spec)).Version, 2*time.Minute)
	s.waitFor(time.Minute, "every encryptor hashing", func() (bool, string) {
		enc := s.running("encryptor")
		for _, e := range enc {
			if e.Counters["encryptor.hashed"] == 0 {
				return false, e.ID + " has hashed nothing"
			}
		}
		return len(enc) == 3, fmt.Sprintf("%d encryptors", len(enc))
	})
	tl := s.stopFeeder()
	t.Logf("sent %d, received %d, duplicates %d, missing %d, lost %d", tl.Sent, tl.Received, tl.Duplicates, tl.Missing, tl.Lost)
	if tl.Sent == 0 || tl.Lost != 0 || tl.Missing != 0 || tl.Duplicates != 0 {
		t.Errorf("want every message sent received once")
	}
}

// TestPythonEncryptorCrash kills a Python encryptor (SIGKILL): the scheduler
// sees TASK_FAILED and runs a replacement, which takes traffic.
func TestPythonEncryptorCrash(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	s.converge(s.submit(pythonPipeline(t, pipeline{Rate: 200, Encryptors: 2, BackoffInit: "500ms", BackoffFactor: 1}).spec()).Version, 2*time.Minute)
	start := len(events.all())
	before := ids(s.running("encryptor"))
	victim := s.running("encryptor")[0]
	pid, err := s.servicePID(victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); !strings.Contains(string(cmd), "tiltai.demo") {
		t.Fatalf("service process %d of %s is not the Python encryptor: %q", pid, victim.ID, cmd)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone, _ := events.wait(t, time.Minute, "task_gone "+victim.ID, start, isEvent("task_gone", "task_id", victim.ID))
	if reason := evStr(gone, "reason"); !strings.HasPrefix(reason, "TASK_FAILED") {
		t.Errorf("%s ended with %q, want TASK_FAILED", victim.ID, reason)
	}
	var replacement string
	s.waitFor(time.Minute, "a replacement encryptor that hashes", func() (bool, string) {
		for _, e := range s.running("encryptor") {
			if !contains(before, e.ID) && e.Counters["encryptor.hashed"] > 0 {
				replacement = e.ID
				return true, ""
			}
		}
		return false, ""
	})
	t.Logf("%s killed; %s replaced it and hashes", victim.ID, replacement)
}
