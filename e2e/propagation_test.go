package e2e

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
)

var propEvents = flag.Int("e2e.events", 100, "scale events BenchmarkLinkPropagation measures (at least)")

// propSample is one scale event: a new consumer task of a running producer.
type propSample struct {
	Task string
	// Running is from the scheduler's TASK_RUNNING for the new consumer to
	// the consumer's first message from the producer: the whole link
	// propagation (new table, MESSAGE through the master and the agent to
	// the producer's executor, control socket, gate dial, first send).
	Running time.Duration
	// Ready is from the consumer binding its in-gate (it is ready; its
	// executor then reports TASK_RUNNING) to the first message: the above
	// plus the status update's way to the scheduler.
	Ready time.Duration
	// Published is from the TASK_RUNNING to the scheduler publishing the
	// producer's table with the consumer; Applied to the producer's
	// acknowledgement of it (as the scheduler received it).
	Published, Applied time.Duration
}

// TestLinkPropagation runs a few scale events of the propagation benchmark
// and checks their outcome: every new consumer gets messages from the
// existing producer, never before the scheduler saw it running (tables
// name running tasks only), and within seconds (the original Tiltai polled
// every 10 s; the target is p99 < 100 ms, measured by the benchmark).
func TestLinkPropagation(t *testing.T) {
	t.Parallel()
	for _, p := range measurePropagation(t, 3) {
		t.Logf("%s: running → first message %s, ready → first message %s, running → producer applied %s", p.Task, p.Running, p.Ready, p.Applied)
		if p.Running <= 0 || p.Running > 5*time.Second {
			t.Errorf("%s: first message %s after its TASK_RUNNING, want within (0, 5s]", p.Task, p.Running)
		}
	}
}

// BenchmarkLinkPropagation is issue 6's benchmark (a): from a new consumer
// task's TASK_RUNNING to the first message it receives from an existing
// producer (the demo feeder sending 2000 msg/s), over at least -e2e.events
// scale events (consumer 1 → 2, measured, then 2 → 1). Target p99 < 100 ms.
// One op is one scale event.
func BenchmarkLinkPropagation(b *testing.B) {
	n := max(b.N, *propEvents)
	start := time.Now()
	stalls := startStallMeter()
	samples := measurePropagation(b, n)
	stall := stalls.stop()
	elapsed := time.Since(start)
	pick := func(f func(propSample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(samples))
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	running := pick(func(s propSample) time.Duration { return s.Running })
	ready := pick(func(s propSample) time.Duration { return s.Ready })
	applied := pick(func(s propSample) time.Duration { return s.Applied })
	slowest := append([]propSample(nil), samples...)
	sort.Slice(slowest, func(i, j int) bool { return slowest[i].Running > slowest[j].Running })
	for _, p := range slowest[:min(3, len(slowest))] {
		b.Logf("slowest: %s running → first %s, ready → first %s, running → table published %s, → producer applied %s",
			p.Task, p.Running, p.Ready, p.Published, p.Applied)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(len(samples)), "ns/op")
	b.ReportMetric(float64(len(samples)), "events")
	b.ReportMetric(ms(percentile(running, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(running, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(running, 1)), "max-ms")
	b.ReportMetric(ms(percentile(ready, 0.50)), "ready-p50-ms")
	b.ReportMetric(ms(percentile(ready, 0.99)), "ready-p99-ms")
	b.ReportMetric(ms(percentile(applied, 0.50)), "applied-p50-ms")
	b.ReportMetric(ms(percentile(applied, 0.99)), "applied-p99-ms")
	b.ReportMetric(ms(stall), "host-stall-ms")
}

// stallMeter measures how late this process (which hosts the embedded
// Mesos) gets to run a 5 ms ticker: on a shared machine, a p99 far above
// the p50 comes with a stall of about its size, which says where the time
// went.
type stallMeter struct {
	done chan struct{}
	max  chan time.Duration
}

func startStallMeter() *stallMeter {
	m := &stallMeter{done: make(chan struct{}), max: make(chan time.Duration, 1)}
	go func() {
		const tick = 5 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		var worst time.Duration
		last := time.Now()
		for {
			select {
			case <-m.done:
				m.max <- worst
				return
			case now := <-t.C:
				worst = max(worst, now.Sub(last)-tick)
				last = now
			}
		}
	}()
	return m
}

// stop returns the longest delay beyond the tick.
func (m *stallMeter) stop() time.Duration {
	close(m.done)
	return <-m.max
}

// percentile is the nearest-rank percentile (p in (0, 1]).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// measurePropagation runs a producer (the demo feeder) and one consumer
// (this test binary as a probe service, which reports when it bound its
// in-gate and when its first message came), then n times scales the
// consumer to 2, measures the new task, and scales it back to 1.
func measurePropagation(tb testing.TB, n int) []propSample {
	tb.Helper()
	probe, err := probeBinary()
	if err != nil {
		tb.Fatalf("cannot copy the test binary to run as a probe: %v", err)
	}
	s := newSystem(tb)
	out := filepath.Join(s.dir, "reports")
	if err := os.MkdirAll(out, 0o755); err != nil {
		tb.Fatal(err)
	}
	s.startScheduler()
	events := s.watchEvents()
	res := s.submit(fmt.Sprintf(`version: 1
services:
  producer:
    command: tiltai
    args: [demo, feeder, --rate, 2000, --size, 16, --log-level, warn]
    cpus: 0.05
    mem: 32
    gates:
      plaintext: push
  consumer:
    command: %s
    env:
      %s: consumer
      %s: %s
    cpus: 0.05
    mem: 64
    kill_grace_period: 10s
    gates:
      plaintext: pull
links:
  - from: producer.plaintext
    to: consumer.plaintext
`, probe, probeRoleEnv, probeOutEnv, out))
	s.converge(res.Version, 2*time.Minute)
	producer := s.running("producer")[0]

	var samples []propSample
	for range n {
		from := len(events.all())
		s.scale("consumer", 2)
		planned, _ := events.wait(tb, time.Minute, "a new consumer", from, isEvent("task_planned", "service", "consumer"))
		id := evStr(planned, "task_id")
		running, _ := events.wait(tb, 2*time.Minute, id+" running", from, isEvent("task_running", "task_id", id))
		ep := evEndpoint(running, "plaintext")
		table, _ := events.wait(tb, time.Minute, "the producer's table with "+id, from, func(ev scheduler.Event) bool {
			return isEvent("links_published", "service", "producer")(ev) && contains(evPeers(ev, "plaintext"), ep)
		})
		applied, _ := events.wait(tb, time.Minute, "the producer to apply the table with "+id, from, func(ev scheduler.Event) bool {
			return isEvent("links_acked", "task_id", producer.ID)(ev) && evNum(ev, "version") >= evNum(table, "version")
		})
		var rep probeReport
		s.waitFor(time.Minute, id+"'s first message", func() (bool, string) {
			b, err := os.ReadFile(filepath.Join(out, id+".json"))
			if errors.Is(err, os.ErrNotExist) {
				return false, "no report yet"
			}
			if err != nil {
				return false, err.Error()
			}
			return json.Unmarshal(b, &rep) == nil, string(b)
		})
		if rep.Origin != producer.ID {
			tb.Errorf("%s's first message came from %q, want the producer %s", id, rep.Origin, producer.ID)
		}
		samples = append(samples, propSample{
			Task: id, Running: rep.First.Sub(running.Time), Ready: rep.First.Sub(rep.Bound),
			Published: table.Time.Sub(running.Time), Applied: applied.Time.Sub(running.Time),
		})
		s.converge(s.scale("consumer", 1).Version, 2*time.Minute)
	}
	return samples
}
