package depcheck

import "testing"

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"go.etcd.io/bbolt/...", "go.etcd.io/bbolt", true},
		{"go.etcd.io/bbolt/...", "go.etcd.io/bbolt/internal/common", true},
		{"go.etcd.io/bbolt/...", "go.etcd.io/bboltx", false},
		{"net/http", "net/http", true},
		{"net/http", "net/http/httptrace", false},
		{"net/http/...", "net/http/httptrace", true},
		{"net/http", "vendor/golang.org/x/net/http/httpguts", false},
	} {
		if got := Match(c.pattern, c.path); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
