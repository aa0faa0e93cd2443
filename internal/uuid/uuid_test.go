package uuid

import (
	"bytes"
	"regexp"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		u    UUID
		want string
	}{
		{UUID{}, "00000000-0000-0000-0000-000000000000"},
		{UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xff},
			"12345678-9abc-4def-8001-0203040506ff"},
	}
	for _, tt := range tests {
		if got := tt.u.String(); got != tt.want {
			t.Errorf("%x: String() = %q, want %q", tt.u[:], got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[UUID]bool{}
	for range 1000 {
		u := New()
		if s := u.String(); !v4.MatchString(s) {
			t.Fatalf("New() = %s, not a version 4 UUID", s)
		}
		if b := u.Bytes(); !bytes.Equal(b, u[:]) {
			t.Fatalf("Bytes() = %x, want %x", b, u[:])
		}
		if seen[u] {
			t.Fatalf("New() repeated %s", u)
		}
		seen[u] = true
	}
}

func TestBytesIsACopy(t *testing.T) {
	u := New()
	b := u.Bytes()
	b[0]++
	if b[0] == u[0] {
		t.Fatal("Bytes() shares its array with the UUID")
	}
}
