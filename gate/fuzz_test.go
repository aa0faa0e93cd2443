package gate

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"testing"
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
