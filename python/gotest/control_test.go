package gotest

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate"
	"github.com/tiltai/tiltai/gate/control"
)

// TestControlConformance runs the Python encryptor under the executor's
// control server (gate/control.Server), as the Tiltai executor does: hello
// with its gates, ready once its in-gate is bound on the assigned port,
// snapshots applied in order, "applied" only after a removed peer drained,
// heartbeats with gate and application counters, and drain on request, after
// which it exits by itself.
func TestControlConformance(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	srv, err := control.Listen(ctx, filepath.Join(t.TempDir(), "control.sock"), control.ServerConfig{HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := freePort(t)
	env := control.Env{
		Control: srv.Addr(), TaskID: "encryptor.7", Service: "encryptor",
		Gates: []control.GateSpec{
			{Name: "ciphertext", Dir: control.Out, Pattern: control.Push},
			{Name: "plaintext", Dir: control.In, Pattern: control.Pull, Bind: fmt.Sprintf("tcp://127.0.0.1:%d", port)},
		},
	}
	py := startPython(t, env.Environ(), "-m", "tiltai.demo", "encryptor")

	st, err := srv.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hello.TaskID != "encryptor.7" || st.Hello.Service != "encryptor" || st.Hello.Protocol != 1 {
		t.Errorf("hello %+v", st.Hello)
	}
	bound := ""
	for _, g := range st.Gates {
		if g.Name == "plaintext" {
			bound = g.Bound
		}
	}
	if want := fmt.Sprintf("tcp://127.0.0.1:%d", port); bound != want {
		t.Fatalf("gates %+v: plaintext bound at %q, want %q", st.Gates, bound, want)
	}

	_, printer1 := goHub(t, control.GateSpec{Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"})
	_, printer2 := goHub(t, control.GateSpec{Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"})
	_, feeder := goHub(t, control.GateSpec{Dir: control.Out, Pattern: control.Push, Peers: []string{bound}})

	snap := func(v uint64, peers ...string) {
		t.Helper()
		s := control.Snapshot{Version: v, Out: map[string]control.OutLink{"ciphertext": {Pattern: control.Push, Peers: peers}}}.Normalize()
		if err := srv.Push(s); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WaitApplied(ctx, v); err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
	}
	snap(1, printer1.Addr())
	const n = 3000
	for i := range n {
		if err := feeder.SendMsg(ctx, demoMsg("feeder.1", uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	checkHashed(t, ctx, printer1, "feeder.1", n)

	// Move to printer2 under traffic: applied 3 means printer1 has
	// acknowledged everything sent to it.
	var mu sync.Mutex
	seen, dups := map[uint64]bool{}, 0
	for _, p := range []*gate.Gate{printer1, printer2} {
		go func() {
			for {
				m, err := p.Recv(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				seq := binary.BigEndian.Uint64(m[1])
				if seen[seq] {
					dups++
				}
				seen[seq] = true
				mu.Unlock()
			}
		}()
	}
	snap(2, printer1.Addr(), printer2.Addr())
	go func() {
		for i := n; i < 2*n; i++ {
			feeder.SendMsg(ctx, demoMsg("feeder.1", uint64(i)))
		}
	}()
	snap(3, printer2.Addr())
	for {
		mu.Lock()
		k, d := len(seen), dups
		mu.Unlock()
		if d > 0 {
			t.Fatalf("%d duplicates after rewiring", d)
		}
		if k == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("received %d of %d after rewiring", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Heartbeats carry the gates' and the application's counters.
	st, err = srv.Wait(ctx, func(s control.State) bool {
		// Counted when queued (hashed) and when written (sent): both settle.
		return s.Status != nil && s.Status.App["encryptor.hashed"] == 2*n && s.Status.Gates["ciphertext"].Sent == 2*n
	})
	if err != nil {
		t.Fatalf("no heartbeat counting %d hashed: %v", 2*n, err)
	}
	pt := st.Status.Gates["plaintext"]
	ct := st.Status.Gates["ciphertext"]
	if pt.Received != 2*n || ct.Sent != 2*n || ct.Dropped != 0 || ct.PeersWanted != 1 || !st.Alive || st.Status.Applied != 3 {
		t.Errorf("status %+v", st.Status)
	}

	// Drain: the feeder (upstream) closes first, as after a snapshot without
	// this task; the service reports drained and exits by itself.
	if err := feeder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Drain(ctx, 10*time.Second); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if err := py.wait(t, 20*time.Second); err != nil {
		t.Fatalf("the python encryptor exited with %v", err)
	}
	if st := srv.State(); st.ProtoErrors != 0 {
		t.Errorf("%d protocol errors, the last: %s", st.ProtoErrors, st.LastError)
	}
}
