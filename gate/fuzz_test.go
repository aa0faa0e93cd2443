package gate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/tiltai/tiltai/gate/control"
)

// decodeMsgs decodes a batch body and cuts it into messages the way the
// receive queue does.
func decodeMsgs(b []byte, maxMsg int) ([]Message, int, error) {
	parts, counts, nmsg, bytes, err := decodeBatch(b, maxMsg, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	ib := inBatch{parts: parts, counts: counts, per: 1, nmsg: nmsg}
	var msgs []Message
	for ib.mi < ib.nmsg {
		msgs = append(msgs, ib.next())
	}
	if ib.pi != len(parts) {
		return nil, 0, fmt.Errorf("%d of %d parts used", ib.pi, len(parts))
	}
	return msgs, bytes, nil
}

// FuzzDecodeBatch: any bytes decode or fail cleanly; what decodes re-encodes
// (both by writeBatch and by a chunk, as Send does) to a batch that decodes
// to the same messages.
func FuzzDecodeBatch(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeBatch(w, Message{[]byte("a")}, Message{nil, []byte("bc")})
	w.Flush()
	f.Add(buf.Bytes()[3:]) // after header and kind
	f.Add([]byte{1, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, n, err := decodeMsgs(b, 1<<20)
		if err != nil {
			return
		}
		if got := sizeOf(msgs); got != n {
			t.Fatalf("decode reported %d bytes, messages hold %d", n, got)
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		writeBatch(w, msgs...)
		w.Flush()
		c := newChunk(0)
		for _, m := range msgs {
			c.buf = appendMsg(c.buf, m)
		}
		for i, enc := range [][]byte{out.Bytes(), c.frame()} {
			fr, err := readFrame(bufio.NewReader(bytes.NewReader(enc)), 1<<30)
			if err != nil || fr.body[0] != kindData {
				t.Fatalf("re-encoding %d unreadable: %v", i, err)
			}
			again, _, err := decodeMsgs(fr.body[1:], 1<<20)
			if err != nil || !equalMsgs(msgs, again) {
				t.Fatalf("round trip %d changed the batch: %v", i, err)
			}
		}
	})
}

// FuzzHandshakeGuard: the guard and the READY parser never panic, and the
// guard never lets a frame over the handshake limit through.
func FuzzHandshakeGuard(f *testing.F) {
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	ready := append([]byte{5}, "READY"...)
	ready = appendProperty(ready, "Socket-Type", "PUSH")
	f.Add(append(append(greeting, flagCommand, byte(len(ready))), ready...), 7)
	f.Add([]byte{0xFF, 0, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		var g guard
		chunk = max(1, chunk%97)
		for p := b; len(p) > 0; {
			n := min(chunk, len(p))
			if g.feed(p[:n]) != nil {
				break
			}
			p = p[n:]
			if g.body > maxHandshakeCmd {
				t.Fatalf("guard let a %d-byte frame through", g.body)
			}
		}
		parseProperties(b)
	})
}

// FuzzReadFrame: frames are read or refused without panics or allocations
// beyond the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 1, 'x'})
	f.Add([]byte{flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		for {
			fr, err := readFrame(br, 4096)
			if err != nil {
				return
			}
			if len(fr.body) > 4096 || fr.flags&flagReserved != 0 {
				t.Fatalf("accepted %d bytes, flags %#x", len(fr.body), fr.flags)
			}
		}
	})
}

func TestBatchRoundTrip(t *testing.T) {
	in := []Message{{[]byte("one")}, {[]byte("t"), nil, bytes.Repeat([]byte("w"), 300)}}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeBatch(w, in...)
	w.Flush()
	fr, err := readFrame(bufio.NewReader(&buf), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := decodeMsgs(fr.body[1:], 1<<20)
	if err != nil || n != 304 || len(out) != 2 {
		t.Fatalf("%v %d %v", out, n, err)
	}
	for i := range in {
		if !slices.EqualFunc(in[i], out[i], bytes.Equal) {
			t.Fatalf("message %d: %q != %q", i, out[i], in[i])
		}
	}
	if _, _, err := decodeMsgs(fr.body[1:], 100); err == nil {
		t.Fatal("message over the limit accepted")
	}
}

func sizeOf(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += m.Size()
	}
	return n
}

func equalMsgs(a, b []Message) bool {
	return slices.EqualFunc(a, b, func(a, b Message) bool { return slices.EqualFunc(a, b, bytes.Equal) })
}

// FuzzReadLoop: any bytes after the handshake, read by an extension link of
// a sub gate (no acknowledgements to write), end in EOF or a refusal —
// never a panic — and exactly the messages of the data frames before the
// first bad frame come out, whole and in order, through Recv's path and
// through RecvBatch's (take chooses, and RecvBatch's limit).
func FuzzReadLoop(f *testing.F) {
	frame := func(body []byte) []byte { return append(appendFrameHeader(nil, 0, len(body)), body...) }
	ok := appendMsg([]byte{kindData}, Message{[]byte("ok")})
	two := appendMsg(appendMsg([]byte{kindData}, Message{[]byte("a"), nil}), Message{[]byte("b")})
	f.Add(append(frame(ok), frame(two)...), uint8(3))
	hi := appendMsg([]byte{kindData}, Message{[]byte("hi")}) // unlike any earlier seed's: a stale part shows
	f.Add(append(frame([]byte{kindData}), frame(hi)...), uint8(1))
	f.Add(append(frame([]byte{kindAck, 5}), frame(ok)...), uint8(0))
	f.Add([]byte{flagCommand, 6, 4, 'P', 'I', 'N', 'G', 0}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, take uint8) {
		g := &Gate{pattern: control.Sub, opt: Options{}.withDefaults(), log: slog.New(slog.DiscardHandler),
			recvQ: newRecvQueue(1 << 40), progress: newSignal()} // no consumer runs meanwhile: never full
		a, b := net.Pipe()
		defer b.Close()
		l := &link{g: g, nc: a, br: bufio.NewReader(bytes.NewReader(data)), bw: bufio.NewWriter(io.Discard),
			ext: true, done: make(chan struct{}), spaceSig: newSignal(), topics: map[string]struct{}{}}
		l.readLoop()
		g.recvQ.finish()
		var got []Message
		var batch Batch
		for {
			var err error
			if take%2 == 0 {
				var m inMsg
				if m, err = g.recvQ.get(context.Background()); err == nil {
					got = append(got, m.msg)
				}
			} else {
				err = g.recvQ.getBatch(context.Background(), &batch, 1+int(take)/2)
				for _, m := range batch.Msgs {
					got = append(got, m.Clone())
				}
				batch.Release()
			}
			if errors.Is(err, ErrDrained) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if want := acceptedMsgs(data, g.opt); !equalMsgs(got, want) {
			t.Fatalf("got %d messages %q, want %d %q", len(got), got, len(want), want)
		}
	})
}

// acceptedMsgs parses data as a sub gate's extension link must: the
// messages of its data frames up to the first frame it refuses.
func acceptedMsgs(data []byte, opt Options) []Message {
	br := bufio.NewReader(bytes.NewReader(data))
	var out []Message
	for {
		fr, err := readFrame(br, max(opt.BatchBytes, opt.MaxMessageSize)+64<<10)
		if err != nil {
			return out
		}
		if fr.flags&flagCommand != 0 {
			if len(fr.body) == 0 || int(fr.body[0]) > len(fr.body)-1 || string(fr.body[1:1+fr.body[0]]) == "ERROR" {
				return out
			}
			continue
		}
		if fr.flags&flagMore != 0 || len(fr.body) == 0 {
			return out
		}
		switch fr.body[0] {
		case kindData:
			msgs, _, err := decodeMsgs(fr.body[1:], opt.MaxMessageSize)
			if err != nil {
				return out
			}
			out = append(out, msgs...)
		case kindSub, kindUnsub, kindSync:
		default: // an ack to a sub gate, or no kind at all
			return out
		}
	}
}
