package scheduler

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
)

const fanSpec = `
version: 1
services:
  sink:
    command: x
    instances: %d
    cpus: 0.01
    mem: 1
    gates: {in: pull, out: push}
  target-a:
    command: x
    cpus: 0.01
    mem: 1
    gates: {in: pull}
  target-b:
    command: x
    cpus: 0.01
    mem: 1
    gates: {in: pull}
links:
  - {from: sink.out, to: %s.in}
`

// BenchmarkLinkChangeAcked measures one link change reaching n tasks
// (1,000 and 10,000, beside each other): the spec re-points sink.out from
// one running target to another, so every sink task's table changes and
// nothing is launched or killed. The time is from the submission to the
// last executor's acknowledgement (targets: < 1 s at 1,000, < 2 s at
// 10,000). The executors are in-process but speak the executor HTTP API to
// their agents; every MESSAGE goes scheduler → master → agent → executor
// and the ack back, as on Mesos.
func BenchmarkLinkChangeAcked(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) { benchLinkChange(b, n) })
	}
}

func benchLinkChange(b *testing.B, n int) {
	h := newHarness(b, 4, func(lc *localmesos.Config, c *Config) {
		lc.Resources = "cpus:64;mem:1000000;disk:1000;ports:[20000-39999]" // split among the agents: room for 10,000 in-gates
		lc.HeartbeatInterval = 5 * time.Second
	})
	ctx := context.Background()
	launched := time.Now()
	if _, err := h.sched.SubmitSpec(ctx, "fan.yaml", []byte(fmt.Sprintf(fanSpec, n, "target-a")), SubmitOptions{IfMatch: -1}); err != nil {
		b.Fatal(err)
	}
	waitIn(b, h.sched, time.Duration(n/10+60)*time.Second)
	up := time.Since(launched)
	b.Logf("%d tasks running and linked in %s (%.0f tasks/s)", n+2, up.Round(time.Millisecond), float64(n+2)/up.Seconds())

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := []string{"target-b", "target-a"}[i%2]
		start := time.Now()
		if _, err := h.sched.SubmitSpec(ctx, "fan.yaml", []byte(fmt.Sprintf(fanSpec, n, target)), SubmitOptions{IfMatch: -1}); err != nil {
			b.Fatal(err)
		}
		waitIn(b, h.sched, 60*time.Second)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-p50")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
	b.ReportMetric(float64(n+2)/up.Seconds(), "launch-tasks/s")
}

// waitIn polls the scheduler (in-process, no HTTP) until converged.
func waitIn(tb testing.TB, s *Scheduler, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, err := s.Status(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if st.Converged {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	st, _ := s.Status(context.Background())
	tb.Fatalf("not converged within %s: %+v", within, st)
}
