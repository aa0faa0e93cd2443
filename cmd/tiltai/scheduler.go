package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/zkha"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/detect"
	"github.com/tiltai/tiltai/scheduler/store"
)

func schedulerCommand() *cli.Command {
	return &cli.Command{
		Name:  "scheduler",
		Usage: "run the Tiltai Mesos framework: launch the spec's services and keep their links wired",
		Description: "Subscribes to the Mesos master, launches the services of the accepted link spec with the\n" +
			"Tiltai executor, and pushes link tables to them as tasks come and go. Submit specs with\n" +
			"`tiltai links submit`. State lives in --state FILE (one scheduler) or in ZooKeeper with --zk\n" +
			"(several schedulers, one leads). SIGTERM stops it without tearing the framework down: tasks\n" +
			"keep running for --failover_timeout and a restarted scheduler resumes them.\n\n" +
			"Example:\n" +
			"  tiltai scheduler --master zk://zk1:2181/mesos --zk zk://zk1:2181/tiltai \\\n" +
			"    --listen 0.0.0.0:7070 --advertise $(hostname -f)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "master", Usage: "Mesos master: host:port, http(s)://host:port, or zk://host:port[,…]/mesos", EnvVars: []string{"MESOS_MASTER"}},
			&cli.StringFlag{Name: "zk", Usage: "ZooKeeper for state and leader election, zk://[user:pass@]host:port[,…]/path", EnvVars: []string{"TILTAI_ZK"}},
			&cli.StringFlag{Name: "state", Usage: "state file, when not using --zk", Value: "tiltai-state.db", EnvVars: []string{"TILTAI_STATE"}},
			&cli.StringFlag{Name: "framework_name", Value: "tiltai", Usage: "framework name in Mesos"},
			&cli.StringFlag{Name: "framework_id", Usage: "recovery only: restore this framework ID into a state store that lost it"},
			&cli.StringFlag{Name: "mesos_role", Value: "*", Usage: "Mesos role to register in"},
			&cli.StringFlag{Name: "mesos_user", Usage: "user tasks run as (default: the current user)"},
			&cli.StringFlag{Name: "mesos_authentication_principal", Usage: "principal to authenticate the framework with (HTTP Basic)"},
			&cli.StringFlag{Name: "mesos_authentication_secret_file", Usage: "file holding the principal's secret"},
			&cli.StringFlag{Name: "mesos_ca_file", Usage: "PEM CA bundle for an https master (default: system roots)"},
			&cli.StringFlag{Name: "mesos_codec", Value: "protobuf", Usage: "scheduler API encoding: protobuf or json"},
			&cli.Int64Flag{Name: "failover_timeout", Value: 604800, Usage: "seconds Mesos keeps the tasks while the scheduler is away"},
			&cli.BoolFlag{Name: "checkpoint", Value: true, Usage: "ask agents to checkpoint, so tasks survive agent restarts (--checkpoint=false to disable)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "address of the scheduler's HTTP API", EnvVars: []string{"TILTAI_LISTEN"}},
			&cli.StringFlag{Name: "advertise", Usage: "host agents and other schedulers reach this one at (default: the host of --listen)"},
			&cli.StringFlag{Name: "api_token_file", Usage: "file holding a token; API writes then need Authorization: Bearer TOKEN", EnvVars: []string{"TILTAI_TOKEN_FILE"}},
			&cli.BoolFlag{Name: "api_open_reads", Usage: "with a token, let reads through without it"},
			&cli.IntFlag{Name: "max_tasks", Value: linkspec.DefaultMaxTasks, EnvVars: []string{"TILTAI_MAX_TASKS"},
				Usage: "most tasks one spec may ask for, summed over its services; each costs the scheduler about 1–2 KB (docs/operations.md)"},
			&cli.StringFlag{Name: "docker_registry", EnvVars: []string{"TILTAI_DOCKER_REGISTRY"},
				Usage: "where the agents pull images from (their --docker_registry: a directory of docker-save archives or an http(s):// registry); lets a service name an image without a command, run by the image's ENTRYPOINT and CMD"},
			&cli.DurationFlag{Name: "drain_timeout", Value: 30 * time.Second, Usage: "longest wait for senders to stop using a retired task before it is killed"},
			&cli.StringFlag{Name: "log_level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log_format", Value: "text", Usage: "text or json"},
		},
		Action: runScheduler,
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log_level"))); err != nil {
		return nil, fmt.Errorf("--log_level %q: use debug, info, warn or error", c.String("log_level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log_format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, fmt.Errorf("--log_format %q: use text or json", c.String("log_format"))
}

func readSecretFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("--%s: %s is empty", flag, path)
	}
	return s, nil
}

// schedulerConfig turns flags into a scheduler.Config, listing every
// problem at once.
func schedulerConfig(c *cli.Context, log *slog.Logger) (scheduler.Config, *scheduler.HA, error) {
	var errs []error
	cfg := scheduler.Config{
		FrameworkName:   c.String("framework_name"),
		FrameworkID:     c.String("framework_id"),
		Role:            c.String("mesos_role"),
		User:            c.String("mesos_user"),
		Principal:       c.String("mesos_authentication_principal"),
		Codec:           c.String("mesos_codec"),
		FailoverTimeout: time.Duration(c.Int64("failover_timeout")) * time.Second,
		Checkpoint:      c.Bool("checkpoint"),
		Listen:          c.String("listen"),
		Advertise:       c.String("advertise"),
		OpenReads:       c.Bool("api_open_reads"),
		DrainTimeout:    c.Duration("drain_timeout"),
		MaxTasks:        c.Int("max_tasks"),
		DockerRegistry:  c.String("docker_registry"),
		Logger:          log,
	}
	if cfg.MaxTasks < 1 {
		errs = append(errs, fmt.Errorf("--max_tasks %d: give 1 or more (default %d)", cfg.MaxTasks, linkspec.DefaultMaxTasks))
	}
	if c.String("master") == "" {
		errs = append(errs, errors.New("--master is required (or MESOS_MASTER): host:port, http(s)://host:port or zk://host:port/mesos"))
	} else if _, err := detect.ParseFlag(c.String("master")); err != nil {
		errs = append(errs, fmt.Errorf("--master: %w", err))
	}
	if f := c.String("mesos_authentication_secret_file"); f != "" {
		s, err := readSecretFile("mesos_authentication_secret_file", f)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Secret = s
	}
	if cfg.Principal != "" && c.String("mesos_authentication_secret_file") == "" {
		errs = append(errs, errors.New("--mesos_authentication_principal needs --mesos_authentication_secret_file"))
	}
	if f := c.String("mesos_ca_file"); f != "" {
		pem, err := os.ReadFile(f)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			errs = append(errs, fmt.Errorf("--mesos_ca_file %s: not a readable PEM bundle", f))
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if f := c.String("api_token_file"); f != "" {
		t, err := readSecretFile("api_token_file", f)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.APIToken = t
	}
	if c.Int64("failover_timeout") < 0 {
		errs = append(errs, errors.New("--failover_timeout must not be negative"))
	}
	var ha *scheduler.HA
	if z := c.String("zk"); z != "" {
		u, err := zkha.ParseURL(z)
		if err != nil {
			errs = append(errs, fmt.Errorf("--zk: %w", err))
		}
		ha = &scheduler.HA{ZK: zkha.Config{URL: u}}
		if c.IsSet("state") {
			errs = append(errs, errors.New("--state and --zk exclude each other: with --zk the state lives in ZooKeeper"))
		}
	}
	return cfg, ha, errors.Join(errs...)
}

func runScheduler(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return cli.Exit("tiltai scheduler: "+err.Error(), 2)
	}
	cfg, ha, err := schedulerConfig(c, log)
	if err != nil {
		return cli.Exit("tiltai scheduler: invalid flags:\n  "+strings.ReplaceAll(err.Error(), "\n", "\n  "), 2)
	}
	det, err := detect.New(c.Context, c.String("master"), log)
	if err != nil {
		return cli.Exit("tiltai scheduler: "+err.Error(), 2)
	}
	defer det.Close()
	cfg.Master = det
	if ha == nil {
		st, err := store.OpenBolt(c.String("state"))
		if err != nil {
			return cli.Exit("tiltai scheduler: "+err.Error(), 1)
		}
		defer st.Close()
		cfg.Store = st
	}
	if err := scheduler.Run(c.Context, cfg, ha); err != nil {
		return cli.Exit("tiltai scheduler: "+err.Error(), 1)
	}
	return nil
}
