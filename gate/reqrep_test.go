package gate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// reqRepPair is a req gate wired to a rep gate, both with the options given.
func reqRepPair(t *testing.T, opt Options) (repHub *Hub, rep *Gate, reqHub *Hub, req *Gate) {
	t.Helper()
	repHub, rep = inHub(t, "rpc", control.Rep, opt)
	reqHub, req, mem := outHub(t, "rpc", control.Req, opt)
	mem.Publish(snap(1, "rpc", control.Req, rep.Addr()))
	if err := mem.WaitApplied(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	return repHub, rep, reqHub, req
}

// serveEcho answers every request of rep with prefix+request until ctx ends.
func serveEcho(ctx context.Context, rep *Gate, prefix string) {
	go func() {
		for {
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				return
			}
			r.Reply(append([]byte(prefix), r.Msg[0]...))
		}
	}()
}

// slotStates returns who reads each of g's connections (rdFree, rdWatch,
// rdCaller).
func slotStates(g *Gate) []int {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	var out []int
	for l := range g.links {
		l.slot.mu.Lock()
		out = append(out, l.slot.state)
		l.slot.mu.Unlock()
	}
	return out
}

// onlyConn reports whether g's only connection is the one from (or to)
// addr, read by whom state says.
func onlyConn(g *Gate, addr string, state int) func() bool {
	return func() bool {
		g.lmu.Lock()
		defer g.lmu.Unlock()
		for l := range g.links {
			l.slot.mu.Lock()
			st := l.slot.state
			l.slot.mu.Unlock()
			return len(g.links) == 1 && l.remote == addr && st == state
		}
		return false
	}
}

func allSlots(g *Gate, state int) func() bool {
	return func() bool {
		st := slotStates(g)
		for _, s := range st {
			if s != state {
				return false
			}
		}
		return len(st) > 0
	}
}

// TestReadResumesAfterDeadline: a read interrupted by a deadline (a reader
// handing over, see readSlot) loses nothing: the next read continues the
// frame, and the multipart message, where the last one stopped.
func TestReadResumesAfterDeadline(t *testing.T) {
	for _, ext := range []bool{true, false} {
		t.Run(fmt.Sprintf("ext=%v", ext), func(t *testing.T) {
			g := &Gate{pattern: control.Rep, opt: Options{}.withDefaults(), log: slog.New(slog.DiscardHandler)}
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			l := &link{g: g, nc: a, br: bufio.NewReader(a), bw: bufio.NewWriter(a), ext: ext, done: make(chan struct{})}
			var wire []byte
			body := bytes.Repeat([]byte("x"), 300) // a long frame header
			if ext {
				wire = append(appendFrameHeader(nil, 0, 1+encodedLen(Message{body})), kindData)
				wire = appendMsg(wire, Message{body})
			} else {
				wire = append(appendFrameHeader(nil, flagMore, 0), appendFrameHeader(nil, 0, len(body))...)
				wire = append(wire, body...)
			}
			type result struct {
				b   inBatch
				err error
			}
			// Feed the bytes in pieces, interrupting the reader after each.
			for i, cut := range []int{1, 2, 5, len(wire) - 7, len(wire)} {
				from := []int{0, 1, 2, 5, len(wire) - 7}[i]
				done := make(chan result, 1)
				a.SetReadDeadline(time.Time{})
				if cut == len(wire) {
					a.SetReadDeadline(time.Now().Add(10 * time.Second))
				}
				go func() { bt, err := l.next(); done <- result{bt, err} }()
				if _, err := b.Write(wire[from:cut]); err != nil {
					t.Fatal(err)
				}
				if cut < len(wire) {
					a.SetReadDeadline(aLongTimeAgo)
					if r := <-done; !isTimeout(r.err) {
						t.Fatalf("piece %d: %v, want a timeout", i, r.err)
					}
					continue
				}
				r := <-done
				if r.err != nil || r.b.nmsg != 1 {
					t.Fatalf("whole message: %+v %v", r.b, r.err)
				}
				m := r.b.only()
				if len(m) != 1 || !bytes.Equal(m[0], body) || (!ext && len(r.b.env) != 1) {
					t.Fatalf("got %q (envelope %q), want %d bytes", m, r.b.env, len(body))
				}
			}
		})
	}
}

// TestRequestCancelled: a Request whose context ends while it reads the
// reply itself returns the context's error (not ErrPeerLost); the late
// reply is dropped (counted) and the connection then serves the next
// request with its own reply. Contexts that time out, are cancelled, or had
// ended before the call (one whose watch was kept from an earlier call).
func TestRequestCancelled(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, rep, _, req := reqRepPair(t, fastOpts)
	held := make(chan *Request, 1)
	go func() {
		for {
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(r.Msg[0]), "hold") {
				held <- r // answered once the requester gave up
				continue
			}
			r.Reply(append([]byte("fresh:"), r.Msg[0]...))
		}
	}()
	fresh := func(q string) {
		t.Helper()
		if m, err := req.Request(ctx, []byte(q)); err != nil || string(m[0]) != "fresh:"+q {
			t.Fatalf("request %s got %q %v", q, m, err)
		}
	}
	dropped := func(n uint64) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprint(n, " stale replies dropped"), func() bool { return req.Stats().Dropped == n })
	}

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := req.Request(short, []byte("hold1")); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrPeerLost) {
		t.Fatalf("Request past its deadline = %v, want DeadlineExceeded", err)
	}
	(<-held).Reply([]byte("stale"))
	fresh("q2") // waits for the stale reply to be dropped: one request at a time
	if st := req.Stats(); st.Dropped != 1 || st.Sent != 2 || st.Received != 1 {
		t.Fatalf("counters %+v, want 1 dropped (the stale reply), 2 sent, 1 received", st)
	}

	c2, cancel2 := context.WithCancel(ctx)
	go func() {
		waitFor(t, 10*time.Second, "the requester reading", allSlots(req, rdCaller))
		cancel2()
	}()
	if _, err := req.Request(c2, []byte("hold3")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Request cancelled = %v, want Canceled", err)
	}
	(<-held).Reply([]byte("stale"))
	dropped(2)
	if _, err := req.Request(c2, []byte("q4")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Request on an ended context = %v, want Canceled", err)
	}
	dropped(3) // q4 went out; its reply came to nobody
	fresh("q5")

	// A context that ends between two calls, while nobody reads: the
	// second call reads itself and must see that it ended.
	c3, cancel3 := context.WithCancel(ctx)
	if m, err := req.Request(c3, []byte("q6")); err != nil || string(m[0]) != "fresh:q6" {
		t.Fatalf("request q6 got %q %v", m, err)
	}
	cancel3()
	if _, err := req.Request(c3, []byte("q7")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Request on a context ended since the last call = %v, want Canceled", err)
	}
	dropped(4)
	fresh("q8")
}

// TestReqRepAfterIdle: once a connection has gone unread for idleWatch its
// watcher reads it, on both sides; the next caller takes it back (the
// watcher is interrupted and hands over), and a request that arrives while
// nobody waits is queued for the next RecvRequest.
func TestReqRepAfterIdle(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, rep, _, req := reqRepPair(t, fastOpts)
	answer := func(want string) {
		t.Helper()
		r, err := rep.RecvRequest(ctx)
		if err != nil || string(r.Msg[0]) != want {
			t.Fatalf("RecvRequest = %v %v, want %q", r, err, want)
		}
		if err := r.Reply(append([]byte("re:"), r.Msg[0]...)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		q := fmt.Sprint("q", i)
		// Both watchers read: nobody waits on either side.
		waitFor(t, 10*time.Second, "watchers reading", func() bool { return allSlots(req, rdWatch)() && allSlots(rep, rdWatch)() })
		got := make(chan error, 1)
		go func() {
			m, err := req.Request(ctx, []byte(q))
			if err == nil && string(m[0]) != "re:"+q {
				err = fmt.Errorf("reply %q", m)
			}
			got <- err
		}()
		// The request goes through the rep watcher into the queue.
		waitFor(t, 10*time.Second, "request queued", func() bool { return rep.Stats().QueueDepth == 1 })
		answer(q)
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	// A RecvRequest waiting while the watcher reads takes the connection
	// over and reads the next request itself.
	waitFor(t, 10*time.Second, "rep watcher reading", allSlots(rep, rdWatch))
	served := make(chan struct{})
	go func() { defer close(served); answer("direct") }()
	waitFor(t, 10*time.Second, "RecvRequest reading", allSlots(rep, rdCaller))
	if m, err := req.Request(ctx, []byte("direct")); err != nil || string(m[0]) != "re:direct" {
		t.Fatalf("reply %q %v", m, err)
	}
	<-served
	if st := rep.Stats(); st.Received != 4 || st.Sent != 4 || st.Dropped != 0 || st.QueueDepth != 0 {
		t.Fatalf("rep counters %+v", st)
	}
}

// TestRecvRequestCancelled: RecvRequest reading the only connection itself
// returns when its context ends, and the next one gets the next request.
func TestRecvRequestCancelled(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, rep, _, req := reqRepPair(t, fastOpts)
	waitFor(t, 10*time.Second, "connected", func() bool { return rep.Stats().Peers == 1 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if r, err := rep.RecvRequest(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvRequest with nothing to receive = %v %v", r, err)
	}
	serveEcho(ctx, rep, "re:")
	for i := range 20 {
		q := fmt.Sprint("q", i)
		if m, err := req.Request(ctx, []byte(q)); err != nil || string(m[0]) != "re:"+q {
			t.Fatalf("reply %q %v", m, err)
		}
	}
}

// TestReqPeerDiesWhileIdle: a replier that dies between requests gets none:
// nothing is sent on a connection unread for a while without looking
// (peerGone), so every request goes to the survivor; the dead one's
// connection is noticed (its watcher reads it after idleWatch).
func TestReqPeerDiesWhileIdle(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	var hubs []*Hub
	var addrs []string
	for k := range 2 {
		h, rep := inHub(t, "rpc", control.Rep, fastOpts)
		serveEcho(ctx, rep, fmt.Sprintf("r%d:", k))
		hubs, addrs = append(hubs, h), append(addrs, rep.Addr())
	}
	_, req, mem := outHub(t, "rpc", control.Req, fastOpts)
	mem.Publish(snap(1, "rpc", control.Req, addrs...))
	waitFor(t, 10*time.Second, "two connections", func() bool { return req.Stats().Peers == 2 })
	for i := range 4 { // both connections in use, read by their callers
		if _, err := req.Request(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	hubs[0].Close()
	for i := range 20 {
		m, err := req.Request(ctx, []byte(fmt.Sprint(i)))
		if err != nil || !strings.HasPrefix(string(m[0]), "r1:") {
			t.Fatalf("request %d after r0 died: %q %v", i, m, err)
		}
	}
	waitFor(t, 10*time.Second, "dead connection noticed", func() bool { return req.Stats().Peers == 1 })
}

// TestReqPeerLostMidRead: the replier dies while the requester reads the
// connection itself: ErrPeerLost.
func TestReqPeerLostMidRead(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	repHub, rep, _, req := reqRepPair(t, fastOpts)
	go func() {
		if _, err := rep.RecvRequest(ctx); err != nil {
			return
		}
		waitFor(t, 10*time.Second, "the requester reading", allSlots(req, rdCaller))
		repHub.Close()
	}()
	if _, err := req.Request(ctx, []byte("q")); !errors.Is(err, ErrPeerLost) {
		t.Fatalf("Request to a dying peer = %v, want ErrPeerLost", err)
	}
}

// TestReplyToDeadRequester: a requester that goes away while its request is
// handled gets no reply: Reply says ErrPeerLost and the loss is counted,
// whether or not anything read the connection meanwhile.
func TestReplyToDeadRequester(t *testing.T) {
	for _, watched := range []bool{false, true} {
		t.Run(fmt.Sprintf("watched=%v", watched), func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			_, rep, reqHub, req := reqRepPair(t, fastOpts)
			lost := make(chan error, 1)
			go func() { _, err := req.Request(ctx, []byte("q")); lost <- err }()
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if watched { // the watcher reads and sees the close
				waitFor(t, 10*time.Second, "rep watcher reading", allSlots(rep, rdWatch))
			}
			reqHub.Close()
			if err := <-lost; err == nil {
				t.Fatal("Request survived its hub's Close")
			}
			if watched {
				waitFor(t, 10*time.Second, "close noticed", func() bool { return rep.Stats().Peers == 0 })
			} else {
				// Reply trusts a connection read within trustRead and
				// looks (peerGone) only past it: wait that long, or a
				// fast machine replies before it looks.
				waitFor(t, 10*time.Second, "the connection unread for longer than trustRead", func() bool { return r.from.unread() > trustRead })
			}
			if err := r.Reply([]byte("late")); !errors.Is(err, ErrPeerLost) {
				t.Fatalf("Reply to a dead requester = %v, want ErrPeerLost", err)
			}
			if st := rep.Stats(); st.Dropped != 1 || st.Sent != 0 {
				t.Fatalf("rep counters %+v, want the reply counted as dropped", st)
			}
		})
	}
}

// TestRepSeveralConnections: RecvRequest reads a lone connection itself;
// when a second one comes it leaves both to their watchers (the queue),
// so that neither waits for the other, and takes over again once one is
// left.
func TestRepSeveralConnections(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	serveEcho(ctx, rep, "re:")
	var reqs []*Gate
	var hubs []*Hub
	for range 2 {
		h, req, mem := outHub(t, "rpc", control.Req, fastOpts)
		mem.Publish(snap(1, "rpc", control.Req, rep.Addr()))
		reqs, hubs = append(reqs, req), append(hubs, h)
		if k := len(reqs); k == 1 {
			waitFor(t, 10*time.Second, "RecvRequest reading the lone connection", allSlots(rep, rdCaller))
		} else {
			waitFor(t, 10*time.Second, "watchers reading both", func() bool { return rep.Stats().Peers == 2 && allSlots(rep, rdWatch)() })
		}
		// The newest requester is served, while the first stays idle.
		if m, err := req.Request(ctx, []byte("hi")); err != nil || string(m[0]) != "re:hi" {
			t.Fatalf("requester %d: %q %v", len(reqs), m, err)
		}
	}
	var wg sync.WaitGroup
	for k, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				q := fmt.Sprintf("%d-%d", k, i)
				if m, err := req.Request(ctx, []byte(q)); err != nil || string(m[0]) != "re:"+q {
					t.Errorf("requester %d: %q %v", k, m, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	hubs[1].Close()
	waitFor(t, 10*time.Second, "RecvRequest reading the lone connection again", func() bool {
		return rep.Stats().Peers == 1 && allSlots(rep, rdCaller)()
	})
	if m, err := reqs[0].Request(ctx, []byte("again")); err != nil || string(m[0]) != "re:again" {
		t.Fatalf("%q %v", m, err)
	}
	if st := rep.Stats(); st.Received != 203 || st.Sent != 203 || st.Dropped != 0 {
		t.Fatalf("rep counters %+v, want 203 received and sent", st)
	}
}

// fakePeer is a ZMTP peer written by hand, for what zmq4 will not send.
type fakePeer struct {
	c  net.Conn
	br *bufio.Reader
}

// handshake exchanges greetings and READY as socketType, with the Tiltai
// extension if ext.
func (p *fakePeer) handshake(t *testing.T, server bool, socketType string, ext bool) {
	t.Helper()
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	if server {
		greeting[32] = 1
	}
	ready := append([]byte{5}, "READY"...)
	ready = appendProperty(ready, "Socket-Type", socketType)
	if ext {
		ready = appendProperty(ready, extProperty, extVersion)
	}
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.c.Write(greeting); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(p.br, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	p.write(t, append(appendFrameHeader(nil, flagCommand, len(ready)), ready...))
	if f, err := readFrame(p.br, 1<<16); err != nil || f.flags&flagCommand == 0 {
		t.Fatalf("peer's READY: %v %v", f, err)
	}
}

func (p *fakePeer) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := p.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// reqToListener is a req gate wired to a listener, for a fakePeer to
// answer as its replier.
func reqToListener(t *testing.T) (*Gate, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, req, mem := outHub(t, "rpc", control.Req, fastOpts)
	mem.Publish(snap(1, "rpc", control.Req, "tcp://"+ln.Addr().String()))
	return req, ln
}

// dealerTo connects a plain DEALER (no Tiltai extension) to a rep gate,
// closed when the test ends.
func dealerTo(t *testing.T, rep *Gate) *fakePeer {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(rep.Addr(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &fakePeer{c: c, br: bufio.NewReader(c)}
	p.handshake(t, false, "DEALER", false)
	return p
}

// readPlain reads one plain multipart message.
func (p *fakePeer) readPlain(t *testing.T) Message {
	t.Helper()
	var m Message
	for {
		f, err := readFrame(p.br, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, f.body)
		if f.flags&flagMore == 0 {
			return m
		}
	}
}

func plainFrames(m Message) []byte {
	var b []byte
	for i, part := range m {
		fl := byte(0)
		if i < len(m)-1 {
			fl = flagMore
		}
		b = append(appendFrameHeader(b, fl, len(part)), part...)
	}
	return b
}

// TestRequestPingAndGarbage: a requester reading its reply itself answers a
// plain replier's PING on the way; a reply that breaks the protocol costs
// the request (ErrPeerLost) and the connection (refused), never the
// process.
func TestRequestPingAndGarbage(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	req, ln := reqToListener(t)
	huge := append([]byte{flagLong}, binary.BigEndian.AppendUint64(nil, 1<<40)...)
	for i, garbage := range [][]byte{nil, huge, {0xF0, 1, 'x'}} {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		p := &fakePeer{c: c, br: bufio.NewReader(c)}
		p.handshake(t, true, "REP", false)
		type result struct {
			m   Message
			err error
		}
		got := make(chan result, 1)
		go func() { m, err := req.Request(ctx, []byte("q")); got <- result{m, err} }()
		parts := p.readPlain(t)
		if len(parts) != 2 || len(parts[0]) != 0 || string(parts[1]) != "q" {
			t.Fatalf("request on the wire: %q", parts)
		}
		if garbage == nil {
			ping := append([]byte{4}, "PING"...)
			ping = append(ping, 0, 10, 'c', 't', 'x')
			p.write(t, append(appendFrameHeader(nil, flagCommand, len(ping)), ping...))
			f, err := readFrame(p.br, 1<<16)
			if err != nil || f.flags&flagCommand == 0 || string(f.body) != "\x04PONGctx" {
				t.Fatalf("answer to PING: %q %v", f.body, err)
			}
			p.write(t, plainFrames(Message{nil, []byte("pong-ok")}))
			if r := <-got; r.err != nil || string(r.m[0]) != "pong-ok" {
				t.Fatalf("reply after PING: %q %v", r.m, r.err)
			}
			c.Close() // the next round's connection is a new one
			continue
		}
		refused := req.Stats().Refused
		p.write(t, garbage)
		if r := <-got; !errors.Is(r.err, ErrPeerLost) {
			t.Fatalf("garbage %d as reply: %q %v, want ErrPeerLost", i, r.m, r.err)
		}
		if req.Stats().Refused != refused+1 {
			t.Fatalf("garbage %d not counted as refused: %+v", i, req.Stats())
		}
		c.Close()
	}
}

// TestRepGarbageReadDirectly: garbage on a rep gate's only connection, read
// by RecvRequest itself, is refused like any other (counted, connection
// closed, memory bounded), including a data frame of more than one
// request; RecvRequest goes on waiting and serves the next requester.
func TestRepGarbageReadDirectly(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	got := make(chan *Request, 1)
	go func() {
		for {
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				return
			}
			got <- r
		}
	}()
	huge := append([]byte{flagLong}, binary.BigEndian.AppendUint64(nil, 1<<40)...)
	two := appendMsg(appendMsg([]byte{kindData}, Message{[]byte("a")}), Message{[]byte("b")})
	cases := []struct {
		name string
		ext  bool
		data []byte
	}{
		{"huge frame", false, huge},
		{"reserved flags", false, []byte{0xF0, 1, 'x'}},
		{"no delimiter", false, plainFrames(Message{[]byte("q")})},
		{"two requests in a frame", true, append(appendFrameHeader(nil, 0, len(two)), two...)},
		{"huge extension frame", true, huge},
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	addr := strings.TrimPrefix(rep.Addr(), "tcp://")
	for _, tc := range cases {
		refused := rep.Stats().Refused
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		p := &fakePeer{c: c, br: bufio.NewReader(c)}
		p.handshake(t, false, "REQ", tc.ext)
		waitFor(t, 10*time.Second, tc.name+": RecvRequest reading", onlyConn(rep, c.LocalAddr().String(), rdCaller))
		p.write(t, tc.data)
		if _, err := io.Copy(io.Discard, p.br); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("%s: connection not closed by the gate: %v", tc.name, err)
		}
		c.Close()
		waitFor(t, 10*time.Second, tc.name+" counted as refused", func() bool { return rep.Stats().Refused == refused+1 })
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(before); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB on garbage", grew>>20)
	}
	select {
	case r := <-got:
		t.Fatalf("garbage delivered as a request: %q", r.Msg)
	default:
	}
	// Still serving, plain and extension requesters.
	_, req, mem := outHub(t, "rpc", control.Req, fastOpts)
	mem.Publish(snap(1, "rpc", control.Req, rep.Addr()))
	go func() {
		r := <-got
		r.Reply(append([]byte("re:"), r.Msg[0]...))
	}()
	if m, err := req.Request(ctx, []byte("ok")); err != nil || string(m[0]) != "re:ok" {
		t.Fatalf("after garbage: %q %v", m, err)
	}
}

// TestRepPipeliningDealer: a plain DEALER may send its next request before
// the last is answered. With two callers in RecvRequest, the one that did
// not read the connection itself waits for the queue; the connection must
// be read on for it at once, not after idleWatch (made an hour here, so
// that the test fails rather than waits if it is not).
func TestRepPipeliningDealer(t *testing.T) {
	longIdleWatch(t)
	ctx := ctxT(t, 30*time.Second)
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	got := make(chan *Request, 2)
	for range 2 {
		go func() {
			r, err := rep.RecvRequest(ctx)
			if err != nil {
				return
			}
			got <- r // handled slowly: this caller does not come back
		}()
	}
	p := dealerTo(t, rep)
	c := p.c
	waitFor(t, 10*time.Second, "one caller reading, one waiting for the queue", func() bool {
		return onlyConn(rep, c.LocalAddr().String(), rdCaller)() && rep.recvQ.waiters() == 1
	})
	p.write(t, plainFrames(Message{nil, []byte("one")}))
	first := <-got
	waitFor(t, 10*time.Second, "the watcher reading for the waiting caller", onlyConn(rep, c.LocalAddr().String(), rdWatch))
	p.write(t, plainFrames(Message{nil, []byte("two")}))
	var second *Request
	select {
	case second = <-got:
	case <-ctx.Done():
		t.Fatal("the second request was never read")
	}
	if string(first.Msg[0]) != "one" || string(second.Msg[0]) != "two" {
		t.Fatalf("got %q then %q", first.Msg, second.Msg)
	}
	for _, r := range []*Request{second, first} { // out of order, as a DEALER allows
		if err := r.Reply(append([]byte("re:"), r.Msg[0]...)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"re:two", "re:one"} {
		m := p.readPlain(t)
		if len(m) != 2 || len(m[0]) != 0 || string(m[1]) != want {
			t.Fatalf("reply %q, want empty delimiter and %q", m, want)
		}
	}
}

// TestExtraRepliesCounted: a replier that breaks the pattern — two replies
// to one request, or one nobody asked for — costs neither the gate (the
// watcher must not block on the full reply slot, holding the gate's lock)
// nor silence: every such reply is counted as dropped, and the next
// request gets its own reply.
func TestExtraRepliesCounted(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	req, ln := reqToListener(t)
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &fakePeer{c: c, br: bufio.NewReader(c)}
	p.handshake(t, true, "REP", false)
	waitFor(t, 10*time.Second, "connected", func() bool { return req.Stats().Peers == 1 })

	ask := func(q string, replies ...string) Message {
		t.Helper()
		got := make(chan Message, 1)
		go func() {
			m, err := req.Request(ctx, []byte(q))
			if err != nil {
				t.Error(err)
			}
			got <- m
		}()
		if m := p.readPlain(t); len(m) != 2 || string(m[1]) != q {
			t.Fatalf("request on the wire: %q", m)
		}
		var b []byte
		for _, r := range replies {
			b = append(b, plainFrames(Message{nil, []byte(r)})...)
		}
		p.write(t, b)
		return <-got
	}
	if m := ask("q1", "r1", "r1-again"); string(m[0]) != "r1" {
		t.Fatalf("reply %q, want r1", m)
	}
	waitFor(t, 10*time.Second, "the second reply counted as dropped", func() bool { return req.Stats().Dropped == 1 })
	p.write(t, plainFrames(Message{nil, []byte("unasked")}))
	waitFor(t, 10*time.Second, "the unasked reply counted as dropped", func() bool { return req.Stats().Dropped == 2 })
	if m := ask("q2", "r2"); string(m[0]) != "r2" {
		t.Fatalf("reply %q, want r2", m)
	}

	// The watcher may read both replies before the caller takes the first:
	// the second must not block it (with the gate's lock held).
	var l *link
	req.lmu.Lock()
	for k := range req.links {
		l = k
	}
	l.reqState = reqBusy
	req.lmu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req.reply(l, Message{[]byte("a")})
		req.reply(l, Message{[]byte("b")})
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("a second reply to one request blocked the watcher")
	}
	if m := <-l.replies; string(m[0]) != "a" {
		t.Fatalf("kept %q, want the first reply", m)
	}
	// A caller that read its reply itself, and an extra one the watcher
	// read before the link went idle: it must not answer the next request.
	req.reply(l, Message{[]byte("c")})
	req.release(l)
	if n := len(l.replies); n != 0 {
		t.Fatalf("%d replies left for the next request", n)
	}
	if st := req.Stats(); st.Dropped != 4 {
		t.Fatalf("dropped %d, want 4", st.Dropped)
	}
}
