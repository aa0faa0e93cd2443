package scheduler

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tiltai/tiltai/gate/control"
)

// The console answers a browser at "/", tools still get the JSON index
// (by Accept, and at /v1), every answer carries the security headers, and
// a browser's cross-origin write is refused before it reaches a handler.
func TestConsoleMount(t *testing.T) {
	h := newHarness(t, 1, nil)
	get := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, h.url(path), strings.NewReader(`{"instances": 0}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		code               int
		ctype, want        string
	}{
		{"browser", "GET", "/", map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, 200, "text/html", `<script type="module" src="/console/app.js">`},
		{"tool (no Accept)", "GET", "/", nil, 200, "application/json", `"endpoints"`},
		{"tool (JSON)", "GET", "/", map[string]string{"Accept": "application/json"}, 200, "application/json", `"GET /v1 (this index)"`},
		{"index at /v1", "GET", "/v1", map[string]string{"Accept": "text/html"}, 200, "application/json", `"endpoints"`},
		{"asset", "GET", "/console/app.js", nil, 200, "text/javascript", "import"},
		{"no such asset", "GET", "/console/nope.js", nil, 404, "", ""},
		{"no listing", "GET", "/console/", nil, 404, "", ""},
		{"API", "GET", "/v1/status", nil, 200, "application/json", `"services"`},
		{"cross-site write", "POST", "/v1/services/a/scale", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, 403, "", ""},
		{"cross-origin write", "POST", "/v1/services/a/scale", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "", ""},
		{"tool write", "POST", "/v1/services/a/scale", nil, 404, "application/json", "no service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(c.method, c.path, c.hdr)
			if resp.StatusCode != c.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(body, c.want) {
				t.Fatalf("%d %s, want %d %s with %q:\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), c.code, c.ctype, c.want, body)
			}
			for k, want := range map[string]string{
				"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

// A service's gate counters in /v1/status are the sums of its tasks'.
func TestServiceGateSums(t *testing.T) {
	var ss ServiceStatus
	addGates(&ss, map[string]control.GateCounters{"out": {Pattern: control.Push, Sent: 10, Dropped: 1, Peers: 3}, "in": {Pattern: control.Pull, Received: 4, QueueDepth: 2}})
	addGates(&ss, map[string]control.GateCounters{"out": {Pattern: control.Push, Sent: 5, Dropped: 2, Peers: 3}})
	addGates(&ss, nil)
	want := map[string]GateCountersReport{
		"out": {Pattern: "push", Sent: 15, Dropped: 3, Peers: 6},
		"in":  {Pattern: "pull", Received: 4, QueueDepth: 2},
	}
	if len(ss.Gates) != len(want) || ss.Gates["out"] != want["out"] || ss.Gates["in"] != want["in"] {
		t.Fatalf("%+v, want %+v", ss.Gates, want)
	}
}
