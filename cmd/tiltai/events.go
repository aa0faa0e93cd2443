package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "follow what the scheduler does, one line per event, until Ctrl-C",
		Description: "Streams GET /v1/events: subscriptions, tasks planned, launching, running, failing and\n" +
			"gone, link tables published and acknowledged, specs accepted. Each line has the time,\n" +
			"the event's sequence number, its type and its data as KEY=VALUE. When this reader falls\n" +
			"behind, the scheduler drops the oldest events and says how many (a \"dropped\" line).\n" +
			"If the stream breaks (the scheduler restarts), it reconnects and says so on stderr;\n" +
			"events in between are not replayed.\n\n" +
			"Examples:\n" +
			"  tiltai events\n" +
			"  tiltai events --json | jq -c 'select(.type == \"task_failed\")'",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print each event as one line of JSON"},
		}, schedulerFlags()...),
		Action: events,
	}
}

// eventsRetry spaces out reconnections after the stream broke.
var eventsRetry = backoff.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Factor: 2}

func events(c *cli.Context) error {
	if _, err := args(c, 0, ""); err != nil {
		return err
	}
	cl, api, err := newClient(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	asJSON := c.Bool("json")
	// The first connection must work: a wrong URL or token is said at
	// once. Later breaks are ridden out.
	stream, err := cl.Events(ctx)
	if err != nil {
		return apiFail(c, api, "cannot follow the events", err)
	}
	for {
		lost := printEvents(c, stream, asJSON)
		stream.Close()
		if ctx.Err() != nil {
			return nil // Ctrl-C: the normal end
		}
		fmt.Fprintf(c.App.ErrWriter, "%s: the event stream broke (%s); reconnecting\n", c.Command.HelpName, termsafe.String(lost.Error()))
		for attempt := 0; ; attempt++ {
			t := time.NewTimer(eventsRetry.Envelope(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			stream, err = cl.Events(ctx)
			if err == nil {
				fmt.Fprintf(c.App.ErrWriter, "%s: reconnected; events while away are not replayed\n", c.Command.HelpName)
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if !client.Retryable(err) {
				return apiFail(c, api, "cannot follow the events", err)
			}
		}
	}
}

// printEvents prints the events of one stream until it ends, and says why.
func printEvents(c *cli.Context, s *client.EventStream, asJSON bool) error {
	for {
		ev, err := s.Next()
		var malformed *client.MalformedEventError
		switch {
		case errors.As(err, &malformed):
			fmt.Fprintf(c.App.ErrWriter, "%s: skipping an event: %s\n", c.Command.HelpName, termsafe.String(err.Error()))
			continue
		case errors.Is(err, io.EOF):
			return errors.New("the scheduler ended it")
		case err != nil:
			return err
		}
		if asJSON {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s\n", termsafe.JSON(b))
			continue
		}
		fmt.Fprintln(c.App.Writer, formatEvent(ev))
	}
}

// formatEvent renders "TIME  #SEQ  TYPE  k=v k=v", data keys sorted,
// strings bare unless they need quotes, other values as JSON. Whatever
// the scheduler sent, the line is one line and acts on no terminal.
func formatEvent(ev scheduler.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	if ev.Seq > 0 {
		fmt.Fprintf(&b, "  #%d", ev.Seq)
	}
	b.WriteString("  ")
	b.WriteString(ev.Type)
	keys := make([]string, 0, len(ev.Data))
	for k := range ev.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteString(" ")
		}
		b.WriteString(" ")
		b.WriteString(k)
		b.WriteString("=")
		switch v := ev.Data[k].(type) {
		case string:
			if v == "" || strings.ContainsAny(v, " \t\n\"=") || termsafe.Unsafe(v) {
				fmt.Fprintf(&b, "%q", v)
			} else {
				b.WriteString(v)
			}
		default:
			j, _ := json.Marshal(v)
			b.Write(j)
		}
	}
	return termsafe.String(b.String())
}
