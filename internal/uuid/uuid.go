package uuid

import (
	"crypto/rand"
	"encoding/hex"
)

// UUID is a UUID in its 16-byte form.
type UUID [16]byte

// New returns a fresh random UUID. crypto/rand.Read does not fail (since Go
// 1.24 it crashes the program rather than return an error).
func New() UUID {
	var u UUID
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	return u
}

// Bytes returns the 16 bytes in a new slice.
func (u UUID) Bytes() []byte { return append([]byte(nil), u[:]...) }

// String returns the canonical lower-case form, 8-4-4-4-12 hex digits.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}
