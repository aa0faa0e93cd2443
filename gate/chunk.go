package gate

import (
	"bufio"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
)

// chunk is a run of messages already encoded as the body of one extension
// data frame: per message uvarint(parts), then per part uvarint(len) and the
// bytes (see writeBatch), after chunkHdr bytes kept free for the frame
// header and the kind, so that a writer sends a chunk with one write and no
// copy. Send copies into a queue's last chunk; writers take whole chunks.
//
// Ownership: a chunk has one holder at a time — a queue, or the writer that
// took it — plus, while it waits for its acknowledgement, the link's list of
// unacknowledged chunks. refs counts them; the last to let go returns the
// buffer to a pool (unref). The contents are never changed once taken,
// except by whoever holds the only reference.
type chunk struct {
	buf   []byte // buf[:chunkHdr] is free for the header; messages follow
	n     int    // messages
	bytes int    // their payload bytes
	start uint64 // in a link's unacknowledged list: its first message's cumulative index
	refs  atomic.Int32
}

// chunkHdr is room for the longest ZMTP frame header (9 bytes) and the kind.
const chunkHdr = 10

// Chunk buffers are pooled in power-of-two classes from 512 B to 1 MiB, so
// that a chunk holding one small message does not pin a 64 KiB buffer while
// it waits for its acknowledgement. Bigger chunks (one big message) are not
// pooled.
const (
	minChunkShift = 9
	numChunkPools = 12
)

var chunkPools [numChunkPools]sync.Pool

func chunkClass(size int) int {
	if size <= 1<<minChunkShift {
		return 0
	}
	return bits.Len(uint(size-1)) - minChunkShift
}

// newChunk returns an empty chunk with room for at least size bytes
// (header included) and one reference.
func newChunk(size int) *chunk {
	var c *chunk
	if k := chunkClass(size); k < numChunkPools {
		if v := chunkPools[k].Get(); v != nil {
			c = v.(*chunk)
		} else {
			c = &chunk{buf: make([]byte, 0, 1<<(minChunkShift+k))}
		}
	} else {
		c = &chunk{buf: make([]byte, 0, size)}
	}
	c.buf = c.buf[:chunkHdr]
	c.n, c.bytes, c.start = 0, 0, 0
	c.refs.Store(1)
	return c
}

// unref lets go of one reference; the last returns the buffer to its pool.
func (c *chunk) unref() {
	if c.refs.Add(-1) != 0 {
		return
	}
	k := chunkClass(cap(c.buf))
	if k < numChunkPools && cap(c.buf) == 1<<(minChunkShift+k) {
		chunkPools[k].Put(c)
	}
}

// grow returns a chunk with the same content and room for size bytes; c is
// released. The caller must hold the only reference.
func (c *chunk) grow(size int) *chunk {
	g := newChunk(size)
	g.buf = append(g.buf[:0], c.buf...)
	g.n, g.bytes = c.n, c.bytes
	c.unref()
	return g
}

// shrink returns c, or a copy in a smaller buffer if c uses under a quarter
// of its own (a chunk taken early, to be kept until acknowledged). The
// caller must hold the only reference.
func (c *chunk) shrink() *chunk {
	if cap(c.buf) <= 1<<minChunkShift || len(c.buf) > cap(c.buf)/4 {
		return c
	}
	return c.grow(len(c.buf))
}

func (c *chunk) body() []byte { return c.buf[chunkHdr:] }

// split keeps the first k messages in c and returns a new chunk with the
// rest. The caller must hold the only reference.
func (c *chunk) split(k int) *chunk {
	off, bytes := skipMsgs(c.body(), k)
	tail := c.body()[off:]
	r := newChunk(chunkHdr + len(tail))
	r.buf = append(r.buf, tail...)
	r.n, r.bytes = c.n-k, c.bytes-bytes
	c.buf = c.buf[:chunkHdr+off]
	c.n, c.bytes = k, bytes
	return r
}

// dropFront removes the first k messages (they were acknowledged). The
// caller must hold the only reference.
func (c *chunk) dropFront(k int) {
	off, bytes := skipMsgs(c.body(), k)
	n := copy(c.buf[chunkHdr:], c.body()[off:])
	c.buf = c.buf[:chunkHdr+n]
	c.n -= k
	c.bytes -= bytes
}

// frame fills in the header and returns the whole extension frame.
func (c *chunk) frame() []byte {
	size := uint64(len(c.buf) - chunkHdr + 1)
	c.buf[chunkHdr-1] = kindData
	if size > 255 {
		c.buf[0] = flagLong
		binary.BigEndian.PutUint64(c.buf[1:9], size)
		return c.buf
	}
	c.buf[chunkHdr-3], c.buf[chunkHdr-2] = 0, byte(size)
	return c.buf[chunkHdr-3:]
}

// encodedLen is the size of m in a data batch.
func encodedLen(m Message) int {
	n := uvarintLen(uint64(len(m)))
	for _, p := range m {
		n += uvarintLen(uint64(len(p))) + len(p)
	}
	return n
}

// appendMsg appends m's encoding in a data batch.
func appendMsg(b []byte, m Message) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, p := range m {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// skipMsgs returns the offset after the first k messages of an encoded body
// written by appendMsg (trusted: our own), and their payload bytes.
func skipMsgs(b []byte, k int) (off, bytes int) {
	for range k {
		parts, n := binary.Uvarint(b[off:])
		off += n
		for range parts {
			l, n := binary.Uvarint(b[off:])
			off += n + int(l)
			bytes += int(l)
		}
	}
	return off, bytes
}

// writePlainChunk writes the messages of an encoded body (our own) as plain
// ZMTP multipart messages, for peers without the extension.
func writePlainChunk(w *bufio.Writer, b []byte) error {
	for len(b) > 0 {
		parts, n := binary.Uvarint(b)
		b = b[n:]
		for i := range parts {
			l, n := binary.Uvarint(b)
			p := b[n : n+int(l)]
			b = b[n+int(l):]
			var fl byte
			if i < parts-1 {
				fl = flagMore
			}
			writeHdr(w, fl, len(p))
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// inFrame is a received extension data frame: its body and the parts of its
// messages, which alias the body. Frames are pooled (same classes as chunks)
// and reference-counted: the receive queue holds one reference until every
// message was taken, and each Batch that took messages from it holds one
// until it is reused or released. A message handed out by Recv (or
// RecvRequest, or the channel view) belongs to the caller for good, so its
// frame is marked escaped and left to the garbage collector.
type inFrame struct {
	body    []byte
	parts   [][]byte
	counts  []uint16
	refs    atomic.Int32
	escaped atomic.Bool
}

var framePools [numChunkPools]sync.Pool

// newFrame returns a frame with a body of size bytes and one reference.
func newFrame(size int) *inFrame {
	var f *inFrame
	if k := chunkClass(size); k < numChunkPools {
		if v := framePools[k].Get(); v != nil {
			f = v.(*inFrame)
		} else {
			f = &inFrame{body: make([]byte, 0, 1<<(minChunkShift+k))}
		}
	} else {
		f = &inFrame{body: make([]byte, 0, size)}
	}
	f.body = f.body[:size]
	f.refs.Store(1)
	f.escaped.Store(false)
	return f
}

func (f *inFrame) ref() { f.refs.Add(1) }

// batch records the decoded parts in f and returns them as a batch for the
// receive queue, which takes over f's reference and is charged what f holds.
func (f *inFrame) batch(parts [][]byte, counts []uint16, nmsg int) inBatch {
	f.parts = parts
	if counts != nil {
		f.counts = counts
	}
	return inBatch{parts: parts, counts: counts, per: 1, nmsg: nmsg, f: f, cost: f.cost()}
}

// cost is the memory f holds: its buffers' capacity, not just the payload,
// and the frame itself.
func (f *inFrame) cost() int {
	return cap(f.body) + partCost*cap(f.parts) + 2*cap(f.counts) + 128
}

// unref lets go of one reference; the last returns the frame to its pool
// unless a message of it escaped.
func (f *inFrame) unref() {
	if f.refs.Add(-1) != 0 || f.escaped.Load() {
		return
	}
	k := chunkClass(cap(f.body))
	if k < numChunkPools && cap(f.body) == 1<<(minChunkShift+k) {
		framePools[k].Put(f)
	}
}
