package gate

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

func (g *Gate) numLinks() int {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	return len(g.links)
}

// TestMaxConnsPerInGate checks docs/reliability.md B8: an in-gate holds at
// most MaxConns (default 256) connections; one more is closed without a
// handshake and counted as refused, the connections it holds keep
// delivering, and a place freed is taken again.
func TestMaxConnsPerInGate(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	const limit = 256 // Options{}.withDefaults().MaxConns
	if got := (Options{}).withDefaults().MaxConns; got != limit {
		t.Fatalf("default MaxConns = %d, want %d", got, limit)
	}
	_, in := inHub(t, "w", control.Pull, Options{})
	addr := strings.TrimPrefix(in.Addr(), "tcp://")
	dial := func() *fakePeer {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &fakePeer{c: c, br: bufio.NewReader(c)}
	}
	send := func(p *fakePeer, body string) {
		p.c.SetDeadline(time.Time{})
		p.write(t, append(appendFrameHeader(nil, 0, len(body)), body...))
	}
	recv := func(want string) {
		t.Helper()
		m, err := in.Recv(ctx)
		if err != nil || len(m) != 1 || string(m[0]) != want {
			t.Fatalf("received %q, %v; want %q", m, err, want)
		}
	}
	peers := make([]*fakePeer, limit)
	for i := range peers {
		peers[i] = dial()
		peers[i].handshake(t, false, "PUSH", false)
	}
	waitFor(t, 10*time.Second, "256 connections held", func() bool { return in.numLinks() == limit })
	refused := in.Stats().Refused

	// The 257th: closed at once, before any greeting, and counted.
	extra := dial()
	extra.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.ReadFull(extra.br, make([]byte, 64)); err == nil || isTimeout(err) {
		t.Fatalf("connection 257 was served (read %d bytes of a greeting, %v)", n, err)
	}
	waitFor(t, 10*time.Second, "connection 257 counted as refused", func() bool { return in.Stats().Refused == refused+1 })
	if n := in.numLinks(); n != limit {
		t.Fatalf("%d connections held after the refusal, want %d", n, limit)
	}

	// Those held still deliver.
	send(peers[0], "first")
	recv("first")
	send(peers[limit-1], "last")
	recv("last")

	// One leaves; a newcomer takes its place and delivers.
	peers[0].c.Close()
	waitFor(t, 10*time.Second, "a place freed", func() bool { return in.numLinks() == limit-1 })
	late := dial()
	late.handshake(t, false, "PUSH", false)
	send(late, "late")
	recv("late")
	if got := in.Stats().Refused; got != refused+1 {
		t.Errorf("refused = %d, want %d", got, refused+1)
	}
}
