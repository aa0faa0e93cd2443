package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// Errors callers may need to tell apart.
var (
	// ErrClosed: the gate (or its hub) is closed.
	ErrClosed = errors.New("gate closed")
	// ErrDrained: an in-gate was drained and everything it held was received.
	ErrDrained = errors.New("gate drained")
	// ErrPattern: the operation does not exist for the gate's pattern.
	ErrPattern = errors.New("operation not supported by this gate's pattern")
	// ErrPeerLost: the peer of a request (or of a request being replied to)
	// went away; the request may or may not have been processed.
	ErrPeerLost = errors.New("peer lost")
	// ErrTooBig: a message exceeds Options.MaxMessageSize.
	ErrTooBig = errors.New("message too big")
)

// counters are the gate's counters; messages taken from an in-gate's
// receive queue are counted by the queue (recvQueue.taken).
type counters struct {
	sent, received, dropped, rerouted, refused atomic.Uint64
	// stopDropped: of dropped, what an out-gate held when it closed.
	stopDropped atomic.Uint64
}

// Gate is one named gate of a service: an in-gate (binds; pull, sub, rep,
// pair) or an out-gate (connects to every current peer; push, pub, req,
// pair). Methods are safe for concurrent use.
type Gate struct {
	hub     *Hub
	name    string
	dir     control.Direction
	pattern control.Pattern
	opt     Options
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ctr     counters

	sendQ    *sendQueue // push, pair
	recvQ    *recvQueue // pull, sub, rep, pair
	progress signal     // something was written or acknowledged

	lmu       sync.Mutex
	links     map[*link]struct{}  // live, handshaken connections
	reqLinks  []*link             // req: the links sorted by peer
	rr        int                 // req round robin over reqLinks
	linkSig   signal              // a link came, went or became idle
	repSig    signal              // rep: a link came or went
	topics    map[string]struct{} // sub
	peers     map[string]*peer    // out-gates: configured peers
	ln        net.Listener        // in-gates
	bound     string
	draining  bool
	closing   bool
	drainDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

func newGate(h *Hub, spec control.GateSpec) *Gate {
	ctx, cancel := context.WithCancel(h.ctx)
	g := &Gate{
		hub: h, name: spec.Name, dir: spec.Dir, pattern: spec.Pattern, opt: h.opt,
		log: h.log, ctx: ctx, cancel: cancel, progress: newSignal(),
		links: map[*link]struct{}{}, linkSig: newSignal(), repSig: newSignal(), topics: map[string]struct{}{},
		peers: map[string]*peer{}, drainDone: make(chan struct{}),
	}
	switch g.pattern {
	case control.Push, control.Pair:
		g.sendQ = newSendQueue(g.opt.QueueLen, g.opt.QueueBytes, g.opt.BatchMsgs, g.opt.BatchBytes)
	}
	switch g.pattern {
	case control.Pull, control.Sub, control.Rep, control.Pair:
		g.recvQ = newRecvQueue(g.opt.QueueBytes)
	}
	return g
}

// Name returns the gate's name.
func (g *Gate) Name() string { return g.name }

// Pattern returns the gate's pattern.
func (g *Gate) Pattern() control.Pattern { return g.pattern }

// Addr returns an in-gate's bound address (tcp://host:port), else "".
func (g *Gate) Addr() string { return g.bound }

// Send sends one message made of parts. For push and pair it blocks while the
// gate's queue is full (no peer, or every peer busy) until ctx ends; for pub
// it never blocks: a subscriber whose queue is full loses the message, and
// that is counted as dropped. Send copies the parts before it returns: the
// caller may reuse them at once.
func (g *Gate) Send(ctx context.Context, parts ...[]byte) error {
	return g.SendMsg(ctx, Message(parts))
}

// SendMsg is Send with a Message.
func (g *Gate) SendMsg(ctx context.Context, m Message) error {
	size, err := g.checkMsg(m)
	if err != nil {
		return err
	}
	switch g.pattern {
	case control.Push, control.Pair:
		if err := g.sendQ.push(ctx, m, size); err != nil {
			return fmt.Errorf("cannot send on gate %q: %w", g.name, err)
		}
		return nil
	case control.Pub:
		return g.publish(m, size)
	}
	return fmt.Errorf("cannot send on %s gate %q: %w (use Request or Reply)", g.pattern, g.name, ErrPattern)
}

// checkMsg returns m's payload size, or why it cannot be sent.
func (g *Gate) checkMsg(m Message) (int, error) {
	if len(m) == 0 {
		return 0, fmt.Errorf("cannot send on gate %q: a message needs at least one part", g.name)
	}
	size := m.Size()
	if size > g.opt.MaxMessageSize {
		return 0, fmt.Errorf("cannot send on gate %q: %w (%d bytes, limit %d)", g.name, ErrTooBig, size, g.opt.MaxMessageSize)
	}
	return size, nil
}

// SendBatch sends msgs in order, as many calls of SendMsg would, but
// queues them under one lock per run that fits in the queue: the way to
// move many small messages at the speed of the wire. It checks every message
// first (at least one part, at most MaxMessageSize) and sends none if one
// fails. For push and pair it blocks while the queue is full; it returns how
// many messages were queued — all of them with a nil error; otherwise
// msgs[:n] will be delivered like any sent message and msgs[n:] were not
// sent (ctx ended, or the gate closed). Like Send it copies the messages
// before it returns.
func (g *Gate) SendBatch(ctx context.Context, msgs []Message) (int, error) {
	switch g.pattern {
	case control.Push, control.Pair, control.Pub:
	default:
		return 0, fmt.Errorf("cannot send on %s gate %q: %w (use Request or Reply)", g.pattern, g.name, ErrPattern)
	}
	var stack [64]int
	sizes := stack[:0]
	if len(msgs) > len(stack) {
		sizes = make([]int, 0, len(msgs))
	}
	for i, m := range msgs {
		size, err := g.checkMsg(m)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		sizes = append(sizes, size)
	}
	if g.pattern == control.Pub {
		for i, m := range msgs {
			if err := g.publish(m, sizes[i]); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	n, err := g.sendQ.pushBatch(ctx, msgs, sizes)
	if err != nil {
		return n, fmt.Errorf("cannot send on gate %q (%d of %d messages queued): %w", g.name, n, len(msgs), err)
	}
	return n, nil
}

func (g *Gate) publish(m Message, size int) error {
	g.lmu.Lock()
	if g.closing {
		g.lmu.Unlock()
		return fmt.Errorf("cannot send on gate %q: %w", g.name, ErrClosed)
	}
	delivered := false
	for l := range g.links {
		if !l.active.Load() {
			// Its subscriptions have not arrived yet: it might have wanted
			// this one. Counted rather than guessed.
			g.ctr.dropped.Add(1)
			continue
		}
		if !l.subscribed(m[0]) {
			continue
		}
		delivered = true
		if !l.pq.tryPush(m, size) {
			g.ctr.dropped.Add(1)
		}
	}
	g.lmu.Unlock()
	if !delivered && len(g.links) == 0 {
		// Nobody connected: the message reaches no one. Counted, as is every loss.
		g.ctr.dropped.Add(1)
	}
	return nil
}

// Recv returns the next message of a pull, sub or pair gate. It returns
// ErrDrained once a drained gate has handed over everything it held.
//
// The message is the caller's: it is not reused by the gate. Its parts
// share memory with the other messages that arrived in the same batch (at
// most BatchBytes, or one message), which stays allocated while any of them
// is referenced.
func (g *Gate) Recv(ctx context.Context) (Message, error) {
	if err := g.canRecv(); err != nil {
		return nil, err
	}
	m, err := g.recvQ.get(ctx)
	if err != nil {
		return nil, err
	}
	return m.msg, nil
}

// Batch receives many messages per call without allocating (RecvBatch).
// Its messages point into receive buffers that the gate reuses once no
// Batch refers to them any more, hence the rule:
//
// The messages in Msgs are valid until b is passed to RecvBatch again or
// released with Release. To keep one longer, copy it (Message.Clone).
//
// A Batch is for one goroutine at a time; its zero value is ready to use.
type Batch struct {
	// Msgs are the messages the last RecvBatch received, in order.
	Msgs   []Message
	frames []*inFrame
}

// Release lets go of the messages in b (Msgs becomes empty) so that their
// buffers can be reused. It is idempotent.
func (b *Batch) Release() {
	for i, f := range b.frames {
		f.unref()
		b.frames[i] = nil
	}
	b.frames = b.frames[:0]
	clear(b.Msgs)
	b.Msgs = b.Msgs[:0]
}

// RecvBatch releases what b held, waits for a message as Recv does, then
// puts it in b.Msgs with as many more as have already arrived, at most limit:
// the way to take many small messages at the speed of the wire (one lock and
// at most one wake-up per call, no allocation). See Batch for how long the
// messages are valid. On error b.Msgs is empty.
func (g *Gate) RecvBatch(ctx context.Context, b *Batch, limit int) error {
	b.Release()
	if err := g.canRecv(); err != nil {
		return err
	}
	return g.recvQ.getBatch(ctx, b, max(limit, 1))
}

func (g *Gate) canRecv() error {
	switch g.pattern {
	case control.Pull, control.Sub, control.Pair:
		return nil
	}
	return fmt.Errorf("cannot receive on %s gate %q: %w", g.pattern, g.name, ErrPattern)
}

// Messages is the channel view of Recv: it delivers messages until ctx ends
// or the gate is drained or closed, then closes the channel.
func (g *Gate) Messages(ctx context.Context) <-chan Message {
	ch := make(chan Message)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(ch)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // Recv must also end when the gate closes
			select {
			case <-g.ctx.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		for {
			m, err := g.Recv(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// Subscribe adds a topic prefix to a sub gate ("" means everything).
func (g *Gate) Subscribe(topic string) error { return g.setTopic(topic, true) }

// Unsubscribe removes a topic prefix from a sub gate.
func (g *Gate) Unsubscribe(topic string) error { return g.setTopic(topic, false) }

func (g *Gate) setTopic(topic string, on bool) error {
	if g.pattern != control.Sub {
		return fmt.Errorf("cannot subscribe on %s gate %q: %w", g.pattern, g.name, ErrPattern)
	}
	g.lmu.Lock()
	if on {
		g.topics[topic] = struct{}{}
	} else {
		delete(g.topics, topic)
	}
	links := slices.Collect(mapKeys(g.links))
	g.lmu.Unlock()
	for _, l := range links {
		sendSubs(l, on, []string{topic}, false)
	}
	return nil
}

// sendSubs tells a publisher about topics; with sync, an extension peer also
// learns that the subscription list is complete.
func sendSubs(l *link, on bool, topics []string, sync bool) error {
	return l.write(true, func(w *bufioWriter) error {
		kind, flag := byte(kindUnsub), byte(0)
		if on {
			kind, flag = kindSub, 1
		}
		for _, t := range topics {
			if l.ext {
				writeExt(w, kind, []byte(t))
			} else {
				writePlain(w, Message{append([]byte{flag}, t...)})
			}
		}
		if sync && l.ext {
			return writeExt(w, kindSync, nil)
		}
		return nil
	})
}

// Stats returns the gate's counters.
func (g *Gate) Stats() control.GateCounters {
	c := control.GateCounters{
		Pattern: g.pattern, Dir: g.dir,
		Sent: g.ctr.sent.Load(), Received: g.ctr.received.Load(), Dropped: g.ctr.dropped.Load(), StopDropped: g.ctr.stopDropped.Load(),
		Rerouted: g.ctr.rerouted.Load(), Refused: g.ctr.refused.Load(),
	}
	// Read the queue before the links: a chunk moving from a writer's hands
	// to its link's in-flight list may then count twice, never not at all.
	if g.sendQ != nil {
		c.QueueDepth += g.sendQ.depth()
	}
	if g.recvQ != nil {
		c.QueueDepth += g.recvQ.len()
		c.Received += g.recvQ.received() // counted under the queue's lock, not per message here
	}
	g.lmu.Lock()
	for l := range g.links {
		n, _ := l.inflight()
		c.InFlight += n
		if l.pq != nil {
			c.QueueDepth += l.pq.depth()
		}
	}
	c.Peers = len(g.links)
	c.PeersWanted = len(g.peers)
	g.lmu.Unlock()
	return c
}

// addLink registers a handshaken link; false if the gate is closing.
func (g *Gate) addLink(l *link) bool {
	g.lmu.Lock()
	if g.closing {
		g.lmu.Unlock()
		return false
	}
	g.links[l] = struct{}{}
	switch g.pattern {
	case control.Req:
		g.addReqLink(l)
	case control.Rep:
		if len(g.links) > 1 {
			// Requests from several connections meet in the queue: each
			// is read by its watcher (see recvDirect).
			for k := range g.links {
				k.evict()
			}
		}
	}
	g.lmu.Unlock()
	g.linkSig.notify()
	g.repSig.notify()
	return true
}

func (g *Gate) removeLink(l *link) {
	g.lmu.Lock()
	delete(g.links, l)
	if g.pattern == control.Req {
		g.removeReqLink(l)
	}
	g.lmu.Unlock()
	g.linkSig.notify()
	g.repSig.notify()
	g.progress.notify()
}

// reroute queues chunks again for the other peers (push, pair); the queue
// takes over the caller's references.
func (g *Gate) reroute(cs []*chunk) {
	n := 0
	for _, c := range cs {
		n += c.n
	}
	if n == 0 {
		for _, c := range cs {
			c.unref()
		}
		return
	}
	g.ctr.rerouted.Add(uint64(n))
	g.sendQ.pushFront(cs)
}

// serve runs a handshaken link until it dies or, for a dialled peer, until
// stop is closed and its in-flight messages are acknowledged (or the drain
// timeout passes). It returns when every goroutine it started has ended.
func (g *Gate) serve(l *link, stop <-chan struct{}) {
	if !g.addLink(l) {
		l.close(ErrClosed)
		return
	}
	defer g.removeLink(l)
	readDone := make(chan struct{})
	read := l.readLoop
	if g.pattern == control.Req || g.pattern == control.Rep {
		read = l.watch // callers read too, see readSlot
	}
	go func() { defer close(readDone); read() }()

	var writeDone chan struct{}
	startWriter := func(q *sendQueue) {
		writeDone = make(chan struct{})
		go func() { defer close(writeDone); l.sendLoop(q, stop) }()
	}
	switch g.pattern {
	case control.Push, control.Pair:
		startWriter(g.sendQ)
	case control.Pub:
		startWriter(l.pq)
	case control.Sub:
		g.lmu.Lock()
		topics := slices.Collect(mapKeys(g.topics))
		g.lmu.Unlock()
		sendSubs(l, true, topics, true)
	}

	select {
	case <-l.done:
	case <-stop:
		// Planned removal: the writer stops taking new messages; what is in
		// flight is acknowledged before the connection closes.
		if writeDone != nil {
			<-writeDone
		}
		if g.pattern == control.Pub {
			g.flushPub(l)
		}
		l.flush()
		g.awaitAcks(l)
		l.close(errRemoved)
	}
	<-readDone
	if writeDone != nil {
		<-writeDone
	}
	if l.pq != nil {
		g.ctr.dropped.Add(uint64(l.pq.drop()))
	}
	if g.pattern == control.Push || g.pattern == control.Pair {
		l.takeUnacked(g.reroute)
	}
	if g.pattern == control.Req {
		g.lmu.Lock()
		l.reqState = reqBusy // never hand out a dead link
		g.lmu.Unlock()
	}
}

var errRemoved = errors.New("peer removed")

// awaitAcks waits until l has nothing unacknowledged, or the drain timeout.
func (g *Gate) awaitAcks(l *link) {
	if !l.ext || !(g.pattern == control.Push || g.pattern == control.Pair) {
		return
	}
	t := time.NewTimer(g.opt.DrainTimeout)
	defer t.Stop()
	for {
		if n, _ := l.inflight(); n == 0 {
			return
		}
		select {
		case <-l.spaceSig:
		case <-l.done:
			return
		case <-t.C:
			n, _ := l.inflight()
			g.log.Warn("peer did not acknowledge in time; re-routing its messages", "gate", g.name, "peer", l.remote, "count", n)
			return
		}
	}
}

// flushPub sends what a removed subscriber's queue still holds.
func (g *Gate) flushPub(l *link) {
	for l.pq.len() > 0 && !l.closed() {
		c, _ := l.pq.take(g.opt.BatchMsgs, nil, l.done, nil)
		if c == nil {
			return
		}
		n := c.n
		err := l.writeChunk(c, false)
		c.unref()
		if err != nil {
			g.ctr.dropped.Add(uint64(n))
			l.pq.settle(n)
			return
		}
		g.ctr.sent.Add(uint64(n))
		l.pq.settle(n)
	}
}
