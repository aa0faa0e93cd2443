package e2e

import (
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
)

// TestPlannedChangesLoseNothing is docs/reliability.md F15: while the feeder
// sends steadily, the encryptors are replaced by a rolling update (their
// args change), scaled 3 → 10, then 10 → 1. Planned changes drain first
// (every retired task leaves the feeder's table, and the feeder has applied
// that, before it is killed), so nothing may be lost: at the end every
// message the feeder sent has reached the printer. docs/gates.md allows a
// duplicate only when a connection breaks between a batch's arrival and its
// acknowledgement, or when a drain outlasts its deadline (both counted as
// `rerouted`); neither happens in a planned change, so there must be none.
func TestPlannedChangesLoseNothing(t *testing.T) {
	t.Parallel()
	plannedChanges(t, pipeline{Rate: 400, Encryptors: 3})
}

// plannedChanges runs TestPlannedChangesLoseNothing's scenario on p.
func plannedChanges(t *testing.T, p pipeline) {
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	s.converge(s.submit(p.spec()).Version, 2*time.Minute)
	feeder := s.running("feeder")[0]
	first := ids(s.running("encryptor"))

	// Rolling replacement: a new argument is a new definition.
	p.EncryptorArgs = []string{"--log-level", "warn"}
	s.waitEncryptors(s.submit(p.spec()), 3)
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
	if tl.Sent < uint64(p.Rate) {
		t.Errorf("the feeder sent only %d messages", tl.Sent)
	}
	if tl.Lost != 0 || tl.Missing != 0 {
		t.Errorf("planned changes lost %d messages (%d gaps); want none", tl.Lost, tl.Missing)
	}
	if tl.Duplicates != 0 || rerouted != 0 {
		t.Errorf("planned changes caused %d duplicates and %d re-routed messages; want none", tl.Duplicates, rerouted)
	}
}

// BenchmarkScaleCycle measures the messages lost over scale cycles
// (encryptors 3 → 10 → 1 → 3) under steady traffic (400 msg/s): issue 6's
// benchmark (c), target 0. One op is one cycle.
func BenchmarkScaleCycle(b *testing.B) {
	const rate = 400
	s := newSystem(b)
	s.startScheduler()
	events := s.watchEvents()
	s.converge(s.submit(pipeline{Rate: rate, Encryptors: 3}.spec()).Version, 2*time.Minute)
	feeder := s.running("feeder")[0]
	b.ResetTimer()
	for range b.N {
		for _, n := range []int{10, 1, 3} {
			s.waitEncryptors(s.scale("encryptor", n), n)
		}
	}
	b.StopTimer()
	checkDrainedFirst(b, events, feeder.ID)
	rerouted := s.nextReport(feeder).Gates["plaintext"].Rerouted
	tl := s.stopFeeder()
	n := float64(b.N)
	b.ReportMetric(float64(tl.Lost)/n, "lost/cycle")
	b.ReportMetric(float64(tl.Duplicates)/n, "dups/cycle")
	b.ReportMetric(float64(rerouted)/n, "rerouted/cycle")
	b.ReportMetric(float64(tl.Sent)/n, "msgs/cycle")
	if tl.Lost != 0 || tl.Duplicates != 0 {
		b.Errorf("%d cycles: sent %d, lost %d, duplicates %d", b.N, tl.Sent, tl.Lost, tl.Duplicates)
	}
}

// waitEncryptors waits until the system has converged on the change, and
// checks it runs n encryptors.
func (s *system) waitEncryptors(res scheduler.SubmitResult, n int) {
	s.tb.Helper()
	st := s.converge(res.Version, 2*time.Minute)
	if enc := serviceStatus(st, "encryptor"); enc.Wanted != n || enc.Running != n {
		s.tb.Fatalf("converged on version %d with encryptors %+v, want %d running", res.Version, enc, n)
	}
}

func ids(ts []scheduler.TaskInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// checkDrainedFirst checks the order of every planned removal of an
// encryptor in the event log: before its KILL, the feeder had applied a table
// without its endpoint (a planned removal drains first: docs/reliability.md F15).
func checkDrainedFirst(tb testing.TB, events *eventLog, feederID string) {
	tb.Helper()
	evs := events.all()
	endpoints := map[string]string{} // task → its in-gate endpoint
	tables := map[uint64][]string{}  // feeder table version → its peers
	var applied uint64               // the feeder's latest acknowledged version
	kills := 0
	for _, ev := range evs {
		switch {
		case ev.Type == "dropped":
			tb.Fatalf("the event stream dropped events")
		case ev.Type == "task_running":
			if ports, _ := ev.Data["ports"].(map[string]any); ports["plaintext"] != nil {
				endpoints[evStr(ev, "task_id")] = evEndpoint(ev, "plaintext")
			}
		case isEvent("links_published", "service", "feeder")(ev):
			tables[evNum(ev, "version")] = evPeers(ev, "plaintext")
		case isEvent("links_acked", "task_id", feederID)(ev):
			applied = evNum(ev, "version")
		case ev.Type == "task_killing":
			id := evStr(ev, "task_id")
			ep, ok := endpoints[id]
			if !ok {
				continue // not an encryptor, or never ran
			}
			kills++
			if peers, known := tables[applied]; !known || contains(peers, ep) {
				tb.Errorf("%s (%s) was killed (%s) while the feeder's applied table (version %d) still had it: %v",
					id, ep, evStr(ev, "reason"), applied, peers)
			}
		}
	}
	if kills == 0 {
		tb.Errorf("no encryptor was killed: the scenario did not run")
	}
}
