package localmesos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tiltai/tiltai/internal/uuid"
	"github.com/tiltai/tiltai/localmesos/internal/agent"
	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/containerizer"
	"github.com/tiltai/tiltai/localmesos/internal/master"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// Cluster is a running master with its agents.
type Cluster struct {
	cfg       Config
	faults    *Faults
	launcher  Launcher
	cmdLaunch Launcher
	// images and imageLaunch run executors in container images
	// (nil without --image_providers).
	images      *containerizer.Store
	imageLaunch *ProcessLauncher
	// cmdTransport carries the built-in command executors' calls to their
	// agents in memory.
	cmdTransport *http.Transport
	client       *http.Client
	masterID     string
	ownsDir      bool

	// execCtx bounds every executor; cancelled last by Close.
	execCtx    context.Context
	execCancel context.CancelFunc

	mu      sync.Mutex // guards master and agents (the handles, not their state)
	master  *masterRun
	agents  []*agentRun
	addr    string
	closed  bool
	closeMu sync.Mutex
}

type masterRun struct {
	m      *master.Master
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type agentRun struct {
	a      *agent.Agent
	srv    *http.Server
	mem    *memListener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	port   int
	total  res.Resources
	files  *agent.FileTable // kept across restarts, as the sandboxes are
}

// New starts a master and cfg.Agents agents, and returns once every agent
// has registered. ctx bounds the start only.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	totals, err := cfg.agentResources()
	if err != nil {
		return nil, fmt.Errorf("cannot start localmesos: %w", err)
	}
	c := &Cluster{cfg: cfg, faults: master.NewFaults(cfg.FaultSeed), masterID: uuid.New().String(),
		client: &http.Client{Timeout: 5 * time.Minute}}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "localmesos-")
		if err != nil {
			return nil, fmt.Errorf("cannot create a work dir: %w", err)
		}
		c.cfg.WorkDir, c.ownsDir = dir, true
	} else if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create work dir %s: %w", cfg.WorkDir, err)
	}
	c.launcher = cfg.Launcher
	if c.launcher == nil {
		c.launcher = NewProcessLauncher()
	}
	if cfg.ImageProviders == "docker" {
		storeDir := cfg.DockerStoreDir
		if storeDir == "" {
			storeDir = filepath.Join(c.cfg.WorkDir, "store", "docker")
		}
		c.images = containerizer.NewStore(storeDir, cfg.DockerRegistry, containerizer.Limits{}, c.client)
		c.imageLaunch = NewProcessLauncher()
	}
	c.cmdTransport = &http.Transport{DialContext: c.DialAgent, MaxIdleConnsPerHost: 64}
	c.cmdLaunch = InProcess(agent.CommandExecutor(&http.Client{Transport: c.cmdTransport}, cfg.Logger.With("component", "command-executor")))
	c.execCtx, c.execCancel = context.WithCancel(context.Background())
	if err := c.StartMaster(); err != nil {
		c.abort()
		return nil, err
	}
	for i, total := range totals {
		ar, err := c.startAgent(i, total, 0, nil)
		if err != nil {
			c.abort()
			return nil, err
		}
		c.agents = append(c.agents, ar)
	}
	if err := c.WaitRegistered(ctx); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) abort() {
	_ = c.Close()
}

// MasterURL is the master's base URL, e.g. "http://127.0.0.1:5050".
func (c *Cluster) MasterURL() string { return "http://" + c.addr }

// SchedulerURL is the scheduler API endpoint.
func (c *Cluster) SchedulerURL() string { return c.MasterURL() + "/api/v1/scheduler" }

// Addr is the master's host:port.
func (c *Cluster) Addr() string { return c.addr }

// WorkDir is where sandboxes and checkpoints live.
func (c *Cluster) WorkDir() string { return c.cfg.WorkDir }

// Faults is the fault injector of this cluster.
func (c *Cluster) Faults() *Faults { return c.faults }

// AgentInfo describes one agent.
type AgentInfo struct {
	Index    int
	ID       string // "" until registered
	Hostname string
	Endpoint string // host:port of its HTTP API (MESOS_AGENT_ENDPOINT)
	Running  bool
	WorkDir  string
}

// Agents lists the agents.
func (c *Cluster) Agents() []AgentInfo {
	c.mu.Lock()
	runs := make([]*agent.Agent, len(c.agents))
	out := make([]AgentInfo, len(c.agents))
	for i, ar := range c.agents {
		out[i] = AgentInfo{Index: i, Hostname: c.cfg.agentHostnames[i], Endpoint: net.JoinHostPort(c.cfg.agentIPs[i], strconv.Itoa(ar.port)),
			Running: ar.a != nil, WorkDir: agentDir(c.cfg.WorkDir, i)}
		runs[i] = ar.a
	}
	c.mu.Unlock()
	// Asked outside the lock: an agent's loop takes it to reach the master.
	for i, a := range runs {
		if a != nil {
			out[i].ID = a.RegisteredID()
		}
	}
	return out
}

func agentDir(workDir string, i int) string { return filepath.Join(workDir, "agents", strconv.Itoa(i)) }

// toMaster posts a message to the running master, if any.
func (c *Cluster) toMaster(msg any) bool {
	c.mu.Lock()
	mr := c.master
	c.mu.Unlock()
	if mr == nil {
		return false
	}
	return mr.m.Post(msg)
}

// StartMaster starts the master on the configured address (after
// StopMaster: the same address again). Running agents re-register with it;
// frameworks re-subscribe with their ids, as after a Mesos master failover.
func (c *Cluster) StartMaster() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cannot start the master: the cluster is closed")
	}
	if c.master != nil {
		return errors.New("the master is already running")
	}
	listen := c.cfg.Listen
	if c.addr != "" {
		listen = c.addr
	}
	ln, err := listenRetry(listen)
	if err != nil {
		return fmt.Errorf("cannot start the master on %s: %w", listen, err)
	}
	c.addr = ln.Addr().String()
	host, portStr, _ := net.SplitHostPort(c.addr)
	port, _ := strconv.Atoi(portStr)
	ip := host
	if ip == "0.0.0.0" || ip == "::" || ip == "" {
		ip = "127.0.0.1"
	}
	cfg := c.cfg
	m := master.New(master.Config{
		HeartbeatInterval: cfg.HeartbeatInterval, AllocationInterval: cfg.AllocationInterval,
		DefaultRefuse: cfg.DefaultRefuse, AgentRemovalTimeout: cfg.AgentRemovalTimeout, OfferTimeout: cfg.OfferTimeout,
		MaxCompletedTasks: cfg.MaxCompletedTasks, MaxCompletedFrameworks: cfg.MaxCompletedFrameworks,
		WorkDir: cfg.WorkDir, SchedulerAuth: cfg.SchedulerAuth, Logger: cfg.Logger,
		ID: c.masterID, Hostname: cfg.Hostname, IP: ip, Port: port, Faults: c.faults,
	})
	ctx, cancel := context.WithCancel(context.Background())
	mr := &masterRun{m: m, cancel: cancel}
	mr.srv = &http.Server{Handler: m.Handler(ctx), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	mr.wg.Add(2)
	go func() { defer mr.wg.Done(); m.Run(ctx) }()
	go func() { defer mr.wg.Done(); _ = mr.srv.Serve(ln) }()
	c.master = mr
	for _, ar := range c.agents {
		if ar.a != nil {
			ar.a.MasterChanged()
		}
	}
	c.cfg.Logger.Info("master started", "address", c.addr, "master_id", c.masterID)
	return nil
}

// listenRetry binds addr, retrying briefly: the port of a master or agent
// that just stopped may still be held by the kernel for a moment.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopMaster stops the master: its streams end, its state is gone (as with
// Mesos' in-memory registry). Agents and executors keep running.
func (c *Cluster) StopMaster() {
	c.mu.Lock()
	mr := c.master
	c.master = nil
	c.mu.Unlock()
	if mr == nil {
		return
	}
	mr.cancel()
	_ = mr.srv.Close()
	mr.wg.Wait()
}

func (c *Cluster) startAgent(i int, total res.Resources, port int, files *agent.FileTable) (*agentRun, error) {
	if files == nil {
		files = agent.NewFileTable()
	}
	ln, err := listenRetry(net.JoinHostPort(c.cfg.agentIPs[i], strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("cannot start agent %d: %w", i, err)
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ = strconv.Atoi(portStr)
	cfg := c.cfg
	ac := agent.Config{
		Hostname: cfg.Hostname, ExecutorHeartbeatInterval: cfg.ExecutorHeartbeatInterval,
		ExecutorRegistrationTimeout: cfg.ExecutorRegistrationTimeout, ExecutorReregistrationTimeout: cfg.ExecutorReregistrationTimeout,
		ExecutorShutdownGracePeriod: cfg.ExecutorShutdownGracePeriod, RecoveryTimeout: cfg.RecoveryTimeout,
		SubscriptionBackoffMax: cfg.SubscriptionBackoffMax, StatusUpdateRetry: cfg.StatusUpdateRetry, Logger: cfg.Logger,
		Index: i, AgentHostname: cfg.agentHostnames[i], IP: cfg.agentIPs[i], Port: port, Attributes: cfg.agentAttributes(i),
		WorkDir: agentDir(cfg.WorkDir, i), Total: total, Files: files,
		ToMaster: c.toMaster, Dial: c.DialAgent, Launcher: c.launcher, CmdLaunch: c.cmdLaunch,
		ExecutorAuth: cfg.ExecutorAuth, ExecCtx: c.execCtx, HTTPClient: c.client,
	}
	if c.images != nil { // a nil *ProcessLauncher in the interface would not be nil
		ac.Images, ac.ImageLaunch = c.images, c.imageLaunch
	}
	a, err := agent.New(ac)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ar := &agentRun{a: a, cancel: cancel, port: port, total: total, files: files, mem: newMemListener(ln.Addr().String())}
	ar.srv = &http.Server{Handler: a.Handler(ctx), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	ar.wg.Add(3)
	go func() { defer ar.wg.Done(); a.Run(ctx) }()
	go func() { defer ar.wg.Done(); _ = ar.srv.Serve(ln) }()
	go func() { defer ar.wg.Done(); _ = ar.srv.Serve(ar.mem) }()
	return ar, nil
}

// DialAgent connects to an agent's HTTP API without a socket when addr is
// the endpoint of one of this cluster's agents (and through TCP
// otherwise). In-process executors use it (ExecutorSpec.Dial), so that
// thousands of them need no file descriptors.
func (c *Cluster) DialAgent(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	var mem *memListener
	for i, ar := range c.agents {
		if ar.a != nil && net.JoinHostPort(c.cfg.agentIPs[i], strconv.Itoa(ar.port)) == addr {
			mem = ar.mem
		}
	}
	c.mu.Unlock()
	if mem == nil {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return mem.dial(ctx)
}

// WaitRegistered waits until every running agent is registered with the
// running master.
func (c *Cluster) WaitRegistered(ctx context.Context) error {
	for {
		all := true
		for _, ai := range c.Agents() {
			if ai.Running && ai.ID == "" {
				all = false
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agents did not register: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// StopAgent stops agent i as if its process died: its HTTP endpoint goes
// away, the master sees it disconnect. Executors of checkpointing
// frameworks keep running; the others are killed.
func (c *Cluster) StopAgent(i int) error {
	c.mu.Lock()
	if i < 0 || i >= len(c.agents) {
		c.mu.Unlock()
		return fmt.Errorf("no agent %d", i)
	}
	ar := c.agents[i]
	c.mu.Unlock()
	if ar.a == nil {
		return nil
	}
	ar.cancel()
	_ = ar.srv.Close()
	ar.wg.Wait()
	ar.a.Wait()
	c.mu.Lock()
	ar.a = nil
	c.mu.Unlock()
	return nil
}

// StartAgent starts agent i again on the same port and work dir: it
// recovers checkpointed executors, which re-subscribe within
// ExecutorReregistrationTimeout, and re-registers with the master.
func (c *Cluster) StartAgent(ctx context.Context, i int) error {
	c.mu.Lock()
	if i < 0 || i >= len(c.agents) || c.closed {
		c.mu.Unlock()
		return fmt.Errorf("no agent %d", i)
	}
	old := c.agents[i]
	c.mu.Unlock()
	if old.a != nil {
		return fmt.Errorf("agent %d is running", i)
	}
	ar, err := c.startAgent(i, old.total, old.port, old.files)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.agents[i] = ar
	c.mu.Unlock()
	return nil
}

// RestartAgent stops agent i and starts it again (see StopAgent,
// StartAgent).
func (c *Cluster) RestartAgent(ctx context.Context, i int) error {
	if err := c.StopAgent(i); err != nil {
		return err
	}
	return c.StartAgent(ctx, i)
}

// Close stops everything and kills every executor the cluster started
// (with SIGKILL to its process group), then waits for all goroutines.
// It is idempotent.
func (c *Cluster) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	agents := append([]*agentRun(nil), c.agents...)
	c.mu.Unlock()
	for _, ar := range agents {
		if ar.a != nil {
			ar.a.KillAll()
		}
	}
	// In-process executors and fetches end with execCtx.
	c.execCancel()
	for i := range agents {
		_ = c.StopAgent(i)
	}
	c.StopMaster()
	agent.StopLaunched(c.cmdLaunch)
	agent.StopLaunched(c.launcher)
	if c.imageLaunch != nil {
		agent.StopLaunched(c.imageLaunch)
	}
	if c.cmdTransport != nil {
		c.cmdTransport.CloseIdleConnections()
	}
	c.client.CloseIdleConnections()
	if c.ownsDir {
		return os.RemoveAll(c.cfg.WorkDir)
	}
	return nil
}

// Version is the Mesos version localmesos answers as.
const Version = api.Version
