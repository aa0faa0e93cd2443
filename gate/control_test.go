package gate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// TestHubOverControlSocket plays the executor (control.Server) against two
// hubs (feeder: out push; worker: in pull) as the executor and scheduler
// would: readiness after binding, snapshot → applied, heartbeats with gate
// and application counters, then a planned drain with zero loss.
func TestHubOverControlSocket(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	dir, err := os.MkdirTemp("", "tiltai-gate")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srvCfg := control.ServerConfig{HeartbeatInterval: 20 * time.Millisecond}
	workerSrv, err := control.Listen(ctx, filepath.Join(dir, "w.sock"), srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer workerSrv.Close()
	feederSrv, err := control.Listen(ctx, filepath.Join(dir, "f.sock"), srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer feederSrv.Close()

	// The executor's environment, parsed as a service would.
	wenv, err := control.ParseEnv(control.Env{Control: workerSrv.Addr(), TaskID: "w1", Service: "worker",
		Gates: []control.GateSpec{{Name: "plaintext", Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"}}}.Environ())
	if err != nil {
		t.Fatal(err)
	}
	worker, err := New(ctx, Config{Logger: testLogger(t), TaskID: wenv.TaskID, Service: wenv.Service, Gates: wenv.Gates, Control: wenv.Control})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	if _, err := workerSrv.Wait(ctx, func(s control.State) bool { return s.Connected }); err != nil {
		t.Fatal(err)
	}
	if workerSrv.State().Ready {
		t.Fatal("ready before the in-gate is bound")
	}
	in, err := worker.In("plaintext")
	if err != nil {
		t.Fatal(err)
	}
	st, err := workerSrv.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hello.TaskID != "w1" {
		t.Fatalf("hello %+v", st.Hello)
	}
	if _, err := workerSrv.Wait(ctx, func(s control.State) bool { return len(s.Gates) == 1 && s.Gates[0].Bound == in.Addr() }); err != nil {
		t.Fatal(err)
	}

	feeder, err := New(ctx, Config{Logger: testLogger(t), TaskID: "f1", Service: "feeder", Control: feederSrv.Addr(),
		Gates: []control.GateSpec{{Name: "plaintext", Dir: control.Out, Pattern: control.Push}}})
	if err != nil {
		t.Fatal(err)
	}
	defer feeder.Close()
	if _, err := feederSrv.WaitReady(ctx); err != nil {
		t.Fatal("a service without in-gates is ready at once:", err)
	}
	out, err := feeder.Out("plaintext")
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot with a wrong pattern is rejected, not applied.
	if err := feederSrv.Push(snap(1, "plaintext", control.Pub, in.Addr())); err != nil {
		t.Fatal(err)
	}
	if _, err := feederSrv.WaitApplied(ctx, 1); err == nil {
		t.Fatal("snapshot with a wrong pattern was applied")
	}
	if err := feederSrv.Push(snap(2, "plaintext", control.Push, in.Addr())); err != nil {
		t.Fatal(err)
	}
	if _, err := feederSrv.WaitApplied(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c := collect(ctx, in, 0)
	const n = 1000
	for i := range uint64(n) {
		if err := out.Send(ctx, seqMsg(i, 16)); err != nil {
			t.Fatal(err)
		}
	}
	worker.SetCounter("seen", 1)
	if _, err := workerSrv.Wait(ctx, func(s control.State) bool {
		return s.Status != nil && s.Status.Gates["plaintext"].Received == n && s.Status.App["seen"] == 1
	}); err != nil {
		t.Fatal("heartbeat never showed the counters:", err)
	}
	if _, err := feederSrv.Wait(ctx, func(s control.State) bool {
		return s.Status != nil && s.Status.Gates["plaintext"].Sent == n && s.Status.Applied == 2
	}); err != nil {
		t.Fatal(err)
	}

	// Planned removal: upstream first (v3 without the worker), then drain.
	if err := feederSrv.Push(control.Snapshot{Version: 3, Out: map[string]control.OutLink{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := feederSrv.WaitApplied(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := workerSrv.Drain(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-worker.Draining():
	default:
		t.Fatal("Draining not closed")
	}
	c.wg.Wait() // Recv returned ErrDrained
	if c.count() != n {
		t.Fatalf("received %d of %d", c.count(), n)
	}
	if _, err := in.Recv(ctx); !errors.Is(err, ErrDrained) {
		t.Fatalf("Recv after drain = %v", err)
	}
}

func TestHubRejectsBadConfig(t *testing.T) {
	_, err := New(context.Background(), Config{Gates: []control.GateSpec{
		{Name: "a", Dir: control.In, Pattern: control.Push},
		{Name: "a", Dir: control.Out, Pattern: control.Push},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	h, err := New(context.Background(), Config{Gates: []control.GateSpec{{Name: "a", Dir: control.Out, Pattern: control.Push}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.In("a"); err == nil {
		t.Error("opened an out-gate as in")
	}
	if _, err := h.Out("b"); err == nil {
		t.Error("opened an undeclared gate")
	}
	if err := h.SetCounter("bad name", 1); err == nil {
		t.Error("bad counter name accepted")
	}
}

// TestDrainedReportedBeforeClose: a service whose in-gate runs dry closes
// its hub at once, racing the hub's own report of "drained" to the
// executor. The report must still go out before the control connection
// closes: else the executor waits for it until its grace period ends (a
// drain taken for a hang). The hook widens the window the race needs.
func TestDrainedReportedBeforeClose(t *testing.T) {
	testHookBeforeDrained = func() { time.Sleep(20 * time.Millisecond) }
	t.Cleanup(func() { testHookBeforeDrained = nil })
	dir := t.TempDir()
	for i := range 3 {
		ctx := ctxT(t, 20*time.Second)
		srv, err := control.Listen(ctx, filepath.Join(dir, "s.sock"), control.ServerConfig{HeartbeatInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(ctx, Config{Logger: testLogger(t), TaskID: "w1", Service: "worker", Control: srv.Addr(),
			Gates: []control.GateSpec{{Name: "in", Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"}}})
		if err != nil {
			t.Fatal(err)
		}
		in, err := h.In("in")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		drained := make(chan error, 1)
		go func() { drained <- srv.Drain(ctx, 10*time.Second) }()
		if _, err := in.Recv(ctx); !errors.Is(err, ErrDrained) {
			t.Fatalf("round %d: Recv: %v, want ErrDrained", i, err)
		}
		h.Close()
		if err := <-drained; err != nil {
			t.Fatalf("round %d: drained never reported: %v", i, err)
		}
		srv.Close()
	}
}

// TestHubRefusesUndeclaredOutGate: a snapshot that names an out-gate the
// service does not declare is rejected with the executor's own words (which
// gate, which version), not skipped with a warning only the service's log
// shows.
func TestHubRefusesUndeclaredOutGate(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	srv, err := control.Listen(ctx, filepath.Join(t.TempDir(), "f.sock"), control.ServerConfig{HeartbeatInterval: 20 * time.Millisecond})
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
	if _, err := h.Out("plaintext"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s := control.Snapshot{Version: 1, Out: map[string]control.OutLink{
		"plaintext": {Pattern: control.Push, Peers: []string{"tcp://127.0.0.1:1"}},
		"audit":     {Pattern: control.Push, Peers: []string{"tcp://127.0.0.1:2"}},
	}}
	if err := srv.Push(s); err != nil {
		t.Fatal(err)
	}
	_, err = srv.WaitApplied(ctx, 1)
	if want := `link snapshot 1 does not fit the task: out-gate "audit" is not a gate of this task`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("WaitApplied = %v; want a rejection saying %q", err, want)
	}
	if st := h.Status(); st.Applied != 0 {
		t.Fatalf("the refused snapshot was applied: version %d", st.Applied)
	}
}
