package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tiltai/tiltai/gate"
)

// Gate names of the demo.
const (
	Plaintext  = "plaintext"
	Ciphertext = "ciphertext"
)

// Config tunes the demo services.
type Config struct {
	// Origin names the feeder in every message it sends (its task id).
	Origin string
	// Rate is the feeder's messages per second; 0 sends as fast as the gates
	// take them.
	Rate float64
	// Size is the feeder's payload size in bytes.
	Size int
	// Count stops the feeder after this many messages; 0 runs until drained
	// or cancelled.
	Count uint64
	// Report is the printer's summary interval. Default 5s.
	Report time.Duration
}

// Validate lists every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %v is negative", c.Rate))
	}
	if c.Size < 0 || c.Size > 1<<20 {
		errs = append(errs, fmt.Errorf("size %d is not in 0..1048576", c.Size))
	}
	if len(c.Origin) > 255 {
		errs = append(errs, fmt.Errorf("origin is %d bytes (at most 255)", len(c.Origin)))
	}
	return errors.Join(errs...)
}

// A demo message has three parts: origin, 8-byte big-endian sequence number,
// payload.
func encode(origin []byte, seq uint64, payload []byte) gate.Message {
	return gate.Message{origin, binary.BigEndian.AppendUint64(nil, seq), payload}
}

func decode(m gate.Message) (origin string, seq uint64, err error) {
	if len(m) != 3 || len(m[1]) != 8 {
		return "", 0, fmt.Errorf("not a demo message (%d parts)", len(m))
	}
	return string(m[0]), binary.BigEndian.Uint64(m[1]), nil
}

// Feeder sends Count (or endless) sequence-numbered messages on "plaintext"
// until ctx ends or the hub is asked to drain, then closes the gate, which
// delivers what is queued. It returns how many it sent.
func Feeder(ctx context.Context, h *gate.Hub, cfg Config, log *slog.Logger) (uint64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, fmt.Errorf("feeder: %w", err)
	}
	out, err := h.Out(Plaintext)
	if err != nil {
		return 0, fmt.Errorf("feeder: %w", err)
	}
	origin := []byte(cfg.Origin)
	var tick <-chan time.Time
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer t.Stop()
		tick = t.C
	}
	payload := make([]byte, cfg.Size)
	// A send that waits for room (no peer) ends when a drain is asked for:
	// the feeder then stops and closes its gate, which delivers or counts
	// what is queued before the executor's deadline.
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.Draining():
			cancel()
		case <-sendCtx.Done():
		}
	}()
	var seq uint64
	log.Info("feeder started", "origin", cfg.Origin, "rate", cfg.Rate, "size", cfg.Size, "count", cfg.Count)
loop:
	for cfg.Count == 0 || seq < cfg.Count {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				break loop
			case <-h.Draining():
				break loop
			}
		} else {
			select {
			case <-ctx.Done():
				break loop
			case <-h.Draining():
				break loop
			default:
			}
		}
		if err := out.SendMsg(sendCtx, encode(origin, seq, payload)); err != nil {
			if sendCtx.Err() != nil {
				break
			}
			return seq, fmt.Errorf("feeder: %w", err)
		}
		seq++
		h.SetCounter("feeder.sent", int64(seq))
	}
	log.Info("feeder stopping; delivering what is queued", "sent", seq)
	if err := out.Close(); err != nil {
		return seq, fmt.Errorf("feeder: %w", err)
	}
	return seq, nil
}

// Encryptor hashes what arrives on "plaintext" and sends origin, sequence and
// sha256 on "ciphertext", until the in-gate is drained or ctx ends; then it
// closes "ciphertext", which delivers what is queued.
func Encryptor(ctx context.Context, h *gate.Hub, cfg Config, log *slog.Logger) error {
	in, err := h.In(Plaintext)
	if err != nil {
		return fmt.Errorf("encryptor: %w", err)
	}
	out, err := h.Out(Ciphertext)
	if err != nil {
		return fmt.Errorf("encryptor: %w", err)
	}
	var n int64
	for {
		m, err := in.Recv(ctx)
		if err != nil {
			break // drained, or cancelled
		}
		if _, _, err := decode(m); err != nil {
			log.Warn("encryptor dropping a foreign message", "error", err)
			h.SetCounter("encryptor.foreign", 1)
			continue
		}
		sum := sha256.Sum256(m[2])
		if err := out.SendMsg(ctx, gate.Message{m[0], m[1], sum[:]}); err != nil {
			break
		}
		n++
		h.SetCounter("encryptor.hashed", n)
	}
	log.Info("encryptor stopping; delivering what is queued", "hashed", n)
	if err := out.Close(); err != nil {
		return fmt.Errorf("encryptor: %w", err)
	}
	return nil
}

// Counts are the printer's tallies for one origin.
type Counts struct {
	Received   uint64 // messages that arrived, duplicates included
	Duplicates uint64 // arrivals of a sequence number already seen
	Missing    uint64 // sequence numbers below the highest seen that never arrived
}

// tally tracks one origin's sequence numbers: all below low have been seen;
// seen holds those at or above it.
type tally struct {
	low      uint64
	seen     map[uint64]struct{}
	highest  uint64
	any      bool
	received uint64
	dups     uint64
}

func (t *tally) add(seq uint64) {
	t.received++
	if seq < t.low {
		t.dups++
		return
	}
	if _, ok := t.seen[seq]; ok {
		t.dups++
		return
	}
	t.seen[seq] = struct{}{}
	for {
		if _, ok := t.seen[t.low]; !ok {
			break
		}
		delete(t.seen, t.low)
		t.low++
	}
	if !t.any || seq > t.highest {
		t.highest, t.any = seq, true
	}
}

func (t *tally) counts() Counts {
	c := Counts{Received: t.received, Duplicates: t.dups}
	if t.any {
		c.Missing = t.highest + 1 - (t.low + uint64(len(t.seen)))
	}
	return c
}

// Printer receives on "ciphertext" until the in-gate is drained or ctx ends,
// printing a summary line to w every Report interval and at the end, and
// publishing the totals as application counters (printer.received,
// printer.duplicates, printer.missing). It returns the totals per origin.
func Printer(ctx context.Context, h *gate.Hub, cfg Config, w io.Writer, log *slog.Logger) (map[string]Counts, error) {
	in, err := h.In(Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("printer: %w", err)
	}
	report := cfg.Report
	if report <= 0 {
		report = 5 * time.Second
	}
	tallies := map[string]*tally{}
	msgs := in.Messages(ctx)
	tick := time.NewTicker(report)
	defer tick.Stop()
	var last uint64
	var received int64 // messages taken, duplicates included
	lastAt := time.Now()
	summary := func(final bool) Counts {
		var tot Counts
		for _, t := range tallies {
			c := t.counts()
			tot.Received += c.Received
			tot.Duplicates += c.Duplicates
			tot.Missing += c.Missing
		}
		h.SetCounters(map[string]int64{ // at once: a report never mixes old and new
			"printer.received": int64(tot.Received), "printer.duplicates": int64(tot.Duplicates),
			"printer.missing": int64(tot.Missing), "printer.origins": int64(len(tallies)),
		})
		label := "printer:"
		if final {
			label = "printer final:"
		}
		rate := float64(tot.Received-last) / time.Since(lastAt).Seconds()
		last, lastAt = tot.Received, time.Now()
		fmt.Fprintf(w, "%s origins=%d received=%d duplicates=%d missing=%d rate=%.0f/s\n",
			label, len(tallies), tot.Received, tot.Duplicates, tot.Missing, rate)
		return tot
	}
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				summary(true)
				out := map[string]Counts{}
				for o, t := range tallies {
					out[o] = t.counts()
				}
				return out, nil
			}
			origin, seq, err := decode(m)
			if err != nil || len(m[2]) != sha256.Size {
				log.Warn("printer ignoring a malformed message", "error", err)
				continue
			}
			t := tallies[origin]
			received++
			// Fresh in every heartbeat (what `tiltai up` shows), with the
			// origins seen so far (set together when one is new); the
			// other counts need a look over every tally: each report.
			if t == nil {
				t = &tally{seen: map[uint64]struct{}{}}
				tallies[origin] = t
				h.SetCounters(map[string]int64{"printer.received": received, "printer.origins": int64(len(tallies))})
			} else {
				h.SetCounter("printer.received", received)
			}
			t.add(seq)
		case <-tick.C:
			summary(false)
		}
	}
}
