package scheduler

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
)

// TestSlowClientsCutOff checks docs/reliability.md B3 for slow senders: the
// API closes a connection whose headers, or whose body, arrive slower than
// its read-header and read timeouts allow, even while bytes still trickle
// in, and goes on serving. The timeouts are shortened here; the defaults
// (10 s for the headers, 30 s for the whole request) are checked as set.
func TestSlowClientsCutOff(t *testing.T) {
	const headerTO, readTO = 300 * time.Millisecond, 600 * time.Millisecond
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.readHeaderTimeout, c.readTimeout = headerTO, readTO })
	addr := strings.TrimPrefix(h.sched.URL(), "http://")
	h.submit(pipelineSpec)
	_, before := h.do("GET", "/v1/spec", nil, nil)

	// trickle writes start, then one byte of rest every 50 ms, and reports
	// how long after the start the server closed the connection.
	trickle := func(start, rest string) (time.Duration, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		t0 := time.Now()
		if _, err := io.WriteString(c, start); err != nil {
			t.Fatal(err)
		}
		closed := make(chan string, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			b, _ := io.ReadAll(bufio.NewReader(c)) // until the server closes
			closed <- string(b)
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case answer := <-closed:
				return time.Since(t0), answer
			case <-tick.C:
				c.Write([]byte{rest[i%len(rest)]})
			}
			if time.Since(t0) > 15*time.Second {
				t.Fatal("the API never cut off a client trickling its request")
			}
		}
	}

	took, answer := trickle("GET /v1/spec HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaa\r\n")
	if took < headerTO || took > headerTO+5*time.Second || !refusal(answer) {
		t.Errorf("slow headers: cut off after %v (header timeout %v), answer %q", took, headerTO, answer)
	}
	t.Logf("slow headers: %v %q", took, answer)
	took, answer = trickle("PUT /v1/spec HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\nContent-Length: 100000\r\n\r\n", "# slow\n")
	if took < readTO || took > readTO+5*time.Second || !refusal(answer) {
		t.Errorf("slow body: cut off after %v (read timeout %v), answer %q", took, readTO, answer)
	}

	t.Logf("slow body: %v %q", took, answer)
	if code, after := h.do("GET", "/v1/spec", nil, nil); code != http.StatusOK || string(after) != string(before) {
		t.Fatalf("after slow clients: GET /v1/spec %d, spec changed: %v", code, string(after) != string(before))
	}
	if code, _ := h.do("GET", "/health", nil, nil); code != http.StatusOK {
		t.Fatalf("/health %d after slow clients", code)
	}

	d := newHarness(t, 1, nil)
	if got := d.sched.http.ReadHeaderTimeout; got != 10*time.Second {
		t.Errorf("default header timeout %v, want 10s", got)
	}
	if got := d.sched.http.ReadTimeout; got != 30*time.Second {
		t.Errorf("default read timeout %v, want 30s", got)
	}
}

// refusal: the connection was closed without an answer, or with a 4xx.
func refusal(answer string) bool { return answer == "" || strings.HasPrefix(answer, "HTTP/1.1 4") }
