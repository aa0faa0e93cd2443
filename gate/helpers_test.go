package gate

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, zmq4Leaks...)
}

// zmq4Leaks are zmq4's own known goroutine leaks, seen only in the interop
// tests that use zmq4 sockets: a PUB socket's writer goroutine survives Close
// (a zmq4 bug), and a socket's accept loop and connection reader can outlive
// Close briefly.
var zmq4Leaks = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"),
	goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*socket).accept"),
	goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*qreader).listen"),
	goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubQReader).listen"),
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TILTAI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var fastOpts = Options{DrainTimeout: 5 * time.Second}

// inHub starts a hub with one in-gate bound on loopback.
func inHub(t testing.TB, name string, p control.Pattern, opt Options) (*Hub, *Gate) {
	t.Helper()
	h, err := New(context.Background(), Config{Logger: testLogger(t), Options: opt,
		Gates: []control.GateSpec{{Name: name, Dir: control.In, Pattern: p, Bind: "tcp://127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	g, err := h.In(name)
	if err != nil {
		t.Fatal(err)
	}
	return h, g
}

// outHub starts a hub with one out-gate governed by a Memory governor.
func outHub(t testing.TB, name string, p control.Pattern, opt Options) (*Hub, *Gate, *Memory) {
	t.Helper()
	mem := NewMemory()
	h, err := New(context.Background(), Config{Logger: testLogger(t), Governor: mem, Options: opt,
		Gates: []control.GateSpec{{Name: name, Dir: control.Out, Pattern: p}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	g, err := h.Out(name)
	if err != nil {
		t.Fatal(err)
	}
	return h, g, mem
}

func snap(v uint64, name string, p control.Pattern, peers ...string) control.Snapshot {
	return control.Snapshot{Version: v, Out: map[string]control.OutLink{name: {Pattern: p, Peers: peers}}}.Normalize()
}

func seqMsg(i uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, i)
	return b
}

// collector receives from an in-gate and records sequence numbers.
type collector struct {
	mu   sync.Mutex
	seen map[uint64]int
	n    int
	wg   sync.WaitGroup
}

func collect(ctx context.Context, g *Gate, delay time.Duration) *collector {
	c := &collector{seen: map[uint64]int{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			m, err := g.Recv(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.seen[binary.BigEndian.Uint64(m[len(m)-1])]++
			c.n++
			c.mu.Unlock()
			if delay > 0 {
				t := time.NewTimer(delay) // a deliberately slow consumer
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
	}()
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitFor polls cond until it holds or the deadline passes (conditions here
// are on counters owned by other goroutines; each check is cheap).
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
