package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/containerizer"
	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Config is what one agent is started with: the cluster's settings
// that agents use, this agent's own identity, and how it reaches the
// master, other agents and its executors.
type Config struct {
	// Hostname is the cluster's configured hostname ("" for the default),
	// shown as master_hostname.
	Hostname string
	// ExecutorAuth, when set, gives executors a token and checks it.
	ExecutorAuth ExecutorAuth
	// Timings, as in the cluster's Config.
	ExecutorHeartbeatInterval     time.Duration
	ExecutorRegistrationTimeout   time.Duration
	ExecutorReregistrationTimeout time.Duration
	ExecutorShutdownGracePeriod   time.Duration
	RecoveryTimeout               time.Duration
	SubscriptionBackoffMax        time.Duration
	StatusUpdateRetry             time.Duration
	Logger                        *slog.Logger

	// Index, AgentHostname, IP, Port, Attributes, WorkDir and Total are
	// this agent's.
	Index         int
	AgentHostname string
	IP            string
	Port          int
	Attributes    []mesos.Attribute
	WorkDir       string
	Total         res.Resources
	// Files is what /files serves, kept by the caller across restarts as
	// the sandboxes are.
	Files *FileTable

	// ToMaster posts to the current master; false if none.
	ToMaster func(any) bool
	// Dial reaches agents' HTTP APIs (for the command executor).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Launcher starts custom executors, CmdLaunch the built-in command
	// executor; Images (nil without images) and ImageLaunch run executors
	// in container images.
	Launcher, CmdLaunch Launcher
	Images              *containerizer.Store
	ImageLaunch         Launcher
	// ExecCtx bounds every executor: they outlive an agent's restart.
	ExecCtx    context.Context
	HTTPClient *http.Client
}

// ExecutorAuth is the seam for executor authentication.
type ExecutorAuth interface {
	// Token returns the MESOS_EXECUTOR_AUTHENTICATION_TOKEN for an executor.
	Token(frameworkID, executorID string) (string, error)
	// Authenticate checks a call of the executor API ("" ids for a call
	// that could not be parsed); a non-nil error answers 401.
	Authenticate(authorization, frameworkID, executorID string) error
}

// New makes an agent and recovers its checkpointed executors; Run
// starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Files == nil {
		cfg.Files = NewFileTable()
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "agent", "agent_index", cfg.Index), index: cfg.Index,
		toMaster: cfg.ToMaster, dial: cfg.Dial, launcher: cfg.Launcher, cmdLaunch: cfg.CmdLaunch, execCtx: cfg.ExecCtx,
		images: cfg.Images, imageLaunch: cfg.ImageLaunch,
		httpClient: cfg.HTTPClient, box: link.NewMailbox(), hostname: cfg.AgentHostname, ip: cfg.IP, attributes: cfg.Attributes, port: cfg.Port,
		workDir: cfg.WorkDir, total: cfg.Total, started: time.Now(), done: make(chan struct{}),
		frameworks: map[string]*agentFramework{}, dirty: map[*agentExecutor]bool{}, files: cfg.Files,
	}
	if err := a.recover(); err != nil {
		return nil, err
	}
	return a, nil
}

// Handler is the agent's HTTP API; ctx ends its streams.
func (a *Agent) Handler(ctx context.Context) http.Handler {
	h := &agentHTTP{a: a, ctx: ctx}
	return h.routes()
}

// Done is closed when Run has returned.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Wait waits for the agent's launch and wait goroutines, after Run.
func (a *Agent) Wait() { a.wg.Wait() }

// MasterChanged tells the agent a (new) master runs: it registers again.
func (a *Agent) MasterChanged() { a.Post(masterChanged{}) }

// KillAll kills every executor and waits until they are gone (or the agent
// stopped).
func (a *Agent) KillAll() {
	done := make(chan struct{})
	if a.Post(killAll{done: done}) {
		select {
		case <-done:
		case <-a.done:
		}
	}
}

// Refused reports whether the master told the agent to shut down (it
// registers no more, as a Mesos agent exits); false once it stopped.
func (a *Agent) Refused() bool {
	got := make(chan bool, 1)
	if !a.Post(agentFunc(func(a *Agent) { got <- a.refused })) {
		return false
	}
	select {
	case r := <-got:
		return r
	case <-a.done:
		return false
	}
}
