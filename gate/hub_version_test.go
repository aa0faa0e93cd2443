package gate

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// rejections records the versions a hub logs as rejected.
type rejections struct {
	mu       sync.Mutex
	versions []uint64
}

func (r *rejections) Enabled(context.Context, slog.Level) bool { return true }
func (r *rejections) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *rejections) WithGroup(string) slog.Handler            { return r }
func (r *rejections) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "rejecting link snapshot" {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "version" {
			r.mu.Lock()
			r.versions = append(r.versions, a.Value.Uint64())
			r.mu.Unlock()
		}
		return true
	})
	return nil
}

func (r *rejections) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.versions)
}

// TestHubRefusesOlderSnapshots checks docs/reliability.md F7 at the gate
// itself, behind the executor's and the control server's filtering: a hub
// given a snapshot whose version is not above the one it applied refuses it
// (equal or lower), keeps routing by the applied one, and takes the next
// higher version.
func TestHubRefusesOlderSnapshots(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, a := inHub(t, "w", control.Pull, fastOpts)
	_, b := inHub(t, "w", control.Pull, fastOpts)
	rej := &rejections{}
	mem := NewMemory()
	h, err := New(context.Background(), Config{Logger: slog.New(rej), Governor: mem, Options: fastOpts,
		Gates: []control.GateSpec{{Name: "out", Dir: control.Out, Pattern: control.Push}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	out, err := h.Out("out")
	if err != nil {
		t.Fatal(err)
	}
	mem.Publish(snap(5, "out", control.Push, a.Addr()))
	if err := mem.WaitApplied(ctx, 5); err != nil {
		t.Fatal(err)
	}
	mem.Publish(snap(5, "out", control.Push, b.Addr()))
	mem.Publish(snap(4, "out", control.Push, b.Addr()))
	waitFor(t, 10*time.Second, "versions 5 and 4 rejected", func() bool { return rej.count() == 2 })
	if got := h.Status().Applied; got != 5 {
		t.Fatalf("applied %d after the refusals, want 5", got)
	}
	const n = 50
	for i := range uint64(n) {
		if err := out.Send(ctx, seqMsg(i, 8)); err != nil {
			t.Fatal(err)
		}
	}
	ca := collect(ctx, a, 0)
	waitFor(t, 10*time.Second, "every message at the applied version's peer", func() bool { return ca.count() == n })
	if got := b.Stats().Received; got != 0 {
		t.Fatalf("the refused versions' peer received %d messages", got)
	}

	mem.Publish(snap(6, "out", control.Push, b.Addr()))
	if err := mem.WaitApplied(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if err := out.Send(ctx, seqMsg(n, 8)); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(ctx); err != nil || len(m) != 1 {
		t.Fatalf("version 6's peer: %q, %v", m, err)
	}
	rej.mu.Lock()
	defer rej.mu.Unlock()
	if len(rej.versions) != 2 || rej.versions[0] != 5 || rej.versions[1] != 4 {
		t.Errorf("rejected versions %v, want [5 4]", rej.versions)
	}
}
