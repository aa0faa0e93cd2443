package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// The commands against the real scheduler on the embedded Mesos, with
// in-process executors that run no service but speak the executor API and
// the link-table protocol for real.
func TestCommandsOnRealScheduler(t *testing.T) {
	cl := clienttest.StartCluster(t, clienttest.ClusterConfig{Agents: 2, Token: "s3cret"})
	t.Setenv("TILTAI_SCHEDULER", cl.URL)
	t.Setenv("TILTAI_TOKEN", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	code, out, errs := runCLI(t, "", "links", "submit", "--poll-interval", "50ms", "--timeout", "1m", pipelineFile)
	if code != 0 {
		t.Fatalf("submit: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	for _, want := range []string{"+ service encryptor (3 instances)\n", "spec version 1 accepted\n", ": 3 services, 5 tasks running, every link table acknowledged\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("submit stdout lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\] encryptor  3/3 running, links 3/3 acked, converged\n`).MatchString(errs) {
		t.Errorf("submit progress:\n%s", errs)
	}

	// ps: five running tasks, each with its current table acknowledged and,
	// once its executor has reported, its gates' counters.
	row := regexp.MustCompile(`(?m)^(\S+)\s+(feeder|encryptor|printer)\s+running\s+127\.0\.0\.\d+(:\d+)?\s+(\d+)/(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\d+s$`)
	var rows [][]string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code, out, errs = runCLI(t, "", "ps")
		if code != 0 {
			t.Fatalf("ps: exit %d\n%s", code, errs)
		}
		rows = row.FindAllStringSubmatch(out, -1)
		reported := len(rows) == 5
		for _, r := range rows {
			reported = reported && r[6] != "-"
		}
		if reported {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("ps never showed five running tasks with counters:\n%s", out)
		}
	}
	for _, r := range rows {
		if r[4] != r[5] || r[4] == "0" {
			t.Errorf("task %s: links %s/%s", r[1], r[4], r[5])
		}
		if r[2] != "feeder" && r[3] == "" {
			t.Errorf("task %s of %s binds no port", r[1], r[2])
		}
	}
	if !strings.Contains(out, "\nencryptor  3/3 running, links 3/3 acked, converged\n") || !strings.HasSuffix(out, "spec version 1: converged\n") {
		t.Errorf("ps summary:\n%s", out)
	}

	// scale: up to five, followed until the new tasks run and every sender
	// acknowledged a table with them.
	code, out, errs = runCLI(t, "", "scale", "encryptor", "5", "--poll-interval", "50ms")
	if code != 0 || !strings.Contains(out, "~ service encryptor: instances 3 -> 5, scale up\nspec version 2 accepted\nspec version 2 converged in ") {
		t.Fatalf("scale: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if code, out, _ = runCLI(t, "", "ps", "--service", "encryptor"); code != 0 || len(row.FindAllString(out, -1)) != 5 {
		t.Fatalf("ps after scale:\n%s", out)
	}

	code, out, errs = runCLI(t, "", "links", "get")
	if code != 0 || !strings.Contains(out, `"instances": 5`) || !strings.HasPrefix(errs, "spec version 2 (scaled.json, accepted ") {
		t.Fatalf("get: %d\n%s\n%s", code, out, errs)
	}

	// A service that crashes: the wait fails with its last failure.
	spec := strings.Replace(readFile(t, pipelineFile), "instances: 3", "instances: 5", 1)
	spec = strings.Replace(spec, "services:\n", "services:\n  crasher:\n    command: "+clienttest.FailCommand+"\n    gates: {in: pull}\n", 1)
	crash := writeFile(t, "crash.yaml", spec)
	code, out, errs = runCLI(t, "", "links", "submit", "--poll-interval", "50ms", "--max-failures", "2", crash)
	if code != 1 || !strings.Contains(out, "+ service crasher (1 instance)") ||
		!regexp.MustCompile(`spec version 3 did not converge: service crasher failed 2 times since the change; last failure: crasher\.\S+ TASK_FAILED( \(\S+\))?: exit status 1`).MatchString(errs) {
		t.Fatalf("crash: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	// events, while the spec changes underneath (through the client: two
	// urfave/cli apps in one process race on its global help flag).
	evCtx, stopEvents := context.WithCancel(ctx)
	evOut, _, evCode := runAsync(evCtx, "events")
	c, err := client.New(cl.URL, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	// The stream may not be open yet when a change is made: change until
	// one is seen, then scale down and see the drain.
	for i := 0; !strings.Contains(evOut.String(), "  spec_accepted  changes=1 version="); i++ {
		if _, err := c.Scale(ctx, "encryptor", 4+i%2); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("no spec_accepted event:\n%s", evOut.String())
		}
	}
	if _, err := c.Scale(ctx, "encryptor", 2); err != nil {
		t.Fatal(err)
	}
	evOut.waitFor(t, "  task_retiring  reason=\"scaled down\" task_id=encryptor.")
	evOut.waitFor(t, "  task_gone  reason=")
	stopEvents()
	if code := <-evCode; code != 0 {
		t.Fatalf("events: exit %d", code)
	}
}
