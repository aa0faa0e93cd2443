package zkha

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want URL
	}{
		{"zk://127.0.0.1:2181/tiltai", URL{Servers: []string{"127.0.0.1:2181"}, Path: "/tiltai"}},
		{"zk://zk1,zk2:2182,zk3/a/b-c_d.e", URL{Servers: []string{"zk1:2181", "zk2:2182", "zk3:2181"}, Path: "/a/b-c_d.e"}},
		{"zk://user:p:a@ss@zk1:1/mesos", URL{Servers: []string{"zk1:1"}, Path: "/mesos", Username: "user", Password: "p:a@ss"}},
		{"zk://[::1]:2181,[fe80::1]/x", URL{Servers: []string{"[::1]:2181", "[fe80::1]:2181"}, Path: "/x"}},
		{"zk://my-zk.example.com:65535/zookeeper2", URL{Servers: []string{"my-zk.example.com:65535"}, Path: "/zookeeper2"}},
		{"zk://h/t/zookeeper", URL{Servers: []string{"h:2181"}, Path: "/t/zookeeper"}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		in     string
		column int
		msg    string // a part of the message
	}{
		{"", 1, "empty"},
		{"127.0.0.1:2181/tiltai", 1, "missing the zk:// scheme"},
		{"http://h:1/x", 1, `scheme "http" is not zk`},
		{"zk:///tiltai", 6, "no ZooKeeper server"},
		{"zk://h:2181", 12, "missing the path"},
		{"zk://h:2181/", 12, "below the root"},
		{"zk://h:2181/a/", 14, "trailing '/'"},
		{"zk://h:2181/a//b", 15, "empty (two '/' in a row)"},
		{"zk://h:2181/a/../b", 15, "relative"},
		{"zk://h:2181/zookeeper", 13, "ZooKeeper's own znode"},
		{"zk://h:2181/a b", 14, "byte 0x20"},
		{"zk://h:2181/a?x=1", 14, "query strings"},
		{"zk://h:x/t", 8, `port "x"`},
		{"zk://h:0/t", 8, `port "0"`},
		{"zk://h:70000/t", 8, `port "70000"`},
		{"zk://h:/t", 7, "empty port"},
		{"zk://a:1,,b:2/t", 10, "empty server"},
		{"zk://a:1,b:2,/t", 14, "empty server"},
		{"zk://a:1,b:zz/t", 12, `server "b:zz": port "zz"`},
		{"zk://a..b/t", 8, "empty label"},
		{"zk://a$b/t", 7, `character '$'`},
		{"zk://[::1/t", 6, "closing ']'"},
		{"zk://[1.2.3.4]:1/t", 7, "not an IPv6"},
		{"zk://[::1]x/t", 11, "expected ':port'"},
		{"zk://user@h/t", 6, "user:password"},
		{"zk://:pw@h/t", 6, "empty user name"},
		{"zk://u:@h/t", 8, "empty password"},
		{"zk://h/t/s\xffx", 11, "byte 0xff"},
		{"zk://h/t/s%20", 11, `character '%'`},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		var ue *URLError
		if !errors.As(err, &ue) {
			t.Errorf("ParseURL(%q) = %v, want a *URLError", tt.in, err)
			continue
		}
		if ue.Column != tt.column || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseURL(%q):\n got column %d: %v\nwant column %d and %q", tt.in, ue.Column, err, tt.column, tt.msg)
		}
	}
}

func TestURLNeverShowsThePassword(t *testing.T) {
	u, err := ParseURL("zk://alice:s3cret@h:1/t")
	if err != nil {
		t.Fatal(err)
	}
	if s := u.String(); strings.Contains(s, "s3cret") || s != "zk://alice:***@h:1/t" {
		t.Errorf("String() = %q", s)
	}
	_, err = ParseURL("zk://alice:s3cret@h:x/t")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
}

// raw renders u with its password, to check that parsing is stable.
func (u URL) raw() string {
	s := "zk://"
	if u.Username != "" {
		s += u.Username + ":" + u.Password + "@"
	}
	return s + strings.Join(u.Servers, ",") + u.Path
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"zk://127.0.0.1:2181/tiltai", "zk://a,b:1,[::1]:3/x/y", "zk://u:p@h/m", "zk://h:99999/x",
		"zk://[::1/t", "zk:///", "zk://a..b/t", "zk://u:@h/t", "http://x/y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			var ue *URLError
			if !errors.As(err, &ue) || ue.Column < 1 || ue.Column > len(s)+1 {
				t.Fatalf("ParseURL(%q): error without a valid column: %v", s, err)
			}
			if ue.Msg == "" {
				t.Fatalf("ParseURL(%q): empty message", s)
			}
			return
		}
		if len(u.Servers) == 0 || !strings.HasPrefix(u.Path, "/") || u.Path == "/" {
			t.Fatalf("ParseURL(%q) accepted %#v", s, u)
		}
		again, err := ParseURL(u.raw())
		if err != nil || !reflect.DeepEqual(again, u) {
			t.Fatalf("ParseURL(%q) = %#v, but its rendering %q parses to %#v, %v", s, u, u.raw(), again, err)
		}
		// What String shows besides its fixed text ("zk://", the ":***@"
		// mask) must not hold the password, unless the user name, servers
		// or path hold it too ("zk://0:z@0/0" has a "z" in "zk://").
		shown := strings.Replace(strings.TrimPrefix(u.String(), "zk://"), ":***@", "\x00", 1)
		if u.Password != "" && !strings.Contains(u.Password, "\x00") && strings.Contains(shown, u.Password) &&
			!strings.Contains(u.Username, u.Password) && !strings.Contains(strings.Join(u.Servers, ",")+u.Path, u.Password) {
			t.Fatalf("String() of %q shows the password: %s", s, u.String())
		}
	})
}
