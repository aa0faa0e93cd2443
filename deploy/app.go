package deploy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	marathon "github.com/gambol99/go-marathon"
	"github.com/tiltai/tiltai/internal/version"
	"github.com/tiltai/tiltai/internal/zkha"
	"github.com/tiltai/tiltai/scheduler/detect"
)

// Defaults for a Config's zero fields.
const (
	DefaultAppID        = "/tiltai"
	DefaultCPUs         = 0.5
	DefaultMem          = 256
	DefaultTimeout      = 10 * time.Minute
	DefaultPollInterval = time.Second
)

// Config says where Marathon is and what to deploy.
type Config struct {
	Marathon string // base URL, http(s)://host:port[/path]
	// HTTP Basic credentials, or a token sent as "Authorization:
	// token=<token>" (DC/OS); not both.
	User, Password string
	Token          string

	AppID     string // Marathon app id; DefaultAppID when empty
	BinaryURL string // the tiltai binary, fetched into the sandbox; empty: tiltai on the agents' PATH
	ZK        string // --zk of the scheduler: required, a Marathon task must keep its state off-host
	Master    string // --master of the scheduler
	// SchedulerArgs are further `tiltai scheduler` flags, passed as given.
	SchedulerArgs []string
	Env           map[string]string
	CPUs, Mem     float64

	// Force overrides a deployment of the app already in progress
	// (PUT ?force=true): Marathon cancels it without a rollback.
	Force        bool
	Timeout      time.Duration // for the whole deployment
	PollInterval time.Duration // between looks at the deployment
	HTTPClient   *http.Client  // nil: one with a 30 s timeout per request
}

// reservedArgs are set by deploy itself.
var reservedArgs = []string{"--zk", "--master", "--listen", "--advertise"}

// Validate lists every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Marathon == "" {
		add("--marathon is required (the Marathon URL, e.g. http://marathon.example.com:8080)")
	} else if u, err := url.Parse(c.Marathon); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		add("--marathon %q: want http(s)://host:port[/path] without credentials (use --marathon-user/--marathon-password or --marathon-token)", c.Marathon)
	}
	switch {
	case (c.User == "") != (c.Password == ""):
		add("--marathon-user and --marathon-password go together")
	case c.User != "" && c.Token != "":
		add("give either --marathon-user/--marathon-password or --marathon-token, not both")
	}
	if id := c.appID(); !strings.HasPrefix(id, "/") || strings.HasSuffix(id, "/") || strings.Contains(id, "//") {
		add("--app-id %q: want an absolute Marathon app id such as /tiltai or /infra/tiltai", id)
	}
	if c.ZK == "" {
		add("--zk is required: a scheduler run by Marathon can move between hosts, so its state must live in ZooKeeper")
	} else if _, err := zkha.ParseURL(c.ZK); err != nil {
		errs = append(errs, fmt.Errorf("--zk: %w", err))
	}
	if c.Master == "" {
		add("--master is required (host:port, http(s)://…, or zk://…/mesos)")
	} else if _, err := detect.ParseFlag(c.Master); err != nil {
		errs = append(errs, err)
	}
	if c.BinaryURL != "" {
		u, err := url.Parse(c.BinaryURL)
		switch {
		case err != nil || u.Scheme == "" || path.Base(u.Path) == "/" || path.Base(u.Path) == ".":
			add("--binary-url %q: want a URL of the tiltai binary the Mesos fetcher can download (http, https, hdfs, s3, file)", c.BinaryURL)
		case isArchive(u.Path):
			add("--binary-url %q: give the tiltai binary itself, not an archive (the fetcher would unpack it and the command could not find it)", c.BinaryURL)
		case strings.ContainsAny(path.Base(u.Path), "'\"$`\\ "):
			add("--binary-url %q: the file name must not need shell quoting", c.BinaryURL)
		}
	}
	for _, a := range c.SchedulerArgs {
		for _, r := range reservedArgs {
			if a == r || strings.HasPrefix(a, r+"=") {
				add("scheduler flag %s is set by tiltai deploy; give it to deploy instead", r)
			}
		}
	}
	if c.CPUs < 0 || c.Mem < 0 {
		add("--cpus and --mem must not be negative")
	}
	if c.Mem != 0 && c.Mem < 32 {
		add("--mem %v is below the 32 MB Mesos gives any task at least", c.Mem)
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "= ") {
			add("environment variable name %q is invalid", k)
		}
	}
	if c.Timeout < 0 || c.PollInterval < 0 {
		add("timeouts must not be negative")
	}
	return errors.Join(errs...)
}

func isArchive(p string) bool {
	for _, ext := range []string{".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip", ".gz", ".bz2", ".xz"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

func (c Config) appID() string {
	if c.AppID == "" {
		return DefaultAppID
	}
	return c.AppID
}

// shellQuote quotes s for /bin/sh, which runs a Marathon cmd.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command is the shell command the app runs: the scheduler on the port
// Marathon assigns ($PORT0), advertising the agent's host name ($HOST).
func (c Config) Command() string {
	bin := "tiltai"
	if c.BinaryURL != "" {
		u, _ := url.Parse(c.BinaryURL)
		bin = "./" + path.Base(u.Path)
	}
	parts := []string{"exec", bin, "scheduler",
		"--master", shellQuote(c.Master),
		"--zk", shellQuote(c.ZK),
		"--listen", `"0.0.0.0:$PORT0"`,
		"--advertise", `"$HOST"`,
	}
	for _, a := range c.SchedulerArgs {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// App is the Marathon app definition for cfg. It is a pure function of the
// configuration, so the definition can be checked without Marathon.
func App(cfg Config) *marathon.Application {
	cpus, mem := cfg.CPUs, cfg.Mem
	if cpus == 0 {
		cpus = DefaultCPUs
	}
	if mem == 0 {
		mem = DefaultMem
	}
	app := new(marathon.Application)
	app.Name(cfg.appID()).Command(cfg.Command()).CPU(cpus).Memory(mem).Count(1)
	// One scheduler at a time: Marathon stops the old task before it starts
	// the new one (ZooKeeper leadership guards the rest).
	app.SetUpgradeStrategy(marathon.UpgradeStrategy{}.SetMinimumHealthCapacity(0).SetMaximumOverCapacity(0))
	app.AddPortDefinition(marathon.PortDefinition{Protocol: "tcp", Name: "api"}.SetPort(0))
	hc := marathon.HealthCheck{
		Protocol:           "MESOS_HTTP",
		GracePeriodSeconds: 60,
		IntervalSeconds:    10,
		TimeoutSeconds:     5,
	}.SetPath("/health").SetPortIndex(0).SetMaxConsecutiveFailures(3)
	app.AddHealthCheck(hc)
	if cfg.BinaryURL != "" {
		app.AddFetchURIs(marathon.Fetch{URI: cfg.BinaryURL, Executable: true})
	}
	app.EmptyEnvs()
	for k, v := range cfg.Env {
		app.AddEnv(k, v)
	}
	app.AddLabel("tiltai.version", version.Get().Version)
	grace := 30.0 // the scheduler drains its HTTP API and state writes
	app.TaskKillGracePeriodSeconds = &grace
	return app
}
