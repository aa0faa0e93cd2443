package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/up"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/localmesos"
)

func upCommand() *cli.Command {
	return &cli.Command{
		Name:      "up",
		Usage:     "run everything on this machine: embedded Mesos, the scheduler and a spec's services",
		ArgsUsage: "[SPEC]",
		Description: "Starts an embedded Mesos master and agents, the Tiltai scheduler on it, and submits SPEC\n" +
			"(default: the pipeline demo, feeder → encryptor ×3 → printer). Shows progress until every\n" +
			"task runs with its links acknowledged, then the services' counts every few seconds.\n" +
			"While it runs, use the printed scheduler URL with tiltai ps, tiltai scale, tiltai links.\n" +
			"Ctrl-C stops everything; every service drains its gates first.\n" +
			"Services with an image need --docker_registry (Linux, as root; build tiltai with CGO_ENABLED=0).",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "scheduler API address"},
			&cli.StringFlag{Name: "master_listen", Value: "127.0.0.1:5050", Usage: "embedded Mesos master address"},
			&cli.IntFlag{Name: "agents", Value: 1, Usage: "embedded Mesos agents"},
			&cli.StringFlag{Name: "resources", Value: "cpus:4;mem:4096;disk:10000;ports:[31000-32000]", Usage: "resources of each agent"},
			agentAttributesFlag(),
			&cli.StringFlag{Name: "work_dir", Usage: "sandboxes (default: a temporary directory, removed on exit)"},
			&cli.DurationFlag{Name: "report", Value: 2 * time.Second, Usage: "how often to print the counts (0: never)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up if the services are not up by then"},
			&cli.IntFlag{Name: "max_tasks", Value: linkspec.DefaultMaxTasks, EnvVars: []string{"TILTAI_MAX_TASKS"},
				Usage: "most tasks one spec may ask for (the scheduler's --max_tasks)"},
			&cli.StringFlag{Name: "log_level", Value: "warn", Usage: "log level of the components (debug, info, warn, error)"},
		}, imageFlags(true)...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cli.Exit("usage: tiltai up [SPEC]", 2)
			}
			if c.Int("max_tasks") < 1 {
				return cli.Exit(fmt.Sprintf("tiltai up: --max_tasks %d: give 1 or more (default %d)", c.Int("max_tasks"), linkspec.DefaultMaxTasks), 2)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log_level"))); err != nil {
				return cli.Exit(fmt.Sprintf("tiltai up: --log_level %q: use debug, info, warn or error", c.String("log_level")), 2)
			}
			cfg := up.Config{
				Listen: c.String("listen"), MasterListen: c.String("master_listen"), Agents: c.Int("agents"),
				Resources: c.String("resources"), AgentAttributes: agentAttributes(c), WorkDir: c.String("work_dir"), Report: c.Duration("report"),
				ConvergeTimeout: c.Duration("timeout"), MaxTasks: c.Int("max_tasks"),
				ImageProviders: c.String("image_providers"), DockerRegistry: c.String("docker_registry"),
				DockerStoreDir: c.String("docker_store_dir"), Isolation: c.String("isolation"),
				Logger:      slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})),
				MesosLogger: slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: max(level, slog.LevelError)})),
			}
			// The embedded Mesos' flags are checked before anything starts,
			// so every problem with them is listed at once.
			if cfg.DockerRegistry != "" && cfg.ImageProviders == "" {
				cfg.ImageProviders = "docker"
			}
			mesosCfg := localmesos.Config{Listen: cfg.MasterListen, Agents: cfg.Agents, Resources: cfg.Resources, AgentAttributes: cfg.AgentAttributes,
				ImageProviders: cfg.ImageProviders, DockerRegistry: cfg.DockerRegistry, DockerStoreDir: cfg.DockerStoreDir, Isolation: cfg.Isolation}
			if err := mesosCfg.Validate(); err != nil {
				return cli.Exit("tiltai up: "+err.Error(), 2)
			}
			if path := c.Args().First(); path != "" {
				data, err := os.ReadFile(path)
				if err != nil {
					return cli.Exit(fmt.Sprintf("tiltai up: cannot read the link spec: %v", err), 2)
				}
				cfg.SpecName, cfg.Spec = path, data
			}
			if err := up.Run(c.Context, cfg, c.App.Writer); err != nil {
				return cli.Exit("tiltai up: "+err.Error(), 1)
			}
			return nil
		},
	}
}
