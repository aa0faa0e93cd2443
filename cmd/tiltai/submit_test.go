package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

const pipelineFile = "../../examples/pipeline.yaml"

func svcStatus(name string, wanted, running, launching, unacked int) scheduler.ServiceStatus {
	ss := scheduler.ServiceStatus{Name: name, Wanted: wanted, Running: running, Launching: launching, Unacked: unacked}
	ss.Converged = running == wanted && launching == 0 && unacked == 0
	return ss
}

func statusOf(version int, services ...scheduler.ServiceStatus) scheduler.Status {
	st := scheduler.Status{SpecVersion: version, Subscribed: true, Converged: true, Services: services}
	for _, ss := range services {
		st.Converged = st.Converged && ss.Converged
	}
	return st
}

func TestLinksSubmit(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{Token: "s3cret"})
	sched := []string{"--scheduler", f.URL, "--token", "s3cret", "--poll-interval", "10ms"}
	submit := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append(append([]string{"links", "submit"}, sched...), args...)...)
	}
	puts := func() int {
		n := 0
		for _, r := range f.Requests() {
			if r.Method == "PUT" {
				n++
			}
		}
		return n
	}

	// Invalid here: the located problems, exit 1, nothing sent.
	bad := writeFile(t, "bad.yaml", "services:\n  a:\n    command: x\n    instances: -2\n    gates: {out: push}\nlinks:\n  - {from: a.out, to: b.in}\n")
	code, out, errs := submit(bad)
	if code != 1 || out != "" || !strings.Contains(errs, bad+":4:16: instances -2 is out of range") ||
		!strings.Contains(errs, bad+":7:23: unknown service \"b\"") || !strings.Contains(errs, "has errors; nothing was sent") || puts() != 0 {
		t.Fatalf("invalid: exit %d\nstdout %s\nstderr %s\n%d PUTs", code, out, errs, puts())
	}
	if code, _, errs := submit("/nonexistent.yaml"); code != 2 || !strings.Contains(errs, "cannot read the link spec") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
	if code, _, errs := submit(); code != 2 || !strings.Contains(errs, "usage: tiltai links submit FILE") {
		t.Fatalf("no file: %d %s", code, errs)
	}
	if code, _, errs := submit("--timeout", "0s", pipelineFile); code != 2 || !strings.Contains(errs, "--timeout 0s: give a positive duration") {
		t.Fatalf("bad timeout: %d %s", code, errs)
	}

	// Dry run: the changes, nothing accepted, no wait.
	code, out, errs = submit("--dry-run", pipelineFile)
	if code != 0 || f.Version() != 0 || !strings.Contains(out, "+ service encryptor (3 instances)\n") ||
		!strings.Contains(out, "+ link feeder.plaintext -> encryptor.plaintext\n") ||
		!strings.HasSuffix(out, "dry run: nothing was changed (spec version 0 is current)\n") || strings.Contains(errs, "waiting") {
		t.Fatalf("dry run: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	// Submit and follow: progress on stderr as the status changes, the
	// outcome on stdout. The first status read is the baseline.
	f.ScriptStatus(
		statusOf(0),
		statusOf(0),
		statusOf(1, svcStatus("encryptor", 3, 0, 3, 0), svcStatus("feeder", 1, 0, 1, 0), svcStatus("printer", 1, 0, 1, 0)),
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 3), svcStatus("feeder", 1, 1, 0, 1), svcStatus("printer", 1, 1, 0, 0)),
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 0), svcStatus("feeder", 1, 1, 0, 0), svcStatus("printer", 1, 1, 0, 0)),
	)
	code, out, errs = submit("--if-match", "0", pipelineFile)
	if code != 0 || f.Version() != 1 {
		t.Fatalf("submit: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	for _, want := range []string{"+ service feeder (1 instance)\n", "spec version 1 accepted\n", "spec version 1 converged in ", ": 3 services, 5 tasks running, every link table acknowledged\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"waiting for spec version 1 to converge (timeout 5m0s; Ctrl-C stops waiting, not the change)\n",
		"the scheduler is at spec version 0, not yet 1\n",
		"] encryptor  0/3 running, 3 launching\n",
		"] encryptor  3/3 running, links 0/3 acked\n",
		"] printer    1/1 running, links 1/1 acked, converged\n",
		"] encryptor  3/3 running, links 3/3 acked, converged\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if n := strings.Count(errs, "printer    1/1 running, links 1/1 acked, converged"); n != 1 {
		t.Errorf("an unchanged line was printed %d times:\n%s", n, errs)
	}
	for _, r := range f.Requests() {
		if r.Method == "PUT" && r.Query.Get("name") != pipelineFile {
			t.Errorf("submitted as %q", r.Query.Get("name"))
		}
	}

	// Again: nothing changes; --wait=false returns at once.
	f.SetStatus(nil)
	code, out, errs = submit("--wait=false", pipelineFile)
	if code != 0 || out != "no changes\nspec version 1 is current and already says this\n" || errs != "" {
		t.Fatalf("unchanged: exit %d\nstdout %q\nstderr %q", code, out, errs)
	}

	// 409: who changed it, and how to go on.
	scaled := writeFile(t, "scaled.yaml", strings.Replace(readFile(t, pipelineFile), "instances: 3", "instances: 4", 1))
	if code, _, errs := runCLI(t, "", append([]string{"scale"}, append(sched, "--wait=false", "printer", "2")...)...); code != 0 {
		t.Fatalf("scale: %d %s", code, errs)
	}
	code, out, errs = submit("--if-match", "1", scaled)
	if code != 4 || f.Version() != 2 || out != "" ||
		!strings.Contains(errs, "tiltai links submit: nothing was changed: the spec is at version 2 (a tiltai scale, accepted ") ||
		!strings.Contains(errs, "not 1 as --if-match says; someone changed it since") ||
		!strings.Contains(errs, "tiltai links diff "+scaled) || !strings.Contains(errs, "retry with --if-match 2") {
		t.Fatalf("conflict: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	// 401 with a wrong token: exit 3, and says which token.
	code, _, errs = runCLI(t, "", "links", "submit", "--scheduler", f.URL, "--token", "wrong", pipelineFile)
	if code != 3 || !strings.Contains(errs, "the scheduler refused the token") {
		t.Fatalf("wrong token: exit %d %s", code, errs)
	}
}

func TestLinksSubmitFailures(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	sched := []string{"--scheduler", f.URL, "--poll-interval", "10ms"}
	crash := func(n int, last string) scheduler.ServiceStatus {
		ss := svcStatus("printer", 1, 0, 1, 0)
		ss.Failures, ss.LastFailure, ss.HeldUntil = n, last, time.Now().Add(time.Second)
		return ss
	}
	// A service that keeps crashing: exit 1 with its last failure.
	f.ScriptStatus(
		statusOf(0),
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 0), crash(1, "printer.1 TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): exit status 1")),
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 0), crash(2, "printer.2 TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): exit status 1")),
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 0), crash(3, "printer.3 TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): exit status 2")),
	)
	code, out, errs := runCLI(t, "", append(append([]string{"links", "submit"}, sched...), pipelineFile)...)
	if code != 1 || !strings.Contains(out, "spec version 1 accepted") ||
		!strings.Contains(errs, "tiltai links submit: spec version 1 did not converge: service printer failed 3 times since the change; last failure: printer.3 TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): exit status 2") ||
		!strings.Contains(errs, "see tiltai ps --service printer") || !strings.Contains(errs, "printer    0/1 running, 1 launching, 2 failures, crash backoff until") {
		t.Fatalf("crash: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	// --max-failures 0: crashes do not end the wait; the timeout does.
	notHeld := crash(9, "x")
	notHeld.HeldUntil = time.Time{}
	f.ScriptStatus(statusOf(1, svcStatus("encryptor", 3, 3, 0, 0), notHeld))
	code, _, errs = runCLI(t, "", append(append([]string{"scale"}, sched...), "--max-failures", "0", "--timeout", "200ms", "encryptor", "4")...)
	if code != 5 || !strings.Contains(errs, "tiltai scale: gave up waiting after 200ms: not converged on spec version 2 (context deadline exceeded): the scheduler is at spec version 1; printer 0/1 running") ||
		!strings.Contains(errs, "the change stays accepted and the scheduler keeps working on it") {
		t.Fatalf("timeout: exit %d\n%s", code, errs)
	}
}

func TestLinksGet(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	get := func(args ...string) (int, string, string) {
		return runCLI(t, "", append([]string{"links", "get", "--scheduler", f.URL}, args...)...)
	}
	if code, _, errs := get(); code != 1 || !strings.Contains(errs, "no spec has been submitted to "+f.URL+" yet; submit one with tiltai links submit FILE") {
		t.Fatalf("nothing yet: %d %s", code, errs)
	}
	src := readFile(t, pipelineFile)
	if code, _, errs := runCLI(t, src, "links", "submit", "--scheduler", f.URL, "--wait=false", "-"); code != 0 {
		t.Fatalf("submit from stdin: %d %s", code, errs)
	}
	code, out, errs := get()
	if code != 0 || out != src || !strings.HasPrefix(errs, "spec version 1 (<stdin>, accepted ") {
		t.Fatalf("source: %d\nstdout %q\nstderr %q", code, out, errs)
	}
	code, out, _ = get("--format", "json")
	var spec struct {
		Services map[string]struct {
			Instances int     `json:"instances"`
			CPUs      float64 `json:"cpus"`
		} `json:"services"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &spec) != nil || spec.Services["encryptor"].Instances != 3 || spec.Services["feeder"].CPUs == 0 {
		t.Fatalf("json: %d %s", code, out)
	}
	if code, _, errs := get("--format", "toml"); code != 2 || !strings.Contains(errs, `unknown --format "toml"; use source or json`) {
		t.Fatalf("bad format: %d %s", code, errs)
	}
}

func TestLinksDiffScheduler(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	if code, _, errs := runCLI(t, "", "links", "submit", "--scheduler", f.URL, "--wait=false", pipelineFile); code != 0 {
		t.Fatalf("submit: %d %s", code, errs)
	}
	scaled := writeFile(t, "scaled.yaml", strings.Replace(readFile(t, pipelineFile), "instances: 3", "instances: 5", 1))
	// FILE then flags, as in the docs.
	code, out, errs := runCLI(t, "", "links", "diff", scaled, "--scheduler", f.URL)
	if code != 0 || out != "~ service encryptor: instances 3 -> 5, scale up\n" || errs != "compared with spec version 1 at "+f.URL+"\n" || f.Version() != 1 {
		t.Fatalf("diff: %d\nstdout %q\nstderr %q", code, out, errs)
	}
	if code, _, _ := runCLI(t, "", "links", "diff", "--exit-code", "--scheduler", f.URL, scaled); code != 1 {
		t.Fatalf("--exit-code: %d", code)
	}
	code, out, _ = runCLI(t, "", "links", "diff", pipelineFile, "--scheduler", f.URL, "--format", "json", "--exit-code")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("no changes: %d %q", code, out)
	}
	bad := writeFile(t, "bad.yaml", "services: {a: {command: 1}}\n")
	if code, _, errs := runCLI(t, "", "links", "diff", bad, "--scheduler", f.URL); code != 1 || !strings.Contains(errs, bad+":1:25: command must be a string") {
		t.Fatalf("invalid: %d %s", code, errs)
	}
	// Two files: compared here, flags after them too.
	code, out, _ = runCLI(t, "", "links", "diff", pipelineFile, scaled, "--format", "json")
	if code != 0 || !strings.Contains(out, `"kind": "service-scaled"`) {
		t.Fatalf("two files: %d %s", code, out)
	}
	if code, _, errs := runCLI(t, "", "links", "diff", "a", "b", "c"); code != 2 || !strings.Contains(errs, "usage: tiltai links diff OLD NEW, or tiltai links diff FILE") {
		t.Fatalf("three files: %d %s", code, errs)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Ctrl-C stops the wait, not the change: exit 130 and a word on what goes
// on.
func TestSubmitInterrupted(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	f.ScriptStatus(statusOf(1, svcStatus("encryptor", 3, 1, 2, 0)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, errs, code := runAsync(ctx, "links", "submit", "--scheduler", f.URL, "--poll-interval", "10ms", pipelineFile)
	errs.waitFor(t, "] encryptor  1/3 running, 2 launching, links 1/1 acked\n")
	cancel()
	select {
	case c := <-code:
		if c != 130 || !strings.Contains(errs.String(), "tiltai links submit: stopped waiting after ") ||
			!strings.Contains(errs.String(), "spec version 1 stays accepted and the scheduler carries on (tiltai ps)") || f.Version() != 1 {
			t.Fatalf("exit %d\n%s", c, errs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("submit did not stop on Ctrl-C")
	}
}
