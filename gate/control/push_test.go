package control

import (
	"errors"
	"testing"
	"time"
)

// TestPushRefusesStaleVersions checks docs/reliability.md F7 at the control
// server: Push refuses a version equal to or below the last pushed with
// ErrStaleVersion, and the service receives only the versions pushed in
// order.
func TestPushRefusesStaleVersions(t *testing.T) {
	ctx := testCtx(t)
	srv, err := Listen(ctx, sockPath(t), ServerConfig{HeartbeatInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := NewClient(ctx, ClientConfig{Addr: srv.Addr(), TaskID: "t1", Service: "feeder"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cli.SetGates([]GateInfo{{Name: "out", Dir: Out, Pattern: Push}})
	cli.Ready()
	if _, err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	snap := func(v uint64, peer string) Snapshot {
		return Snapshot{Version: v, Out: map[string]OutLink{"out": {Pattern: Push, Peers: []string{peer}}}}
	}
	for _, c := range []struct {
		v     uint64
		stale bool
	}{{5, false}, {5, true}, {3, true}, {1, true}, {6, false}, {6, true}} {
		err := srv.Push(snap(c.v, "tcp://127.0.0.1:1"))
		if c.stale != errors.Is(err, ErrStaleVersion) || (!c.stale && err != nil) {
			t.Errorf("Push(%d) = %v, want stale=%v", c.v, err, c.stale)
		}
	}
	if got := srv.State().Pushed; got != 6 {
		t.Errorf("State().Pushed = %d after refusals, want 6", got)
	}
	// The service sees 5 then 6 (or 6 alone if it read late), never a
	// refused version.
	var got []uint64
	for len(got) == 0 || got[len(got)-1] != 6 {
		select {
		case s := <-cli.Snapshots():
			got = append(got, s.Version)
			if s.Version != 5 && s.Version != 6 {
				t.Fatalf("service received version %d (got %v)", s.Version, got)
			}
		case <-ctx.Done():
			t.Fatalf("version 6 never reached the service (got %v)", got)
		}
	}
	cli.Applied(6)
	if _, err := srv.WaitApplied(ctx, 6); err != nil {
		t.Fatal(err)
	}
}
