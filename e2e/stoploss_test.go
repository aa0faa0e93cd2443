package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// stopLossSpec is the demo pipeline with one encryptor. The feeder's grace
// period is short so that its stop deadline comes soon.
const stopLossSpec = `version: 1
services:
  feeder:
    command: tiltai
    args: [demo, feeder, --rate, 100, --size, 64]
    cpus: 0.05
    mem: 32
    kill_grace_period: 3s
    gates:
      plaintext: push
  encryptor:
    command: tiltai
    args: [demo, encryptor]
    cpus: 0.05
    mem: 32
    gates:
      plaintext: pull
      ciphertext: push
  printer:
    command: tiltai
    args: [demo, printer, --report, 200ms]
    cpus: 0.05
    mem: 32
    gates:
      ciphertext: pull
links:
  - from: feeder.plaintext
    to: encryptor.plaintext
  - from: encryptor.ciphertext
    to: printer.ciphertext
`

var stopDroppedRE = regexp.MustCompile(`its gates dropped (\d+) messages? at stop \(no peer took (?:it|them) before the deadline: plaintext (\d+)\)`)

// TestStoppedSenderLossCounted is docs/gates.md's "a sending service stopped
// whose gate has no peer running before its stop deadline": the only
// encryptor is scaled to 0 (planned: the feeder drains towards it first and
// it delivers to the printer, so nothing is lost there), the feeder keeps
// queueing with no peer, then it is stopped. It gives up on its queue at the stop deadline, before SIGTERM, and
// the loss is counted: in its TASK_KILLED message, in the scheduler's
// tiltai_gate_ended_dropped_total, and exactly what the printer never got
// (sent = received by the printer + dropped at stop).
func TestStoppedSenderLossCounted(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	s.converge(s.submit(stopLossSpec).Version, 2*time.Minute)
	feeder, encryptor := s.running("feeder")[0], s.running("encryptor")[0]
	feederBox, err := s.sandbox(feeder.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.waitFor(time.Minute, "the printer to receive", func() (bool, string) {
		pc, _, err := s.printerCounters()
		return err == nil && pc.Received > 0, fmt.Sprint(pc, err)
	})

	s.converge(s.scale("encryptor", 0).Version, time.Minute)
	s.waitFor(time.Minute, "the encryptor to stop", func() (bool, string) {
		_, ok := s.task(encryptor.ID)
		return !ok, ""
	})
	s.waitFor(time.Minute, "the feeder to queue with no peer", func() (bool, string) {
		r := s.nextReport(feeder)
		g := r.Gates["plaintext"]
		return g.QueueDepth > 0 && g.Peers == 0, fmt.Sprintf("%+v", g)
	})

	from := len(events.all())
	start := time.Now()
	s.scale("feeder", 0)
	gone, _ := events.wait(t, time.Minute, "task_gone "+feeder.ID, from, isEvent("task_gone", "task_id", feeder.ID))
	reason := evStr(gone, "reason")
	t.Logf("the feeder ended %v after its scale-down: %s", time.Since(start).Round(time.Millisecond), reason)
	m := stopDroppedRE.FindStringSubmatch(reason)
	if m == nil {
		t.Fatalf("the feeder's end does not say what its gates dropped at stop: %q", reason)
	}
	dropped, _ := strconv.ParseUint(m[1], 10, 64)
	if !regexp.MustCompile(`^TASK_KILLED: .*service drained and exited`).MatchString(reason) {
		t.Errorf("the feeder did not exit by itself before SIGTERM: %q", reason)
	}

	// End to end: what the printer got and what the feeder dropped are
	// what it sent.
	logb, err := os.ReadFile(filepath.Join(feederBox, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	sm := feederSentRE.FindSubmatch(logb)
	if sm == nil {
		t.Fatalf("the feeder's log has no final count:\n%s", tail(logb, 20))
	}
	sent, _ := strconv.ParseUint(string(sm[1]), 10, 64)
	var pc printerCounts
	s.waitFor(30*time.Second, "the printer's report", func() (bool, string) {
		pc, _, err = s.printerCounters()
		return err == nil && pc.Received+dropped >= sent, fmt.Sprint(pc, err)
	})
	t.Logf("sent %d, the printer received %d (missing %d, duplicates %d), dropped at stop %d", sent, pc.Received, pc.Missing, pc.Duplicates, dropped)
	if pc.Missing != 0 || pc.Duplicates != 0 {
		t.Errorf("the printer's scale-down lost or duplicated: %+v", pc)
	}
	if pc.Received+dropped != sent {
		t.Errorf("received %d + dropped %d != sent %d: a loss is not counted", pc.Received, dropped, sent)
	}

	key := `tiltai_gate_ended_dropped_total{gate="plaintext",service="feeder"}`
	s.waitFor(30*time.Second, key, func() (bool, string) {
		mt, err := s.metrics()
		return err == nil && mt[key] == float64(dropped), fmt.Sprint(mt[key], err)
	})
}
