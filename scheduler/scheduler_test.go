package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPipelineConverges(t *testing.T) {
	h := newHarness(t, 2, nil)
	res := h.submit(pipelineSpec)
	if res.Version != 1 || !res.Changed {
		t.Fatalf("submit: %+v", res)
	}
	h.waitConverged(20 * time.Second)
	ts := h.tasks()
	if len(ts) != 5 {
		t.Fatalf("%d tasks, want 5", len(ts))
	}
	// The feeder's table lists the three encryptors' plaintext in-gates.
	var feeder TaskInfo
	for _, ti := range ts {
		if ti.Service == "feeder" {
			feeder = ti
		}
	}
	m, ok := h.exec.Table(feeder.ID)
	if !ok {
		t.Fatal("feeder got no table")
	}
	peers := m.Snapshot.Out["plaintext"].Peers
	if len(peers) != 3 {
		t.Fatalf("feeder peers %v", peers)
	}
	// Each is an encryptor's address as its agent offered it (with
	// several agents, each agent is a machine of its own: 127.0.0.2, …).
	want := map[string]bool{}
	for _, ti := range ts {
		if ti.Service == "encryptor" {
			want[fmt.Sprintf("tcp://%s:%d", ti.Host, ti.Ports["plaintext"])] = true
		}
	}
	for _, p := range peers {
		if !want[p] || !strings.HasPrefix(p, "tcp://127.0.0.") {
			t.Fatalf("peer %q is not a running encryptor's plaintext gate (%v)", p, want)
		}
	}
}
