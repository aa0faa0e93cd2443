package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// String escapes every character of s that a terminal would act on rather
// than show: C0 controls (line breaks and tabs too), DEL, C1 controls, the
// bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069)
// and the marks U+200E, U+200F, U+061C; and invalid UTF-8. Escapes read as
// in Go: \x1b, \n, \u202e. Use it for one field of a line (a task ID, a
// failure message).
func String(s string) string { return escape(s, false) }

// Text is String that keeps line breaks and tabs: for a message of several
// lines (an error with its problems), whose lines are then each safe.
func Text(s string) string { return escape(s, true) }

func escape(s string, keepLines bool) string {
	if clean(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeFormat(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean is the fast path: most text needs nothing.
func clean(s string, keepLines bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return cleanRunes(s[i:])
		}
		if c == 0x7f || (c < 0x20 && !(keepLines && (c == '\n' || c == '\t'))) {
			return false
		}
	}
	return true
}

func cleanRunes(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false
			}
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unsafeFormat(r) {
			// Line breaks and tabs are ASCII; clean only sends the rest of
			// s here from its first non-ASCII byte, so say "not clean" and
			// let escape decide, which keeps them when asked to.
			return false
		}
	}
	return true
}

// unsafeFormat: the Unicode characters that change the order text is shown
// in (the trick of "Trojan Source").
func unsafeFormat(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// Unsafe reports whether s holds anything String would escape; servers use
// it to refuse such text where it is to be stored and shown later.
func Unsafe(s string) bool { return !clean(s, false) }

// JSON makes encoded JSON safe to print: encoding/json already escapes C0
// controls, but passes DEL, C1 controls and bidi controls through raw. In
// valid JSON they can only stand inside strings, where \uXXXX means the
// same, so the result decodes to the same value.
func JSON(b []byte) []byte {
	if clean(string(b), true) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || (r >= 0x80 && r < 0xa0) || unsafeFormat(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
