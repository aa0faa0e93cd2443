package gate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// longIdleWatch makes the watchers' timer an hour for the test, so that a
// path which wrongly leaves a connection to it hangs (and fails on the
// test's context) instead of waiting 50 ms.
func longIdleWatch(t *testing.T) {
	old := idleWatch
	idleWatch = time.Hour
	t.Cleanup(func() { idleWatch = old })
}

// onlyLink returns g's only connection.
func onlyLink(t *testing.T, g *Gate) *link {
	t.Helper()
	g.lmu.Lock()
	defer g.lmu.Unlock()
	if len(g.links) != 1 {
		t.Fatalf("%d connections, want 1", len(g.links))
	}
	for l := range g.links {
		return l
	}
	return nil
}

// grantedTo waits until the watcher has handed l over to sess, and takes
// the grant's wake-up as a caller whose select chose its context instead
// would leave it (both were ready; select picks either).
func grantedTo(t *testing.T, l *link, sess uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, "the watcher handing over", func() bool {
		owns, _ := l.grantState(sess)
		return owns
	})
	select {
	case <-l.slot.granted:
	default:
	}
}

// TestRequestGivesUpAfterHandOver: a Request that asked the watcher for the
// connection and whose context ended just as the watcher handed it over
// read nothing: the connection must go back to the watcher at once, so that
// the abandoned request's reply is read and dropped and the link serves the
// next request — not after idleWatch (an hour here).
func TestRequestGivesUpAfterHandOver(t *testing.T) {
	ctx, req, l := requestGivenUpAfterHandOver(t)
	req.abandon(l)

	if m, err := req.Request(ctx, []byte("q1")); err != nil || string(m[0]) != "re:q1" {
		t.Fatalf("request after one given up: %q %v (the stale reply left unread?)", m, err)
	}
}

// TestRecvRequestGivesUpAfterHandOver: a RecvRequest that asked the watcher
// for a rep gate's only connection and gives up (its context ended) just as
// the watcher handed it over read nothing: the connection must go back to
// the watcher at once, or another RecvRequest waiting for the queue (it
// found the first one waiting for the connection) gets nothing until
// idleWatch (an hour here).
func TestRecvRequestGivesUpAfterHandOver(t *testing.T) {
	longIdleWatch(t)
	ctx := ctxT(t, 10*time.Second)
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	p := dealerTo(t, rep)
	waitFor(t, 10*time.Second, "connected", func() bool { return rep.Stats().Peers == 1 })
	l := onlyLink(t, rep)
	l.wakeWatcher()
	waitFor(t, 10*time.Second, "the watcher reading", allSlots(rep, rdWatch))

	// The first caller's steps in recvDirect: it asks for the connection...
	sess, reading, _ := l.claim()
	if sess == 0 || reading {
		t.Fatalf("claim = %d %v, want to wait for the watcher", sess, reading)
	}
	grantedTo(t, l, sess)
	// ... a second caller finds it taken and waits for the queue ...
	got := make(chan *Request, 1)
	go func() {
		if r, err := rep.RecvRequest(ctx); err == nil {
			got <- r
		}
	}()
	waitFor(t, 10*time.Second, "the second caller waiting for the queue", func() bool { return rep.recvQ.waiters() == 1 })
	// ... and the first one's context ends.
	l.unwant(sess)

	p.write(t, plainFrames(Message{nil, []byte("one")}))
	select {
	case r := <-got:
		if string(r.Msg[0]) != "one" {
			t.Fatalf("got %q", r.Msg)
		}
	case <-ctx.Done():
		t.Fatal("the request was never read: the connection was left to nobody")
	}
}

// TestAbandonCountsReplyArrived: a reply that reaches l.replies between its
// Request giving up and abandon (the watcher reads the connection again at
// once, see unwant, and the Request's own read stops the same way) is
// discarded by abandon, and must be counted as dropped, as one that comes
// after abandon is.
func TestAbandonCountsReplyArrived(t *testing.T) {
	_, req, l := requestGivenUpAfterHandOver(t)
	// The reply comes before the Request gets to abandon.
	waitFor(t, 10*time.Second, "the reply passed on by the watcher", func() bool { return len(l.replies) == 1 })
	req.abandon(l)
	if st := req.Stats(); st.Sent != 2 || st.Received != 1 || st.Dropped != 1 {
		t.Fatalf("counters %+v, want 2 sent, 1 received, 1 dropped (the reply nobody took)", st)
	}
}

// TestRecvRequestWaiterAfterReaderChecked: a second RecvRequest finds the
// rep gate's only connection read by the first, and waits for the queue;
// the first reads its request and looks for waiters before the second has
// registered as one (waiters is 0). The connection must still be read on
// for the second — a pipelining DEALER's next request must not wait until
// idleWatch (an hour here), nor until the first caller comes back.
func TestRecvRequestWaiterAfterReaderChecked(t *testing.T) {
	longIdleWatch(t)
	ctx := ctxT(t, 10*time.Second)
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	first := make(chan *Request, 1)
	go func() {
		if r, err := rep.RecvRequest(ctx); err == nil {
			first <- r // handled slowly: this caller does not come back
		}
	}()
	// It waits for a connection (taking repSig's wake-up when one comes).
	waitFor(t, 10*time.Second, "the first caller waiting", func() bool { return rep.recvQ.waiters() == 1 })
	p := dealerTo(t, rep)
	c := p.c
	waitFor(t, 10*time.Second, "the first caller reading", onlyConn(rep, c.LocalAddr().String(), rdCaller))
	l := onlyLink(t, rep)

	// The second caller's steps in RecvRequest: recvDirect cannot claim the
	// connection ...
	rep.lmu.Lock()
	sess, _, _ := l.claim()
	rep.lmu.Unlock()
	if sess != 0 {
		t.Fatalf("claim = %d while another caller reads", sess)
	}
	// ... the first caller reads a request, and nobody waits for the queue
	// yet ...
	p.write(t, plainFrames(Message{nil, []byte("one")}))
	if r := <-first; string(r.Msg[0]) != "one" {
		t.Fatalf("first caller got %q", r.Msg)
	}
	// ... then the second waits for the queue.
	second := make(chan inMsg, 1)
	go func() {
		if m, err := rep.recvQ.getOr(ctx, rep.repSig, nil); err == nil {
			second <- m
		}
	}()
	waitFor(t, 10*time.Second, "the second caller waiting for the queue", func() bool { return rep.recvQ.waiters() == 1 })
	p.write(t, plainFrames(Message{nil, []byte("two")}))
	select {
	case m := <-second:
		if string(m.msg[0]) != "two" {
			t.Fatalf("second caller got %q", m.msg)
		}
	case <-ctx.Done():
		t.Fatal("the second request was never read: the connection was left to nobody")
	}
}

// writeStale writes a request as Request does, for a reply nobody will take.
func writeStale(t *testing.T, l *link) {
	t.Helper()
	if err := l.write(true, func(w *bufioWriter) error {
		if l.ext {
			return writeMsg(w, Message{[]byte("stale")})
		}
		return writePlain(w, Message{nil, []byte("stale")})
	}); err != nil {
		t.Fatal(err)
	}
}

// requestGivenUpAfterHandOver plays Request's steps on a req gate wired to
// an echoing rep gate, with the watcher's hand-over landing as the
// request's context ends: acquire, claim (wait for the watcher), the
// request written, awaitReply on the ended context. It returns the test's
// context, the req gate and its link.
func requestGivenUpAfterHandOver(t *testing.T) (context.Context, *Gate, *link) {
	t.Helper()
	longIdleWatch(t)
	ctx := ctxT(t, 10*time.Second)
	_, rep, _, req := reqRepPair(t, fastOpts)
	serveEcho(ctx, rep, "re:")
	if m, err := req.Request(ctx, []byte("q0")); err != nil || string(m[0]) != "re:q0" {
		t.Fatalf("first request: %q %v", m, err)
	}
	l := onlyLink(t, req)
	l.wakeWatcher()
	waitFor(t, 10*time.Second, "the watcher reading", allSlots(req, rdWatch))

	if got, err := req.acquire(ctx); err != nil || got != l {
		t.Fatalf("acquire: %v %v", got, err)
	}
	sess, reading, _ := l.claim()
	if sess == 0 || reading {
		t.Fatalf("claim = %d %v, want to wait for the watcher", sess, reading)
	}
	// Written once the connection is handed over, so that the reply
	// cannot be read by the watcher and be waiting in l.replies (select
	// would then pick it or the ended context at random).
	grantedTo(t, l, sess)
	writeStale(t, l)
	req.ctr.sent.Add(1) // as Request counts it
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.awaitReply(ended, sess, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("awaitReply on an ended context = %v", err)
	}
	return ctx, req, l
}
