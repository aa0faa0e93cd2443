package ha

import (
	"strings"
	"testing"
)

// The address a leader advertises: fixed port, and a host others reach.
func TestAdvertiseAddr(t *testing.T) {
	for _, tc := range []struct {
		listen, advertise, want, err string
	}{
		{listen: "127.0.0.1:7070", want: "127.0.0.1:7070"},
		{listen: "0.0.0.0:7070", advertise: "sched-1", want: "sched-1:7070"},
		{listen: ":7070", err: "set --advertise"},
		{listen: "0.0.0.0:7070", err: "set --advertise"},
		{listen: "127.0.0.1:0", err: "fixed port"},
		{listen: "nonsense", err: "listen address"},
	} {
		got, err := advertiseAddr(Config{Listen: tc.listen, Advertise: tc.advertise})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: %q, %v; want an error saying %q", tc.listen, tc.advertise, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %q, %v; want %q", tc.listen, tc.advertise, got, err, tc.want)
		}
	}
}
