package master

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tiltai/tiltai/localmesos/internal/link"
)

// Config is what the master is started with: the cluster's settings
// that the master uses and its own identity.
type Config struct {
	// Timings and limits, as in the cluster's Config.
	HeartbeatInterval      time.Duration
	AllocationInterval     time.Duration
	DefaultRefuse          time.Duration
	AgentRemovalTimeout    time.Duration
	OfferTimeout           time.Duration
	MaxCompletedTasks      int
	MaxCompletedFrameworks int
	// WorkDir is shown in /flags.
	WorkDir string
	// SchedulerAuth, when set, authenticates scheduler API calls.
	SchedulerAuth SchedulerAuth
	Logger        *slog.Logger

	// ID, Hostname, IP and Port are the master's (MasterInfo).
	ID       string
	Hostname string
	IP       string
	Port     int
	// Faults is the cluster's fault injector.
	Faults *Faults
}

// SchedulerAuth is the seam for framework authentication.
type SchedulerAuth interface {
	// Authenticate checks the Authorization header of a scheduler call and
	// returns the principal; a non-nil error answers 401.
	Authenticate(authorization string) (principal string, err error)
}

// New makes a master with no frameworks and no agents; Run starts
// it.
func New(cfg Config) *Master {
	return &Master{
		cfg: cfg, log: cfg.Logger.With("component", "master"), faults: cfg.Faults, box: link.NewMailbox(),
		id: cfg.ID, hostname: cfg.Hostname, ip: cfg.IP, port: cfg.Port, started: time.Now(),
		frameworks: map[string]*framework{}, removed: map[string]bool{}, agents: map[string]*agentRec{},
		offers: map[string]*offer{}, timers: map[*time.Timer]struct{}{}, done: make(chan struct{}),
		maint: maintState{machines: map[machineKey]*machineRec{}, inverse: map[string]*inverseOffer{}, refused: map[string]map[string]time.Time{}},
	}
}

// Post queues a message (of package link) for the master.
func (m *Master) Post(msg any) bool { return m.box.Post(msg) }

// Handler is the master's HTTP API; ctx ends its streams.
func (m *Master) Handler(ctx context.Context) http.Handler {
	h := &masterHTTP{m: m, faults: m.faults, auth: m.cfg.SchedulerAuth, ctx: ctx}
	return h.routes()
}
