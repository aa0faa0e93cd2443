package gate

import (
	"context"
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
// its peers: each connection's writer takes the next batch when it is ready to
// write, so work goes to ready peers in turn and a slow or dead peer takes
// none. Send blocks while it is full (backpressure).
type sendQueue struct {
	mu       sync.Mutex
	items    []Message
	head     int
	bytes    int
	maxLen   int
	maxBytes int
	closed   bool
	notEmpty signal
	notFull  signal
}

func newSendQueue(maxLen, maxBytes int) *sendQueue {
	return &sendQueue{maxLen: maxLen, maxBytes: maxBytes, notEmpty: newSignal(), notFull: newSignal()}
}

func (q *sendQueue) lenLocked() int { return len(q.items) - q.head }

// push appends m, waiting while the queue is full. A message larger than
// maxBytes is accepted into an empty queue so it cannot block forever.
func (q *sendQueue) push(ctx context.Context, m Message, size int) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		n := q.lenLocked()
		if n == 0 || (n < q.maxLen && q.bytes+size <= q.maxBytes) {
			q.items = append(q.items, m)
			q.bytes += size
			q.mu.Unlock()
			q.notEmpty.notify()
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pushFront puts msgs back at the head (messages taken back from a peer that
// died), ignoring the bounds: they were admitted once already.
func (q *sendQueue) pushFront(msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	q.mu.Lock()
	rest := q.items[q.head:]
	items := make([]Message, 0, len(msgs)+len(rest))
	items = append(append(items, msgs...), rest...)
	q.items, q.head = items, 0
	for _, m := range msgs {
		q.bytes += m.Size()
	}
	q.mu.Unlock()
	q.notEmpty.notify()
}

// take removes up to maxMsgs messages and about maxBytes bytes (at least one
// message), waiting until there is one or stop is closed.
//
// idle, if not nil, runs before each wait: a writer flushes there, since
// another writer may have taken what it expected to write next.
func (q *sendQueue) take(maxMsgs, maxBytes int, stop, done <-chan struct{}, idle func()) []Message {
	for {
		q.mu.Lock()
		if n := q.lenLocked(); n > 0 {
			k, b := 0, 0
			for k < n && k < maxMsgs {
				s := q.items[q.head+k].Size()
				if k > 0 && b+s > maxBytes {
					break
				}
				b += s
				k++
			}
			out := make([]Message, k)
			copy(out, q.items[q.head:q.head+k])
			clear(q.items[q.head : q.head+k])
			q.head += k
			q.bytes -= b
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head > len(q.items)/2 {
				q.items = append(q.items[:0], q.items[q.head:]...)
				q.head = 0
			}
			more := q.lenLocked() > 0
			q.mu.Unlock()
			q.notFull.notify()
			if more {
				q.notEmpty.notify() // let another ready peer take the rest
			}
			return out
		}
		q.mu.Unlock()
		if idle != nil {
			idle()
		}
		select {
		case <-q.notEmpty:
		case <-stop:
			return nil
		case <-done:
			return nil
		}
	}
}

// tryPush appends m unless the queue is full (pub: a slow subscriber's
// messages are dropped, and counted by the caller).
func (q *sendQueue) tryPush(m Message, size int) bool {
	q.mu.Lock()
	n := q.lenLocked()
	if n > 0 && (n >= q.maxLen || q.bytes+size > q.maxBytes) {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, m)
	q.bytes += size
	q.mu.Unlock()
	q.notEmpty.notify()
	return true
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
	n := q.lenLocked()
	q.items, q.head, q.bytes = nil, 0, 0
	q.mu.Unlock()
	q.notFull.notify()
	return n
}

func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lenLocked()
}

// inMsg is a received message and the connection it came on (for replies).
type inMsg struct {
	msg  Message
	from *link
	env  [][]byte // REQ envelope of a plain peer, returned with the reply
}

// recvQueue is an in-gate's bounded FIFO of received messages. A connection's
// reader blocks while it is full, so TCP (and the acknowledgement window)
// pushes back on the senders.
type recvQueue struct {
	mu       sync.Mutex
	items    []inMsg
	head     int
	bytes    int
	maxBytes int
	done     bool // no more messages will come
	notEmpty signal
	notFull  signal
}

func newRecvQueue(maxBytes int) *recvQueue {
	return &recvQueue{maxBytes: maxBytes, notEmpty: newSignal(), notFull: newSignal()}
}

// put appends a batch, waiting while the queue is over its byte bound (an
// empty queue takes any batch).
func (q *recvQueue) put(batch []inMsg, bytes int, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.done {
			q.mu.Unlock()
			return false
		}
		if q.bytes == 0 || q.bytes+bytes <= q.maxBytes {
			q.items = append(q.items, batch...)
			q.bytes += bytes
			q.mu.Unlock()
			q.notEmpty.notify()
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-stop:
			return false
		}
	}
}

// get removes the next message; ok is false once the queue is finished and
// empty.
func (q *recvQueue) get(ctx context.Context) (inMsg, error) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			m := q.items[q.head]
			q.items[q.head] = inMsg{}
			q.head++
			q.bytes -= m.msg.Size()
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head > len(q.items)/2 {
				q.items = append(q.items[:0], q.items[q.head:]...)
				q.head = 0
			}
			more := q.head < len(q.items)
			q.mu.Unlock()
			q.notFull.notify()
			if more {
				q.notEmpty.notify()
			}
			return m, nil
		}
		done := q.done
		q.mu.Unlock()
		if done {
			q.notEmpty.notify() // wake other getters too
			return inMsg{}, ErrDrained
		}
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return inMsg{}, ctx.Err()
		}
	}
}

// finish marks that nothing more will be put; getters see ErrDrained once the
// queue is empty. It returns how many messages are still queued.
func (q *recvQueue) finish() int {
	q.mu.Lock()
	q.done = true
	n := len(q.items) - q.head
	q.mu.Unlock()
	q.notEmpty.notify()
	q.notFull.notify()
	return n
}

func (q *recvQueue) drop() int {
	q.mu.Lock()
	n := len(q.items) - q.head
	q.items, q.head, q.bytes, q.done = nil, 0, 0, true
	q.mu.Unlock()
	q.notEmpty.notify()
	q.notFull.notify()
	return n
}

func (q *recvQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
