package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// TestLogs reads a task's sandbox stdout through the real scheduler and
// the embedded Mesos agent's /files/read: the last lines, all of them,
// none; --follow printing what is written later until Ctrl-C; the token
// required; an unknown task refused.
func TestLogs(t *testing.T) {
	cl := clienttest.StartCluster(t, clienttest.ClusterConfig{Agents: 2, Token: "s3cret", OpenReads: true})
	t.Setenv("TILTAI_SCHEDULER", cl.URL)
	t.Setenv("TILTAI_TOKEN", "s3cret")
	if code, _, errs := runCLI(t, "", "links", "submit", "--poll-interval", "50ms", "--timeout", "1m", pipelineFile); code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errs)
	}
	// The light executors log one line when they subscribe and one per
	// link table they apply.
	var feeder string
	code, out, _ := runCLI(t, "", "ps")
	if m := regexp.MustCompile(`(?m)^(feeder\.\d+)\s`).FindStringSubmatch(out); code == 0 && m != nil {
		feeder = m[1]
	} else {
		t.Fatalf("ps: exit %d\n%s", code, out)
	}
	code, out, errs := runCLI(t, "", "logs", feeder)
	if code != 0 || !strings.HasPrefix(out, "light executor tiltai-executor."+feeder+" subscribed\n") || !strings.Contains(out, "\napplied link table version ") {
		t.Fatalf("logs: exit %d\nstdout %q\nstderr %s", code, out, errs)
	}
	all := out
	if code, out, _ := runCLI(t, "", "logs", "-n", "1", feeder); code != 0 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(all, out) {
		t.Errorf("logs -n 1: exit %d %q (all: %q)", code, out, all)
	}
	if code, out, _ := runCLI(t, "", "logs", "--lines", "0", feeder); code != 0 || out != "" {
		t.Errorf("logs --lines 0: exit %d %q", code, out)
	}

	// --follow prints a new table's line (scaling the encryptors changes
	// the feeder's table) and stops on Ctrl-C without an error.
	ctx, cancel := context.WithCancel(context.Background())
	fout, ferr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tiltai", "logs", "--follow", "--interval", "50ms", "--lines", "0", feeder}, strings.NewReader(""), fout, ferr)
	}()
	// (Not through the CLI: urfave/cli's commands share state, so two
	// cannot run at once in one process.)
	if _, err := cl.Scheduler.Scale(context.Background(), "encryptor", 4, scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(fout.String(), "applied link table version") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || !strings.HasPrefix(fout.String(), "applied link table version ") {
		t.Errorf("logs --follow: exit %d\nstdout %q\nstderr %s", code, fout.String(), ferr.String())
	}

	t.Setenv("TILTAI_TOKEN", "")
	if code, _, errs := runCLI(t, "", "logs", feeder); code == 0 || !strings.Contains(errs, "need the scheduler's token") {
		t.Errorf("without the token: exit %d %s", code, errs)
	}
	t.Setenv("TILTAI_TOKEN", "s3cret")
	if code, _, errs := runCLI(t, "", "logs", "nosuch.1"); code != exitFailed || !strings.Contains(errs, `no task "nosuch.1"`) {
		t.Errorf("unknown task: exit %d %s", code, errs)
	}
}
