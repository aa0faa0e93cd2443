package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tiltai/tiltai/examples/pipeline"
	"github.com/tiltai/tiltai/gate"
	"github.com/urfave/cli/v2"
)

// demoCommand runs one demo service with its gates from the TILTAI_*
// environment (set by the executor under Mesos, or by hand in static mode).
func demoCommand() *cli.Command {
	flags := func(feeder bool) []cli.Flag {
		fs := []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		}
		if feeder {
			fs = append(fs,
				&cli.Float64Flag{Name: "rate", Value: 1000, Usage: "messages per second (0: as fast as possible)"},
				&cli.IntFlag{Name: "size", Value: 64, Usage: "payload bytes"},
				&cli.Uint64Flag{Name: "count", Usage: "stop after this many messages (0: run until drained)"},
			)
		} else {
			fs = append(fs, &cli.DurationFlag{Name: "report", Value: 5 * time.Second, Usage: "printer summary interval"})
		}
		return fs
	}
	setup := func(c *cli.Context) (*gate.Hub, pipeline.Config, *slog.Logger, error) {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
			return nil, pipeline.Config{}, nil, fmt.Errorf("--log-level: %w", err)
		}
		log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: lvl}))
		origin := os.Getenv("TILTAI_TASK_ID")
		if origin == "" {
			host, _ := os.Hostname()
			origin = fmt.Sprintf("%s-%d", host, os.Getpid())
		}
		cfg := pipeline.Config{Origin: origin, Rate: c.Float64("rate"), Size: c.Int("size"), Count: c.Uint64("count"), Report: c.Duration("report")}
		if err := cfg.Validate(); err != nil {
			return nil, cfg, nil, err
		}
		h, err := gate.FromEnv(c.Context, log, gate.Options{})
		if err != nil {
			return nil, cfg, nil, fmt.Errorf("%w\n(the executor sets TILTAI_*; by hand e.g. TILTAI_GATE_PLAINTEXT='push>tcp://127.0.0.1:5555')", err)
		}
		return h, cfg, log, nil
	}
	return &cli.Command{
		Name:  "demo",
		Usage: "run a demo service: feeder → encryptor → printer (gates from TILTAI_* environment)",
		Description: "The original Tiltai demo. Gates: feeder out push \"plaintext\" → encryptor in pull\n" +
			"\"plaintext\", encryptor out push \"ciphertext\" → printer in pull \"ciphertext\".\n" +
			"Under Mesos the executor sets the environment; see docs/control-protocol.md.",
		Subcommands: []*cli.Command{
			{
				Name: "feeder", Usage: "send sequence-numbered messages on out-gate plaintext", Flags: flags(true),
				Action: func(c *cli.Context) error {
					h, cfg, log, err := setup(c)
					if err != nil {
						return err
					}
					defer h.Close()
					_, err = pipeline.Feeder(c.Context, h, cfg, log)
					return err
				},
			},
			{
				Name: "encryptor", Usage: "hash plaintext (sha256) and pass it on as ciphertext", Flags: flags(false),
				Action: func(c *cli.Context) error {
					h, cfg, log, err := setup(c)
					if err != nil {
						return err
					}
					defer h.Close()
					return pipeline.Encryptor(c.Context, h, cfg, log)
				},
			},
			{
				Name: "printer", Usage: "count ciphertext per origin: received, duplicates, missing", Flags: flags(false),
				Action: func(c *cli.Context) error {
					h, cfg, log, err := setup(c)
					if err != nil {
						return err
					}
					defer h.Close()
					_, err = pipeline.Printer(c.Context, h, cfg, c.App.Writer, log)
					return err
				},
			},
		},
	}
}
