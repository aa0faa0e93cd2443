package termsafe

import "testing"

func TestEscape(t *testing.T) {
	cases := []struct {
		name, in, str, text string
	}{
		{"plain", "encryptor.1 running", "encryptor.1 running", "encryptor.1 running"},
		{"unicode kept", "café — 暗号", "café — 暗号", "café — 暗号"},
		{"title set (OSC)", "a\x1b]0;pwned\x07b", `a\x1b]0;pwned\x07b`, `a\x1b]0;pwned\x07b`},
		{"clear screen (CSI)", "\x1b[2Jx", `\x1b[2Jx`, `\x1b[2Jx`},
		{"carriage return", "ok\rFAKE", `ok\rFAKE`, `ok\rFAKE`},
		{"line break", "a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"DEL and C1", "a\x7fb\u009bc", `a\x7fb\x9bc`, `a\x7fb\x9bc`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`, `abc\u202edcba`},
		{"bidi isolate after non-ASCII", "é\u2066x\u2069", `é\u2066x\u2069`, `é\u2066x\u2069`},
		{"line break after non-ASCII", "é\nx", `é\nx`, "é\nx"},
		{"invalid UTF-8", "a\xffb", `a\xffb`, `a\xffb`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := String(c.in); got != c.str {
				t.Errorf("String(%q) = %q, want %q", c.in, got, c.str)
			}
			if got := Text(c.in); got != c.text {
				t.Errorf("Text(%q) = %q, want %q", c.in, got, c.text)
			}
			if got := String(String(c.in)); got != c.str {
				t.Errorf("String is not idempotent: %q", got)
			}
			if Unsafe(c.in) != (c.str != c.in) {
				t.Errorf("Unsafe(%q) = %v", c.in, Unsafe(c.in))
			}
		})
	}
}

func TestJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":"plain \u001b"}`, `{"a":"plain \u001b"}`},
		{"{\"a\":\"x\u202ey\u007fz\u009b\"}\n", `{"a":"x\u202ey\u007fz\u009b"}` + "\n"},
	} {
		if got := string(JSON([]byte(c.in))); got != c.want {
			t.Errorf("JSON(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
