package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// readAll reads events until an error; malformed ones are noted and
// skipped.
func readAll(r *client.EventReader) (evs []string, err error) {
	for {
		ev, err := r.Next()
		var bad *client.MalformedEventError
		switch {
		case errors.As(err, &bad):
			evs = append(evs, "malformed "+bad.Type)
			continue
		case err != nil:
			return evs, err
		}
		evs = append(evs, fmt.Sprintf("%d %s %v", ev.Seq, ev.Type, ev.Data))
	}
}

func TestEventReader(t *testing.T) {
	big := strings.Repeat("x", client.MaxEventBytes)
	for _, tc := range []struct {
		name, in string
		want     []string
		err      error
	}{
		{name: "scheduler framing",
			in:   ": tiltai scheduler events\n\nid: 1\nevent: subscribed\ndata: {\"seq\":1,\"type\":\"subscribed\",\"data\":{\"master\":\"m\"}}\n\n: keepalive\n\n",
			want: []string{"1 subscribed map[master:m]"}, err: io.EOF},
		{name: "CRLF and CR line ends",
			in:   "event: a\r\ndata: {\"seq\":1,\"type\":\"a\"}\r\n\r\nevent: b\rdata: {\"seq\":2,\"type\":\"b\"}\r\r",
			want: []string{"1 a map[]", "2 b map[]"}, err: io.EOF},
		{name: "data lines joined, no space after colon, unknown fields ignored",
			in:   "retry: 10\nfoo: bar\ndata:{\"seq\":3,\ndata: \"type\":\"x\"}\n\n",
			want: []string{"3 x map[]"}, err: io.EOF},
		{name: "type from the event field when the data has none",
			in:   "event: dropped\ndata: {\"data\":{\"events\":5}}\n\n",
			want: []string{"0 dropped map[events:5]"}, err: io.EOF},
		{name: "malformed data does not end the stream",
			in:   "event: a\ndata: not json\n\nevent: b\ndata: {\"seq\":2,\"type\":\"b\"}\n\n",
			want: []string{"malformed a", "2 b map[]"}, err: io.EOF},
		{name: "an unfinished event at the end is dropped",
			in:   "data: {\"seq\":1,\"type\":\"a\"}\n\ndata: {\"seq\":2,\"type\":\"b\"}\n",
			want: []string{"1 a map[]"}, err: io.EOF},
		{name: "blank lines alone dispatch nothing", in: "\n\n\r\n", err: io.EOF},
		{name: "a line too long", in: "data: " + big + "\n\n", err: client.ErrEventTooLarge},
		{name: "an event too large in many lines",
			in:  strings.Repeat("data: "+big[:client.MaxEventBytes/4]+"\n", 5) + "\n",
			err: client.ErrEventTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := client.NewEventReader(strings.NewReader(tc.in))
			got, err := readAll(r)
			if !errors.Is(err, tc.err) || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			// The end is sticky.
			if _, again := r.Next(); !errors.Is(again, tc.err) {
				t.Fatalf("next after the end: %v", again)
			}
		})
	}
}

func FuzzEventReader(f *testing.F) {
	f.Add("id: 1\nevent: a\ndata: {\"seq\":1}\n\n")
	f.Add("data: x\r\rdata\n:\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		r := client.NewEventReader(strings.NewReader(in))
		for i := 0; i <= len(in); i++ {
			_, err := r.Next()
			var bad *client.MalformedEventError
			if err != nil && !errors.As(err, &bad) {
				return
			}
		}
		t.Fatalf("more events than bytes in %q", in)
	})
}

func TestEventStream(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{Token: "s3cret", EventQueue: 4})
	c := newClient(t, f.URL, "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := newClient(t, f.URL, "").Events(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("without a token: %v", err)
	}
	s, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := f.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	next := func() apitypes.Event {
		t.Helper()
		ev, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	f.Publish("subscribed", map[string]any{"framework_id": "fw-1"})
	if ev := next(); ev.Type != "subscribed" || ev.Seq != 1 || ev.Data["framework_id"] != "fw-1" || ev.Time.IsZero() {
		t.Fatalf("event: %+v", ev)
	}

	// A slow reader: ten events into a queue of four; six are lost and
	// the stream says so before the four that are left.
	f.HoldEvents()
	for i := range 10 {
		f.Publish("task_running", map[string]any{"task_id": fmt.Sprintf("t%d", i)})
	}
	f.ReleaseEvents()
	ev := next()
	if n, ok := client.Dropped(ev); !ok || n != 6 || ev.Data["why"] != "this client read too slowly" {
		t.Fatalf("dropped: %+v", ev)
	}
	for i := 6; i < 10; i++ {
		if ev := next(); ev.Type != "task_running" || ev.Data["task_id"] != fmt.Sprintf("t%d", i) {
			t.Fatalf("after the loss: %+v", ev)
		}
	}
	if _, ok := client.Dropped(apitypes.Event{Type: "task_running"}); ok {
		t.Fatal("Dropped of another event")
	}

	// Close ends a Next in progress.
	done := make(chan error, 1)
	go func() { _, err := s.Next(); done <- err }()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("after Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Next did not return after Close")
	}

	// The scheduler ending the stream is io.EOF.
	s2, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := f.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s2.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the scheduler closed: %v", err)
	}
}
