package scheduler

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/mesossession"
)

// Config configures a Scheduler. Zero values take the defaults noted.
type Config struct {
	// Master finds the leading Mesos master (required).
	Master MasterSource
	// FrameworkName is the framework's name in Mesos (default "tiltai").
	FrameworkName string
	// FrameworkID restores a lost framework ID into an empty store (the
	// recovery when the store was lost while tasks run). It is refused if
	// the store holds a different one.
	FrameworkID string
	// Role to register in (default "*").
	Role string
	// User that tasks run as (default: the user the scheduler runs as).
	User string
	// Principal and Secret authenticate the framework (HTTP Basic). The
	// secret is never logged or shown.
	Principal string
	Secret    string
	// TLS is used when the master URL is https (nil: system roots).
	TLS *tls.Config
	// FailoverTimeout keeps tasks running while the scheduler is away
	// (default one week, as frameworks use).
	FailoverTimeout time.Duration
	// Checkpoint asks agents to checkpoint, so tasks survive agent restarts.
	Checkpoint bool
	// Codec of the scheduler API: "protobuf" (default) or "json".
	Codec string

	// Listen is the scheduler's HTTP API address (default 127.0.0.1:7070).
	Listen string
	// Advertise is the host agents use to fetch the executor binary from
	// this scheduler (default: the host of Listen, or this host's name
	// when Listen is a wildcard).
	Advertise string
	// APIToken, when set, is required (Bearer) on write endpoints.
	APIToken string
	// OpenReads allows reads without the token even when one is set
	// (default: reads need it too when a token is set).
	OpenReads bool

	// Store keeps the state (required).
	Store Store
	// ExecutorBinary is the tiltai binary served to agents as the executor
	// (default: this process's executable).
	ExecutorBinary string
	// ExecutorCPUs and ExecutorMem are what each task's executor takes on
	// top of the task (defaults 0.01 and 16 MiB).
	ExecutorCPUs float64
	ExecutorMem  float64

	// DrainTimeout bounds the wait for upstream acknowledgements before a
	// retired task is killed anyway (default 30s).
	DrainTimeout time.Duration
	// ResendMin and ResendMax bound the backoff of link-table resends to an
	// executor that has not acknowledged (defaults 250ms and 5s).
	ResendMin time.Duration
	ResendMax time.Duration
	// AntiEntropy is the period of re-sending every task its current table
	// (default 30s).
	AntiEntropy time.Duration
	// ReconcileInterval is the period of implicit reconciliation (default
	// 10m).
	ReconcileInterval time.Duration
	// UnreachableReconcile is how often tasks on unreachable agents are
	// reconciled explicitly: Mesos does not say when such an agent comes
	// back, and a task that reappears must be killed soon (default 30s).
	UnreachableReconcile time.Duration
	// StagingReconcile: a task staging this long is reconciled explicitly,
	// in case its launch never reached the master (default 60s).
	StagingReconcile time.Duration
	// KillRetry is how often a KILL is repeated while the task lives
	// (default 30s).
	KillRetry time.Duration
	// RestartReset: a service's crash backoff resets once a task launched
	// after its last failure has been running this long (default 10s).
	RestartReset time.Duration
	// Refuse filters declined offers when nothing waits for
	// resources (default 30s); offers that could not fit a waiting task are
	// refused for 1s.
	Refuse time.Duration

	// SubscribeBackoffMin and Max bound the re-subscription backoff
	// (defaults 500ms and 15s).
	SubscribeBackoffMin time.Duration
	SubscribeBackoffMax time.Duration
	// MissedHeartbeats before the subscription is presumed dead (default 3).
	MissedHeartbeats int
	// HeartbeatFallback is the heartbeat interval assumed until SUBSCRIBED
	// says otherwise (default 15s).
	HeartbeatFallback time.Duration
	// CallTimeout bounds one call to the master (default 10s).
	CallTimeout time.Duration

	// MaxTasks bounds the tasks one spec may ask for, summed over its
	// services (default linkspec.DefaultMaxTasks): every task costs the
	// scheduler memory (docs/operations.md has the figure), and a spec
	// above it is refused with the located problem. A stored spec above it
	// still loads, with a warning.
	MaxTasks int
	// DockerRegistry is where the agents pull images from (their
	// --docker_registry: a directory of `docker save` archives or a
	// registry URL). With it, a service may name an image and no command:
	// the scheduler reads the image's ENTRYPOINT and CMD from there.
	DockerRegistry string

	// Logger receives the scheduler's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests pass their own.
	Now func() time.Time

	// parseSlots is how many specs are parsed at once (default 2);
	// parseWait how long a submission waits for a slot before ErrBusy
	// (default 2s). Unexported: tests tune them.
	parseSlots int
	parseWait  time.Duration

	// readHeaderTimeout and readTimeout bound how long the API waits for a
	// request's headers (default 10s) and for all of it (default 30s), so a
	// client that sends slowly cannot hold a connection (docs/reliability.md
	// B3). Unexported: tests shorten them.
	readHeaderTimeout time.Duration
	readTimeout       time.Duration

	// eventQueue is how many events each GET /v1/events client may have
	// unsent before the oldest are dropped (default 1024; docs/reliability.md
	// F22). Unexported: tests shrink it.
	eventQueue int

	// wrapCaller, when set, wraps the caller the outbox makes its calls
	// with (tests: a fake that fails or stops calls around the real one).
	wrapCaller func(mesossession.Caller) mesossession.Caller
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if d.FrameworkName == "" {
		d.FrameworkName = "tiltai"
	}
	if d.Role == "" {
		d.Role = "*"
	}
	if d.Codec == "" {
		d.Codec = "protobuf"
	}
	if d.Listen == "" {
		d.Listen = "127.0.0.1:7070"
	}
	def(&d.FailoverTimeout, 7*24*time.Hour)
	if d.ExecutorCPUs == 0 {
		d.ExecutorCPUs = 0.01
	}
	if d.ExecutorMem == 0 {
		d.ExecutorMem = 16
	}
	def(&d.DrainTimeout, 30*time.Second)
	def(&d.ResendMin, 250*time.Millisecond)
	def(&d.ResendMax, 5*time.Second)
	def(&d.AntiEntropy, 30*time.Second)
	def(&d.ReconcileInterval, 10*time.Minute)
	def(&d.KillRetry, 30*time.Second)
	def(&d.UnreachableReconcile, 30*time.Second)
	def(&d.StagingReconcile, 60*time.Second)
	def(&d.RestartReset, 10*time.Second)
	def(&d.Refuse, 30*time.Second)
	def(&d.SubscribeBackoffMin, 500*time.Millisecond)
	def(&d.SubscribeBackoffMax, 15*time.Second)
	def(&d.HeartbeatFallback, 15*time.Second)
	def(&d.CallTimeout, 10*time.Second)
	if d.MaxTasks == 0 {
		d.MaxTasks = linkspec.DefaultMaxTasks
	}
	if d.parseSlots == 0 {
		d.parseSlots = 2
	}
	def(&d.parseWait, 2*time.Second)
	def(&d.readHeaderTimeout, 10*time.Second)
	def(&d.readTimeout, 30*time.Second)
	if d.eventQueue == 0 {
		d.eventQueue = 1024
	}
	if d.MissedHeartbeats == 0 {
		d.MissedHeartbeats = 3
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// coreConfig is what the machine needs of the configuration (defaults
// applied).
func (c *Config) coreConfig() core.Config {
	return core.Config{
		ExecutorCPUs: c.ExecutorCPUs, ExecutorMem: c.ExecutorMem,
		DrainTimeout: c.DrainTimeout, ResendMin: c.ResendMin, ResendMax: c.ResendMax,
		AntiEntropy: c.AntiEntropy, ReconcileInterval: c.ReconcileInterval,
		UnreachableReconcile: c.UnreachableReconcile, StagingReconcile: c.StagingReconcile,
		KillRetry: c.KillRetry, RestartReset: c.RestartReset, Refuse: c.Refuse,
	}
}

// Validate lists every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Master == nil {
		errs = append(errs, errors.New("no Mesos master: set --master (host:port, http(s)://host:port or zk://host:port/mesos) or MESOS_MASTER"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("no state store: set --state FILE or --zk"))
	}
	if (c.Principal == "") != (c.Secret == "") {
		errs = append(errs, errors.New("framework authentication needs both a principal and a secret"))
	}
	if c.Codec != "" && c.Codec != "protobuf" && c.Codec != "json" {
		errs = append(errs, fmt.Errorf("codec %q: use protobuf or json", c.Codec))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen address %q: %v", c.Listen, err))
		}
	}
	if c.MaxTasks < 0 {
		errs = append(errs, fmt.Errorf("max tasks %d: give a positive number (default %d)", c.MaxTasks, linkspec.DefaultMaxTasks))
	}
	if c.FailoverTimeout < 0 {
		errs = append(errs, errors.New("failover timeout must not be negative"))
	}
	return errors.Join(errs...)
}
