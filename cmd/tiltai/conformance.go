package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/gate/control/conformance"
)

func conformanceCommand() *cli.Command {
	return &cli.Command{
		Name:  "conformance",
		Usage: "check that a service speaks a Tiltai protocol correctly",
		Subcommands: []*cli.Command{{
			Name:      "control",
			Usage:     "drive a service command through the control protocol as an executor would",
			ArgsUsage: "-- COMMAND [ARGS...]",
			Description: "Starts COMMAND with TILTAI_CONTROL, TILTAI_TASK_ID, TILTAI_SERVICE and one\n" +
				"TILTAI_GATE_<NAME> per --gate (in-gates get a free port), then checks: hello\n" +
				"(its gates against those given), ready with every in-gate bound on its port,\n" +
				"two snapshots applied, heartbeats within the liveness bound, drain → drained,\n" +
				"exit status 0. Prints one PASS/FAIL line per step; exits 1 on the first failure.\n" +
				"See docs/control-protocol.md.\n\n" +
				"Example:\n" +
				"  tiltai conformance control --gate plaintext=pull@ --gate 'ciphertext=push>' -- tiltai demo encryptor",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "gate", Usage: "a gate as `NAME=pattern@` (in-gate; or pattern@tcp://host:port) or NAME=pattern> (out-gate); repeat"},
				&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "bound on each step"},
				&cli.DurationFlag{Name: "heartbeat", Value: 200 * time.Millisecond, Usage: "heartbeat interval asked for; the liveness bound is 5 times it"},
				&cli.StringFlag{Name: "task-id", Value: "conformance-1", Usage: "TILTAI_TASK_ID"},
				&cli.StringFlag{Name: "service", Usage: "TILTAI_SERVICE (default: the command's base name)"},
			},
			Action: conformanceControl,
		}},
	}
}

func conformanceControl(c *cli.Context) error {
	cfg, err := parseConformanceFlags(c.StringSlice("gate"), c.Args().Slice())
	if err != nil {
		return cli.Exit(fmt.Sprintf("%v\nusage: %s [--gate NAME=SPEC]... -- COMMAND [ARGS...]", err, c.Command.HelpName), exitUsage)
	}
	cfg.Timeout, cfg.HeartbeatInterval = c.Duration("timeout"), c.Duration("heartbeat")
	cfg.TaskID, cfg.Service = c.String("task-id"), c.String("service")
	cfg.Stdout, cfg.Stderr = c.App.ErrWriter, c.App.ErrWriter
	rep := conformance.Run(c.Context, cfg, func(s conformance.Step) { fmt.Fprintln(c.App.Writer, s) })
	return rep.Err()
}

// parseConformanceFlags turns --gate values and the command into a config,
// listing every problem at once.
func parseConformanceFlags(gates, command []string) (conformance.Config, error) {
	var (
		cfg  conformance.Config
		errs []error
	)
	for _, g := range gates {
		name, value, ok := strings.Cut(g, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--gate %q: want NAME=pattern@ or NAME=pattern>", g))
			continue
		}
		if strings.HasSuffix(value, "@") {
			value += "tcp://0.0.0.0:0" // the kit picks the port, as an offer would
		}
		spec, err := control.ParseGate(name, value)
		if err != nil {
			errs = append(errs, fmt.Errorf("--gate %q: %w", g, err))
			continue
		}
		cfg.Gates = append(cfg.Gates, spec)
	}
	cfg.Command = command
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}
