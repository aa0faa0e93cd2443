package recordio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	records := [][]byte{[]byte(`{"type":"HEARTBEAT"}`), {0x08, 0x08}, {}, bytes.Repeat([]byte("x"), 5000)}
	var buf []byte
	for _, r := range records {
		buf = Append(buf, r)
	}
	if got := string(Append(nil, []byte(`{"type":"HEARTBEAT"}`))); got != "20\n{\"type\":\"HEARTBEAT\"}" {
		t.Fatalf("framing = %q, want no trailing newline", got)
	}
	rd := NewReader(bytes.NewReader(buf), 1<<20)
	for i, want := range records {
		got, err := rd.Read()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d = %q, want %q", i, got, want)
		}
	}
	if _, err := rd.Read(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"truncated body", "10\nabc", io.ErrUnexpectedEOF},
		{"truncated header", "12", io.ErrUnexpectedEOF},
		{"too large", "99999999999\n", ErrTooLarge},
		{"too many digits", "123456789012345678901234\n", ErrTooLarge},
		{"21 digits, leading zeros", "000000000000000000005\nhello", nil},
		{"letters", "1a\nx", nil},
		{"negative", "-1\n", nil},
		{"empty length", "\nx", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader([]byte(tc.in)), 1024).Read()
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzReader feeds arbitrary bytes to the reader: it must never panic, never
// return a record larger than its limit, and whatever it returns must frame
// back to a prefix of the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte("20\n{\"type\":\"HEARTBEAT\"}2\n\x08\x08"))
	f.Add([]byte("0\n"))
	f.Add([]byte("18446744073709551616\n"))
	f.Add([]byte("5\nabc"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 256
		rd := NewReader(bytes.NewReader(in), limit)
		var again []byte
		for {
			rec, err := rd.Read()
			if err != nil {
				break
			}
			if len(rec) > limit {
				t.Fatalf("record of %d bytes over the %d limit", len(rec), limit)
			}
			again = Append(again, rec)
		}
		// Leading zeros in a length are legal input but not what Append
		// writes, so compare lengths only.
		if len(again) > len(in) {
			t.Fatalf("reframed %d bytes from %d input bytes", len(again), len(in))
		}
	})
}
