package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// Request/reply without a hand-off. A request's round trip is latency, not
// throughput: what it costs beyond the wire is goroutine hand-offs. Waking a
// parked goroutine from another one makes the runtime wake an idle thread
// as well (a futex call and, on a machine with an idle core, a migration);
// a goroutine woken by the network poller instead runs on the thread that
// polled, right after the one that parked. So the goroutine that waits for
// a message reads the connection itself — Request its reply, RecvRequest the
// next request of a rep gate's only connection — and a round trip stays on
// one thread, as raw TCP ping-pong does (docs/gates.md has the numbers).
//
// Between callers a link's watcher goroutine reads the connection, so that
// a peer that closes or sends PINGs is noticed and a request that arrives
// while nobody waits is queued. readSlot says who reads.

// idleWatch is how long a req or rep connection may go unread after a
// caller stopped reading it before its watcher reads it again. Each request
// that comes less often costs a hand-over (a deadline and two wake-ups);
// the watcher's timer wakes the runtime's poller once per idleWatch while
// callers take turns (at 1 ms this alone doubled the p99 of a round trip);
// and an idle peer's death (or PING) is noticed up to idleWatch late — but
// nothing is sent to a connection unread for more than trustRead without
// looking (peerGone).
//
// A variable only so that tests can make it long enough to show that a
// path does not depend on it.
var idleWatch = 50 * time.Millisecond

// trustRead: a connection read within this long is taken to be alive when
// a request or reply is sent on it; one unread for longer is looked at
// first (peerGone, a system call). A reader goroutine, as every connection
// had before, noticed a peer's death a scheduling delay late, which is of
// this order.
const trustRead = 50 * time.Microsecond

// Who reads a req or rep link's connection.
const (
	rdFree   = iota // nobody: the watcher takes it after idleWatch
	rdWatch         // the watcher goroutine
	rdCaller        // a caller of Request or RecvRequest (a read session)
)

// readSlot hands a req or rep link's reading between its watcher and
// callers. A caller takes a free slot at once; if the watcher reads, the
// caller asks for it (want), and the watcher's read is interrupted with a
// read deadline in the past: it hands over at once (what was read of a
// frame stays in the link's readState, for the caller to continue) unless it
// holds a message, which it passes on first (to the waiting Request, or the
// rep gate's queue). A caller's read is interrupted the same way when its
// context ends or a rep gate gets a second connection (stop).
type readSlot struct {
	mu      sync.Mutex
	state   int    // rdFree, rdWatch, rdCaller
	owner   uint64 // the reading session while rdCaller
	want    uint64 // the session waiting for the watcher to hand over, or 0
	seq     uint64 // sessions handed out
	stop    bool   // the owner must give the slot up
	waitedQ bool   // a caller found the slot taken and waits for the queue: the next release wakes the watcher
	kicked  bool   // the connection's read deadline is in the past
	granted signal // the watcher handed over to want (or want was withdrawn)
	wake    signal // the watcher: take a free slot now
	idle    *time.Timer
	freedAt time.Time // when the slot became free

	// The owner's context is watched with context.AfterFunc, and the watch
	// is kept for the next caller whose context has the same Done channel
	// (a loop passing the same ctx), so that it costs nothing per call. It
	// is stopped when the link dies (dead).
	ownerDone <-chan struct{} // the owner's ctx.Done()
	ctxDone   <-chan struct{} // the watched one
	ctxStop   func() bool
	dead      bool
}

func newReadSlot() readSlot {
	return readSlot{granted: newSignal(), wake: newSignal(), idle: time.NewTimer(idleWatch)}
}

// errLinkLost: the link broke while a caller read it or waited for it.
var errLinkLost = errors.New("link lost")

var aLongTimeAgo = time.Unix(1, 0)

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// kickLocked interrupts the current reader's read (with s.mu held).
func (l *link) kickLocked() {
	if !l.slot.kicked {
		l.slot.kicked = true
		l.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// unkickLocked clears the deadline before the next read (with s.mu held).
func (l *link) unkickLocked() {
	if l.slot.kicked {
		l.slot.kicked = false
		l.nc.SetReadDeadline(time.Time{})
	}
}

// claim starts a read session for a caller. With reading, the caller reads
// now, and unread says how long nobody had. Otherwise, if sess is not 0, the
// watcher was reading and has been asked to hand over: wait for granted and
// check with grantState. sess is 0 when the link is closed or another caller
// reads it or waits for it.
func (l *link) claim() (sess uint64, reading bool, unread time.Duration) {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.closed() {
		return 0, false, 0
	}
	switch {
	case s.state == rdFree:
		s.seq++
		s.state, s.owner, s.stop = rdCaller, s.seq, false
		l.unkickLocked()
		return s.seq, true, time.Since(s.freedAt)
	case s.state == rdWatch && s.want == 0:
		s.seq++
		s.want = s.seq
		l.kickLocked()
		return s.seq, false, 0
	}
	// Another caller reads the connection or waits for it, and this one
	// will wait for the queue. It is not counted among the queue's waiters
	// yet when the reader looks for them (recvDirect), so the reader's
	// release must wake the watcher all the same, or the next request is
	// not read for it until idleWatch.
	s.waitedQ = true
	return 0, false, 0
}

// grantState reports whether sess reads the link now, and whether it still
// waits for the watcher to hand over.
func (l *link) grantState(sess uint64) (owns, wanting bool) {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == rdCaller && s.owner == sess, s.want == sess
}

// unwant withdraws sess's request for the slot, or releases the slot if it
// was handed over meanwhile. Then the watcher reads again at once: sess read
// nothing, and what comes — a given-up request's reply, the next request
// for callers waiting for the queue — is the watcher's; left free, the
// connection would go unread until idleWatch.
func (l *link) unwant(sess uint64) {
	s := &l.slot
	s.mu.Lock()
	if s.want == sess {
		s.want = 0 // the watcher clears the deadline when its read times out
	}
	l.releaseLocked(sess, true)
	s.mu.Unlock()
}

// release ends sess's reading. The watcher reads again once the connection
// has gone unread for idleWatch, or at once with now (or if sess was told to
// stop).
func (l *link) release(sess uint64, now bool) {
	l.slot.mu.Lock()
	l.releaseLocked(sess, now)
	l.slot.mu.Unlock()
}

func (l *link) releaseLocked(sess uint64, now bool) {
	s := &l.slot
	if s.state != rdCaller || s.owner != sess {
		return
	}
	s.state, s.owner, s.ownerDone = rdFree, 0, nil
	s.freedAt = time.Now()
	if now || s.stop || s.waitedQ {
		s.waitedQ = false
		s.wake.notify()
		return
	}
	select { // a wake-up left from earlier would take the slot too soon
	case <-s.wake:
	default:
	}
}

// wakeWatcher makes the watcher read the connection now if nobody does.
func (l *link) wakeWatcher() {
	s := &l.slot
	s.mu.Lock()
	if s.state == rdFree {
		s.wake.notify()
	}
	s.mu.Unlock()
}

// unread reports how long nobody has read the connection (0: somebody
// reads it now).
func (l *link) unread() time.Duration {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != rdFree {
		return 0
	}
	return time.Since(s.freedAt)
}

// interrupt makes sess's read return: its context ended.
func (l *link) interrupt(sess uint64) {
	l.stopOwnerIf(func(s *readSlot) bool { return s.owner == sess })
}

// stopOwnerIf interrupts the reading caller's read if match says so.
func (l *link) stopOwnerIf(match func(*readSlot) bool) {
	s := &l.slot
	s.mu.Lock()
	if s.state == rdCaller && match(s) {
		s.stop = true
		l.kickLocked()
	}
	s.mu.Unlock()
}

// watchCtx makes sess's read return when ctx ends (see readSlot.ctxDone).
func (l *link) watchCtx(ctx context.Context, sess uint64) {
	done := ctx.Done()
	if done == nil {
		return
	}
	s := &l.slot
	s.mu.Lock()
	if s.dead || s.state != rdCaller || s.owner != sess {
		s.mu.Unlock()
		return // the connection is closed: reads fail at once
	}
	s.ownerDone = done
	if s.ctxDone != done {
		if s.ctxStop != nil {
			s.ctxStop()
		}
		s.ctxDone = done
		s.ctxStop = context.AfterFunc(ctx, func() { l.ctxEnded(done) })
	}
	s.mu.Unlock()
	if ctx.Err() != nil { // ended already: its watch may have fired before
		l.interrupt(sess)
	}
}

// ctxEnded interrupts the owner's read if its context is the one that ended.
func (l *link) ctxEnded(done <-chan struct{}) {
	l.stopOwnerIf(func(s *readSlot) bool { return s.ownerDone == done })
}

// unwatchCtx stops watching contexts: the link is dead.
func (l *link) unwatchCtx() {
	s := &l.slot
	s.mu.Lock()
	if s.ctxStop != nil {
		s.ctxStop()
	}
	s.ctxStop, s.ctxDone, s.dead = nil, nil, true
	s.mu.Unlock()
}

// evict leaves the link to its watcher: a caller reading it stops, one
// waiting for it stops waiting (rep: the gate has more than one connection).
func (l *link) evict() {
	s := &l.slot
	s.mu.Lock()
	if s.want != 0 {
		s.want = 0
		s.granted.notify()
	}
	if s.state == rdCaller {
		s.stop = true
		l.kickLocked()
	}
	s.wake.notify()
	s.mu.Unlock()
}

// stopped is for a caller whose read timed out: whether it must give the
// slot up. If not, the deadline was meant for the watcher before the
// caller took over, and is cleared.
func (l *link) stopped(sess uint64) bool {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != rdCaller || s.owner != sess || s.stop {
		return true
	}
	l.unkickLocked()
	return false
}

// watchTake makes the watcher the reader if nobody has read for idleWatch,
// or now if nobody reads; else its timer is set for the next look. (Callers
// do not touch the timer: taking turns costs them a clock reading, not a
// timer each.)
func (l *link) watchTake(now bool) bool {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	wait := idleWatch
	if s.state == rdFree {
		unread := time.Since(s.freedAt)
		if now || unread >= idleWatch {
			s.state = rdWatch
			l.unkickLocked()
			return true
		}
		wait -= unread
	}
	if !now {
		s.idle.Reset(wait)
	}
	return false
}

// watchYield hands the slot to the caller that asked for it, if one did.
// After a read that timed out for a request since withdrawn, it clears the
// deadline.
func (l *link) watchYield(timedOut bool) bool {
	s := &l.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.want != 0 {
		s.state, s.owner, s.want, s.stop = rdCaller, s.want, 0, false
		l.unkickLocked()
		s.granted.notify()
		s.idle.Reset(idleWatch)
		return true
	}
	if timedOut {
		l.unkickLocked()
	}
	return false
}

// watch is a req or rep link's reader goroutine. It reads while no caller
// does (see readSlot): it answers PINGs, notices the peer going away, and
// passes on what arrives — a reply to the Request waiting for it (or drops
// a stale one), a request to the gate's queue.
func (l *link) watch() {
	s := &l.slot
	defer s.idle.Stop()
	defer l.unwatchCtx()
	for {
		now := false
		select {
		case <-l.done:
			return
		case <-s.idle.C:
		case <-s.wake:
			now = true
		}
		if !l.watchTake(now) {
			continue
		}
		for {
			b, err := l.next()
			if err == nil {
				err = l.deliver(b)
			} else if isTimeout(err) {
				if l.watchYield(true) {
					break
				}
				continue
			}
			if err != nil {
				l.fail(err)
				return
			}
			if l.watchYield(false) {
				break
			}
		}
	}
}

// readOne reads the next message as sess's reader. When ctx ends (or sess
// is evicted) the read is interrupted, the slot goes back to the watcher,
// and it returns stopped; a broken or misbehaving connection is failed and
// errLinkLost returned. On success the slot is released.
func (l *link) readOne(ctx context.Context, sess uint64) (b inBatch, stopped bool, err error) {
	l.watchCtx(ctx, sess)
	for {
		b, err = l.next()
		if err == nil {
			if b.nmsg == 1 {
				break
			}
			err = l.deliver(b) // refuses it
		}
		if isTimeout(err) && !l.stopped(sess) {
			continue
		}
		if isTimeout(err) {
			l.release(sess, true) // what comes is the watcher's now
			return inBatch{}, true, nil
		}
		l.fail(err)
		l.release(sess, true)
		return inBatch{}, false, errLinkLost
	}
	// More already here (a peer that does not wait for replies): the
	// watcher reads it now, for another caller.
	l.release(sess, l.br.Buffered() > 0)
	return b, false, nil
}

// Request sends a request on a req gate to the next idle peer (round robin)
// and waits for its reply. If the peer goes away before replying the error
// wraps ErrPeerLost: the request may or may not have been processed.
func (g *Gate) Request(ctx context.Context, parts ...[]byte) (Message, error) {
	if g.pattern != control.Req {
		return nil, fmt.Errorf("cannot request on %s gate %q: %w", g.pattern, g.name, ErrPattern)
	}
	m := Message(parts)
	if len(m) == 0 {
		return nil, fmt.Errorf("cannot request on gate %q: a message needs at least one part", g.name)
	}
	if s := m.Size(); s > g.opt.MaxMessageSize {
		return nil, fmt.Errorf("cannot request on gate %q: %w (%d bytes)", g.name, ErrTooBig, s)
	}
	for {
		l, err := g.acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot request on gate %q: %w", g.name, err)
		}
		sess, reading, unread := l.claim()
		if sess == 0 && l.closed() {
			continue
		}
		if reading && unread > trustRead && peerGone(l.raw) {
			// It went away while nobody read the connection: this request
			// goes to another peer.
			l.release(sess, true)
			l.fail(io.EOF)
			continue
		}
		err = l.write(true, func(w *bufioWriter) error {
			if l.ext {
				return writeMsg(w, m)
			}
			return writePlain(w, append(Message{nil}, m...))
		})
		if err != nil {
			l.unwant(sess)
			continue // not sent: safe to try another peer
		}
		g.ctr.sent.Add(1)
		rep, err := l.awaitReply(ctx, sess, reading)
		switch {
		case err == nil:
			g.release(l)
			g.ctr.received.Add(1)
			return rep, nil
		case errors.Is(err, errLinkLost):
			return nil, fmt.Errorf("request on gate %q to %s: %w: %v", g.name, l.remote, ErrPeerLost, l.err)
		}
		g.abandon(l)
		return nil, fmt.Errorf("request on gate %q to %s: %w", g.name, l.remote, err)
	}
}

// awaitReply waits for the reply to the request just written on l, as
// read session sess (see claim): it reads the connection itself, or takes
// what the watcher read.
func (l *link) awaitReply(ctx context.Context, sess uint64, reading bool) (Message, error) {
	for !reading {
		// The link was idle and its watcher reads: it hands over at once,
		// unless the reply comes first (then it passes that on).
		select {
		case <-l.slot.granted:
			reading, _ = l.grantState(sess)
			continue
		case rep := <-l.replies:
			l.unwant(sess)
			return rep, nil
		case <-l.done:
			l.unwant(sess)
			return nil, errLinkLost
		case <-ctx.Done():
			l.unwant(sess)
			return nil, ctx.Err()
		}
	}
	select { // read by the watcher before it handed over
	case rep := <-l.replies:
		l.release(sess, false)
		return rep, nil
	default:
	}
	b, stopped, err := l.readOne(ctx, sess)
	switch {
	case err != nil:
		return nil, err
	case stopped:
		return nil, ctx.Err() // the watcher drops the reply when it comes (abandon)
	}
	return b.only(), nil
}

func (g *Gate) acquire(ctx context.Context) (*link, error) {
	for {
		g.lmu.Lock()
		if g.closing {
			g.lmu.Unlock()
			return nil, ErrClosed
		}
		ls := g.reqLinks
		for i := range ls {
			l := ls[(g.rr+i)%len(ls)]
			if l.reqState == reqIdle && !l.closed() {
				l.reqState = reqBusy
				g.rr = (g.rr + i + 1) % len(ls)
				g.lmu.Unlock()
				return l, nil
			}
		}
		g.lmu.Unlock()
		select {
		case <-g.linkSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (g *Gate) release(l *link) {
	g.lmu.Lock()
	l.reqState = reqIdle
	select {
	case <-l.replies:
		// The caller read its reply itself, and the watcher then read
		// another one (a peer replying twice) before the link went idle:
		// left there, it would answer the next request.
		g.ctr.dropped.Add(1)
	default:
	}
	g.lmu.Unlock()
	g.linkSig.notify()
}

// abandon marks a request whose caller gave up: its reply, when it comes, is
// discarded before the link takes another request.
func (g *Gate) abandon(l *link) {
	g.lmu.Lock()
	select {
	case <-l.replies: // it came as the caller gave up: dropped, as in reply
		l.reqState = reqIdle
		g.ctr.dropped.Add(1)
	default:
		l.reqState = reqStale
	}
	g.lmu.Unlock()
	g.linkSig.notify()
}

// reply is called by a req link's watcher with a reply.
func (g *Gate) reply(l *link, m Message) {
	g.lmu.Lock()
	defer g.lmu.Unlock()
	switch l.reqState {
	case reqBusy:
		select {
		case l.replies <- m: // capacity 1, one request at a time
			return
		default:
			// A second reply to one request: the peer broke the pattern.
			// Waiting for room would hold g.lmu until the caller came.
		}
	case reqStale:
		l.reqState = reqIdle // the reply its caller gave up on
		g.linkSig.notify()
	}
	// Nobody waits for it (or a peer replied unasked): counted, as every
	// loss is.
	g.ctr.dropped.Add(1)
}

// addReqLink and removeReqLink keep a req gate's links sorted by peer, for
// the round robin (with g.lmu held).
func (g *Gate) addReqLink(l *link) {
	i, _ := slices.BinarySearchFunc(g.reqLinks, l, func(a, b *link) int { return strings.Compare(a.remote, b.remote) })
	g.reqLinks = slices.Insert(g.reqLinks, i, l)
}

func (g *Gate) removeReqLink(l *link) {
	if i := slices.Index(g.reqLinks, l); i >= 0 {
		g.reqLinks = slices.Delete(g.reqLinks, i, i+1)
	}
}

// Request is a request received on a rep gate.
type Request struct {
	Msg  Message
	g    *Gate
	from *link
	env  [][]byte
	done atomic.Bool
}

// RecvRequest returns the next request of a rep gate. Requests may be handled
// concurrently; each must be answered with Reply.
func (g *Gate) RecvRequest(ctx context.Context) (*Request, error) {
	if g.pattern != control.Rep {
		return nil, fmt.Errorf("cannot receive requests on %s gate %q: %w", g.pattern, g.name, ErrPattern)
	}
	for {
		if m, ok := g.recvQ.tryGet(); ok {
			return g.request(m), nil
		}
		if r, err, ok := g.recvDirect(ctx); ok {
			return r, err
		}
		// Several connections (their watchers queue requests), or another
		// caller reads the only one: wait for the queue, or for a change.
		m, err := g.recvQ.getOr(ctx, g.repSig, nil)
		switch {
		case errors.Is(err, errAlt):
			continue
		case err != nil:
			return nil, err
		}
		return g.request(m), nil
	}
}

func (g *Gate) request(m inMsg) *Request {
	return &Request{Msg: m.msg, g: g, from: m.from, env: m.env}
}

// recvDirect reads the next request from a rep gate's only connection
// itself, if no other caller reads it. ok is false when it did not get to
// (no connection, several, another caller) or had to stop (the connection
// broke, a second one came); the caller then waits for the queue.
func (g *Gate) recvDirect(ctx context.Context) (r *Request, err error, ok bool) {
	var l *link
	var sess uint64
	reading := false
	g.lmu.Lock()
	if len(g.links) == 1 {
		for k := range g.links {
			l = k
		}
		// Under g.lmu: a second connection evicts us (addLink) after this,
		// never between the count and the claim.
		sess, reading, _ = l.claim()
	}
	g.lmu.Unlock()
	if sess == 0 {
		return nil, nil, false
	}
	for !reading {
		// The watcher reads: it hands over at once, unless it holds a
		// request (which it queues first).
		m, err := g.recvQ.getOr(ctx, l.slot.granted, l.done)
		if errors.Is(err, errAlt) {
			owns, wanting := l.grantState(sess)
			if owns {
				reading = true
				continue
			}
			if wanting && !l.closed() {
				continue // a wake-up meant for an earlier session
			}
			l.unwant(sess)
			return nil, nil, false
		}
		l.unwant(sess)
		if err != nil {
			return nil, err, true
		}
		return g.request(m), nil, true
	}
	if m, ok := g.recvQ.tryGet(); ok { // queued by the watcher before it handed over
		l.release(sess, false)
		r = g.request(m)
	} else {
		b, stopped, err := l.readOne(ctx, sess)
		switch {
		case err != nil:
			return nil, nil, false
		case stopped:
			if err := ctx.Err(); err != nil {
				return nil, err, true
			}
			return nil, nil, false // evicted
		}
		g.ctr.received.Add(1)
		r = &Request{Msg: b.only(), g: g, from: l, env: b.env}
	}
	if g.recvQ.waiters() > 0 {
		// Other callers wait for the queue, not for the connection: the
		// watcher reads on now, so that a peer that sends its next request
		// before this one is answered (a DEALER) is not left unread until
		// idleWatch while they wait.
		l.wakeWatcher()
	}
	return r, nil, true
}

// Reply answers the request. It fails with ErrPeerLost if the requester went
// away.
func (r *Request) Reply(parts ...[]byte) error {
	if r.done.Swap(true) {
		return errors.New("request already answered")
	}
	l := r.from
	if !l.closed() && l.unread() > trustRead && peerGone(l.raw) {
		l.fail(io.EOF) // it went away while nobody read the connection
	}
	if l.closed() {
		r.g.ctr.dropped.Add(1)
		return fmt.Errorf("cannot reply on gate %q: %w (%s)", r.g.name, ErrPeerLost, l.remote)
	}
	m := Message(parts)
	err := l.write(true, func(w *bufioWriter) error {
		if l.ext {
			return writeMsg(w, m)
		}
		return writePlain(w, append(slices.Clone(r.env), m...))
	})
	if err != nil {
		r.g.ctr.dropped.Add(1)
		return fmt.Errorf("cannot reply on gate %q: %w: %v", r.g.name, ErrPeerLost, err)
	}
	r.g.ctr.sent.Add(1)
	return nil
}
