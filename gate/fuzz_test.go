package gate

import (
	"bufio"
	"bytes"
	"slices"
	"testing"
)

// FuzzDecodeBatch: any bytes decode or fail cleanly; what decodes re-encodes
// to a batch that decodes to the same messages.
func FuzzDecodeBatch(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeBatch(w, []Message{{[]byte("a")}, {nil, []byte("bc")}})
	w.Flush()
	f.Add(buf.Bytes()[3:]) // after header and kind
	f.Add([]byte{1, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _, err := decodeBatch(b, 1<<20)
		if err != nil {
			return
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		writeBatch(w, msgs)
		w.Flush()
		fr, err := readFrame(bufio.NewReader(&out), 1<<30)
		if err != nil || fr.body[0] != kindData {
			t.Fatalf("re-encoded batch unreadable: %v", err)
		}
		again, _, err := decodeBatch(fr.body[1:], 1<<20)
		if err != nil || !slices.EqualFunc(msgs, again, func(a, b Message) bool { return slices.EqualFunc(a, b, bytes.Equal) }) {
			t.Fatalf("round trip changed the batch: %v", err)
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
	writeBatch(w, in)
	w.Flush()
	fr, err := readFrame(bufio.NewReader(&buf), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := decodeBatch(fr.body[1:], 1<<20)
	if err != nil || n != 304 || len(out) != 2 {
		t.Fatalf("%v %d %v", out, n, err)
	}
	for i := range in {
		if !slices.EqualFunc(in[i], out[i], bytes.Equal) {
			t.Fatalf("message %d: %q != %q", i, out[i], in[i])
		}
	}
	if _, _, err := decodeBatch(fr.body[1:], 100); err == nil {
		t.Fatal("message over the limit accepted")
	}
}
