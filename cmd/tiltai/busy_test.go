package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// TestWriteRetriesBusy: links submit and scale retry a scheduler that
// answers 503 (its parse slots full), say so on stderr, give up with a
// clear message, and stop on Ctrl-C.
func TestWriteRetriesBusy(t *testing.T) {
	saved := busyRetry
	t.Cleanup(func() { busyRetry = saved })

	tests := []struct {
		name     string
		retry    client.BusyRetry
		busy     int
		args     []string
		wantCode int
		wantOut  string
		wantErrs []string
		version  int
	}{
		{
			name: "submit retried", retry: client.BusyRetry{MaxRetryAfter: 5 * time.Millisecond}, busy: 2,
			args: []string{"links", "submit", "--wait=false", pipelineFile}, wantCode: 0, wantOut: "spec version 2 accepted\n",
			wantErrs: []string{
				"tiltai links submit: scheduler busy, retrying in 5ms (attempt 2 of 8)\n",
				"tiltai links submit: scheduler busy, retrying in 5ms (attempt 3 of 8)\n",
			},
			version: 2,
		},
		{
			name: "scale retried", retry: client.BusyRetry{MaxRetryAfter: 5 * time.Millisecond}, busy: 1,
			args: []string{"scale", "--wait=false", "encryptor", "4"}, wantCode: 0, wantOut: "spec version 2 accepted\n",
			wantErrs: []string{"tiltai scale: scheduler busy, retrying in 5ms (attempt 2 of 8)\n"},
			version:  2,
		},
		{
			name: "gives up", retry: client.BusyRetry{Attempts: 3, MaxRetryAfter: time.Millisecond}, busy: 5,
			args: []string{"scale", "--wait=false", "encryptor", "4"}, wantCode: exitUnreachable,
			wantErrs: []string{
				"tiltai scale: scheduler busy, retrying in 1ms (attempt 3 of 3)\n",
				"tiltai scale: cannot scale encryptor: the scheduler was still busy after 3 attempts in ",
				"nothing was changed, try again later (the last answer: the scheduler is busy checking other specs; retry in a second (HTTP 503 from POST /v1/services/encryptor/scale))\n",
			},
			version: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, clienttest.FakeConfig{})
			busyRetry = tt.retry
			if code, _, errs := runCLI(t, "", "links", "submit", "--wait=false", "--scheduler", f.URL, "../../examples/pipeline.yaml"); code != 0 {
				t.Fatalf("first submit: exit %d: %s", code, errs)
			}
			// The second submit must change something to get a version.
			if tt.args[0] == "links" {
				tt.args[len(tt.args)-1] = writeFile(t, "v2.yaml", strings.Replace(readFile(t, pipelineFile), "instances: 3", "instances: 4", 1))
			}
			f.Busy(tt.busy, time.Second)
			code, out, errs := runCLI(t, "", append(tt.args, "--scheduler", f.URL)...)
			if code != tt.wantCode || !strings.HasSuffix(out, tt.wantOut) || f.Version() != tt.version {
				t.Fatalf("exit %d (want %d), spec version %d (want %d)\nstdout %s\nstderr %s", code, tt.wantCode, f.Version(), tt.version, out, errs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
		})
	}

	t.Run("Ctrl-C stops the retry", func(t *testing.T) {
		busyRetry = client.BusyRetry{}
		f := newFake(t, clienttest.FakeConfig{})
		f.Busy(10, 20*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		run, interrupt := context.WithCancel(ctx)
		defer interrupt()
		start := time.Now()
		_, errs, code := runAsync(run, "links", "submit", "--scheduler", f.URL, pipelineFile)
		errs.waitFor(t, "tiltai links submit: scheduler busy, retrying in 20s (attempt 2 of 8)\n")
		interrupt()
		select {
		case c := <-code:
			if c != exitInterrupted || !strings.Contains(errs.String(), "tiltai links submit: cannot submit ") ||
				!strings.Contains(errs.String(), ": interrupted\n") || f.Version() != 0 {
				t.Fatalf("exit %d, spec version %d\n%s", c, f.Version(), errs.String())
			}
		case <-ctx.Done():
			t.Fatalf("still retrying after Ctrl-C:\n%s", errs.String())
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Ctrl-C took effect after %s", d)
		}
	})
}
