package main

import (
	"strings"
	"testing"

	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

func TestScale(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{Token: "s3cret"})
	sched := []string{"--scheduler", f.URL, "--token", "s3cret", "--poll-interval", "10ms"}
	scale := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append(append([]string{"scale"}, sched...), args...)...)
	}
	if code, _, errs := scale("encryptor", "2"); code != 1 || !strings.Contains(errs, `tiltai scale: cannot scale encryptor: no service "encryptor" in spec version 0 (HTTP 404`) {
		t.Fatalf("nothing submitted: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", append(append([]string{"links", "submit"}, sched...), "--wait=false", pipelineFile)...); code != 0 {
		t.Fatalf("submit: %d %s", code, errs)
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"encryptor"}, 2, "usage: tiltai scale SERVICE N"},
		{[]string{"encryptor", "many"}, 2, `tiltai scale: N must be a whole number from 0 to 10000, not "many"`},
		{[]string{"encryptor", "-1"}, 2, `not "-1"`},
		{[]string{"encryptor", "10001"}, 2, `not "10001"`},
		{[]string{"--if-match", "-3", "encryptor", "1"}, 2, "--if-match -3: give a spec version"},
		{[]string{"nosuch", "2"}, 1, "tiltai scale: cannot scale nosuch: no service \"nosuch\" in spec version 1 (HTTP 404 from POST /v1/services/nosuch/scale)\n  the services are: encryptor, feeder, printer"},
		{[]string{"--if-match", "7", "encryptor", "2"}, 4, "nothing was changed: the spec is at version 1 (submitted as ../../examples/pipeline.yaml, accepted"},
	} {
		code, _, errs := scale(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("scale %v: exit %d (want %d)\n%s\nwant %q", tc.args, code, tc.code, errs, tc.err)
		}
	}
	if f.Version() != 1 {
		t.Fatalf("refused scales changed the spec: version %d", f.Version())
	}

	// Dry run, then the real thing, followed to convergence.
	code, out, _ := scale("--dry-run", "encryptor", "5")
	if code != 0 || out != "~ service encryptor: instances 3 -> 5, scale up\ndry run: nothing was changed (spec version 1 is current)\n" || f.Version() != 1 {
		t.Fatalf("dry run: %d %q", code, out)
	}
	f.ScriptStatus(
		statusOf(1, svcStatus("encryptor", 3, 3, 0, 0)),
		statusOf(2, svcStatus("encryptor", 5, 3, 2, 0)),
		statusOf(2, svcStatus("encryptor", 5, 5, 0, 0)),
	)
	code, out, errs := scale("encryptor", "5", "--if-match", "1") // flags after the arguments too
	if code != 0 || f.Version() != 2 || f.Spec().Services["encryptor"].Instances != 5 ||
		!strings.HasPrefix(out, "~ service encryptor: instances 3 -> 5, scale up\nspec version 2 accepted\nspec version 2 converged in ") ||
		!strings.Contains(errs, "] encryptor  3/5 running, 2 launching, links 3/3 acked\n") {
		t.Fatalf("scale: %d\nstdout %s\nstderr %s", code, out, errs)
	}
	// Scaling down to what it is: no change, no new version.
	f.SetStatus(nil)
	code, out, _ = scale("--wait=false", "encryptor", "5")
	if code != 0 || out != "no changes\nspec version 2 is current and already says this\n" || f.Version() != 2 {
		t.Fatalf("same: %d %q", code, out)
	}
}
