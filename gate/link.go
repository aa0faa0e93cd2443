package gate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/tiltai/tiltai/gate/control"
)

// link is one ZMTP connection to one peer. Its reader runs in its own
// goroutine; writes are serialised by wmu and buffered, flushed when the
// writer has nothing more queued, so many messages share one syscall.
type link struct {
	g      *Gate
	nc     net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex
	bw     *bufio.Writer
	ext    bool   // the peer speaks the Tiltai extension
	remote string // the peer's endpoint (dialled) or address (accepted)
	raw    syscall.RawConn
	done   chan struct{}
	once   sync.Once
	err    error // why it closed; read after done

	// Sender side (push, pair; extension peers only): chunks written and not
	// yet wholly acknowledged, oldest first.
	umu      sync.Mutex
	unacked  []*chunk
	ubytes   int    // their payload bytes (a partly acknowledged chunk counts whole)
	acked    uint64 // cumulative acknowledged count
	written  uint64 // cumulative written count
	spaceSig signal

	// Receiver side: cumulative messages received, and the count last acked.
	recvN, ackedN uint64

	// pub: the subscriber's topics and this link's own bounded queue.
	smu    sync.Mutex
	topics map[string]struct{}
	active atomic.Bool // subscriptions have arrived
	pq     *sendQueue

	// req: one request at a time per link.
	reqState int // guarded by g.lmu: reqIdle, reqBusy, reqStale
	replies  chan Message

	// The reader's state, and (req, rep) who reads.
	rd   readState
	slot readSlot
}

const (
	reqIdle = iota
	reqBusy
	reqStale
)

// handshake performs the ZMTP handshake over nc (via zmq4.Open, with a guard
// on what it reads and a deadline) and returns the link.
func (g *Gate) handshake(nc net.Conn, server bool, remote string) (*link, error) {
	deadline := time.Now().Add(g.opt.HandshakeTimeout)
	nc.SetDeadline(deadline)
	var raw syscall.RawConn // the socket under TLS, for peerGone
	if sc, ok := nc.(syscall.Conn); ok {
		raw, _ = sc.SyscallConn()
	}
	if g.hub.tls != nil {
		nc = g.hub.tls.wrap(nc, server)
	}
	wc := &wireConn{Conn: nc, br: bufio.NewReaderSize(nc, 64<<10), guarded: true}
	sec := &extSecurity{}
	zc, err := zmq4.Open(wc, sec, zmqType(g.pattern), zmq4.SocketIdentity(""), server, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot handshake with %s: %w", remote, err)
	}
	nc.SetDeadline(time.Time{})
	l := &link{
		g: g, nc: nc, br: wc.br, bw: bufio.NewWriterSize(nc, 64<<10),
		ext: sec.peerExt, remote: remote, raw: raw, done: make(chan struct{}),
		spaceSig: newSignal(), topics: map[string]struct{}{},
		replies: make(chan Message, 1),
	}
	_ = zc // the handshake is all we need from zmq4's Conn; framing is ours (see docs/gates.md)
	switch g.pattern {
	case control.Pub:
		l.pq = newSendQueue(g.opt.QueueLen, g.opt.QueueBytes, g.opt.BatchMsgs, g.opt.BatchBytes)
	case control.Req, control.Rep:
		l.slot = newReadSlot()
	}
	return l, nil
}

func zmqType(p control.Pattern) zmq4.SocketType {
	switch p {
	case control.Push:
		return zmq4.Push
	case control.Pull:
		return zmq4.Pull
	case control.Pub:
		return zmq4.Pub
	case control.Sub:
		return zmq4.Sub
	case control.Req:
		return zmq4.Req
	case control.Rep:
		return zmq4.Rep
	}
	return zmq4.Pair
}

func (l *link) close(err error) {
	l.once.Do(func() {
		l.err = err
		l.nc.Close()
		close(l.done)
	})
}

func (l *link) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// write runs f on the buffered writer under the write lock, flushing if asked.
// A write error closes the link.
func (l *link) write(flush bool, f func(w *bufio.Writer) error) error {
	l.wmu.Lock()
	err := f(l.bw)
	if err == nil && flush {
		err = l.bw.Flush()
	}
	l.wmu.Unlock()
	if err != nil {
		l.close(fmt.Errorf("cannot write to %s: %w", l.remote, err))
		return err
	}
	return nil
}

// flush writes out whatever is buffered.
func (l *link) flush() {
	l.write(true, func(*bufio.Writer) error { return nil })
}

// inflight returns the unacknowledged message count and bytes.
func (l *link) inflight() (int, int) {
	l.umu.Lock()
	defer l.umu.Unlock()
	return int(l.written - l.acked), l.ubytes
}

// takeUnacked hands every unacknowledged chunk, less the messages already
// acknowledged, to put, and then forgets them; put runs under the lock, so
// that they are counted in flight until put has counted them elsewhere.
// Call it once the writer has stopped.
func (l *link) takeUnacked(put func([]*chunk)) {
	l.umu.Lock()
	defer l.umu.Unlock()
	out := l.unacked
	if len(out) > 0 && l.acked > out[0].start {
		out[0].dropFront(int(l.acked - out[0].start))
	}
	put(out)
	l.unacked, l.ubytes = nil, 0
	l.written = l.acked
}

func (l *link) ack(n uint64) error {
	l.umu.Lock()
	if n < l.acked || n > l.written {
		l.umu.Unlock()
		return protoErr("ack of %d messages, %d acked and %d written", n, l.acked, l.written)
	}
	k := 0
	for _, c := range l.unacked {
		if c.start+uint64(c.n) > n {
			break
		}
		l.ubytes -= c.bytes
		c.unref()
		k++
	}
	clear(l.unacked[:k])
	l.unacked = l.unacked[k:]
	l.acked = n
	l.umu.Unlock()
	l.spaceSig.notify()
	l.g.progress.notify()
	return nil
}

// directWrite is the frame size from which a chunk is written to the
// connection as it is rather than copied into the buffered writer: big
// enough that a syscall costs less than the copy would.
const directWrite = 16 << 10

// writeChunk writes c (its frame, or plain messages to a plain peer) under
// the write lock; flush says nothing else is queued to follow it.
func (l *link) writeChunk(c *chunk, flush bool) error {
	l.wmu.Lock()
	var err error
	switch {
	case !l.ext:
		err = writePlainChunk(l.bw, c.body())
	case len(c.buf) >= directWrite:
		f := c.frame()
		if l.bw.Buffered() > 0 {
			err = l.bw.Flush()
		}
		if err == nil {
			_, err = l.nc.Write(f)
		}
		flush = false
	default:
		_, err = l.bw.Write(c.frame())
	}
	if err == nil && flush {
		err = l.bw.Flush()
	}
	l.wmu.Unlock()
	if err != nil {
		l.close(fmt.Errorf("cannot write to %s: %w", l.remote, err))
	}
	return err
}

// sendLoop feeds the link from the gate's queue (push, pair) or from its own
// queue (pub) until stop is closed or the link dies. With an extension peer it
// keeps at most Window messages unacknowledged.
func (l *link) sendLoop(q *sendQueue, stop <-chan struct{}) {
	g := l.g
	track := l.ext && g.pattern != control.Pub
	for {
		select {
		case <-stop:
			// Removed: nothing new is routed to this peer, however much is
			// queued (take would hand it out before it looks at stop).
			return
		default:
		}
		maxMsgs := g.opt.BatchMsgs
		if track {
			for {
				n, b := l.inflight()
				if n < g.opt.Window && b < g.opt.WindowBytes {
					maxMsgs = min(maxMsgs, g.opt.Window-n)
					break
				}
				// The window is full: what is buffered must reach the peer,
				// or its acknowledgement never comes.
				l.flush()
				select {
				case <-l.spaceSig:
				case <-stop:
					return
				case <-l.done:
					return
				}
			}
		}
		c, more := q.take(maxMsgs, stop, l.done, l.flush)
		if c == nil {
			return
		}
		n := c.n
		if track {
			c = c.shrink() // kept until acknowledged: do not pin a big buffer
			c.refs.Add(1)  // the unacknowledged list's
			l.umu.Lock()
			c.start = l.written
			l.unacked = append(l.unacked, c)
			l.ubytes += c.bytes
			l.written += uint64(n)
			l.umu.Unlock()
			q.settle(n) // in flight now
		}
		err := l.writeChunk(c, !more)
		if err != nil {
			switch {
			case g.pattern == control.Pub:
				g.ctr.dropped.Add(uint64(n))
				c.unref()
			case !track:
				// A plain peer has no acks: what failed to write is taken
				// back whole (some of it may have arrived).
				g.reroute([]*chunk{c})
			default:
				c.unref() // the unacknowledged list keeps it for re-routing
			}
			if !track {
				q.settle(n)
			}
			return
		}
		c.unref()
		g.ctr.sent.Add(uint64(n))
		if !track {
			q.settle(n) // sent
		}
		g.progress.notify()
	}
}

// readLoop reads until the connection fails or breaks the protocol, then
// closes the link. (Req and rep links are read by watch and by their callers
// instead, see readSlot.)
func (l *link) readLoop() {
	for {
		b, err := l.next()
		if err == nil {
			err = l.deliver(b)
		}
		if err != nil {
			l.fail(err)
			return
		}
	}
}

// readState is what has been read of the frame and the multipart message
// in progress. It lives in the link rather than in a reader's locals, so
// that a read interrupted by a deadline (a req or rep link's reader handing
// over, see readSlot) is continued by whoever reads the connection next:
// nothing read is ever lost. Its zero value is ready; only the reader
// touches it.
type readState struct {
	hdr     [9]byte
	nhdr    int  // header bytes read
	hdrDone bool // hdr holds a whole, checked header: fl, size and ext are set
	fl      byte
	ext     bool
	size    int
	body    []byte   // the body being read
	f       *inFrame // body's pooled frame (extension frames), or nil
	got     int      // body bytes read
	parts   Message  // plain multipart message: the parts so far
	psize   int
}

// maxFrame is the biggest frame the link accepts.
func (l *link) maxFrame() int {
	if l.ext {
		return max(l.g.opt.BatchBytes, l.g.opt.MaxMessageSize) + 64<<10
	}
	return l.g.opt.MaxMessageSize + 64
}

// readFrame reads the next frame, refusing reserved flags and bodies over
// maxFrame before anything is allocated. ext reports an extension frame
// (flags neither command nor more, not empty); its body goes into a pooled
// frame, returned with one reference, except on req and rep links, whose
// messages are their callers' for good (see inFrame). Any other body is
// allocated. On an error what was read stays in l.rd.
func (l *link) readFrame() (fl byte, body []byte, f *inFrame, ext bool, err error) {
	r := &l.rd
	for !r.hdrDone {
		need := 2
		if r.nhdr >= 1 && r.hdr[0]&flagLong != 0 {
			need = 9
		}
		if r.nhdr < need {
			n, err := io.ReadFull(l.br, r.hdr[r.nhdr:need])
			r.nhdr += n
			if err != nil {
				return 0, nil, nil, false, err
			}
		}
		if r.nhdr < 9 && r.hdr[0]&flagLong != 0 {
			continue
		}
		fl := r.hdr[0]
		if fl&flagReserved != 0 {
			return 0, nil, nil, false, protoErr("frame flags %#x have reserved bits set", fl)
		}
		size := uint64(r.hdr[1])
		if fl&flagLong != 0 {
			size = binary.BigEndian.Uint64(r.hdr[1:9])
		}
		if max := l.maxFrame(); size > uint64(max) {
			return 0, nil, nil, false, protoErr("frame of %d bytes exceeds the %d-byte limit", size, max)
		}
		r.fl, r.size, r.hdrDone, r.got = fl, int(size), true, 0
		r.ext = l.ext && fl&(flagCommand|flagMore) == 0 && size > 0
		if r.ext && l.g.pattern != control.Req && l.g.pattern != control.Rep {
			r.f = newFrame(r.size)
			r.body = r.f.body
		} else {
			r.body = make([]byte, r.size)
		}
	}
	if r.got < r.size {
		n, err := io.ReadFull(l.br, r.body[r.got:])
		r.got += n
		if err != nil {
			return 0, nil, nil, false, err
		}
	}
	fl, body, f, ext = r.fl, r.body, r.f, r.ext
	r.nhdr, r.hdrDone, r.body, r.f = 0, false, nil, nil
	return fl, body, f, ext, nil
}

// next reads until a batch of messages arrives for the application: an
// extension data frame's (with its frame's reference), or one plain
// multipart message. Commands and other extension frames are handled on the
// way. It returns the first error: the connection's, or a protocol
// violation.
func (l *link) next() (inBatch, error) {
	g := l.g
	r := &l.rd
	for {
		if l.ackedN < l.recvN && l.br.Buffered() == 0 && l.acks() {
			// What deliver did not acknowledge because more was buffered:
			// on a pair that can be the peer's ack of our own messages,
			// after which nothing may come until we acknowledge.
			if err := l.sendAck(); err != nil {
				return inBatch{}, err
			}
		}
		fl, body, f, ext, err := l.readFrame()
		if err != nil {
			return inBatch{}, err
		}
		if ext {
			if b, ok, err := l.extFrame(body, f); ok || err != nil {
				return b, err
			}
			continue
		}
		if fl&flagCommand != 0 {
			if err := l.command(frame{flags: fl, body: body}); err != nil {
				return inBatch{}, err
			}
			continue
		}
		if l.ext {
			return inBatch{}, protoErr("malformed extension frame")
		}
		r.psize += len(body)
		r.parts = append(r.parts, body)
		if r.psize > g.opt.MaxMessageSize || len(r.parts) > maxFramesPerMsg {
			return inBatch{}, protoErr("message of more than %d bytes or %d parts", g.opt.MaxMessageSize, maxFramesPerMsg)
		}
		if fl&flagMore != 0 {
			continue
		}
		m := r.parts
		r.parts, r.psize = nil, 0
		if b, ok, err := l.plainMessage(m); ok || err != nil {
			return b, err
		}
	}
}

func (l *link) fail(err error) {
	if errors.Is(err, ErrProtocol) {
		l.g.ctr.refused.Add(1)
		l.g.log.Warn("dropping gate connection", "gate", l.g.name, "peer", l.remote, "error", err)
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%s closed the connection", l.remote)
	}
	l.close(err)
}

func (l *link) command(f frame) error {
	if len(f.body) == 0 || int(f.body[0]) > len(f.body)-1 {
		return protoErr("malformed command frame")
	}
	name, body := string(f.body[1:1+f.body[0]]), f.body[1+f.body[0]:]
	switch name {
	case zmq4.CmdPing:
		// PONG echoes the ping context (after a 2-byte TTL).
		ctx := []byte{}
		if len(body) > 2 {
			ctx = body[2:]
		}
		return l.write(true, func(w *bufio.Writer) error { return writeCmd(w, zmq4.CmdPong, ctx) })
	case zmq4.CmdSubscribe, zmq4.CmdCancel: // ZMTP 3.1 peers
		if l.g.pattern == control.Pub {
			l.subscribe(name == zmq4.CmdSubscribe, string(body))
		}
	case zmq4.CmdError:
		return fmt.Errorf("%s sent ERROR: %q", l.remote, truncate(string(body), 200))
	}
	return nil
}

// extFrame handles an extension frame, body, with its pooled frame f if it
// has one (extFrame takes over its reference). A data frame of at least one
// message is returned as a batch (ok); a data frame of none is nothing (ours
// never are; the format allows it), and other kinds are handled here.
func (l *link) extFrame(body []byte, f *inFrame) (b inBatch, ok bool, err error) {
	if body[0] != kindData {
		err = l.control(body[0], body[1:])
		if f != nil {
			f.unref()
		}
		return inBatch{}, false, err
	}
	var parts [][]byte
	var counts []uint16
	if f != nil {
		parts, counts = f.parts, f.counts
	}
	parts, counts, nmsg, _, err := decodeBatch(body[1:], l.g.opt.MaxMessageSize, parts, counts)
	if err != nil || nmsg == 0 {
		if f != nil {
			f.unref()
		}
		return inBatch{}, false, err
	}
	if f != nil {
		return f.batch(parts, counts, nmsg), true, nil
	}
	return inBatch{parts: parts, counts: counts, per: 1, nmsg: nmsg, cost: cap(body) + partCost*cap(parts) + 2*cap(counts)}, true, nil
}

// control handles an extension frame other than data.
func (l *link) control(kind byte, body []byte) error {
	g := l.g
	switch kind {
	case kindAck:
		if !(g.pattern == control.Push || g.pattern == control.Pair) {
			return protoErr("ack on a %s gate", g.pattern)
		}
		v, n := binary.Uvarint(body)
		if n <= 0 || n != len(body) {
			return protoErr("malformed ack")
		}
		return l.ack(v)
	case kindSub, kindUnsub:
		if g.pattern == control.Pub {
			l.subscribe(kind == kindSub, string(body))
		}
		return nil
	case kindSync:
		if g.pattern == control.Pub {
			l.active.Store(true)
		}
		return nil
	}
	return protoErr("unknown extension frame kind %#x", kind)
}

// plainMessage turns a plain multipart message into a batch of one (ok),
// stripping a REQ envelope, or handles it (a ZMTP 3.0 subscription).
func (l *link) plainMessage(m Message) (b inBatch, ok bool, err error) {
	g := l.g
	if g.pattern == control.Pub {
		// ZMTP 3.0 subscriptions: one frame, 1 or 0 then the topic.
		if len(m) == 1 && len(m[0]) > 0 && (m[0][0] == 1 || m[0][0] == 0) {
			l.subscribe(m[0][0] == 1, string(m[0][1:]))
		}
		return inBatch{}, false, nil
	}
	var env [][]byte
	switch g.pattern {
	case control.Rep: // strip the envelope: everything up to the empty delimiter
		i := 0
		for i < len(m) && len(m[i]) > 0 {
			i++
		}
		if i == len(m) || i == len(m)-1 {
			return inBatch{}, false, protoErr("request without an envelope delimiter or a body")
		}
		env, m = m[:i+1], m[i+1:]
	case control.Req:
		if len(m) < 2 || len(m[0]) != 0 {
			return inBatch{}, false, protoErr("reply without an empty delimiter")
		}
		m = m[1:]
	}
	return inBatch{parts: m, per: len(m), nmsg: 1, env: env, cost: m.Size() + partCost*len(m)}, true, nil
}

// deliver hands a batch of received messages to the gate, with its frame's
// reference if it has one.
func (l *link) deliver(b inBatch) error {
	g := l.g
	if b.nmsg == 0 {
		// A data batch of nothing (ours never are; the format allows it):
		// nothing to queue, and nothing the queue could cut out of it.
		if b.f != nil {
			b.f.unref()
		}
		return nil
	}
	if (g.pattern == control.Req || g.pattern == control.Rep) && b.nmsg != 1 {
		if b.f != nil {
			b.f.unref()
		}
		return protoErr("%d messages in one %s frame (one request or reply at a time)", b.nmsg, g.pattern)
	}
	switch g.pattern {
	case control.Pull, control.Sub, control.Pair, control.Rep:
		b.from = l
		if !g.recvQ.put(b, l.done) {
			if b.f != nil {
				b.f.unref()
			}
			if l.closed() {
				return l.err
			}
			g.ctr.dropped.Add(uint64(b.nmsg))
			return errors.New("gate is closed")
		}
		l.recvN += uint64(b.nmsg)
		// Acknowledge receipt, coalesced: when nothing more is already
		// buffered, else every quarter window under load (and see next).
		if l.acks() && (l.br.Buffered() == 0 || l.recvN-l.ackedN >= uint64(max(1, g.opt.Window/4))) {
			return l.sendAck()
		}
		return nil
	}
	if g.pattern == control.Req {
		g.reply(l, b.only())
		return nil
	}
	if b.f != nil {
		b.f.unref()
	}
	return protoErr("%s gate received data from %s", g.pattern, l.remote)
}

// acks reports whether the link acknowledges what it receives: gate-to-gate
// pull and pair.
func (l *link) acks() bool {
	return l.ext && (l.g.pattern == control.Pull || l.g.pattern == control.Pair)
}

// sendAck acknowledges every message received so far. Only the reader calls
// it.
func (l *link) sendAck() error {
	var vb [binary.MaxVarintLen64]byte
	v := vb[:binary.PutUvarint(vb[:], l.recvN)]
	if err := l.write(true, func(w *bufio.Writer) error { return writeExt(w, kindAck, v) }); err != nil {
		return err
	}
	l.ackedN = l.recvN
	return nil
}

func (l *link) subscribe(on bool, topic string) {
	l.smu.Lock()
	if on {
		l.topics[topic] = struct{}{}
	} else {
		delete(l.topics, topic)
	}
	l.smu.Unlock()
	if !l.ext {
		l.active.Store(true) // a plain subscriber is live once it subscribed
	}
}

func (l *link) subscribed(topic []byte) bool {
	l.smu.Lock()
	defer l.smu.Unlock()
	for t := range l.topics {
		if strings.HasPrefix(string(topic), t) {
			return true
		}
	}
	return false
}
