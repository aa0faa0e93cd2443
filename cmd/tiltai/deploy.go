package main

import (
	"fmt"
	"strings"

	"github.com/tiltai/tiltai/deploy"
	"github.com/urfave/cli/v2"
)

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy",
		Usage:     "run the Tiltai scheduler on Mesos as a Marathon app, and wait until it is healthy",
		ArgsUsage: "[-- SCHEDULER FLAGS...]",
		Description: "Creates or updates a Marathon app that runs `tiltai scheduler` (one instance; Marathon\n" +
			"stops the old scheduler before starting the new one; a MESOS_HTTP health check on\n" +
			"/health; state in ZooKeeper via --zk), follows the deployment, then checks that the\n" +
			"app runs healthy at the new configuration (a rolled-back deployment is an error).\n" +
			"Flags after -- are passed to `tiltai scheduler`, e.g. -- --framework_name tiltai.\n\n" +
			"Example:\n" +
			"  tiltai deploy --marathon http://marathon:8080 --zk zk://zk1:2181/tiltai \\\n" +
			"    --master zk://zk1:2181/mesos --binary-url http://files/tiltai-v1.0.0",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "marathon", Usage: "Marathon base URL", EnvVars: []string{"MARATHON_URL"}, Required: true},
			&cli.StringFlag{Name: "marathon-user", Usage: "HTTP Basic user for Marathon"},
			&cli.StringFlag{Name: "marathon-password", Usage: "HTTP Basic password for Marathon (better in the environment)", EnvVars: []string{"TILTAI_MARATHON_PASSWORD"}},
			&cli.StringFlag{Name: "marathon-token", Usage: `token sent as "Authorization: token=…" (DC/OS)`, EnvVars: []string{"TILTAI_MARATHON_TOKEN"}},
			&cli.StringFlag{Name: "app-id", Value: deploy.DefaultAppID, Usage: "Marathon app id of the scheduler"},
			&cli.StringFlag{Name: "zk", Usage: "ZooKeeper for the scheduler's state and leader election, zk://host:port[,…]/path", Required: true},
			&cli.StringFlag{Name: "master", Usage: "Mesos master for the scheduler: host:port, http(s)://…, or zk://…/mesos", EnvVars: []string{"MESOS_MASTER"}, Required: true},
			&cli.StringFlag{Name: "binary-url", Usage: "URL of the tiltai binary for the Mesos fetcher (default: tiltai on the agents' PATH)"},
			&cli.Float64Flag{Name: "cpus", Value: deploy.DefaultCPUs, Usage: "CPUs for the scheduler task"},
			&cli.Float64Flag{Name: "mem", Value: deploy.DefaultMem, Usage: "memory (MB) for the scheduler task"},
			&cli.StringSliceFlag{Name: "env", Usage: "KEY=VALUE for the scheduler's environment (repeatable; no commas in values)"},
			&cli.BoolFlag{Name: "force", Usage: "cancel a deployment of the app already in progress (no rollback)"},
			&cli.DurationFlag{Name: "timeout", Value: deploy.DefaultTimeout, Usage: "give up waiting for the deployment after this long"},
		},
		Action: func(c *cli.Context) error {
			cfg := deploy.Config{
				Marathon:      c.String("marathon"),
				User:          c.String("marathon-user"),
				Password:      c.String("marathon-password"),
				Token:         c.String("marathon-token"),
				AppID:         c.String("app-id"),
				ZK:            c.String("zk"),
				Master:        c.String("master"),
				BinaryURL:     c.String("binary-url"),
				CPUs:          c.Float64("cpus"),
				Mem:           c.Float64("mem"),
				Force:         c.Bool("force"),
				Timeout:       c.Duration("timeout"),
				SchedulerArgs: c.Args().Slice(),
			}
			if env := c.StringSlice("env"); len(env) > 0 {
				cfg.Env = map[string]string{}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("--env %q: want KEY=VALUE", kv)
					}
					cfg.Env[k] = v
				}
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("cannot deploy:\n%w", err)
			}
			_, err := deploy.Run(c.Context, cfg, c.App.Writer)
			if err != nil {
				return fmt.Errorf("deploy failed: %w", err)
			}
			return nil
		},
	}
}
