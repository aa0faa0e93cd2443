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
	done   chan struct{}
	once   sync.Once
	err    error // why it closed; read after done

	// Sender side (push, pair; extension peers only): messages written and not
	// yet acknowledged, oldest first.
	umu      sync.Mutex
	unacked  []Message
	ubytes   int
	acked    uint64 // cumulative acknowledged count
	written  uint64 // cumulative written count
	spaceSig signal
	writing  atomic.Int64 // messages of an untracked batch being written

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
		ext: sec.peerExt, remote: remote, done: make(chan struct{}),
		spaceSig: newSignal(), topics: map[string]struct{}{},
		replies: make(chan Message, 1),
	}
	_ = zc // the handshake is all we need from zmq4's Conn; framing is ours (see docs/gates.md)
	if g.pattern == control.Pub {
		l.pq = newSendQueue(g.opt.QueueLen, g.opt.QueueBytes)
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
	return len(l.unacked), l.ubytes
}

// takeUnacked removes and returns every unacknowledged message.
func (l *link) takeUnacked() []Message {
	l.umu.Lock()
	defer l.umu.Unlock()
	out := l.unacked
	l.unacked, l.ubytes = nil, 0
	return out
}

func (l *link) ack(n uint64) error {
	l.umu.Lock()
	if n < l.acked || n > l.written {
		l.umu.Unlock()
		return protoErr("ack of %d messages, %d acked and %d written", n, l.acked, l.written)
	}
	k := int(n - l.acked)
	for _, m := range l.unacked[:k] {
		l.ubytes -= m.Size()
	}
	clear(l.unacked[:k])
	l.unacked = l.unacked[k:]
	l.acked = n
	l.umu.Unlock()
	l.spaceSig.notify()
	l.g.progress.notify()
	return nil
}

// sendLoop feeds the link from the gate's queue (push, pair) or from its own
// queue (pub) until stop is closed or the link dies. With an extension peer it
// keeps at most Window messages unacknowledged.
func (l *link) sendLoop(q *sendQueue, stop <-chan struct{}) {
	g := l.g
	track := l.ext && g.pattern != control.Pub
	for {
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
		batch := q.take(maxMsgs, g.opt.BatchBytes, stop, l.done, l.flush)
		if batch == nil {
			return
		}
		if track {
			l.umu.Lock()
			l.unacked = append(l.unacked, batch...)
			for _, m := range batch {
				l.ubytes += m.Size()
			}
			l.written += uint64(len(batch))
			l.umu.Unlock()
		}
		if !track {
			l.writing.Store(int64(len(batch)))
		}
		err := l.write(q.len() == 0, func(w *bufio.Writer) error {
			if l.ext {
				return writeBatch(w, batch)
			}
			for _, m := range batch {
				if err := writePlain(w, m); err != nil {
					return err
				}
			}
			return nil
		})
		l.writing.Store(0)
		if err != nil {
			if g.pattern == control.Pub {
				g.ctr.dropped.Add(uint64(len(batch)))
				return
			}
			if !track {
				// A plain peer has no acks: what failed to write is taken
				// back whole (some of it may have arrived).
				g.reroute(batch)
			}
			return
		}
		g.ctr.sent.Add(uint64(len(batch)))
		g.progress.notify()
	}
}

// readLoop reads until the connection fails or breaks the protocol, then
// closes the link.
func (l *link) readLoop() {
	g := l.g
	maxFrame := g.opt.MaxMessageSize + 64
	if l.ext {
		maxFrame = max(g.opt.BatchBytes, g.opt.MaxMessageSize) + 64<<10
	}
	var parts Message
	size := 0
	for {
		f, err := readFrame(l.br, maxFrame)
		if err != nil {
			l.fail(err)
			return
		}
		if f.flags&flagCommand != 0 {
			if err := l.command(f); err != nil {
				l.fail(err)
				return
			}
			continue
		}
		if l.ext {
			if f.flags&flagMore != 0 || len(f.body) == 0 {
				l.fail(protoErr("malformed extension frame"))
				return
			}
			if err := l.extFrame(f.body[0], f.body[1:]); err != nil {
				l.fail(err)
				return
			}
			continue
		}
		size += len(f.body)
		parts = append(parts, f.body)
		if size > g.opt.MaxMessageSize || len(parts) > maxFramesPerMsg {
			l.fail(protoErr("message of more than %d bytes or %d parts", g.opt.MaxMessageSize, maxFramesPerMsg))
			return
		}
		if f.flags&flagMore != 0 {
			continue
		}
		m := parts
		parts, size = nil, 0
		if err := l.plainMessage(m); err != nil {
			l.fail(err)
			return
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

func (l *link) extFrame(kind byte, body []byte) error {
	g := l.g
	switch kind {
	case kindData:
		msgs, n, err := decodeBatch(body, g.opt.MaxMessageSize)
		if err != nil {
			return err
		}
		return l.deliver(msgs, n, nil)
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

func (l *link) plainMessage(m Message) error {
	g := l.g
	if g.pattern == control.Pub {
		// ZMTP 3.0 subscriptions: one frame, 1 or 0 then the topic.
		if len(m) == 1 && len(m[0]) > 0 && (m[0][0] == 1 || m[0][0] == 0) {
			l.subscribe(m[0][0] == 1, string(m[0][1:]))
		}
		return nil
	}
	var env [][]byte
	switch g.pattern {
	case control.Rep: // strip the envelope: everything up to the empty delimiter
		i := 0
		for i < len(m) && len(m[i]) > 0 {
			i++
		}
		if i == len(m) || i == len(m)-1 {
			return protoErr("request without an envelope delimiter or a body")
		}
		env, m = m[:i+1], m[i+1:]
	case control.Req:
		if len(m) < 2 || len(m[0]) != 0 {
			return protoErr("reply without an empty delimiter")
		}
		m = m[1:]
	}
	return l.deliver([]Message{m}, m.Size(), env)
}

// deliver hands received messages to the gate.
func (l *link) deliver(msgs []Message, bytes int, env [][]byte) error {
	g := l.g
	switch g.pattern {
	case control.Pull, control.Sub, control.Pair, control.Rep:
		batch := make([]inMsg, len(msgs))
		for i, m := range msgs {
			batch[i] = inMsg{msg: m, from: l, env: env}
		}
		if !g.recvQ.put(batch, bytes, l.done) {
			if l.closed() {
				return l.err
			}
			g.ctr.dropped.Add(uint64(len(msgs)))
			return errors.New("gate is closed")
		}
		l.recvN += uint64(len(msgs))
		if l.ext && g.pattern != control.Sub && g.pattern != control.Rep {
			// Acknowledge receipt, coalesced: only when nothing more is
			// already buffered, or every 1024 messages under load.
			if l.br.Buffered() == 0 || l.recvN-l.ackedN >= 1024 {
				var b [binary.MaxVarintLen64]byte
				v := b[:binary.PutUvarint(b[:], l.recvN)]
				if err := l.write(true, func(w *bufio.Writer) error { return writeExt(w, kindAck, v) }); err != nil {
					return err
				}
				l.ackedN = l.recvN
			}
		}
		return nil
	case control.Req:
		if len(msgs) != 1 {
			return protoErr("%d replies in one batch", len(msgs))
		}
		g.reply(l, msgs[0])
		return nil
	}
	return protoErr("%s gate received data from %s", g.pattern, l.remote)
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
