// Command gopeer is a Go gate of any pattern for the Python gates' interop
// tests and benchmark: python/tests start it, read the address it prints and
// check what it reports. It prints "bound ADDR" once an in-gate is bound
// and "ok …" when its part is done, and exits non-zero on any failure. A
// receiving role keeps its gate open until its stdin is closed, so that the
// test's sender sees every message acknowledged before the gate goes away.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tiltai/tiltai/gate"
	"github.com/tiltai/tiltai/gate/control"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gopeer:", err)
		os.Exit(1)
	}
}

type config struct {
	role  string
	bind  string
	peer  string
	n     int
	size  int
	topic string
	batch int
	tls   control.TLSFiles
}

func run() error {
	var c config
	flag.StringVar(&c.role, "role", "", "push, pull, pub, sub, req, rep, pair-in, pair-out, or bench-push / bench-pull")
	flag.StringVar(&c.bind, "bind", "tcp://127.0.0.1:0", "in-gate bind address")
	flag.StringVar(&c.peer, "peer", "", "out-gate peer")
	flag.IntVar(&c.n, "n", 1000, "messages")
	flag.IntVar(&c.size, "size", 64, "payload bytes (bench)")
	flag.StringVar(&c.topic, "topic", "a", "sub: topic to subscribe to")
	flag.IntVar(&c.batch, "batch", 64, "bench-push: messages per SendBatch")
	// The gate's own TLS: all three files or none, as TILTAI_TLS_* for a service.
	flag.StringVar(&c.tls.Cert, "tls-cert", os.Getenv(control.EnvTLSCert), "mutual TLS: certificate PEM file")
	flag.StringVar(&c.tls.Key, "tls-key", os.Getenv(control.EnvTLSKey), "mutual TLS: key PEM file")
	flag.StringVar(&c.tls.CA, "tls-ca", os.Getenv(control.EnvTLSCA), "mutual TLS: CA PEM file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	roles := map[string][2]string{
		"push": {"push", "out"}, "pull": {"pull", "in"}, "pub": {"pub", "out"}, "sub": {"sub", "in"},
		"req": {"req", "out"}, "rep": {"rep", "in"}, "pair-in": {"pair", "in"}, "pair-out": {"pair", "out"},
		"bench-push": {"push", "out"}, "bench-pull": {"pull", "in"},
	}
	pattern, dir := roles[c.role][0], roles[c.role][1]
	if pattern == "" {
		return fmt.Errorf("unknown role %q", c.role)
	}
	spec := control.GateSpec{Name: "g", Dir: control.Direction(dir), Pattern: control.Pattern(pattern)}
	if dir == "in" {
		spec.Bind = c.bind
	} else {
		spec.Peers = []string{c.peer}
	}
	hub, err := gate.New(ctx, gate.Config{Gates: []control.GateSpec{spec}, TLS: c.tls})
	if err != nil {
		return err
	}
	defer hub.Close()
	var g *gate.Gate
	if dir == "in" {
		g, err = hub.In("g")
		if err == nil {
			fmt.Printf("bound %s\n", g.Addr())
		}
	} else {
		g, err = hub.Out("g")
	}
	if err != nil {
		return err
	}
	seq := func(i int) []byte { return []byte("m" + strconv.Itoa(i)) }
	switch c.role {
	case "push":
		// Two parts per message: its number and a payload of its size.
		for i := range c.n {
			if err := g.Send(ctx, seq(i), bytes.Repeat([]byte{'x'}, i%300)); err != nil {
				return err
			}
		}
		if err := g.Close(); err != nil {
			return err
		}
		st := g.Stats()
		fmt.Printf("ok sent=%d rerouted=%d dropped=%d\n", st.Sent, st.Rerouted, st.Dropped)
	case "pull", "pair-in", "pair-out":
		seen := map[string]bool{}
		for len(seen) < c.n {
			m, err := g.Recv(ctx)
			if err != nil {
				return fmt.Errorf("after %d messages: %w", len(seen), err)
			}
			if len(m) != 2 || len(m[1]) != mustAtoi(m[0][1:])%300 {
				return fmt.Errorf("malformed message %q", m)
			}
			if seen[string(m[0])] {
				return fmt.Errorf("duplicate %s", m[0])
			}
			seen[string(m[0])] = true
			if c.role != "pull" {
				// Echo it back over the same pair.
				if err := g.Send(ctx, m[0], m[1]); err != nil {
					return err
				}
			}
		}
		if c.role != "pull" {
			// Our Close would strand the echoes: wait until they are
			// acknowledged, and say so.
			for st := g.Stats(); st.QueueDepth > 0 || st.InFlight > 0; st = g.Stats() {
				select {
				case <-ctx.Done():
					return fmt.Errorf("echoes not acknowledged: %+v", st)
				case <-time.After(5 * time.Millisecond):
				}
			}
			fmt.Printf("echoed %d\n", len(seen))
		}
		// The acknowledgement of the last batch is written after Recv has
		// returned it, so closing now could leave the sender holding it as
		// unacknowledged (re-routed, as after a broken connection). Keep the
		// gate open until the test, its sender, is done.
		if err := waitStdin(ctx); err != nil {
			return err
		}
		refused := g.Stats().Refused
		if err := g.Close(); err != nil {
			return err
		}
		fmt.Printf("ok received=%d refused=%d\n", len(seen), refused)
	case "pub":
		// Publish topics a… and b… until stdin closes.
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
		for i := 0; ; i++ {
			select {
			case <-done:
				st := g.Stats()
				fmt.Printf("ok sent=%d dropped=%d\n", st.Sent, st.Dropped)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
			topic := "a"
			if i%2 == 1 {
				topic = "b"
			}
			g.Send(ctx, []byte(topic+strconv.Itoa(i)), []byte("payload"))
		}
	case "sub":
		if err := g.Subscribe(c.topic); err != nil {
			return err
		}
		for i := 0; i < c.n; i++ {
			m, err := g.Recv(ctx)
			if err != nil {
				return fmt.Errorf("after %d messages: %w", i, err)
			}
			if !bytes.HasPrefix(m[0], []byte(c.topic)) {
				return fmt.Errorf("message of topic %q, subscribed to %q", m[0], c.topic)
			}
		}
		fmt.Printf("ok received=%d\n", c.n)
	case "req":
		for i := range c.n {
			r, err := g.Request(ctx, seq(i), []byte("q"))
			if err != nil {
				return err
			}
			if len(r) != 2 || !bytes.Equal(r[0], seq(i)) || string(r[1]) != "re:q" {
				return fmt.Errorf("reply %q to request %d", r, i)
			}
		}
		fmt.Printf("ok requests=%d\n", c.n)
	case "rep":
		for i := range c.n {
			r, err := g.RecvRequest(ctx)
			if err != nil {
				return fmt.Errorf("after %d requests: %w", i, err)
			}
			if err := r.Reply(r.Msg[0], append([]byte("re:"), r.Msg[1]...)); err != nil {
				return err
			}
		}
		fmt.Printf("ok replied=%d\n", c.n)
	case "bench-push":
		payload := bytes.Repeat([]byte{'x'}, c.size)
		msgs := make([]gate.Message, c.batch)
		for i := range msgs {
			msgs[i] = gate.Message{payload}
		}
		start := time.Now()
		for sent := 0; sent < c.n; {
			k := min(c.batch, c.n-sent)
			if _, err := g.SendBatch(ctx, msgs[:k]); err != nil {
				return err
			}
			sent += k
		}
		if err := g.Close(); err != nil {
			return err
		}
		fmt.Printf("ok sent=%d seconds=%.6f\n", c.n, time.Since(start).Seconds())
	case "bench-pull":
		var b gate.Batch
		defer b.Release()
		var start time.Time
		for got := 0; got < c.n; {
			if err := g.RecvBatch(ctx, &b, 1024); err != nil {
				return err
			}
			if got == 0 {
				start = time.Now()
			}
			got += len(b.Msgs)
		}
		fmt.Printf("ok received=%d seconds=%.6f\n", c.n, time.Since(start).Seconds())
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitStdin returns once stdin is closed: the test's word that it is done.
func waitStdin(ctx context.Context) error {
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stdin still open: %w", ctx.Err())
	}
}

func mustAtoi(b []byte) int {
	n, _ := strconv.Atoi(string(b))
	return n
}
