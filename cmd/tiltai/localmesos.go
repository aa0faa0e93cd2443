package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/localmesos"
)

// localmesosCommand runs the embedded Mesos master and agents until SIGINT
// or SIGTERM, then stops them, killing every executor they started.
func localmesosCommand() *cli.Command {
	return &cli.Command{
		Name:  "localmesos",
		Usage: "run an embedded Mesos-compatible master and agents (v1 scheduler and executor HTTP APIs)",
		Description: "Starts one master and N agents in this process. Frameworks connect to\n" +
			"http://LISTEN/api/v1/scheduler; executors reach their agent's /api/v1/executor.\n" +
			"See docs/localmesos.md for what is implemented.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5050", Usage: "master address (host:port; port 0 picks one)"},
			&cli.IntFlag{Name: "agents", Value: 1, Usage: "number of agents"},
			&cli.StringFlag{Name: "resources", Value: "cpus:4;mem:4096;disk:10000;ports:[31000-32000]", Usage: "resources of each agent (Mesos --resources syntax)"},
			&cli.BoolFlag{Name: "split_ports", Value: true, Usage: "give each agent a disjoint part of the ports ranges"},
			&cli.StringFlag{Name: "work_dir", Usage: "sandboxes and checkpoints (default: a temporary directory, removed on exit)"},
			&cli.StringFlag{Name: "hostname", Usage: "hostname advertised in offers (default: the host of --listen; with several agents on 127.0.0.1 each agent's own address, 127.0.0.2, 127.0.0.3, …)"},
			agentAttributesFlag(),
			&cli.DurationFlag{Name: "heartbeat_interval", Value: 15 * time.Second, Usage: "scheduler stream heartbeat period"},
			&cli.DurationFlag{Name: "offer_timeout", Usage: "rescind offers unused for this long (0: never)"},
			&cli.DurationFlag{Name: "allocation_interval", Value: time.Second, Usage: "period of the offer pass"},
			&cli.DurationFlag{Name: "executor_shutdown_grace_period", Value: 5 * time.Second, Usage: "grace between SHUTDOWN and kill"},
			&cli.DurationFlag{Name: "executor_reregistration_timeout", Value: 2 * time.Second, Usage: "time executors get to re-subscribe after an agent restart"},
			&cli.BoolFlag{Name: "authenticate_frameworks", Aliases: []string{"authenticate_http_frameworks"}, Usage: "require schedulers to authenticate (HTTP Basic) with a principal and secret from --credentials"},
			&cli.StringFlag{Name: "credentials", Usage: `file of accepted credentials, Mesos' format: {"credentials": [{"principal": "…", "secret": "…"}]}`},
			&cli.BoolFlag{Name: "authenticate_http_executors", Usage: "require executors to send their token (Authorization: Bearer $MESOS_EXECUTOR_AUTHENTICATION_TOKEN)"},
			&cli.StringFlag{Name: "executor_secret_key", Usage: "file holding the key executor tokens (JWT, HMAC-SHA256) are signed with"},
			&cli.BoolFlag{Name: "verbose", Usage: "log at debug level"},
		}, imageFlags(false)...),
		Action: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			cfg := localmesos.Config{
				Listen: c.String("listen"), Agents: c.Int("agents"), Resources: c.String("resources"),
				SplitPorts: c.Bool("split_ports"), WorkDir: c.String("work_dir"), Hostname: c.String("hostname"),
				AgentAttributes:   agentAttributes(c),
				HeartbeatInterval: c.Duration("heartbeat_interval"), OfferTimeout: c.Duration("offer_timeout"),
				AllocationInterval:            c.Duration("allocation_interval"),
				ExecutorShutdownGracePeriod:   c.Duration("executor_shutdown_grace_period"),
				ExecutorReregistrationTimeout: c.Duration("executor_reregistration_timeout"),
				ImageProviders:                c.String("image_providers"), DockerRegistry: c.String("docker_registry"),
				DockerStoreDir: c.String("docker_store_dir"), Isolation: c.String("isolation"),
				Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})),
			}
			auth := localmesos.AuthFlags{
				AuthenticateFrameworks: c.Bool("authenticate_frameworks"), Credentials: c.String("credentials"),
				AuthenticateHTTPExecutors: c.Bool("authenticate_http_executors"), ExecutorSecretKey: c.String("executor_secret_key"),
			}
			if err := errors.Join(cfg.Validate(), auth.Apply(&cfg)); err != nil {
				return cli.Exit("tiltai localmesos: "+strings.ReplaceAll(err.Error(), "\n", "; "), 2)
			}
			return runLocalmesos(c.Context, cfg, c.App.Writer)
		},
	}
}

// repeated is a flag value that keeps each occurrence whole: attributes
// hold commas (ranges), which a StringSliceFlag would split.
type repeated []string

func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }
func (r *repeated) String() string     { return strings.Join(*r, " ") }

func agentAttributesFlag() cli.Flag {
	return &cli.GenericFlag{Name: "agent_attributes", Value: &repeated{},
		Usage: "agent attributes in Mesos' syntax, e.g. 'rack:r1;zone:a;level:2;slots:[1-4]'; once for all agents, or once per agent in order"}
}

func agentAttributes(c *cli.Context) []string {
	if r, ok := c.Generic("agent_attributes").(*repeated); ok {
		return *r
	}
	return nil
}

func runLocalmesos(ctx context.Context, cfg localmesos.Config, out interface{ Write([]byte) (int, error) }) error {
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cluster, err := localmesos.New(startCtx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot start localmesos: %w", err)
	}
	fmt.Fprintf(out, "localmesos: master listening on %s (scheduler API %s)\n", cluster.MasterURL(), cluster.SchedulerURL())
	for _, a := range cluster.Agents() {
		fmt.Fprintf(out, "localmesos: agent %d %s on %s\n", a.Index, a.ID, a.Endpoint)
	}
	fmt.Fprintf(out, "localmesos: work dir %s\n", cluster.WorkDir())
	if a, ok := cfg.SchedulerAuth.(*localmesos.Credentials); ok {
		fmt.Fprintf(out, "localmesos: frameworks must authenticate (%s)\n", a)
	}
	if a, ok := cfg.ExecutorAuth.(*localmesos.JWTExecutorAuth); ok && a.Required() {
		fmt.Fprintln(out, "localmesos: executors must authenticate (the token in MESOS_EXECUTOR_AUTHENTICATION_TOKEN)")
	} else if ok {
		fmt.Fprintln(out, "localmesos: executors get tokens (MESOS_EXECUTOR_AUTHENTICATION_TOKEN), not required")
	}
	<-ctx.Done()
	fmt.Fprintln(out, "localmesos: stopping (killing executors)")
	if err := cluster.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "localmesos:", err)
	}
	return nil
}

// imageFlags are mesos-agent's flags for running executors in Docker
// images, shared by `tiltai localmesos` and `tiltai up`. For up, a
// registry alone turns images on.
func imageFlags(up bool) []cli.Flag {
	providers := "'docker' runs executors whose ContainerInfo has a Docker image in it (Linux, as root)"
	registry := "a directory of 'docker save' tarballs (<name>.tar, Mesos' local puller) or an http(s):// Docker Registry v2 URL"
	if up {
		providers += " (default 'docker' when --docker_registry is given)"
		registry += "; services with an image are pulled from it (turns --image_providers=docker on)"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "image_providers", Usage: providers},
		&cli.StringFlag{Name: "docker_registry", Usage: registry},
		&cli.StringFlag{Name: "docker_store_dir", Usage: "the layer cache shared by tasks (default <work_dir>/store/docker)"},
		&cli.StringFlag{Name: "isolation", Usage: "with images: filesystem/linux,docker/runtime (the default then)"},
	}
}
