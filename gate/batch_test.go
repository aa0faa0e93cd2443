package gate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// batchCollector receives with RecvBatch and records sequence numbers (the
// last part's first 8 bytes), reading them while the Batch holds them.
type batchCollector struct {
	mu   sync.Mutex
	seen map[uint64]int
	n    int
	wg   sync.WaitGroup
}

func collectBatches(ctx context.Context, g *Gate, delay time.Duration) *batchCollector {
	c := &batchCollector{seen: map[uint64]int{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var b Batch
		defer b.Release()
		for {
			if err := g.RecvBatch(ctx, &b, 100); err != nil {
				return
			}
			c.mu.Lock()
			for _, m := range b.Msgs {
				c.seen[binary.BigEndian.Uint64(m[len(m)-1])]++
				c.n++
			}
			c.mu.Unlock()
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
	}()
	return c
}

func (c *batchCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func seqBatch(from uint64, k, size int) []Message {
	msgs := make([]Message, k)
	for i := range msgs {
		msgs[i] = Message{seqMsg(from+uint64(i), size)}
	}
	return msgs
}

// TestSendBatchRecvBatch: batches in, batches out — order, multipart, and
// counters; RecvBatch's limit is honoured.
func TestSendBatchRecvBatch(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, in := inHub(t, "work", control.Pull, fastOpts)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	const n = 10000
	for i := uint64(0); i < n; i += 250 {
		msgs := seqBatch(i, 250, 40)
		msgs[7] = Message{[]byte("head"), nil, seqMsg(i+7, 8)} // multipart, an empty part
		if k, err := out.SendBatch(ctx, msgs); k != 250 || err != nil {
			t.Fatalf("SendBatch = %d, %v", k, err)
		}
	}
	var b Batch
	var next uint64
	for next < n {
		if err := in.RecvBatch(ctx, &b, 33); err != nil {
			t.Fatal(err)
		}
		if len(b.Msgs) == 0 || len(b.Msgs) > 33 {
			t.Fatalf("RecvBatch returned %d messages (limit 33)", len(b.Msgs))
		}
		for _, m := range b.Msgs {
			if got := binary.BigEndian.Uint64(m[len(m)-1]); got != next {
				t.Fatalf("message %d arrived as %d", got, next)
			}
			if next%250 == 7 && (len(m) != 3 || string(m[0]) != "head" || len(m[1]) != 0) {
				t.Fatalf("multipart message %d arrived as %q", next, m)
			}
			next++
		}
	}
	b.Release()
	if len(b.Msgs) != 0 || len(b.frames) != 0 {
		t.Fatalf("Release left %d messages, %d frames", len(b.Msgs), len(b.frames))
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if st := out.Stats(); st.Sent != n || st.Dropped != 0 {
		t.Fatalf("out stats %+v", st)
	}
	if st := in.Stats(); st.Received != n || st.QueueDepth != 0 {
		t.Fatalf("in stats %+v", st)
	}
}

// TestSendBatchBackpressure: with no peer, SendBatch queues what fits, then
// blocks until ctx ends and says how many it queued; those arrive once a
// peer comes, in order, and nothing is dropped; the rest can be sent again.
func TestSendBatchBackpressure(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, out, mem := outHub(t, "work", control.Push, Options{QueueLen: 10, DrainTimeout: 5 * time.Second})
	msgs := seqBatch(0, 25, 8)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	k, err := out.SendBatch(short, msgs)
	if k != 10 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBatch on a queue of 10 = %d, %v; want 10, deadline exceeded", k, err)
	}
	if st := out.Stats(); st.QueueDepth != 10 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	_, in := inHub(t, "work", control.Pull, fastOpts)
	c := collectBatches(ctx, in, 0)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	waitFor(t, 10*time.Second, "the queued ten", func() bool { return c.count() == 10 })
	if k, err := out.SendBatch(ctx, msgs[k:]); k != 15 || err != nil {
		t.Fatalf("SendBatch of the rest = %d, %v", k, err)
	}
	waitFor(t, 10*time.Second, "all 25", func() bool { return c.count() == 25 })
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range uint64(25) {
		if c.seen[i] != 1 {
			t.Fatalf("message %d seen %d times", i, c.seen[i])
		}
	}
	if st := out.Stats(); st.Sent != 25 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSendBatchRefusals: a bad message refuses the whole batch; patterns
// without Send refuse it; closed gates say so and count nothing.
func TestSendBatchRefusals(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, out, _ := outHub(t, "work", control.Push, Options{DrainTimeout: 20 * time.Millisecond})
	for _, bad := range []Message{{}, {make([]byte, 5<<20)}} {
		msgs := append(seqBatch(0, 3, 8), bad)
		k, err := out.SendBatch(ctx, msgs)
		if k != 0 || err == nil || !strings.Contains(err.Error(), "message 3") {
			t.Fatalf("SendBatch with a bad message = %d, %v", k, err)
		}
	}
	if st := out.Stats(); st.QueueDepth != 0 {
		t.Fatalf("a refused batch was queued: %+v", st)
	}
	if k, err := out.SendBatch(ctx, nil); k != 0 || err != nil {
		t.Fatalf("empty batch = %d, %v", k, err)
	}
	out.Close()
	if _, err := out.SendBatch(ctx, seqBatch(0, 2, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendBatch after Close = %v", err)
	}
	_, req, _ := outHub(t, "rpc", control.Req, fastOpts)
	if _, err := req.SendBatch(ctx, []Message{{}}); !errors.Is(err, ErrPattern) {
		t.Fatalf("SendBatch on req = %v", err)
	}
	_, rep := inHub(t, "rpc", control.Rep, fastOpts)
	var b Batch
	if err := rep.RecvBatch(ctx, &b, 10); !errors.Is(err, ErrPattern) {
		t.Fatalf("RecvBatch on rep = %v", err)
	}
}

// TestSendCopies: Send and SendBatch copy the message, so a caller may reuse
// its buffer as soon as they return.
func TestSendCopies(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, in := inHub(t, "work", control.Pull, fastOpts)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	buf := make([]byte, 8)
	batch := []Message{{buf}}
	const n = 2000
	for i := range uint64(n) {
		binary.BigEndian.PutUint64(buf, i)
		var err error
		if i%2 == 0 {
			err = out.Send(ctx, buf)
		} else {
			_, err = out.SendBatch(ctx, batch)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint64(n) {
		m, err := in.Recv(ctx)
		if err != nil || binary.BigEndian.Uint64(m[0]) != i {
			t.Fatalf("message %d: %v %v", i, m, err)
		}
	}
}

// TestReceivedMessagesOwnership: messages from Recv stay intact for good and
// messages from RecvBatch until the Batch is reused, while receive buffers
// are recycled under heavy traffic; Clone keeps a batch message for good.
// With one sender, the i-th message received must be message i; a receive
// buffer reused while still referenced shows another message there.
func TestReceivedMessagesOwnership(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, in := inHub(t, "work", control.Pull, fastOpts)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	const n = 60000
	payload := func(i uint64) []byte {
		b := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 20)
		return binary.BigEndian.AppendUint64(b, i)
	}
	check := func(m Message, i uint64) {
		t.Helper()
		if !bytes.Equal(m[0], payload(i)) {
			t.Fatalf("message %d changed: %x", i, m[0])
		}
	}
	go func() {
		for i := uint64(0); i < n; i += 100 {
			msgs := make([]Message, 100)
			for k := range msgs {
				msgs[k] = Message{payload(i + uint64(k))}
			}
			if _, err := out.SendBatch(ctx, msgs); err != nil {
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	type keptMsg struct {
		m   Message
		seq uint64
	}
	var kept []keptMsg
	var b Batch
	defer b.Release()
	for got := uint64(0); got < n; {
		if rng.IntN(4) == 0 {
			m, err := in.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			check(m, got)
			kept = append(kept, keptMsg{m, got}) // the caller's for good
			got++
			continue
		}
		if err := in.RecvBatch(ctx, &b, 1+rng.IntN(300)); err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Msgs {
			check(m, got) // valid until the next RecvBatch
			if got%50 == 0 {
				kept = append(kept, keptMsg{m.Clone(), got})
			}
			got++
		}
	}
	for _, k := range kept {
		check(k.m, k.seq)
	}
}

// TestBatchDeadPeer: TestDeadPeer through the batch API — what the dead
// peer had not acknowledged is re-routed, what it had is counted as
// dropped by it, and every message is delivered or counted.
func TestBatchDeadPeer(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, live := inHub(t, "work", control.Pull, fastOpts)
	deadHub, dead := inHub(t, "work", control.Pull, fastOpts)
	cLive := collectBatches(ctx, live, 0)
	cDead := collectBatches(ctx, dead, 200*time.Microsecond)
	_, out, mem := outHub(t, "work", control.Push, Options{BatchMsgs: 8})
	mem.Publish(snap(1, "work", control.Push, live.Addr(), dead.Addr()))
	waitFor(t, 10*time.Second, "two connections", func() bool { return out.Stats().Peers == 2 })
	const n = 20000
	for i := uint64(0); i < n; i += 50 {
		if i == n/2 {
			deadHub.Close()
		}
		if _, err := out.SendBatch(ctx, seqBatch(i, 50, 16)); err != nil {
			t.Fatal(err)
		}
	}
	lost := dead.Stats().Dropped // final: Close counted what the dead gate held
	cDead.wg.Wait()              // its application recorded all it took (then Recv failed)
	// Everything was acknowledged (by the survivor, or by the dead peer
	// before it died), the survivor's application took it all and recorded
	// it. (A count of what arrived can reach n early: re-routed messages
	// the dead peer had already handed over arrive twice.)
	waitFor(t, 20*time.Second, "survivor to catch up", func() bool {
		st, ls := out.Stats(), live.Stats()
		return st.QueueDepth == 0 && st.InFlight == 0 && ls.QueueDepth == 0 && ls.Received == uint64(cLive.count())
	})
	cLive.mu.Lock()
	cDead.mu.Lock()
	missing := 0
	for i := range uint64(n) {
		if cLive.seen[i] == 0 && cDead.seen[i] == 0 {
			missing++
		}
	}
	cDead.mu.Unlock()
	cLive.mu.Unlock()
	if uint64(missing) > lost {
		t.Fatalf("%d messages missing, only %d counted as dropped by the dead peer", missing, lost)
	}
	t.Logf("re-routed %d, lost in the dead peer %d (counted %d)", out.Stats().Rerouted, missing, lost)
}

// TestRecvBatchDrained: RecvBatch hands over what a drained gate holds, then
// ErrDrained.
func TestRecvBatchDrained(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	inH, in := inHub(t, "work", control.Pull, fastOpts)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	if _, err := out.SendBatch(ctx, seqBatch(0, 300, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "all received", func() bool { return in.recvQ.len() == 300 })
	mem.Publish(snap(2, "work", control.Push)) // the upstream lets go, as the scheduler would
	drained := make(chan error, 1)
	go func() { drained <- inH.Drain(ctx, 10*time.Second) }()
	var b Batch
	got := 0
	for {
		err := in.RecvBatch(ctx, &b, 64)
		if errors.Is(err, ErrDrained) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got += len(b.Msgs)
	}
	if got != 300 || len(b.Msgs) != 0 {
		t.Fatalf("received %d before ErrDrained (%d left in the batch)", got, len(b.Msgs))
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

// TestEmptyMessagesBounded: empty messages are not free in the receive
// queue, so a peer sending them to an application that does not read
// cannot grow it without bound.
func TestEmptyMessagesBounded(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, in := inHub(t, "work", control.Pull, Options{QueueBytes: 4096})
	_, out, mem := outHub(t, "work", control.Push, Options{DrainTimeout: 20 * time.Millisecond})
	mem.Publish(snap(1, "work", control.Push, in.Addr()))
	empty := make([]Message, 1000)
	for i := range empty {
		empty[i] = Message{nil}
	}
	// Send until backpressure reaches the sender: the application never
	// reads, so it must, with every buffer on the way bounded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := out.SendBatch(short, empty)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backpressure after 20 s; receive queue holds %d messages", in.recvQ.len())
		}
	}
	// One batch (at most BatchMsgs) is taken into an empty queue whatever it
	// costs; beyond that, QueueBytes bounds it at partCost per part.
	bound := (&Options{}).withDefaults().BatchMsgs + 4096/partCost
	if n := in.recvQ.len(); n == 0 || n > bound {
		t.Fatalf("%d empty messages queued, want 1..%d", n, bound)
	}
}

// TestChunks: messages go through the send queue's chunks (small batch
// limits, window-sized takes that split chunks, acknowledgements that land
// inside a chunk) and come out whole and in order, as extension frames and
// as plain ZMTP.
func TestChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var want []Message
	q := newSendQueue(1<<20, 1<<30, 7, 700)
	ctx := context.Background()
	for i := range 3000 {
		m := make(Message, 1+rng.IntN(3))
		for k := range m {
			m[k] = binary.BigEndian.AppendUint64(nil, uint64(i))
			m[k] = append(m[k], bytes.Repeat([]byte{byte(k)}, rng.IntN(300))...)
		}
		if rng.IntN(500) == 0 {
			m = Message{bytes.Repeat([]byte{1}, 5000)} // bigger than a chunk
		}
		want = append(want, m)
		if err := q.push(ctx, m.Clone(), m.Size()); err != nil {
			t.Fatal(err)
		}
	}
	// Writers take chunks, some split to fit a window; each goes to a
	// pretend link whose peer acknowledges up to a random point.
	g := &Gate{progress: newSignal()}
	l := &link{g: g, spaceSig: newSignal()}
	var got, plain []Message
	for q.len() > 0 {
		c, _ := q.take(1+rng.IntN(10), nil, nil, nil)
		if c.n == 0 || c.n > 10 {
			t.Fatalf("took a chunk of %d messages", c.n)
		}
		fr, err := readFrame(bufio.NewReader(bytes.NewReader(c.frame())), 1<<20)
		if err != nil || fr.body[0] != kindData {
			t.Fatalf("chunk frame unreadable: %v", err)
		}
		msgs, n, err := decodeMsgs(fr.body[1:], 1<<20)
		if err != nil || len(msgs) != c.n || n != c.bytes {
			t.Fatalf("chunk decodes to %d messages, %d bytes (%v); it says %d, %d", len(msgs), n, err, c.n, c.bytes)
		}
		got = append(got, msgs...)
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writePlainChunk(w, c.body()); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		plain = append(plain, readPlain(t, &buf)...)

		c.start = l.written
		l.unacked = append(l.unacked, c)
		l.ubytes += c.bytes
		l.written += uint64(c.n)
		if err := l.ack(l.acked + uint64(rng.IntN(int(l.written-l.acked)+1))); err != nil {
			t.Fatal(err)
		}
	}
	if !equalMsgs(got, want) || !equalMsgs(plain, want) {
		t.Fatalf("messages changed going through chunks")
	}
	// A last chunk of five, acknowledged up to its third message (and
	// everything before it).
	last := seqBatch(0, 5, 8)
	want = append(want, last...)
	c := newChunk(0)
	for _, m := range last {
		c.buf = appendMsg(c.buf, m)
		c.n++
		c.bytes += m.Size()
	}
	c.start = l.written
	l.unacked = append(l.unacked, c)
	l.written += 5
	if err := l.ack(c.start + 2); err != nil {
		t.Fatal(err)
	}
	// What is unacknowledged comes back whole, less what was acknowledged.
	unacked := int(l.written - l.acked)
	if unacked != 3 {
		t.Fatalf("%d unacknowledged, want 3", unacked)
	}
	var back []Message
	var taken []*chunk
	l.takeUnacked(func(cs []*chunk) { taken = cs })
	for _, c := range taken {
		fr, _ := readFrame(bufio.NewReader(bytes.NewReader(c.frame())), 1<<20)
		msgs, _, err := decodeMsgs(fr.body[1:], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, msgs...)
	}
	if !equalMsgs(back, want[len(want)-unacked:]) {
		t.Fatalf("took back %d messages, want the last %d", len(back), unacked)
	}
	if err := l.ack(l.written + 1); !errors.Is(err, ErrProtocol) {
		t.Fatalf("ack beyond what was written = %v", err)
	}
}

// readPlain parses plain ZMTP multipart messages.
func readPlain(t *testing.T, r *bytes.Buffer) []Message {
	t.Helper()
	br := bufio.NewReader(r)
	var out []Message
	var m Message
	for {
		fr, err := readFrame(br, 1<<20)
		if err != nil {
			return out
		}
		m = append(m, fr.body)
		if fr.flags&flagMore == 0 {
			out = append(out, m)
			m = nil
		}
	}
}

// TestChunkPoolClasses: chunks come from the smallest class that holds
// them, shrink when taken early, and only exact class sizes go back.
func TestChunkPoolClasses(t *testing.T) {
	for _, tc := range []struct{ size, capacity int }{
		{1, 512}, {512, 512}, {513, 1024}, {64 << 10, 64 << 10}, {(64 << 10) + 1, 128 << 10}, {5 << 20, 5 << 20},
	} {
		c := newChunk(tc.size)
		if cap(c.buf) != tc.capacity || len(c.buf) != chunkHdr {
			t.Errorf("newChunk(%d): len %d cap %d, want cap %d", tc.size, len(c.buf), cap(c.buf), tc.capacity)
		}
		c.unref()
	}
	c := newChunk(64 << 10)
	c.buf = appendMsg(c.buf, Message{[]byte("x")})
	c.n, c.bytes = 1, 1
	s := c.shrink()
	if cap(s.buf) != 512 || s.n != 1 || !bytes.Equal(s.body(), appendMsg(nil, Message{[]byte("x")})) {
		t.Fatalf("shrink: cap %d, %d messages, body %x", cap(s.buf), s.n, s.body())
	}
	if !slices.Equal(chunkSizesTaken(t), []int{1, 2, 3}) {
		t.Fatal("chunk limits not honoured")
	}
}

// chunkSizesTaken pushes 6 messages into a queue of at most 3 per chunk
// and returns the sizes of the chunks taken with windows of 1, 2 and 3.
func chunkSizesTaken(t *testing.T) []int {
	q := newSendQueue(100, 1<<20, 3, 1<<10)
	for i := range 6 {
		if err := q.push(context.Background(), Message{[]byte{byte(i)}}, 1); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for k := 1; k <= 3; k++ {
		c, _ := q.take(k, nil, nil, nil)
		sizes = append(sizes, c.n)
		c.unref()
	}
	return sizes
}

// TestReceiveQueueChargesMemory: the receive queue is charged what its
// batches hold in memory, so one-message frames (each in a pooled buffer
// of at least 512 bytes) stop at QueueBytes of buffers, not of payload.
func TestReceiveQueueChargesMemory(t *testing.T) {
	const max = 16 << 10
	q := newRecvQueue(max)
	stop := make(chan struct{})
	close(stop) // put returns false at once when the batch does not fit
	held, accepted := 0, 0
	for range 1000 {
		f := newFrame(10)
		f.body[0] = kindData
		copy(f.body[1:], appendMsg(nil, Message{[]byte("payload")}))
		parts, counts, nmsg, _, err := decodeBatch(f.body[1:], 1<<20, f.parts, f.counts)
		if err != nil {
			t.Fatal(err)
		}
		if !q.put(f.batch(parts, counts, nmsg), stop) {
			f.unref()
			break
		}
		accepted++
		held += cap(f.body) + partCost*cap(f.parts)
	}
	if accepted == 0 || held > max+1024 {
		t.Fatalf("%d one-message frames queued, holding %d bytes of buffers; bound %d", accepted, held, max)
	}
	q.drop()
}

// TestEmptyDataBatch: a peer speaking the extension may send a data batch
// with no message; it is nothing, and what follows arrives.
func TestEmptyDataBatch(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	_, in := inHub(t, "w", control.Pull, fastOpts)
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	ready := append([]byte{5}, "READY"...)
	ready = appendProperty(ready, "Socket-Type", "PUSH")
	ready = appendProperty(ready, extProperty, extVersion)
	data := append(append([]byte{}, greeting...), flagCommand, byte(len(ready)))
	data = append(data, ready...)
	data = append(data, 0, 1, kindData) // a batch of nothing
	ok := appendMsg([]byte{kindData}, Message{[]byte("ok")})
	data = append(append(data, 0, byte(len(ok))), ok...)
	c, err := net.Dial("tcp", strings.TrimPrefix(in.Addr(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	m, err := in.Recv(ctx)
	if err != nil || len(m) != 1 || string(m[0]) != "ok" {
		t.Fatalf("after an empty batch: %q %v", m, err)
	}
	if st := in.Stats(); st.Refused != 0 || st.Peers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRemovalUnderSustainedTraffic: a peer removed while the sender keeps
// the queue busy stops getting work at once — the removal is applied
// while traffic goes on, and nothing is lost or duplicated.
func TestRemovalUnderSustainedTraffic(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, keep := inHub(t, "work", control.Pull, fastOpts)
	_, gone := inHub(t, "work", control.Pull, fastOpts)
	cKeep, cGone := collectBatches(ctx, keep, 0), collectBatches(ctx, gone, 0)
	_, out, mem := outHub(t, "work", control.Push, fastOpts)
	mem.Publish(snap(1, "work", control.Push, keep.Addr(), gone.Addr()))
	waitFor(t, 10*time.Second, "two connections", func() bool { return out.Stats().Peers == 2 })
	stop := make(chan struct{})
	sent := make(chan uint64, 1)
	go func() {
		var seq uint64
		defer func() { sent <- seq }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := out.SendBatch(ctx, seqBatch(seq, 64, 1024)); err != nil { // faster than the writers: the queue stays full
				return
			}
			seq += 64
		}
	}()
	waitFor(t, 10*time.Second, "traffic on both", func() bool { return cKeep.count() > 0 && cGone.count() > 0 })
	mem.Publish(snap(2, "work", control.Push, keep.Addr()))
	applied, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := mem.WaitApplied(applied, 2) // while the sender goes on
	cancel()
	close(stop)
	n := <-sent
	if err != nil {
		t.Fatalf("removal not applied under traffic: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "all messages", func() bool { return uint64(cKeep.count()+cGone.count()) >= n })
	cKeep.mu.Lock()
	cGone.mu.Lock()
	defer cGone.mu.Unlock()
	defer cKeep.mu.Unlock()
	for i := range n {
		if k := cKeep.seen[i] + cGone.seen[i]; k != 1 {
			t.Fatalf("message %d delivered %d times", i, k)
		}
	}
}

// TestPubRemovalFlushes: a subscriber removed while messages wait in its
// queue gets them before its connection closes; every published message is
// sent or counted as dropped.
func TestPubRemovalFlushes(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	_, sub := inHub(t, "news", control.Sub, Options{QueueBytes: 64 << 10})
	sub.Subscribe("")
	_, pub, mem := outHub(t, "news", control.Pub, fastOpts)
	mem.Publish(snap(1, "news", control.Pub, sub.Addr()))
	waitFor(t, 10*time.Second, "subscriber active", func() bool { return pub.Stats().Peers == 1 && pubActive(pub) })
	// The subscriber's application does not read yet: its queue fills, then
	// the sockets, then the publisher's queue for it.
	const n = 20000 // 20 MB: more than the socket buffers hold
	for i := range uint64(n) {
		pub.Send(ctx, []byte("t"), seqMsg(i, 1024))
	}
	waitFor(t, 10*time.Second, "messages waiting in the publisher", func() bool {
		pub.lmu.Lock()
		defer pub.lmu.Unlock()
		for l := range pub.links {
			return l.pq.len() > 0
		}
		return false
	})
	before := pub.Stats().Dropped // the burst overflowed the subscriber's queue
	mem.Publish(snap(2, "news", control.Pub))
	c := collectBatches(ctx, sub, 0) // now it reads
	if err := mem.WaitApplied(ctx, 2); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.Sent+st.Dropped != n || st.QueueDepth != 0 || st.Dropped != before {
		t.Fatalf("sent %d + dropped %d (%d before the removal) != %d (queued %d)", st.Sent, st.Dropped, before, n, st.QueueDepth)
	}
	waitFor(t, 10*time.Second, "the subscriber gets all that was sent", func() bool { return uint64(c.count()) == st.Sent })
}

// TestRemovedWriterTakesNothing: once a peer's removal begins, its writer
// takes nothing more from the shared queue, however much is waiting —
// nothing new is routed to a removed peer (docs/gates.md), and its removal
// does not wait for the queue to run dry.
func TestRemovedWriterTakesNothing(t *testing.T) {
	for _, ext := range []bool{true, false} {
		g := &Gate{pattern: control.Push, opt: Options{}.withDefaults(), log: slog.New(slog.DiscardHandler), progress: newSignal()}
		a, b := net.Pipe()
		l := &link{g: g, nc: a, bw: bufio.NewWriter(io.Discard), ext: ext, done: make(chan struct{}), spaceSig: newSignal()}
		q := newSendQueue(1000, 1<<20, 16, 1<<10)
		for i := range uint64(100) {
			if err := q.push(context.Background(), Message{seqMsg(i, 8)}, 8); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		close(stop)
		l.sendLoop(q, stop)
		if n := q.len(); n != 100 {
			t.Errorf("ext %v: a removed peer's writer took %d messages", ext, 100-n)
		}
		q.drop()
		a.Close()
		b.Close()
	}
}

// TestQueueDepthCountsHeld: messages a writer took stay in the queue's
// depth until it settles them, so a drain (Close) that waits for an empty
// queue and nothing in flight never sees them nowhere.
func TestQueueDepthCountsHeld(t *testing.T) {
	q := newSendQueue(100, 1<<20, 4, 1<<10)
	for i := range 10 {
		if err := q.push(context.Background(), Message{[]byte{byte(i)}}, 1); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := q.take(10, nil, nil, nil)
	if q.len() != 10-c.n || q.depth() != 10 {
		t.Fatalf("after taking %d: len %d, depth %d; want %d, 10", c.n, q.len(), q.depth(), 10-c.n)
	}
	q.settle(c.n)
	if q.depth() != 10-c.n {
		t.Fatalf("after settling: depth %d, want %d", q.depth(), 10-c.n)
	}
	c.unref()
	q.drop()
}
