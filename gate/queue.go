package gate

import (
	"context"
	"errors"
	"sync"
)

// signal is a level-triggered wake-up: many notifies before a wait count as one.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// sendQueue is an out-gate's bounded FIFO, shared by the connections to all
// its peers (push, pair), or one subscriber's own (pub). It holds messages
// already encoded, in chunks (see chunk): Send copies a message into the last
// chunk under the lock — no allocation, no per-message hand-off — and a
// connection's writer takes the first whole chunk when it is ready to write,
// so work goes to ready peers in turn and a slow or dead peer takes none.
// Send blocks while the queue is full (backpressure). The bounds count
// messages and payload bytes, as before chunks.
type sendQueue struct {
	mu       sync.Mutex
	items    []*chunk
	head     int
	n        int // messages queued
	bytes    int // their payload bytes
	held     int // messages writers took and have not yet accounted for (settle)
	maxLen   int
	maxBytes int
	maxChunk int // BatchBytes: a chunk's buffer, header included
	maxMsgs  int // BatchMsgs: messages per chunk
	hint     int // size of the last chunk taken: how big to start the next
	closed   bool
	notEmpty signal
	notFull  signal
}

func newSendQueue(maxLen, maxBytes, batchMsgs, batchBytes int) *sendQueue {
	return &sendQueue{
		maxLen: maxLen, maxBytes: maxBytes, maxMsgs: batchMsgs, maxChunk: max(batchBytes, chunkHdr+16),
		notEmpty: newSignal(), notFull: newSignal(),
	}
}

// fitsLocked reports whether a message of size payload bytes may be queued.
// An empty queue takes any message so that one bigger than maxBytes cannot
// block forever.
func (q *sendQueue) fitsLocked(size int) bool {
	return q.n == 0 || (q.n < q.maxLen && q.bytes+size <= q.maxBytes)
}

// appendLocked encodes m at the end of the queue: into the last chunk if it
// has room, else into a new one.
func (q *sendQueue) appendLocked(m Message, size int) {
	enc := encodedLen(m)
	var c *chunk
	if k := len(q.items); k > q.head {
		c = q.items[k-1]
		if c.n >= q.maxMsgs || len(c.buf)+enc > q.maxChunk {
			c = nil
		} else if len(c.buf)+enc > cap(c.buf) {
			c = c.grow(min(q.maxChunk, max(2*cap(c.buf), len(c.buf)+enc)))
			q.items[k-1] = c
		}
	}
	if c == nil {
		c = newChunk(max(chunkHdr+enc, min(q.hint, q.maxChunk)))
		q.items = append(q.items, c)
	}
	c.buf = appendMsg(c.buf, m)
	c.n++
	c.bytes += size
	q.n++
	q.bytes += size
}

// push queues m, waiting while the queue is full.
func (q *sendQueue) push(ctx context.Context, m Message, size int) error {
	q.mu.Lock()
	for !q.fitsLocked(size) || q.closed {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	q.appendLocked(m, size)
	first := q.n == 1
	q.mu.Unlock()
	if first {
		// Writers wait only on an empty queue; one that finds more after a
		// take passes the wake-up on (take), so once per empty → non-empty.
		q.notEmpty.notify()
	}
	return nil
}

// pushBatch queues msgs in order under one lock, waiting while the queue is
// full; sizes are their payload sizes. It returns how many were queued.
func (q *sendQueue) pushBatch(ctx context.Context, msgs []Message, sizes []int) (int, error) {
	done := 0
	q.mu.Lock()
	for done < len(msgs) {
		if q.closed {
			q.mu.Unlock()
			return done, ErrClosed
		}
		wasEmpty := q.n == 0
		for done < len(msgs) && q.fitsLocked(sizes[done]) {
			q.appendLocked(msgs[done], sizes[done])
			done++
		}
		if wasEmpty && q.n > 0 {
			q.notEmpty.notify()
		}
		if done == len(msgs) {
			break
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return done, ctx.Err()
		}
		q.mu.Lock()
	}
	q.mu.Unlock()
	return done, nil
}

// tryPush queues m unless the queue is full (pub: a slow subscriber's
// messages are dropped, and counted by the caller).
func (q *sendQueue) tryPush(m Message, size int) bool {
	q.mu.Lock()
	if q.n > 0 && (q.n >= q.maxLen || q.bytes+size > q.maxBytes) {
		q.mu.Unlock()
		return false
	}
	q.appendLocked(m, size)
	first := q.n == 1
	q.mu.Unlock()
	if first {
		q.notEmpty.notify()
	}
	return true
}

// pushFront puts chunks back at the head (messages taken back from a peer
// that died), ignoring the bounds: they were admitted once already. The queue
// takes over the caller's reference to each.
func (q *sendQueue) pushFront(cs []*chunk) {
	if len(cs) == 0 {
		return
	}
	q.mu.Lock()
	rest := q.items[q.head:]
	items := make([]*chunk, 0, len(cs)+len(rest))
	items = append(append(items, cs...), rest...)
	q.items, q.head = items, 0
	for _, c := range cs {
		q.n += c.n
		q.bytes += c.bytes
	}
	q.mu.Unlock()
	q.notEmpty.notify()
}

// take removes the first chunk, or its first maxMsgs messages (at least
// one), waiting until there is one or stop or done is closed (then nil). The
// caller holds the chunk's reference, and must settle its messages once they
// are counted elsewhere (in flight, sent, dropped or queued again): until
// then depth counts them, so that no moment shows them nowhere. more reports
// whether anything is left.
//
// idle, if not nil, runs before each wait: a writer flushes there, since
// another writer may have taken what it expected to write next.
func (q *sendQueue) take(maxMsgs int, stop, done <-chan struct{}, idle func()) (c *chunk, more bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			c = q.items[q.head]
			if maxMsgs = max(maxMsgs, 1); c.n > maxMsgs {
				q.items[q.head] = c.split(maxMsgs)
			} else {
				q.items[q.head] = nil
				q.head++
				if q.head == len(q.items) {
					q.items, q.head = q.items[:0], 0
				} else if q.head > 64 && q.head > len(q.items)/2 {
					q.items = append(q.items[:0], q.items[q.head:]...)
					clear(q.items[len(q.items):q.head])
					q.head = 0
				}
			}
			q.n -= c.n
			q.bytes -= c.bytes
			q.held += c.n
			q.hint = len(c.buf)
			more = q.n > 0
			q.mu.Unlock()
			q.notFull.notify()
			if more {
				q.notEmpty.notify() // let another ready peer take the rest
			}
			return c, more
		}
		q.mu.Unlock()
		if idle != nil {
			idle()
		}
		select {
		case <-q.notEmpty:
		case <-stop:
			return nil, false
		case <-done:
			return nil, false
		}
	}
}

// close makes push fail; queued messages stay for writers to drain.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.notFull.notify()
}

// drop empties the queue and returns how many messages it held.
func (q *sendQueue) drop() int {
	q.mu.Lock()
	n := q.n
	for _, c := range q.items[q.head:] {
		c.unref()
	}
	q.items, q.head, q.n, q.bytes = nil, 0, 0, 0
	q.mu.Unlock()
	q.notFull.notify()
	return n
}

func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// depth is len and what writers hold (see take).
func (q *sendQueue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + q.held
}

// settle records that n messages a writer took are now counted elsewhere.
func (q *sendQueue) settle(n int) {
	q.mu.Lock()
	q.held -= n
	q.mu.Unlock()
}

// inMsg is a received message and the connection it came on (for replies).
type inMsg struct {
	msg  Message
	from *link
	env  [][]byte // REQ envelope of a plain peer, returned with the reply
}

// inBatch is what one read hands over: the messages of one extension data
// frame (or one plain multipart message), as one slice of parts. Messages
// are cut out of it as the application takes them, so a batch costs the
// reader one lock and the queue one slot however many messages it holds.
type inBatch struct {
	parts   [][]byte
	counts  []uint16 // parts per message; nil: every message has per parts
	per     int
	nmsg    int
	cost    int      // what it holds in memory, charged against QueueBytes
	f       *inFrame // the pooled frame behind parts, if any (one reference)
	escaped bool     // f is marked escaped already
	from    *link
	env     [][]byte
	mi, pi  int // next message, its first part
}

func (b *inBatch) next() Message {
	k := b.per
	if b.counts != nil {
		k = int(b.counts[b.mi])
	}
	m := Message(b.parts[b.pi : b.pi+k : b.pi+k])
	b.pi += k
	b.mi++
	return m
}

// only returns the one message of a batch that holds one (a request or a
// reply), for good: its frame escapes (see inFrame), and the batch's
// reference to it is let go.
func (b *inBatch) only() Message {
	m := b.next()
	if b.f != nil {
		b.f.escaped.Store(true)
		b.f.unref()
		b.f = nil
	}
	return m
}

// partCost is what a part costs in memory besides its bytes: the slice
// header that holds it. The receive queue charges it, so that empty
// messages are not free.
const partCost = 24

// recvQueue is an in-gate's bounded FIFO of received batches. A connection's
// reader blocks while it is full, so TCP (and the acknowledgement window)
// pushes back on the senders.
type recvQueue struct {
	mu       sync.Mutex
	items    []inBatch
	head     int
	n        int    // messages queued
	bytes    int    // the memory their batches hold (inBatch.cost)
	taken    uint64 // messages handed to the application (the received counter)
	maxBytes int
	done     bool // no more messages will come
	putWait  int  // readers waiting for room
	getWait  int  // receivers waiting for a message
	notEmpty signal
	notFull  signal // room was made, or the queue became empty
}

func newRecvQueue(maxBytes int) *recvQueue {
	return &recvQueue{maxBytes: maxBytes, notEmpty: newSignal(), notFull: newSignal()}
}

// put appends a batch, waiting while the queue is over its byte bound (an
// empty queue takes any batch). A batch is charged what it holds in memory
// (cost) until its last message is taken: buffers, not just payload, so
// that small messages in pooled buffers cannot hold more than QueueBytes.
func (q *recvQueue) put(b inBatch, stop <-chan struct{}) bool {
	bytes := b.cost
	q.mu.Lock()
	for {
		if q.done {
			q.mu.Unlock()
			return false
		}
		if q.n == 0 || q.bytes+bytes <= q.maxBytes {
			break
		}
		q.putWait++
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-stop:
			q.mu.Lock()
			q.putWait--
			q.mu.Unlock()
			return false
		}
		q.mu.Lock()
		q.putWait--
	}
	q.items = append(q.items, b)
	q.n += b.nmsg
	q.bytes += bytes
	wake := q.getWait > 0
	q.mu.Unlock()
	if wake {
		q.notEmpty.notify()
	}
	return true
}

// errAlt: getOr returned because one of its other channels fired.
var errAlt = errors.New("woken by another event")

// waitLocked waits until a message is queued; it returns with q.mu held and
// nil, or without it and ErrDrained, ctx's error, or errAlt when alt or alt2
// (nil: never) fires first.
func (q *recvQueue) waitLocked(ctx context.Context, alt, alt2 <-chan struct{}) error {
	for q.n == 0 {
		if q.done {
			q.mu.Unlock()
			q.notEmpty.notify() // wake other getters too
			return ErrDrained
		}
		q.getWait++
		q.mu.Unlock()
		var err error
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			err = ctx.Err()
		case <-alt:
			err = errAlt
		case <-alt2:
			err = errAlt
		}
		q.mu.Lock()
		q.getWait--
		if err != nil {
			q.mu.Unlock()
			return err
		}
	}
	return nil
}

// nextLocked removes the next message. With into nil the message is the
// caller's for good and its frame escapes; else into takes a reference to
// the frame (once per frame and call, see Batch).
func (q *recvQueue) nextLocked(into *Batch) inMsg {
	b := &q.items[q.head]
	m := inMsg{msg: b.next(), from: b.from, env: b.env}
	q.n--
	q.taken++
	if f := b.f; f != nil {
		if into == nil {
			if !b.escaped {
				b.escaped = true
				f.escaped.Store(true)
			}
		} else if k := len(into.frames); k == 0 || into.frames[k-1] != f {
			f.ref()
			into.frames = append(into.frames, f)
		}
	}
	if b.mi == b.nmsg {
		q.bytes -= b.cost
		if b.f != nil {
			b.f.unref()
		}
		*b = inBatch{}
		q.head++
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0
		} else if q.head > 64 && q.head > len(q.items)/2 {
			q.items = append(q.items[:0], q.items[q.head:]...)
			clear(q.items[len(q.items):q.head])
			q.head = 0
		}
	}
	return m
}

// unlockAfterGet releases the lock after messages were taken and wakes who
// must know: readers waiting for room (or anyone waiting for the queue to
// empty), and other receivers if messages are left.
func (q *recvQueue) unlockAfterGet() {
	room := q.putWait > 0 || q.n == 0
	more := q.n > 0 && q.getWait > 0
	q.mu.Unlock()
	if room {
		q.notFull.notify()
	}
	if more {
		q.notEmpty.notify()
	}
}

// get removes the next message; ErrDrained once the queue is finished and
// empty.
func (q *recvQueue) get(ctx context.Context) (inMsg, error) {
	return q.getOr(ctx, nil, nil)
}

// getOr is get that also returns, with errAlt, when alt or alt2 fires first.
func (q *recvQueue) getOr(ctx context.Context, alt, alt2 <-chan struct{}) (inMsg, error) {
	q.mu.Lock()
	if err := q.waitLocked(ctx, alt, alt2); err != nil {
		return inMsg{}, err
	}
	m := q.nextLocked(nil)
	q.unlockAfterGet()
	return m, nil
}

// waiters is the number of receivers waiting for a message.
func (q *recvQueue) waiters() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.getWait
}

// tryGet removes the next message if there is one.
func (q *recvQueue) tryGet() (inMsg, bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return inMsg{}, false
	}
	m := q.nextLocked(nil)
	q.unlockAfterGet()
	return m, true
}

// getBatch waits for a message, then appends to b up to limit of those
// queued.
func (q *recvQueue) getBatch(ctx context.Context, b *Batch, limit int) error {
	q.mu.Lock()
	if err := q.waitLocked(ctx, nil, nil); err != nil {
		return err
	}
	for k := 0; k < limit && q.n > 0; k++ {
		b.Msgs = append(b.Msgs, q.nextLocked(b).msg)
	}
	q.unlockAfterGet()
	return nil
}

// finish marks that nothing more will be put; getters see ErrDrained once the
// queue is empty. It returns how many messages are still queued.
func (q *recvQueue) finish() int {
	q.mu.Lock()
	q.done = true
	n := q.n
	q.mu.Unlock()
	q.notEmpty.notify()
	q.notFull.notify()
	return n
}

func (q *recvQueue) drop() int {
	q.mu.Lock()
	n := q.n
	for _, b := range q.items[q.head:] {
		if b.f != nil {
			b.f.unref()
		}
	}
	q.items, q.head, q.n, q.bytes, q.done = nil, 0, 0, 0, true
	q.mu.Unlock()
	q.notEmpty.notify()
	q.notFull.notify()
	return n
}

func (q *recvQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// received returns how many messages the application took.
func (q *recvQueue) received() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.taken
}
