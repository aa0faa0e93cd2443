package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pythonPipeline is the demo pipeline with the Python encryptor
// (python -m tiltai.demo encryptor, python/ of this module) between the Go
// feeder and printer.
func pythonPipeline(tb testing.TB, p pipeline) string {
	tb.Helper()
	py := os.Getenv("TILTAI_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(py); err != nil {
		tb.Skipf("no Python interpreter %s: the Python encryptor cannot run", py)
	}
	root, err := filepath.Abs("../python")
	if err != nil {
		tb.Fatal(err)
	}
	old := "    command: tiltai\n    args: [demo, encryptor"
	spec := p.spec()
	if !strings.Contains(spec, old) {
		tb.Fatalf("the pipeline spec changed shape; update pythonPipeline:\n%s", spec)
	}
	return strings.Replace(spec, old, "    command: "+py+"\n    env: {PYTHONPATH: "+root+"}\n    args: [-m, tiltai.demo, encryptor", 1)
}

// TestPythonEncryptorPlannedChanges is TestPlannedChangesLoseNothing with
// Python encryptors: rolled to a new definition, scaled 3 → 10 → 1 under
// traffic, nothing lost and nothing duplicated.
func TestPythonEncryptorPlannedChanges(t *testing.T) {
	t.Parallel()
	const rate = 400
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	p := pipeline{Rate: rate, Encryptors: 3}
	s.converge(s.submit(pythonPipeline(t, p)).Version, 2*time.Minute)
	feeder := s.running("feeder")[0]
	first := ids(s.running("encryptor"))

	p.EncryptorArgs = []string{"--log-level", "warn"}
	s.waitEncryptors(s.submit(pythonPipeline(t, p)), 3)
	for _, id := range ids(s.running("encryptor")) {
		if contains(first, id) {
			t.Errorf("encryptor %s survived the rolling replacement", id)
		}
	}
	s.waitEncryptors(s.scale("encryptor", 10), 10)
	s.waitEncryptors(s.scale("encryptor", 1), 1)

	checkDrainedFirst(t, events, feeder.ID)
	rerouted := s.nextReport(feeder).Gates["plaintext"].Rerouted
	tl := s.stopFeeder()
	t.Logf("sent %d, received %d, duplicates %d, missing %d, lost %d; the feeder re-routed %d",
		tl.Sent, tl.Received, tl.Duplicates, tl.Missing, tl.Lost, rerouted)
	if tl.Sent < rate {
		t.Errorf("the feeder sent only %d messages", tl.Sent)
	}
	if tl.Lost != 0 || tl.Missing != 0 {
		t.Errorf("planned changes lost %d messages (%d gaps); want none", tl.Lost, tl.Missing)
	}
	if tl.Duplicates != 0 || rerouted != 0 {
		t.Errorf("planned changes caused %d duplicates and %d re-routed messages; want none", tl.Duplicates, rerouted)
	}
}

// TestPythonEncryptorCrash kills a Python encryptor (SIGKILL): the scheduler
// sees TASK_FAILED and runs a replacement, which takes traffic.
func TestPythonEncryptorCrash(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	s.converge(s.submit(pythonPipeline(t, pipeline{Rate: 200, Encryptors: 2, BackoffInit: "500ms", BackoffFactor: 1})).Version, 2*time.Minute)
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
