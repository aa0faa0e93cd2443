package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
)

func TestFormatService(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.Local)
	for _, tc := range []struct {
		ss   apitypes.ServiceStatus
		want string
	}{
		{svc("enc", 5, 3, launching(2)), "3/5 running, 2 launching, links 3/3 acked"},
		{svc("enc", 3, 3), "3/3 running, links 3/3 acked, converged"},
		{svc("enc", 3, 3, unacked(2)), "3/3 running, links 1/3 acked"},
		{svc("enc", 0, 0), "0/0 running, converged"},
		{svc("enc", 2, 0, func(ss *apitypes.ServiceStatus) { ss.Pending, ss.Outdated, ss.Retiring = 1, 2, 3 }),
			"0/2 running, 1 pending, 2 to replace, 3 retiring"},
		{svc("bad", 1, 0, failing(1, "bad-1 TASK_FAILED: exit status 1", now.Add(2*time.Second))),
			"0/1 running, 1 failure, crash backoff until 15:04:07; last failure: bad-1 TASK_FAILED: exit status 1"},
		{svc("bad", 1, 1, failing(2, "bad-1 TASK_FAILED", now.Add(-time.Second))),
			"1/1 running, links 1/1 acked, 2 failures, converged; last failure: bad-1 TASK_FAILED"},
	} {
		if got := client.FormatService(tc.ss, now); got != tc.want {
			t.Errorf("FormatService(%+v)\n got %q\nwant %q", tc.ss, got, tc.want)
		}
	}
	if got := client.Summary(status(2, svc("a", 1, 1), svc("b", 2, 2)), 2, now); got != "converged: 2 services, 3 tasks running" {
		t.Errorf("summary %q", got)
	}
	if got := client.Summary(status(1, svc("a", 1, 0)), 2, now); got != "the scheduler is at spec version 1; a 0/1 running" {
		t.Errorf("summary %q", got)
	}
}

func TestElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0.0s", 4200 * time.Millisecond: "4.2s", 3*time.Minute + 5*time.Second: "3m05s", 62 * time.Minute: "1h02m",
	} {
		if got := client.Elapsed(d); got != want {
			t.Errorf("Elapsed(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestProgress(t *testing.T) {
	start := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	now := start
	var out strings.Builder
	p := &client.Progress{W: &out, Version: 2, Now: func() time.Time { return now }}
	step := func(d time.Duration, st apitypes.Status) {
		now = now.Add(d)
		p.Update(st)
	}
	notSub := status(1)
	notSub.Subscribed, notSub.Converged = false, false
	step(0, notSub)
	step(500*time.Millisecond, status(1, svc("feeder", 1, 1), svc("encryptor", 3, 3)))
	step(500*time.Millisecond, status(2, svc("feeder", 1, 1), svc("encryptor", 5, 3, launching(2))))
	step(500*time.Millisecond, status(2, svc("feeder", 1, 1), svc("encryptor", 5, 3, launching(2)))) // no change: silent
	step(9*time.Second, status(2, svc("feeder", 1, 1), svc("encryptor", 5, 3, launching(2))))        // 9.5s since the last line: silent
	step(time.Second, status(2, svc("feeder", 1, 1), svc("encryptor", 5, 3, launching(2))))          // 10.5s: heartbeat
	p.Retry(errors.New("cannot reach the scheduler at http://x: connection refused"))
	p.Retry(errors.New("cannot reach the scheduler at http://x: connection refused"))
	step(time.Second, status(2, svc("encryptor", 5, 5, unacked(2))))
	step(time.Second, status(3, svc("encryptor", 5, 5)))
	want := `[   0.0s] the scheduler is not subscribed to a Mesos master yet
[   0.5s] the scheduler is at spec version 1, not yet 2
[   0.5s] feeder     1/1 running, links 1/1 acked, converged
[   0.5s] encryptor  3/3 running, links 3/3 acked, converged
[   1.0s] encryptor  3/5 running, 2 launching, links 3/3 acked
[  11.5s] still waiting for 1 of 2 services: encryptor
[  11.5s] cannot reach the scheduler at http://x: connection refused; retrying
[  12.5s] feeder     removed
[  12.5s] encryptor  5/5 running, links 3/5 acked
[  13.5s] spec version 3 is current: someone submitted after version 2
[  13.5s] encryptor  5/5 running, links 5/5 acked, converged
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
