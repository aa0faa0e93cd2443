package gate

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// silentListener accepts and never speaks: a dialling out-gate sits in its
// handshake until HandshakeTimeout, which makes a removal take a known time.
func silentListener(t *testing.T) (string, func() map[string]time.Time) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	closedAt := map[string]time.Time{}
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				b := make([]byte, 1024)
				for {
					if _, err := c.Read(b); err != nil {
						mu.Lock()
						closedAt[c.RemoteAddr().String()] = time.Now()
						mu.Unlock()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "tcp://" + ln.Addr().String(), func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]time.Time{}
		for k, v := range closedAt {
			m[k] = v
		}
		return m
	}
}

// A version that arrives while an earlier one's removals are still
// draining is reported applied only once its own removals have drained
// ("applied V" is what lets the scheduler kill a retired peer).
func TestAppliedWaitsForLaterRemovals(t *testing.T) {
	opt := Options{DrainTimeout: 5 * time.Second, HandshakeTimeout: 3 * time.Second}
	_, _, mem := outHub(t, "o", control.Push, opt)
	x, _ := silentListener(t)
	y, yClosed := silentListener(t)
	t0 := time.Now()
	mem.Publish(snap(1, "o", control.Push, x))
	mem.WaitApplied(ctxT(t, 5*time.Second), 1)
	time.Sleep(1500 * time.Millisecond)
	mem.Publish(snap(2, "o", control.Push, x, y)) // y's handshake starts ~1.5s
	mem.WaitApplied(ctxT(t, 5*time.Second), 2)
	mem.Publish(snap(3, "o", control.Push, y)) // removes x: done when its handshake ends (~3s)
	time.Sleep(50 * time.Millisecond)
	mem.Publish(snap(4, "o", control.Push)) // removes y: done ~4.5s
	if err := mem.WaitApplied(ctxT(t, 10*time.Second), 4); err != nil {
		t.Fatal(err)
	}
	applied4 := time.Since(t0)
	time.Sleep(3 * time.Second)
	var yEnd time.Duration
	for _, at := range yClosed() {
		yEnd = at.Sub(t0)
	}
	t.Logf("applied 4 reported at %v; removed peer y (removed by version 4) finished at %v", applied4.Round(time.Millisecond), yEnd.Round(time.Millisecond))
	// The far end sees the close a moment after the gate made it; the bug
	// this guards against reported 1.5 s early.
	if yEnd > applied4+100*time.Millisecond {
		t.Errorf("version 4 was reported applied %v before the peer it removed had finished", (yEnd - applied4).Round(time.Millisecond))
	}
}
