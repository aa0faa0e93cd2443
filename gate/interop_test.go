package gate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/tiltai/tiltai/gate/control"
)

func zsock(t *testing.T, s zmq4.Socket) zmq4.Socket {
	t.Cleanup(func() { s.Close() })
	return s
}

func zaddr(s zmq4.Socket) string { return "tcp://" + s.Addr().String() }

// TestInteropZmq4 runs each pattern against a plain zmq4 socket, both ways.
func TestInteropZmq4(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	const n = 500

	t.Run("zmq4 push to gate pull", func(t *testing.T) {
		_, in := inHub(t, "w", control.Pull, fastOpts)
		push := zsock(t, zmq4.NewPush(ctx))
		if err := push.Dial(in.Addr()); err != nil {
			t.Fatal(err)
		}
		for i := range uint64(n) {
			if err := push.Send(zmq4.NewMsgFrom([]byte("x"), seqMsg(i, 8))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range uint64(n) {
			m, err := in.Recv(ctx)
			if err != nil || len(m) != 2 || binary.BigEndian.Uint64(m[1]) != i {
				t.Fatalf("message %d: %q %v", i, m, err)
			}
		}
	})

	t.Run("gate push to zmq4 pull", func(t *testing.T) {
		pull := zsock(t, zmq4.NewPull(ctx))
		if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		_, out, mem := outHub(t, "w", control.Push, fastOpts)
		mem.Publish(snap(1, "w", control.Push, zaddr(pull)))
		for i := range uint64(n) {
			if err := out.Send(ctx, seqMsg(i, 8), []byte("tail")); err != nil {
				t.Fatal(err)
			}
		}
		for i := range uint64(n) {
			m, err := pull.Recv()
			if err != nil || len(m.Frames) != 2 || binary.BigEndian.Uint64(m.Frames[0]) != i {
				t.Fatalf("message %d: %v %v", i, m, err)
			}
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("zmq4 req to gate rep", func(t *testing.T) {
		_, rep := inHub(t, "r", control.Rep, fastOpts)
		go func() {
			for {
				r, err := rep.RecvRequest(ctx)
				if err != nil {
					return
				}
				r.Reply(append([]byte("re:"), r.Msg[0]...))
			}
		}()
		req := zsock(t, zmq4.NewReq(ctx))
		if err := req.Dial(rep.Addr()); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			q := []byte{byte(i)}
			if err := req.Send(zmq4.NewMsg(q)); err != nil {
				t.Fatal(err)
			}
			m, err := req.Recv()
			if err != nil || !bytes.Equal(m.Frames[0], append([]byte("re:"), q...)) {
				t.Fatalf("reply %v %v", m, err)
			}
		}
	})

	t.Run("gate req to zmq4 rep", func(t *testing.T) {
		rep := zsock(t, zmq4.NewRep(ctx))
		if err := rep.Listen("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				m, err := rep.Recv()
				if err != nil {
					return
				}
				if rep.Send(zmq4.NewMsg(append([]byte("re:"), m.Frames[0]...))) != nil {
					return
				}
			}
		}()
		_, req, mem := outHub(t, "r", control.Req, fastOpts)
		mem.Publish(snap(1, "r", control.Req, zaddr(rep)))
		for i := range 50 {
			m, err := req.Request(ctx, []byte{byte(i)})
			if err != nil || !bytes.Equal(m[0], []byte{'r', 'e', ':', byte(i)}) {
				t.Fatalf("reply %q %v", m, err)
			}
		}
	})

	t.Run("gate pub to zmq4 sub", func(t *testing.T) {
		sub := zsock(t, zmq4.NewSub(ctx))
		if err := sub.Listen("tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		sub.SetOption(zmq4.OptionSubscribe, "a")
		_, pub, mem := outHub(t, "p", control.Pub, fastOpts)
		mem.Publish(snap(1, "p", control.Pub, zaddr(sub)))
		waitFor(t, 10*time.Second, "subscription", func() bool { return pubActive(pub) })
		for i := range uint64(n) {
			pub.Send(ctx, []byte("b"), seqMsg(i, 8)) // filtered out
			pub.Send(ctx, []byte("a"), seqMsg(i, 8))
		}
		for i := range uint64(n) {
			m, err := sub.Recv()
			if err != nil || string(m.Frames[0]) != "a" || binary.BigEndian.Uint64(m.Frames[1]) != i {
				t.Fatalf("message %d: %v %v", i, m, err)
			}
		}
	})

	t.Run("zmq4 pub to gate sub", func(t *testing.T) {
		_, sub := inHub(t, "p", control.Sub, fastOpts)
		sub.Subscribe("a")
		pub := zsock(t, zmq4.NewPub(ctx))
		if err := pub.Dial(sub.Addr()); err != nil {
			t.Fatal(err)
		}
		// zmq4's PUB learns the subscription asynchronously: probe until one
		// arrives, then expect every message in order.
		got := make(chan Message, 1)
		go func() {
			m, err := sub.Recv(ctx)
			if err == nil {
				got <- m
			}
		}()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
	probe:
		for {
			pub.Send(zmq4.NewMsgFrom([]byte("a"), []byte("probe")))
			select {
			case <-got:
				break probe
			case <-tick.C:
			case <-ctx.Done():
				t.Fatal("no message through zmq4 pub")
			}
		}
		for i := range uint64(n) {
			pub.Send(zmq4.NewMsgFrom([]byte("b"), seqMsg(i, 8)))
			pub.Send(zmq4.NewMsgFrom([]byte("a"), seqMsg(i, 8)))
		}
		for i := uint64(0); i < n; {
			m, err := sub.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(m[1]) == "probe" {
				continue
			}
			if string(m[0]) != "a" || binary.BigEndian.Uint64(m[1]) != i {
				t.Fatalf("message %d: %q", i, m)
			}
			i++
		}
	})

	t.Run("zmq4 pair to gate pair", func(t *testing.T) {
		_, in := inHub(t, "d", control.Pair, fastOpts)
		pair := zsock(t, zmq4.NewPair(ctx))
		if err := pair.Dial(in.Addr()); err != nil {
			t.Fatal(err)
		}
		pair.Send(zmq4.NewMsgString("ping"))
		if m, err := in.Recv(ctx); err != nil || string(m[0]) != "ping" {
			t.Fatalf("%q %v", m, err)
		}
		in.Send(ctx, []byte("pong"))
		if m, err := pair.Recv(); err != nil || string(m.Frames[0]) != "pong" {
			t.Fatalf("%v %v", m, err)
		}
	})
}

// TestGarbageOnGatePort: random bytes, a truncated greeting, a huge frame
// declared during the handshake and after it are each refused and counted,
// without a crash or a large allocation, and the gate keeps working.
func TestGarbageOnGatePort(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, in := inHub(t, "w", control.Pull, Options{HandshakeTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(in.Addr(), "tcp://")
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	ready := append([]byte{5}, "READY"...)
	ready = appendProperty(ready, "Socket-Type", "PUSH")
	hugeCmd := append([]byte{flagCommand | flagLong}, binary.BigEndian.AppendUint64(nil, 1<<62)...)
	hugeMsg := append([]byte{flagLong}, binary.BigEndian.AppendUint64(nil, 1<<40)...)
	random := make([]byte, 4096)
	rand.Read(random)
	random[0] = 0x00 // not a greeting
	cases := map[string][]byte{
		"random":             random,
		"truncated greeting": greeting[:20],
		"wrong mechanism":    append(append([]byte{}, greeting[:12]...), make([]byte, 52)...),
		"huge command":       append(append([]byte{}, greeting...), hugeCmd...),
		"huge message": append(append(append(append([]byte{}, greeting...),
			flagCommand, byte(len(ready))), ready...), hugeMsg...),
		"reserved flags": append(append(append(append([]byte{}, greeting...),
			flagCommand, byte(len(ready))), ready...), 0xF0, 1, 'x'),
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for name, data := range cases {
		refused := in.Stats().Refused
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(data)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		// The gate must close the connection: reads end in EOF or reset.
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: connection not closed by the gate", name)
				}
				break
			}
		}
		c.Close()
		waitFor(t, 10*time.Second, name+" counted as refused", func() bool { return in.Stats().Refused > refused })
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(before); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB on garbage", grew>>20)
	}
	// Still serving.
	push := zsock(t, zmq4.NewPush(ctx))
	if err := push.Dial(in.Addr()); err != nil {
		t.Fatal(err)
	}
	push.Send(zmq4.NewMsgString("ok"))
	if m, err := in.Recv(ctx); err != nil || string(m[0]) != "ok" {
		t.Fatalf("after garbage: %q %v", m, err)
	}
}

// TestIncompatiblePatternRefused: a push cannot connect to a sub.
func TestIncompatiblePatternRefused(t *testing.T) {
	_, sub := inHub(t, "x", control.Sub, fastOpts)
	ctx := ctxT(t, 20*time.Second)
	push := zsock(t, zmq4.NewPush(context.Background(), zmq4.WithDialerMaxRetries(0)))
	_ = push.Dial(sub.Addr())
	waitFor(t, 10*time.Second, "refusal", func() bool { return sub.Stats().Refused > 0 || ctx.Err() != nil })
}
