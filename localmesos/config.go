package localmesos

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/containerizer"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Config configures a cluster. Zero values take the Mesos defaults noted.
type Config struct {
	// Listen is the master's address, e.g. "127.0.0.1:5050" (default
	// "127.0.0.1:0": a free port).
	Listen string
	// Hostname is what the master and agents advertise (offers' hostname,
	// the 307 Location). Default: the host part of Listen, so that tasks'
	// host:port from offers are reachable on this machine.
	Hostname string
	// Agents is how many agents to run (default 1).
	Agents int
	// AgentListen is the host agents listen on, each on a free port
	// (default: the host of Listen; see AgentAddresses).
	AgentListen string
	// AgentAddresses gives agent i its own IP to listen on and advertise
	// (its hostname too, unless Hostname is set), so that each agent is a
	// machine of its own for placement by hostname and for maintenance.
	// Default with several agents, a loopback Listen host and no
	// AgentListen: 127.0.0.2, 127.0.0.3, … (all of 127/8 is local on
	// Linux; tasks that bind 0.0.0.0 or their agent's address are reached
	// there).
	AgentAddresses []string
	// AgentAttributes are agents' attributes in Mesos' --attributes syntax
	// ("rack:r1;zone:a;level:2;slots:[1-4]"): one entry for every agent,
	// or one per agent in order.
	AgentAttributes []string
	// Resources of every agent in the agent --resources syntax (default
	// "cpus:4;mem:4096;disk:10000;ports:[31000-32000]").
	Resources string
	// AgentResources overrides Resources per agent (index i for agent i).
	AgentResources []string
	// SplitPorts gives each agent a disjoint slice of the "ports" ranges of
	// Resources, so several agents on one host never hand out the same
	// port.
	SplitPorts bool
	// WorkDir holds agents' sandboxes and checkpoints (default: a temporary
	// directory removed by Close).
	WorkDir string

	// HeartbeatInterval of scheduler streams (default 15s).
	HeartbeatInterval time.Duration
	// OfferTimeout rescinds unused offers after this long (0: never, the
	// Mesos default).
	OfferTimeout time.Duration
	// AllocationInterval is the period of the offer pass (default 1s, as
	// Mesos); offers are also made at once when resources free up.
	AllocationInterval time.Duration
	// DefaultRefuse is how long declined or unused resources are not
	// re-offered to the same framework when the call has no filters or a
	// negative refuse_seconds (default 5s, Filters.refuse_seconds' default).
	DefaultRefuse time.Duration

	// AgentRemovalTimeout: an agent gone (stopped) this long is removed:
	// its tasks become TASK_LOST (TASK_UNREACHABLE for partition-aware
	// frameworks). Default 75s (Mesos: agent_ping_timeout 15s × 5 pings).
	AgentRemovalTimeout time.Duration

	// ExecutorRegistrationTimeout: an executor not subscribed by then is
	// killed (default 1m).
	ExecutorRegistrationTimeout time.Duration
	// ExecutorReregistrationTimeout: after an agent restart, executors have
	// this long to re-subscribe (default 2s).
	ExecutorReregistrationTimeout time.Duration
	// ExecutorShutdownGracePeriod is the default grace between SHUTDOWN and
	// the kill (default 5s).
	ExecutorShutdownGracePeriod time.Duration
	// RecoveryTimeout and SubscriptionBackoffMax are handed to executors of
	// checkpointing frameworks (defaults 15m and 2s).
	RecoveryTimeout        time.Duration
	SubscriptionBackoffMax time.Duration
	// StatusUpdateRetry is the first retry interval of an unacknowledged
	// status update; it doubles up to 10 minutes (default 10s).
	StatusUpdateRetry time.Duration
	// ExecutorHeartbeatInterval of executor streams (default 30m, Mesos'
	// DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL in src/slave/constants.hpp; the
	// agent's --http_heartbeat_interval of 30s is for operator streams).
	ExecutorHeartbeatInterval time.Duration

	// Launcher starts executors (default: real processes).
	Launcher Launcher
	// ExecutorAuth, when set, gives executors a token and checks it on the
	// executor API (the seam for agent authentication).
	ExecutorAuth ExecutorAuth
	// SchedulerAuth, when set, authenticates scheduler API calls (the seam
	// for framework authentication).
	SchedulerAuth SchedulerAuth

	// MaxCompletedTasks per framework and MaxCompletedFrameworks kept for
	// /state (defaults 1000 and 50, as Mesos).
	MaxCompletedTasks      int
	MaxCompletedFrameworks int
	// FaultSeed seeds the random choices of Faults (0: time-based).
	FaultSeed int64
	// Logger receives the cluster's logs (default: discarded).
	Logger *slog.Logger

	// agentIPs and agentHostnames are each agent's, set by withDefaults.
	agentIPs, agentHostnames []string
	// ImageProviders is mesos-agent's --image_providers: "docker" runs
	// executors whose ContainerInfo (type MESOS) has a Docker image in
	// that image (Linux, as root); "" refuses images.
	ImageProviders string
	// DockerRegistry is --docker_registry: a directory of `docker save`
	// tarballs named <name>.tar, or an http(s):// Docker Registry v2 URL.
	DockerRegistry string
	// DockerStoreDir is --docker_store_dir, the layer cache shared by every
	// agent and task (default <WorkDir>/store/docker).
	DockerStoreDir string
	// Isolation is --isolation; with images it must include
	// "filesystem/linux,docker/runtime" (default, when images are on).
	Isolation string
}

// ExecutorAuth is the seam for executor authentication on the agent.
type ExecutorAuth interface {
	// Token returns the MESOS_EXECUTOR_AUTHENTICATION_TOKEN for an executor.
	Token(frameworkID, executorID string) (string, error)
	// Authenticate checks a call of the executor API ("" ids for a call
	// that could not be parsed); a non-nil error answers 401.
	Authenticate(authorization, frameworkID, executorID string) error
}

// SchedulerAuth is the seam for framework authentication on the master.
type SchedulerAuth interface {
	// Authenticate checks the Authorization header of a scheduler call and
	// returns the principal; a non-nil error answers 401.
	Authenticate(authorization string) (principal string, err error)
}

const defaultResources = "cpus:4;mem:4096;disk:10000;ports:[31000-32000]"

// withDefaults returns the config with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	if c.Agents == 0 {
		c.Agents = 1
	}
	if c.agentIPs == nil {
		addrs := c.AgentAddresses
		if len(addrs) == 0 && c.AgentListen == "" && host == "127.0.0.1" && c.Agents > 1 && c.Agents <= 250 {
			for i := range c.Agents {
				addrs = append(addrs, fmt.Sprintf("127.0.0.%d", i+2))
			}
		}
		listen := c.AgentListen
		if listen == "" {
			listen = host
		}
		for i := range c.Agents {
			ip := listen
			if i < len(addrs) && addrs[i] != "" {
				ip = addrs[i]
			}
			name := c.Hostname
			if name == "" {
				name = ip
			}
			c.agentIPs, c.agentHostnames = append(c.agentIPs, ip), append(c.agentHostnames, name)
		}
	}
	if c.Hostname == "" {
		c.Hostname = host
	}
	if c.AgentListen == "" {
		c.AgentListen = host
	}
	if c.Resources == "" {
		c.Resources = defaultResources
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, 15*time.Second)
	def(&c.AllocationInterval, time.Second)
	def(&c.DefaultRefuse, 5*time.Second)
	def(&c.ExecutorRegistrationTimeout, time.Minute)
	def(&c.AgentRemovalTimeout, 75*time.Second)
	def(&c.ExecutorReregistrationTimeout, 2*time.Second)
	def(&c.ExecutorShutdownGracePeriod, 5*time.Second)
	def(&c.RecoveryTimeout, 15*time.Minute)
	def(&c.SubscriptionBackoffMax, 2*time.Second)
	def(&c.StatusUpdateRetry, 10*time.Second)
	def(&c.ExecutorHeartbeatInterval, 30*time.Minute)
	if c.MaxCompletedTasks == 0 {
		c.MaxCompletedTasks = 1000
	}
	if c.MaxCompletedFrameworks == 0 {
		c.MaxCompletedFrameworks = 50
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ImageProviders != "" && c.Isolation == "" {
		c.Isolation = "filesystem/linux,docker/runtime"
	}
	return c
}

// Validate lists every problem of the configuration at once.
func (c Config) Validate() error {
	var problems []string
	if c.Agents < 0 {
		problems = append(problems, fmt.Sprintf("agents must not be negative (got %d)", c.Agents))
	}
	if len(c.AgentResources) > c.Agents && c.Agents > 0 {
		problems = append(problems, fmt.Sprintf("%d agent resource overrides for %d agents", len(c.AgentResources), c.Agents))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			problems = append(problems, fmt.Sprintf("listen address %q: %v", c.Listen, err))
		}
	}
	if _, err := res.Parse(c.withDefaults().Resources); err != nil {
		problems = append(problems, err.Error())
	}
	for i, r := range c.AgentResources {
		if _, err := res.Parse(r); err != nil {
			problems = append(problems, fmt.Sprintf("agent %d: %v", i, err))
		}
	}
	if n := len(c.AgentAttributes); n > 1 && n != max(c.Agents, 1) {
		problems = append(problems, fmt.Sprintf("%d agent attributes for %d agents (give one for all, or one per agent)", n, max(c.Agents, 1)))
	}
	for i, a := range c.AgentAttributes {
		if _, err := ParseAttributes(a); err != nil {
			problems = append(problems, fmt.Sprintf("agent %d attributes: %v", i, err))
		}
	}
	if len(c.AgentAddresses) > max(c.Agents, 1) {
		problems = append(problems, fmt.Sprintf("%d agent addresses for %d agents", len(c.AgentAddresses), max(c.Agents, 1)))
	}
	for i, a := range c.AgentAddresses {
		if net.ParseIP(a) == nil {
			problems = append(problems, fmt.Sprintf("agent %d address %q is not an IP address", i, a))
		}
	}
	for name, d := range map[string]time.Duration{
		"heartbeat interval": c.HeartbeatInterval, "offer timeout": c.OfferTimeout,
		"allocation interval": c.AllocationInterval, "status update retry": c.StatusUpdateRetry,
		"executor shutdown grace period": c.ExecutorShutdownGracePeriod,
	} {
		if d < 0 {
			problems = append(problems, fmt.Sprintf("%s must not be negative (got %v)", name, d))
		}
	}
	problems = append(problems, c.withDefaults().validateImageFlags()...)
	if len(problems) > 0 {
		return errors.New("invalid localmesos config: " + strings.Join(problems, "; "))
	}
	return nil
}

// agentAttributes are agent i's attributes (validated by Validate).
func (c Config) agentAttributes(i int) []mesos.Attribute {
	var s string
	switch {
	case len(c.AgentAttributes) == 1:
		s = c.AgentAttributes[0]
	case i < len(c.AgentAttributes):
		s = c.AgentAttributes[i]
	}
	attrs, _ := ParseAttributes(s)
	return attrs
}

// agentResources computes each agent's total resources.
func (c Config) agentResources() ([]res.Resources, error) {
	base, err := res.Parse(c.Resources)
	if err != nil {
		return nil, err
	}
	out := make([]res.Resources, c.Agents)
	for i := range out {
		if i < len(c.AgentResources) && c.AgentResources[i] != "" {
			if out[i], err = res.Parse(c.AgentResources[i]); err != nil {
				return nil, err
			}
			continue
		}
		out[i] = base.Clone()
	}
	if !c.SplitPorts || c.Agents < 2 {
		return out, nil
	}
	// Split the base port ranges into Agents nearly equal parts.
	var total uint64
	for _, r := range base.Ranges("ports") {
		total += r.End - r.Begin + 1
	}
	per := total / uint64(c.Agents)
	if per == 0 {
		return nil, fmt.Errorf("cannot split %d ports among %d agents", total, c.Agents)
	}
	idx := 0
	var cur []res.Range
	var have uint64
	for _, r := range base.Ranges("ports") {
		b := r.Begin
		for b <= r.End {
			need := per - have
			e := b + need - 1
			if e > r.End {
				e = r.End
			}
			cur = append(cur, res.Range{Begin: b, End: e})
			have += e - b + 1
			b = e + 1
			if have == per {
				if idx < len(out) && (idx >= len(c.AgentResources) || c.AgentResources[idx] == "") {
					out[idx] = withPorts(out[idx], cur)
				}
				idx++
				cur, have = nil, 0
				if idx == c.Agents {
					return out, nil
				}
			}
		}
	}
	return out, nil
}

func withPorts(r res.Resources, ports []res.Range) res.Resources {
	cleared := r.Sub(onlyPorts(r))
	cleared.AddRanges("ports", ports...)
	return cleared
}

func onlyPorts(r res.Resources) res.Resources {
	var p res.Resources
	p.AddRanges("ports", r.Ranges("ports")...)
	return p
}

// validateImageFlags checks the image flags as mesos-agent does at start.
func (c Config) validateImageFlags() []string {
	if c.ImageProviders == "" {
		return nil
	}
	var problems []string
	if c.ImageProviders != "docker" {
		problems = append(problems, fmt.Sprintf("image providers %q: only 'docker' is supported", c.ImageProviders))
	}
	if c.DockerRegistry == "" {
		problems = append(problems, "image providers 'docker' need a docker registry (a directory of `docker save` tarballs or an http(s):// Registry v2 URL)")
	}
	iso := map[string]bool{}
	for _, i := range strings.Split(c.Isolation, ",") {
		iso[strings.TrimSpace(i)] = true
	}
	for _, need := range []string{"filesystem/linux", "docker/runtime"} {
		if !iso[need] {
			problems = append(problems, fmt.Sprintf("image providers 'docker' need isolation %q (got %q)", need, c.Isolation))
		}
	}
	if runtime.GOOS != "linux" {
		problems = append(problems, "container images need Linux")
	} else if err := containerizer.Supported(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}
