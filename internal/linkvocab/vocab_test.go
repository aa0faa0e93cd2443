package linkvocab

import (
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	for _, c := range []struct {
		p                      Pattern
		valid, sends, receives bool
		peer                   Pattern
		validOut, validIn      bool
	}{
		{Push, true, true, false, Pull, true, false},
		{Pull, true, false, true, Push, false, true},
		{Pub, true, true, false, Sub, true, false},
		{Sub, true, false, true, Pub, false, true},
		{Req, true, true, false, Rep, true, false},
		{Rep, true, false, true, Req, false, true},
		{Pair, true, true, true, Pair, true, true},
		{"dealer", false, false, false, "", false, false},
		{"PUSH", false, false, false, "", false, false},
		{"", false, false, false, "", false, false},
	} {
		if got := c.p.Valid(); got != c.valid {
			t.Errorf("%q.Valid() = %v", c.p, got)
		}
		if got := c.p.Sends(); got != c.sends {
			t.Errorf("%q.Sends() = %v", c.p, got)
		}
		if got := c.p.Receives(); got != c.receives {
			t.Errorf("%q.Receives() = %v", c.p, got)
		}
		if got := c.p.Peer(); got != c.peer {
			t.Errorf("%q.Peer() = %q, want %q", c.p, got, c.peer)
		}
		if got := c.p.ValidFor(Out); got != c.validOut {
			t.Errorf("%q.ValidFor(Out) = %v", c.p, got)
		}
		if got := c.p.ValidFor(In); got != c.validIn {
			t.Errorf("%q.ValidFor(In) = %v", c.p, got)
		}
		if got := c.p.ValidFor("sideways"); got {
			t.Errorf("%q.ValidFor(sideways) = true", c.p)
		}
		_, err := ParsePattern(string(c.p))
		if (err == nil) != c.valid {
			t.Errorf("ParsePattern(%q) = %v", c.p, err)
		}
		if c.valid && c.p.Peer().Peer() != c.p {
			t.Errorf("%q: the peer's peer is %q", c.p, c.p.Peer().Peer())
		}
	}
	for _, p := range Patterns {
		if !p.Valid() {
			t.Errorf("Patterns lists %q, which is not valid", p)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, c := range []struct {
		name string
		want string // "" for valid, else a part of the error
	}{
		{"plaintext", ""},
		{"a", ""},
		{"0", ""},
		{"cipher-text2", ""},
		{strings.Repeat("a", 63), ""},
		{"", "empty"},
		{strings.Repeat("a", 64), "64 characters long (at most 63)"},
		{"Plain", `has 'P' at offset 0`},
		{"a_b", `has '_' at offset 1`},
		{"a.b", `has '.' at offset 1`},
		{"a b", `has ' ' at offset 1`},
		{"-a", "starts or ends with '-'"},
		{"a-", "starts or ends with '-'"},
		{"é", `at offset 0`},
	} {
		err := ValidName(c.name)
		if IsDNSLabel(c.name) != (err == nil) {
			t.Errorf("IsDNSLabel(%q) disagrees with ValidName: %v", c.name, err)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("ValidName(%q) = %v, want nil", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("ValidName(%q) = %v, want an error with %q", c.name, err, c.want)
		}
	}
}
