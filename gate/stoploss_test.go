package gate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// TestCloseByDeadlineCountsStopDropped: an out-gate with no peer, closed with
// a short deadline, gives up in bounded time (not DrainTimeout) and counts
// what it held as dropped and stop_dropped; the hub keeps the closed gate's
// counters for its reports.
func TestCloseByDeadlineCountsStopDropped(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	h, out, _ := outHub(t, "work", control.Push, Options{DrainTimeout: time.Minute})
	for i := range 3 {
		if err := out.Send(ctx, seqMsg(uint64(i), 8)); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.CloseContext(cctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("CloseContext took %v with a 100ms deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "3 messages undelivered") || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("CloseContext = %v, want 3 undelivered, stopped", err)
	}
	st := h.Status().Gates["work"]
	if st.Dropped != 3 || st.StopDropped != 3 || st.QueueDepth != 0 {
		t.Fatalf("closed gate's counters %+v, want dropped 3, stop_dropped 3", st)
	}
}

// TestStopDeadlineBoundsGateClose: the hub's stop deadline (the executor's,
// with its drain request) bounds Gate.Close too, even one already waiting
// when the deadline is set; with a peer, everything is delivered as before.
func TestStopDeadlineBoundsGateClose(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	h, out, _ := outHub(t, "work", control.Push, Options{DrainTimeout: time.Minute})
	out.Send(ctx, []byte("a"))
	done := make(chan error, 1)
	go func() { done <- out.Close() }()
	time.Sleep(20 * time.Millisecond) // let Close start waiting; either order must work
	h.SetStopDeadline(time.Now().Add(50 * time.Millisecond))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stop deadline") {
			t.Fatalf("Close = %v, want a loss at the stop deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end at the stop deadline")
	}
	if st := out.Stats(); st.StopDropped != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}

	// With a peer the stop deadline changes nothing.
	_, in := inHub(t, "work", control.Pull, fastOpts)
	c := collect(ctx, in, 0)
	h2, out2, gov := outHub(t, "work", control.Push, fastOpts)
	h2.SetStopDeadline(time.Now().Add(10 * time.Second))
	gov.Publish(snap(1, "work", control.Push, in.Addr()))
	for i := range 100 {
		out2.Send(ctx, seqMsg(uint64(i), 8))
	}
	if err := out2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every message", func() bool { return c.count() == 100 })
	if st := out2.Stats(); st.Dropped != 0 || st.StopDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDrainStopReportsDroppedAtStop plays the executor: drain with a stop
// time; a feeder whose out-gate has no peer closes its hub, gives up before
// that time, and its last status (sent before the connection closes) holds
// the loss.
func TestDrainStopReportsDroppedAtStop(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	dir, err := os.MkdirTemp("", "tiltai-gate")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := control.Listen(ctx, filepath.Join(dir, "f.sock"), control.ServerConfig{HeartbeatInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h, err := New(ctx, Config{Logger: testLogger(t), TaskID: "f1", Service: "feeder", Control: srv.Addr(),
		Gates: []control.GateSpec{{Name: "plaintext", Dir: control.Out, Pattern: control.Push}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	out, err := h.Out("plaintext")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		out.Send(ctx, seqMsg(uint64(i), 8))
	}
	const stop = 400 * time.Millisecond
	start := time.Now()
	if err := srv.DrainStop(ctx, 100*time.Millisecond, stop); err != nil {
		t.Fatal(err)
	}
	// The application: drained (no in-gates), so it stops and closes.
	<-h.Draining()
	err = h.Close()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "5 messages undelivered") {
		t.Fatalf("Close = %v", err)
	}
	if took >= stop {
		t.Fatalf("the hub closed %v after the drain request: not before SIGTERM (%v)", took, stop)
	}
	st, err := srv.Wait(ctx, func(s control.State) bool { return !s.Connected })
	if err != nil {
		t.Fatal(err)
	}
	if st.Status == nil || st.Status.Gates["plaintext"].StopDropped != 5 || st.Status.Gates["plaintext"].Dropped != 5 {
		t.Fatalf("the executor's last status %+v, want plaintext stop_dropped 5", st.Status)
	}
}
