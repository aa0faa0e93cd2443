package clienttest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/internal/lightexec"
	"github.com/tiltai/tiltai/scheduler/store"
)

// FailCommand is the service command the light executors fail at once
// (TASK_FAILED, "exit status 1"), as /bin/false would: a crashing service.
const FailCommand = lightexec.FailCommand

// ClusterConfig configures a Cluster. The zero value is one agent and no
// token.
type ClusterConfig struct {
	Agents    int
	Token     string
	OpenReads bool
}

// Cluster is a real scheduler on an embedded Mesos in this process, its
// executors lightweight in-process ones: each subscribes to its agent over
// the executor HTTP API, reports TASK_STARTING and TASK_RUNNING at once (or
// TASK_FAILED for FailCommand), applies every link table it is sent and
// acknowledges it, reports its gates' counters (each gate's sent and
// received count the link tables applied, so a test can see a report pass
// through), logs to its sandbox's stdout, and ends its task on KILL
// (scheduler/internal/lightexec).
type Cluster struct {
	Mesos     *localmesos.Cluster
	Scheduler *scheduler.Scheduler
	// URL is the scheduler API's base URL.
	URL string
}

// StartCluster starts a Cluster and closes it when the test ends.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Agents == 0 {
		cfg.Agents = 1
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("TILTAI_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	execs := lightexec.New()
	execs.Report, execs.Log, execs.Logger = true, true, logger
	mc, err := localmesos.New(context.Background(), localmesos.Config{
		Listen: "127.0.0.1:0", Agents: cfg.Agents, SplitPorts: true,
		Resources:         "cpus:16;mem:65536;disk:100000;ports:[31000-39999]",
		HeartbeatInterval: time.Second, AllocationInterval: 100 * time.Millisecond,
		Launcher: execs.Launcher(), Logger: logger,
	})
	if err != nil {
		t.Fatalf("cannot start the embedded Mesos: %v", err)
	}
	t.Cleanup(func() { mc.Close() })
	s, err := scheduler.New(context.Background(), scheduler.Config{
		Master: scheduler.StaticMaster(mc.MasterURL()), FrameworkName: "tiltai-test",
		Store: store.NewMem(), Listen: "127.0.0.1:0", ExecutorBinary: os.Args[0],
		APIToken: cfg.Token, OpenReads: cfg.OpenReads, Logger: logger,
		ResendMin: 100 * time.Millisecond, ResendMax: time.Second,
		SubscribeBackoffMin: 100 * time.Millisecond, SubscribeBackoffMax: time.Second,
		Refuse: time.Second,
	})
	if err != nil {
		t.Fatalf("cannot start the scheduler: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &Cluster{Mesos: mc, Scheduler: s, URL: s.URL()}
}
