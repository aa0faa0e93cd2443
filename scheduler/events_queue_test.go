package scheduler

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/client"
)

// TestEventQueueBoundedPerClient is docs/reliability.md F22's queue: a
// GET /v1/events client that stops reading keeps at most eventQueue events
// queued; older ones are dropped and, when it reads on, a "dropped" event
// says how many, exactly where they are missing. Meanwhile the loop goes
// on (each spec change converges) and another client gets every event.
// (The queue must hold the largest burst of one loop step, or a reading
// client loses events too: 64 here, for steps of 20-odd events.)
func TestEventQueueBoundedPerClient(t *testing.T) {
	const queue = 64
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.eventQueue = queue })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The reading client, through scheduler/client as the CLI reads.
	cl, err := client.New(h.sched.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cl.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		fast []Event
	)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer stream.Close()
		for {
			ev, err := stream.Next()
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("the reading client's stream ended: %v", err)
				}
				return
			}
			mu.Lock()
			fast = append(fast, ev)
			mu.Unlock()
		}
	}()
	// (Each client is subscribed once it has the response's headers.)
	first := h.sched.bus.Seq()

	// The client that stops reading: a small receive buffer, the request
	// sent, the response headers read, then nothing.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(h.sched.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest("GET", h.url("/v1/events"), nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %v %v", resp, err)
	}
	// (Not resp.Body.Close: it would read the endless stream to its end.)

	// Spec changes until the server's writes to the slow client block
	// (its queue stays full: the handler is stuck in Write), then more
	// than a queue's worth. (On Linux the server's send buffer grows to a few
	// MiB first: some 15,000 events, a few seconds.)
	version := h.submit(pipelineSpec).Version
	h.waitConverged(30 * time.Second)
	change := func() {
		t.Helper()
		n := 20
		if version%2 == 0 {
			n = 3
		}
		version = h.submit(scaled(pipelineSpec, "encryptor", n)).Version
		h.waitConverged(30 * time.Second)
		eventually(t, 10*time.Second, "the reading client to see spec version "+fmt.Sprint(version), func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range fast {
				if ev.Type == "spec_accepted" && fmt.Sprint(ev.Data["version"]) == fmt.Sprint(version) {
					return true, ""
				}
			}
			var seen []string
			for _, ev := range fast {
				if ev.Type == "spec_accepted" || ev.Type == "dropped" {
					seen = append(seen, fmt.Sprint(ev.Seq, ev.Type, ev.Data))
				}
			}
			return false, fmt.Sprintf("%d events; %v", len(fast), seen)
		})
	}
	blocked := false
	for round := 0; round < 400 && !blocked; round++ {
		change()
		queued, dropped := h.sched.bus.Backlog() // the reading client's queue is all but empty
		blocked = queued == queue && dropped > 0
	}
	if !blocked {
		queued, dropped := h.sched.bus.Backlog()
		t.Fatalf("the server's writes to the non-reading client never blocked: %d queued, %d dropped after %d events", queued, dropped, h.sched.bus.Seq()-first)
	}
	at := h.sched.bus.Seq()
	for h.sched.bus.Seq()-at <= 2*queue {
		change()
	}
	last := h.sched.bus.Seq()
	t.Logf("writes blocked after %d events; %d more published", at-first, last-at)

	// The slow client reads on: every gap in the sequence numbers is
	// announced, just before it, by a "dropped" event of that size.
	er := client.NewEventReader(resp.Body)
	var (
		prev       uint64 // the last seq read
		announced  uint64 // by the pending "dropped" event
		drops, sum uint64
	)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for prev < last {
		ev, err := er.Next()
		if err != nil {
			t.Fatalf("the slow client's stream after seq %d: %v", prev, err)
		}
		if n, ok := client.Dropped(ev); ok {
			if announced != 0 || n == 0 {
				t.Fatalf("after seq %d: a dropped event of %d, with %d announced before", prev, n, announced)
			}
			announced, drops, sum = n, drops+1, sum+n
			continue
		}
		if prev != 0 && ev.Seq != prev+1+announced {
			t.Fatalf("seq %d follows %d with %d announced dropped", ev.Seq, prev, announced)
		}
		prev, announced = ev.Seq, 0
	}
	if drops == 0 || sum < last-at-queue {
		t.Errorf("the slow client was told of %d dropped events (%d times), want at least %d", sum, drops, last-at-queue)
	}
	t.Logf("the slow client read on: %d events dropped, announced in %d dropped events", sum, drops)

	// The reading client got every event, in order, none dropped.
	eventually(t, 10*time.Second, "the reading client to catch up", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(fast) > 0 && fast[len(fast)-1].Seq >= last, fmt.Sprint(len(fast))
	})
	mu.Lock()
	for i, ev := range fast {
		if ev.Type == "dropped" || i > 0 && ev.Seq != fast[i-1].Seq+1 {
			t.Errorf("the reading client's stream has a gap or a dropped event at %d: %+v", i, ev)
			break
		}
	}
	mu.Unlock()
	cancel()
	<-read
}
