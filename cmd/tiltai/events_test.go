package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

func TestEvents(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{Token: "s3cret", EventQueue: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if code, _, errs := runCLI(t, "", "events", "--scheduler", f.URL); code != 3 || !strings.Contains(errs, "tiltai events: cannot follow the events: this scheduler needs a token") {
		t.Fatalf("no token: %d %s", code, errs)
	}

	run, cancelRun := context.WithCancel(ctx)
	out, errs, code := runAsync(run, "events", "--scheduler", f.URL, "--token", "s3cret")
	if err := f.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Publish("task_running", map[string]any{"task_id": "enc.1", "host": "127.0.0.1", "ports": map[string]any{"plaintext": 31000}, "state": "TASK_RUNNING"})
	out.waitFor(t, "  #1  task_running  host=127.0.0.1 ports={\"plaintext\":31000} state=TASK_RUNNING task_id=enc.1\n")
	f.Publish("links_refused", map[string]any{"task_id": "enc.1", "error": "bad peer \"x\""})
	out.waitFor(t, "  #2  links_refused  error=\"bad peer \\\"x\\\"\" task_id=enc.1\n")

	// Too slow: the loss is a line of its own.
	f.HoldEvents()
	for range 5 {
		f.Publish("links_acked", map[string]any{"version": 3})
	}
	f.ReleaseEvents()
	out.waitFor(t, "  dropped  events=3 why=\"this client read too slowly\"\n")
	out.waitFor(t, "  #7  links_acked  version=3\n")

	// Ctrl-C is the normal end.
	cancelRun()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after Ctrl-C\n%s", c, errs.String())
		}
	case <-ctx.Done():
		t.Fatal("events did not end on Ctrl-C")
	}
	if strings.Count(out.String(), "\n") != 5 {
		t.Fatalf("lines:\n%s", out.String())
	}
}

// The stream breaks when the scheduler goes; events reconnects and goes on.
func TestEventsReconnects(t *testing.T) {
	f := newFake(t, clienttest.FakeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errs, code := runAsync(ctx, "events", "--json", "--scheduler", f.URL)
	if err := f.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Publish("subscribed", map[string]any{"framework_id": "fw"})
	out.waitFor(t, `"type":"subscribed"`)
	var ev scheduler.Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &ev); err != nil || ev.Seq != 1 || ev.Data["framework_id"] != "fw" {
		t.Fatalf("json line %q: %v", out.String(), err)
	}

	// Break the stream without stopping the server: a new subscriber
	// comes once the old one is gone.
	f.CloseStreams()
	errs.waitFor(t, "tiltai events: the event stream broke (the scheduler ended it); reconnecting\n")
	errs.waitFor(t, "tiltai events: reconnected; events while away are not replayed\n")
	if err := f.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Publish("task_gone", map[string]any{"task_id": "x"})
	out.waitFor(t, `"type":"task_gone"`)
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d\n%s", c, errs.String())
	}
}

func TestFormatEvent(t *testing.T) {
	at := time.Date(2025, 1, 2, 15, 4, 5, 6e6, time.UTC)
	for _, tc := range []struct {
		ev   scheduler.Event
		want string
	}{
		{scheduler.Event{Seq: 3, Time: at, Type: "subscribed"}, "2025-01-02T15:04:05.006Z  #3  subscribed"},
		{scheduler.Event{Seq: 4, Time: at, Type: "x", Data: map[string]any{"b": 1.5, "a": "", "c": []any{"p", "q"}, "d": "a=b"}},
			`2025-01-02T15:04:05.006Z  #4  x  a="" b=1.5 c=["p","q"] d="a=b"`},
		// Nothing the scheduler sends acts on the terminal or breaks the line.
		{scheduler.Event{Seq: 5, Time: at, Type: "task_gone\x1b[2J", Data: map[string]any{"reason": "\x1b]0;pwned\x07", "task_id": "a.1\u202e", "out": []any{"\u009b31m"}}},
			`2025-01-02T15:04:05.006Z  #5  task_gone\x1b[2J  out=["\x9b31m"] reason="\x1b]0;pwned\a" task_id="a.1\u202e"`},
	} {
		if got := formatEvent(tc.ev); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
