package hostport

import "testing"

func TestParse(t *testing.T) {
	cases := []struct {
		in, want string
		col      int
		msg      string
	}{
		{"zk1", "zk1:2181", 0, ""},
		{"zk1:2182", "zk1:2182", 0, ""},
		{"10.0.0.5", "10.0.0.5:2181", 0, ""},
		{"[::1]", "[::1]:2181", 0, ""},
		{"[::1]:7", "[::1]:7", 0, ""},
		{"", "", 0, "no host given"},
		{":5", "", 0, "empty host name"},
		{"a:", "", 1, "empty port after ':'"},
		{"a:0", "", 2, `port "0" is not a number from 1 to 65535`},
		{"a:+5", "", 2, `port "+5" is not a number from 1 to 65535`},
		{"a:70000", "", 2, `port "70000" is not a number from 1 to 65535`},
		{"::1", "", 0, "an IPv6 address must be written in brackets, e.g. [::1]:2181"},
		{"[::1", "", 0, "IPv6 address without the closing ']'"},
		{"[1.2.3.4]", "", 1, "not an IPv6 address"},
		{"[::1]x", "", 5, "expected ':port' after the IPv6 address"},
		{"a..b", "", 2, "empty label in the host name"},
		{"a/b:1", "", 1, `character '/' is not allowed in a host name`},
	}
	for _, c := range cases {
		got, col, msg := Parse(c.in, 2181)
		if got != c.want || col != c.col || msg != c.msg {
			t.Errorf("Parse(%q) = %q, %d, %q; want %q, %d, %q", c.in, got, col, msg, c.want, c.col, c.msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"zk1:2181", "[::1]:5050", "a..b", "::1", "[x]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hp string) {
		addr, col, msg := Parse(hp, 5050)
		if msg == "" && addr == "" {
			t.Fatal("no address and no problem")
		}
		if msg != "" && (col < 0 || col > len(hp)) {
			t.Fatalf("column %d outside %q", col, hp)
		}
	})
}
