package executor

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// The environment a Mesos agent gives an executor (Mesos 1.11, see
// docs/executor.md).
const (
	EnvFrameworkID            = "MESOS_FRAMEWORK_ID"
	EnvExecutorID             = "MESOS_EXECUTOR_ID"
	EnvDirectory              = "MESOS_DIRECTORY"
	EnvSandbox                = "MESOS_SANDBOX"
	EnvAgentEndpoint          = "MESOS_AGENT_ENDPOINT"
	EnvShutdownGracePeriod    = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"
	EnvCheckpoint             = "MESOS_CHECKPOINT"
	EnvRecoveryTimeout        = "MESOS_RECOVERY_TIMEOUT"
	EnvSubscriptionBackoffMax = "MESOS_SUBSCRIPTION_BACKOFF_MAX"
	EnvAuthToken              = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
	EnvAgentID                = "MESOS_SLAVE_ID"
)

// Defaults of the Tiltai-specific settings.
const (
	DefaultStatusInterval = 3 * time.Second
	DefaultAckTimeout     = 15 * time.Second
	DefaultCallTimeout    = 10 * time.Second
	// initialSubscribeTimeout bounds the first subscription when the framework
	// does not checkpoint (there is no MESOS_RECOVERY_TIMEOUT then); the agent
	// kills an executor that has not subscribed by its registration timeout
	// (1 minute by default) anyway.
	initialSubscribeTimeout = time.Minute
	// defaultBackoffMax applies when MESOS_SUBSCRIPTION_BACKOFF_MAX is absent.
	defaultBackoffMax = 2 * time.Second
)

// Secret is a string that never shows in logs or formatted output.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Config is everything the executor needs: the agent's MESOS_* environment
// and Tiltai's own settings.
type Config struct {
	FrameworkID string
	ExecutorID  string
	// AgentID is MESOS_SLAVE_ID, for logs only (may be empty).
	AgentID string
	// Directory is the sandbox on the host (MESOS_DIRECTORY); Sandbox is the
	// same as seen inside the container (MESOS_SANDBOX). Without a container
	// image they are equal; the executor works in Sandbox.
	Directory string
	Sandbox   string
	// AgentEndpoint is the agent's host:port (MESOS_AGENT_ENDPOINT).
	AgentEndpoint string
	// ShutdownGracePeriod is how long the agent waits after SHUTDOWN before it
	// destroys the executor.
	ShutdownGracePeriod time.Duration
	// Checkpoint: the framework checkpoints, so the executor survives agent
	// restarts and re-subscribes for RecoveryTimeout with backoff capped at
	// SubscriptionBackoffMax. Without it, losing the agent ends the executor.
	Checkpoint             bool
	RecoveryTimeout        time.Duration
	SubscriptionBackoffMax time.Duration
	// AuthToken is MESOS_EXECUTOR_AUTHENTICATION_TOKEN, sent as a Bearer token.
	AuthToken Secret

	// StatusInterval is the period of the status message to the scheduler
	// (default 3s).
	StatusInterval time.Duration
	// AckTimeout bounds the wait for the agent to acknowledge the terminal
	// status update before the executor exits anyway (default 15s).
	AckTimeout time.Duration
	// CallTimeout bounds one call to the agent (default 10s).
	CallTimeout time.Duration
	// Executable is the tiltai binary the service finds as `tiltai` on its
	// PATH (default: this process's executable).
	Executable string
	// Environ is the environment the service's is built on (default
	// os.Environ(): what the agent gave the executor).
	Environ []string
	// Logger receives the executor's logs (default: discarded).
	Logger *slog.Logger
}

// ConfigFromEnv reads the MESOS_* environment through getenv (os.Getenv) and
// reports every missing or malformed variable in one error.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var (
		missing []string
		bad     []error
		c       Config
	)
	req := func(name string) string {
		v := getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	dur := func(name string, required bool) time.Duration {
		v := getenv(name)
		if v == "" {
			if required {
				missing = append(missing, name)
			}
			return 0
		}
		d, err := ParseMesosDuration(v)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	c.FrameworkID = req(EnvFrameworkID)
	c.ExecutorID = req(EnvExecutorID)
	c.Directory = req(EnvDirectory)
	c.Sandbox = req(EnvSandbox)
	c.AgentEndpoint = req(EnvAgentEndpoint)
	c.ShutdownGracePeriod = dur(EnvShutdownGracePeriod, true)
	c.AgentID = getenv(EnvAgentID)
	c.AuthToken = Secret(getenv(EnvAuthToken))
	if v := getenv(EnvCheckpoint); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %q is not a boolean (Mesos writes 1 or 0)", EnvCheckpoint, v))
		}
		c.Checkpoint = b
	}
	// Mesos sets these only for checkpointing frameworks; they are required
	// then, and honoured (but optional) otherwise.
	c.RecoveryTimeout = dur(EnvRecoveryTimeout, c.Checkpoint)
	c.SubscriptionBackoffMax = dur(EnvSubscriptionBackoffMax, c.Checkpoint)
	if c.AgentEndpoint != "" {
		if _, port, err := net.SplitHostPort(c.AgentEndpoint); err != nil || port == "" {
			bad = append(bad, fmt.Errorf("%s: %q is not host:port", EnvAgentEndpoint, c.AgentEndpoint))
		}
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing %s", strings.Join(missing, ", ")))
	}
	errs = append(errs, bad...)
	if len(errs) > 0 {
		return Config{}, &EnvError{Problems: errs}
	}
	return c, nil
}

// EnvError lists every problem with the executor's environment.
type EnvError struct{ Problems []error }

func (e *EnvError) Error() string {
	var b strings.Builder
	b.WriteString("incomplete Mesos executor environment (tiltai executor is started by a Mesos agent, which sets these): ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *EnvError) Unwrap() []error { return e.Problems }

// withDefaults fills in the Tiltai settings left zero.
func (c Config) withDefaults() Config {
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.SubscriptionBackoffMax <= 0 {
		c.SubscriptionBackoffMax = defaultBackoffMax
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Sandbox == "" {
		c.Sandbox = c.Directory
	}
	return c
}

// Validate lists every problem with c.
func (c Config) Validate() error {
	var errs []error
	need := func(v, what string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", what))
		}
	}
	need(c.FrameworkID, "framework id")
	need(c.ExecutorID, "executor id")
	need(c.AgentEndpoint, "agent endpoint")
	if c.Sandbox == "" && c.Directory == "" {
		errs = append(errs, errors.New("sandbox directory is empty"))
	}
	if c.Checkpoint && c.RecoveryTimeout <= 0 {
		errs = append(errs, errors.New("checkpointing needs a positive recovery timeout"))
	}
	if c.StatusInterval < 0 || c.AckTimeout < 0 || c.CallTimeout < 0 {
		errs = append(errs, errors.New("status interval, ack timeout and call timeout must not be negative"))
	}
	return errors.Join(errs...)
}

var mesosUnits = []struct {
	name string
	d    time.Duration
}{
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"ms", time.Millisecond},
	{"secs", time.Second}, {"mins", time.Minute}, {"hrs", time.Hour},
	{"days", 24 * time.Hour}, {"weeks", 7 * 24 * time.Hour},
}

// ParseMesosDuration parses a duration as Mesos (stout) writes it: a
// non-negative decimal number and a unit, no space: "5secs", "15mins",
// "250ms", "1.5hrs". Units: ns, us, ms, secs, mins, hrs, days, weeks.
func ParseMesosDuration(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	if num == "" {
		return 0, fmt.Errorf("%.40q is not a Mesos duration (want a number and a unit, e.g. 5secs or 15mins)", s)
	}
	var per time.Duration
	for _, u := range mesosUnits {
		if u.name == unit {
			per = u.d
		}
	}
	if per == 0 {
		return 0, fmt.Errorf("%.40q has unit %.20q (want ns, us, ms, secs, mins, hrs, days or weeks)", s, unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/int64(per) {
			return 0, fmt.Errorf("%.40q is out of range", s)
		}
		return time.Duration(n) * per, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%.40q: %q is not a number", s, num)
	}
	v := f * float64(per)
	if v >= math.MaxInt64 || math.IsNaN(v) {
		return 0, fmt.Errorf("%.40q is out of range", s)
	}
	return time.Duration(v), nil
}

// FormatMesosDuration writes d the way Mesos does (the inverse of
// ParseMesosDuration for whole units): 5secs, 15mins, 250ms.
func FormatMesosDuration(d time.Duration) string {
	for i := len(mesosUnits) - 1; i >= 0; i-- {
		u := mesosUnits[i]
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
