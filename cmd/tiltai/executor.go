package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tiltai/tiltai/executor"
	"github.com/urfave/cli/v2"
)

// executorCommand is what a Mesos agent runs for every Tiltai task: the
// scheduler names it in the task's ExecutorInfo.
func executorCommand() *cli.Command {
	return &cli.Command{
		Name:  "executor",
		Usage: "run one Tiltai task as its Mesos executor (started by a Mesos agent, not by hand)",
		Description: "Reads the MESOS_* environment the agent sets, subscribes to the agent's executor API,\n" +
			"runs the task's service with its gates and control socket, relays link updates and\n" +
			"reports status. The service's output goes to the sandbox's stdout and stderr; the\n" +
			"executor's own log to executor.log there. See docs/executor.md.",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "status-interval", Value: executor.DefaultStatusInterval, Usage: "period of the status message to the scheduler"},
			&cli.DurationFlag{Name: "ack-timeout", Value: executor.DefaultAckTimeout, Usage: "how long to wait for the agent to acknowledge the final status before exiting"},
			&cli.DurationFlag{Name: "call-timeout", Value: executor.DefaultCallTimeout, Usage: "bound on one call to the agent"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		Action: executorRun,
	}
}

func executorRun(c *cli.Context) error {
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return cli.Exit("tiltai executor: "+err.Error(), 2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cli.Exit(fmt.Sprintf("tiltai executor: --log-level: %v", err), 2)
	}
	for _, f := range []string{"status-interval", "ack-timeout", "call-timeout"} {
		if d := c.Duration(f); d <= 0 || d > time.Hour {
			return cli.Exit(fmt.Sprintf("tiltai executor: --%s %s is not in (0, 1h]", f, d), 2)
		}
	}
	log, closer, err := executor.OpenLog(cfg.Sandbox, lvl, c.String("log-format"))
	if err != nil {
		return cli.Exit("tiltai executor: "+err.Error(), 2)
	}
	defer closer.Close()
	cfg.StatusInterval = c.Duration("status-interval")
	cfg.AckTimeout = c.Duration("ack-timeout")
	cfg.CallTimeout = c.Duration("call-timeout")
	cfg.Logger = log
	// SIGTERM and SIGINT cancel c.Context (see main): the executor then
	// stops its service gracefully before returning.
	if err := executor.Run(c.Context, cfg); err != nil {
		return cli.Exit("tiltai executor: "+err.Error(), 1)
	}
	return nil
}
