// Command static runs the demo pipeline — feeder → encryptor ×N → printer —
// in one process on loopback with static endpoints and no Mesos: the
// original Tiltai's hard-coded mode. Each stage is its own gate hub, wired
// exactly as TILTAI_GATE_* variables would wire separate processes. It sends
// --count messages, shuts the pipeline down upstream first (each stage
// drains before the next), prints the printer's counts, and exits non-zero if
// anything was lost or duplicated.
//
//	go run ./examples/static --count 100000 --encryptors 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/tiltai/tiltai/examples/pipeline"
	"github.com/tiltai/tiltai/gate"
	"github.com/tiltai/tiltai/gate/control"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "static:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("static", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Uint64("count", 100000, "messages the feeder sends")
	encryptors := fs.Int("encryptors", 3, "number of encryptors")
	size := fs.Int("size", 64, "payload bytes")
	rate := fs.Float64("rate", 0, "messages per second (0: as fast as possible)")
	verbose := fs.Bool("v", false, "log gate events to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *encryptors < 1 || *count == 0 {
		return errors.New("need --encryptors ≥ 1 and --count ≥ 1")
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	cfg := pipeline.Config{Origin: "feeder-1", Rate: *rate, Size: *size, Count: *count, Report: time.Second}
	if err := cfg.Validate(); err != nil {
		return err
	}
	hub := func(gates ...control.GateSpec) (*gate.Hub, error) {
		return gate.New(ctx, gate.Config{Logger: log, Gates: gates})
	}
	in := func(name string) control.GateSpec {
		return control.GateSpec{Name: name, Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"}
	}
	out := func(name string, peers ...string) control.GateSpec {
		return control.GateSpec{Name: name, Dir: control.Out, Pattern: control.Push, Peers: peers}
	}

	// Receivers bind first (port 0: the kernel picks); senders get their
	// addresses as static peers.
	printerHub, err := hub(in(pipeline.Ciphertext))
	if err != nil {
		return err
	}
	defer printerHub.Close()
	type result struct {
		counts map[string]pipeline.Counts
		err    error
	}
	printed := make(chan result, 1)
	// The printer's in-gate binds inside Printer; wait for its address.
	go func() {
		c, err := pipeline.Printer(ctx, printerHub, cfg, stdout, log)
		printed <- result{c, err}
	}()
	printerAddr, err := boundAddr(ctx, printerHub, pipeline.Ciphertext)
	if err != nil {
		return err
	}

	var encHubs []*gate.Hub
	var encAddrs []string
	var encWG sync.WaitGroup
	encErrs := make(chan error, *encryptors)
	for range *encryptors {
		h, err := hub(in(pipeline.Plaintext), out(pipeline.Ciphertext, printerAddr))
		if err != nil {
			return err
		}
		defer h.Close()
		encHubs = append(encHubs, h)
		encWG.Add(1)
		go func() { defer encWG.Done(); encErrs <- pipeline.Encryptor(ctx, h, cfg, log) }()
		a, err := boundAddr(ctx, h, pipeline.Plaintext)
		if err != nil {
			return err
		}
		encAddrs = append(encAddrs, a)
	}

	feederHub, err := hub(out(pipeline.Plaintext, encAddrs...))
	if err != nil {
		return err
	}
	defer feederHub.Close()
	start := time.Now()
	sent, err := pipeline.Feeder(ctx, feederHub, cfg, log)
	if err != nil {
		return err
	}

	// Shut down upstream first: the feeder has delivered everything (Close
	// waited for acknowledgements), so each encryptor drains, forwards what
	// it holds and closes its out-gate; then the printer drains.
	for _, h := range encHubs {
		if err := h.Drain(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	encWG.Wait()
	close(encErrs)
	for err := range encErrs {
		if err != nil {
			return err
		}
	}
	if err := printerHub.Drain(ctx, 30*time.Second); err != nil {
		return err
	}
	res := <-printed
	if res.err != nil {
		return res.err
	}
	c := res.counts[cfg.Origin]
	el := time.Since(start)
	fmt.Fprintf(stdout, "static: sent=%d received=%d duplicates=%d missing=%d encryptors=%d in %v (%.0f msg/s)\n",
		sent, c.Received, c.Duplicates, c.Missing, *encryptors, el.Round(time.Millisecond), float64(sent)/el.Seconds())
	if c.Received != sent || c.Duplicates != 0 || c.Missing != 0 {
		return fmt.Errorf("pipeline lost or duplicated messages: sent %d, received %d, duplicates %d, missing %d", sent, c.Received, c.Duplicates, c.Missing)
	}
	return nil
}

// boundAddr waits until the hub's in-gate name is bound and returns its address.
func boundAddr(ctx context.Context, h *gate.Hub, name string) (string, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		for _, g := range h.Gates() {
			if g.Name == name && g.Bound != "" {
				return g.Bound, nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return "", fmt.Errorf("in-gate %q never bound: %w", name, ctx.Err())
		}
	}
}
