package main

// What the commands that talk to a scheduler share: the flags that find it,
// the wait for convergence, exit codes, and flags written after arguments.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tiltai/tiltai/internal/version"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
)

// Exit codes of the commands that talk to a scheduler (docs/cli.md).
const (
	exitFailed      = 1   // refused (invalid spec, unknown service) or the change failed
	exitUsage       = 2   // bad arguments or flags, unreadable files
	exitUnreachable = 3   // no usable answer: unreachable, unauthorized, not a scheduler
	exitConflict    = 4   // --if-match named a version that is no longer current
	exitTimeout     = 5   // accepted, but not converged within --timeout
	exitInterrupted = 130 // Ctrl-C while waiting; the change goes on
)

func schedulerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "scheduler", Value: client.DefaultURL, EnvVars: []string{"TILTAI_SCHEDULER"},
			Usage: "the scheduler's API `URL` (http(s)://HOST:PORT[/PREFIX])"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"TILTAI_TOKEN"},
			Usage: "API `TOKEN` (Bearer), when the scheduler has one; better in the environment or a file than on the command line"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"TILTAI_TOKEN_FILE"},
			Usage: "read the API token from `FILE` (the scheduler's --api_token_file)"},
	}
}

func waitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "wait", Value: true,
			Usage: "show progress until the change has converged (tasks running, links acknowledged) or failed; --wait=false returns at once"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "stop waiting after this long (exit 5; the change goes on)"},
		&cli.IntFlag{Name: "max-failures", Value: client.DefaultMaxFailures,
			Usage: "fail the wait when a service has crashed this many times since the change (0: never)"},
		&cli.DurationFlag{Name: "poll-interval", Value: client.DefaultPollInterval, Usage: "how often to ask the scheduler for progress"},
	}
}

// apiConfig says which scheduler to talk to, and how.
type apiConfig struct {
	URL   string
	Token string
}

func apiConfigFrom(c *cli.Context) (apiConfig, error) {
	cfg := apiConfig{URL: c.String("scheduler"), Token: c.String("token")}
	if _, err := client.ParseURL(cfg.URL); err != nil {
		return cfg, usageErr(c, "--scheduler: %v", err)
	}
	if path := c.String("token-file"); path != "" {
		if c.IsSet("token") && cfg.Token != "" {
			return cfg, usageErr(c, "give the token once: --token (TILTAI_TOKEN) or --token-file (TILTAI_TOKEN_FILE), not both")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, usageErr(c, "cannot read the token file: %v", err)
		}
		cfg.Token = strings.TrimSpace(string(data))
		if cfg.Token == "" {
			return cfg, usageErr(c, "the token file %s is empty", path)
		}
	}
	return cfg, nil
}

func (a apiConfig) client(opts ...client.Option) (*client.Client, error) {
	return client.New(a.URL, a.Token, append([]client.Option{client.WithUserAgent("tiltai/" + version.Get().Version)}, opts...)...)
}

// busyRetry is how submit and scale retry a scheduler that answers 503
// (its spec-parse slots full, or stopping): the client's defaults, i.e.
// Retry-After honoured up to 30s, else backoff from 0.5s, at most 8
// attempts within 2 minutes. Tests shorten it.
var busyRetry = client.BusyRetry{}

// newClient turns the scheduler flags into a client.
func newClient(c *cli.Context) (*client.Client, apiConfig, error) {
	cfg, err := apiConfigFrom(c)
	if err != nil {
		return nil, cfg, err
	}
	retry := busyRetry
	name, errw := c.Command.HelpName, c.App.ErrWriter
	retry.Notify = func(w client.BusyWait) {
		fmt.Fprintf(errw, "%s: scheduler busy, retrying in %s (attempt %d of %d)\n", name, retryDelay(w.Delay), w.Attempt, w.Attempts)
	}
	cl, err := cfg.client(client.WithBusyRetry(retry))
	if err != nil {
		return nil, cfg, usageErr(c, "%v", err)
	}
	return cl, cfg, nil
}

// retryDelay renders a wait for a person: "2s", "1.4s", "250ms".
func retryDelay(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// waitConfig is how to follow a change.
type waitConfig struct {
	Wait        bool
	Timeout     time.Duration
	MaxFailures int
	Interval    time.Duration
}

func waitConfigFrom(c *cli.Context) (waitConfig, error) {
	w := waitConfig{Wait: c.Bool("wait"), Timeout: c.Duration("timeout"), MaxFailures: c.Int("max-failures"), Interval: c.Duration("poll-interval")}
	var errs []string
	if w.Timeout <= 0 {
		errs = append(errs, fmt.Sprintf("--timeout %s: give a positive duration, e.g. 5m", w.Timeout))
	}
	if w.MaxFailures < 0 {
		errs = append(errs, fmt.Sprintf("--max-failures %d: give 0 (never) or more", w.MaxFailures))
	}
	if w.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Sprintf("--poll-interval %s: give 10ms or more", w.Interval))
	}
	if len(errs) > 0 {
		return w, usageErr(c, "%s", strings.Join(errs, "; "))
	}
	return w, nil
}

// writeConfig is how to make a change (submit, scale) and follow it.
type writeConfig struct {
	DryRun  bool
	IfMatch int // -1: whatever version is current
	Wait    waitConfig
}

func writeConfigFrom(c *cli.Context) (writeConfig, error) {
	w := writeConfig{DryRun: c.Bool("dry-run")}
	var err error
	if w.Wait, err = waitConfigFrom(c); err != nil {
		return w, err
	}
	w.IfMatch, err = ifMatchFrom(c)
	return w, err
}

func (w writeConfig) options() []client.WriteOption {
	var opts []client.WriteOption
	if w.DryRun {
		opts = append(opts, client.DryRun())
	}
	if w.IfMatch >= 0 {
		opts = append(opts, client.IfMatch(w.IfMatch))
	}
	return opts
}

// baseline reads the status before the change, so that the wait counts a
// service's failures from there; nil when there will be no wait, or the
// status cannot be read (the write will say why).
func (w writeConfig) baseline(ctx context.Context, cl *client.Client) *scheduler.Status {
	if !w.Wait.Wait || w.DryRun {
		return nil
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return nil
	}
	return &st
}

// ifMatchFrom reads --if-match: -1 when not given.
func ifMatchFrom(c *cli.Context) (int, error) {
	if !c.IsSet("if-match") {
		return -1, nil
	}
	v := c.Int("if-match")
	if v < 0 {
		return 0, usageErr(c, "--if-match %d: give a spec version (0 or more), as tiltai links get prints it", v)
	}
	return v, nil
}

func usageErr(c *cli.Context, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("%s: %s", c.Command.HelpName, fmt.Sprintf(format, args...)), exitUsage)
}

// apiFail turns an error of the client into a message and an exit code.
// what says what could not be done ("cannot scale encryptor").
func apiFail(c *cli.Context, api apiConfig, what string, err error) error {
	name := c.Command.HelpName
	var ae *client.APIError
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return cli.Exit(fmt.Sprintf("%s: %s: %v\n  is the scheduler running there? Point to it with --scheduler or TILTAI_SCHEDULER.", name, what, err), exitUnreachable)
	case errors.Is(err, client.ErrUnauthorized) && api.Token != "":
		return cli.Exit(fmt.Sprintf("%s: %s: the scheduler refused the token (%v)\n  check --token, TILTAI_TOKEN or --token-file against the scheduler's --api_token_file.", name, what, err), exitUnreachable)
	case errors.Is(err, client.ErrUnauthorized):
		return cli.Exit(fmt.Sprintf("%s: %s: %v", name, what, err), exitUnreachable)
	case errors.Is(err, client.ErrConflict):
		return cli.Exit(fmt.Sprintf("%s: %s: %v", name, what, err), exitConflict)
	case errors.Is(err, context.Canceled):
		return cli.Exit(fmt.Sprintf("%s: %s: interrupted", name, what), exitInterrupted)
	case errors.As(err, &ae) && ae.StatusCode/100 == 4 && !ae.Unexpected:
		return cli.Exit(fmt.Sprintf("%s: %s: %v", name, what, err), exitFailed)
	case errors.As(err, &ae):
		// 5xx, or an answer that was not the scheduler's.
		if ae.Unexpected && ae.StatusCode == http.StatusNotFound {
			return cli.Exit(fmt.Sprintf("%s: %s: %v\n  check --scheduler (TILTAI_SCHEDULER, now %s)", name, what, err, api.URL), exitUnreachable)
		}
		return cli.Exit(fmt.Sprintf("%s: %s: %v", name, what, err), exitUnreachable)
	}
	return cli.Exit(fmt.Sprintf("%s: %s: %v", name, what, err), exitFailed)
}

// follow waits for version to converge, printing progress to stderr and the
// outcome to stdout.
func follow(c *cli.Context, cl *client.Client, api apiConfig, w waitConfig, version int, baseline *scheduler.Status, start time.Time) error {
	name := c.Command.HelpName
	fmt.Fprintf(c.App.ErrWriter, "waiting for spec version %d to converge (timeout %s; Ctrl-C stops waiting, not the change)\n", version, w.Timeout)
	ctx, cancel := context.WithTimeout(c.Context, w.Timeout)
	defer cancel()
	p := &client.Progress{W: c.App.ErrWriter, Version: version, Start: start}
	maxFailures := w.MaxFailures
	if maxFailures == 0 {
		maxFailures = -1
	}
	st, err := cl.WaitConverged(ctx, version, client.WaitOptions{
		Progress: p.Update, Retry: p.Retry, Interval: w.Interval, MaxFailures: maxFailures, Baseline: baseline,
	})
	elapsed := client.Elapsed(time.Since(start))
	var failed *client.ServiceFailedError
	switch {
	case err == nil:
		tasks := 0
		for _, ss := range st.Services {
			tasks += ss.Running
		}
		fmt.Fprintf(c.App.Writer, "spec version %d converged in %s: %d services, %d tasks running, every link table acknowledged\n", st.SpecVersion, elapsed, len(st.Services), tasks)
		return nil
	case errors.As(err, &failed):
		return cli.Exit(fmt.Sprintf("%s: spec version %d did not converge: %v\n"+
			"  the change stays accepted and the scheduler keeps restarting %s with backoff;\n"+
			"  see tiltai ps --service %s, then fix the service or submit a corrected spec", name, version, err, failed.Service, failed.Service), exitFailed)
	case errors.Is(err, context.DeadlineExceeded) && c.Context.Err() == nil:
		return cli.Exit(fmt.Sprintf("%s: gave up waiting after %s: %v\n"+
			"  the change stays accepted and the scheduler keeps working on it; follow it with tiltai ps", name, w.Timeout, err), exitTimeout)
	case c.Context.Err() != nil:
		return cli.Exit(fmt.Sprintf("%s: stopped waiting after %s; spec version %d stays accepted and the scheduler carries on (tiltai ps)", name, elapsed, version), exitInterrupted)
	}
	return apiFail(c, api, fmt.Sprintf("cannot follow spec version %d", version), err)
}

// args returns the command's n positional arguments, or a usage error;
// usage is e.g. "FILE". Flags may come after the arguments (flagsFirst
// moved them ahead for the parser), and "--" has ended the flags.
func args(c *cli.Context, n int, usage string) ([]string, error) {
	as := c.Args().Slice()
	if len(as) != n {
		return nil, cli.Exit(fmt.Sprintf("usage: %s %s (see %s --help)", c.Command.HelpName, usage, c.Command.HelpName), exitUsage)
	}
	return as, nil
}
