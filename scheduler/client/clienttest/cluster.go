package clienttest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	mexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/store"
)

// FailCommand is the service command the light executors fail at once
// (TASK_FAILED, "exit status 1"), as /bin/false would: a crashing service.
const FailCommand = "/bin/false"

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
// through), and ends its task on KILL.
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
	mc, err := localmesos.New(context.Background(), localmesos.Config{
		Listen: "127.0.0.1:0", Agents: cfg.Agents, SplitPorts: true,
		Resources:         "cpus:16;mem:65536;disk:100000;ports:[31000-39999]",
		HeartbeatInterval: time.Second, AllocationInterval: 100 * time.Millisecond,
		Launcher: localmesos.InProcess(func(ctx context.Context, spec localmesos.ExecutorSpec) error {
			err := runLightExecutor(ctx, spec, logger)
			logger.Debug("light executor ended", "executor_id", spec.ExecutorID, "err", err)
			return err
		}), Logger: logger,
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

func runLightExecutor(ctx context.Context, spec localmesos.ExecutorSpec, log *slog.Logger) error {
	fw, ex, agent := spec.Getenv("MESOS_FRAMEWORK_ID"), spec.Getenv("MESOS_EXECUTOR_ID"), spec.Getenv("MESOS_AGENT_ENDPOINT")
	if fw == "" || ex == "" || agent == "" {
		return errors.New("incomplete executor environment: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID and MESOS_AGENT_ENDPOINT are needed")
	}
	cli := httpcli.New(
		httpcli.Endpoint("http://"+agent+"/api/v1/executor"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
	)
	send := calls.SenderWith(httpexec.NewSender(cli.Send), calls.Framework(fw), calls.Executor(ex))
	call := func(c *mexec.Call) error {
		return calls.SendNoData(ctx, send, calls.NonStreaming(c))
	}
	log.Debug("light executor subscribing", "executor_id", ex, "agent", agent)
	resp, err := send.Send(ctx, calls.NonStreaming(calls.Subscribe(nil, nil)))
	log.Debug("light executor subscribed", "executor_id", ex, "err", err)
	if err != nil {
		return fmt.Errorf("cannot subscribe to the agent: %w", err)
	}
	defer resp.Close()
	// It logs to its sandbox's stdout, as the real executor does, so
	// that reading a task's logs can be tried: one line per link table.
	stdout, err := os.OpenFile(filepath.Join(spec.Sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the sandbox's stdout: %w", err)
	}
	defer stdout.Close()
	fmt.Fprintf(stdout, "light executor %s subscribed\n", ex)
	var (
		task    *mesos.TaskInfo
		data    contract.TaskData
		applied uint64
		tables  uint64
	)
	update := func(state mesos.TaskState, msg string) error {
		id := make([]byte, 16)
		rand.Read(id)
		st := mesos.TaskStatus{TaskID: task.TaskID, State: &state, Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: id, ExecutorID: &mesos.ExecutorID{Value: ex}}
		if msg != "" {
			st.Message = &msg
		}
		return call(calls.Update(st))
	}
	sendMsg := func(m contract.Message) error {
		b, err := contract.Encode(m)
		if err != nil {
			return err
		}
		return call(calls.Message(b))
	}
	for {
		var ev mexec.Event
		if err := resp.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		log.Debug("light executor event", "executor_id", ex, "type", ev.Type.String())
		switch ev.Type {
		case mexec.Event_LAUNCH:
			t := ev.Launch.Task
			task = &t
			if data, err = contract.DecodeTaskData(t.Data); err != nil {
				return update(mesos.TASK_ERROR, err.Error())
			}
			if err := update(mesos.TASK_STARTING, ""); err != nil {
				return err
			}
			if data.Command == FailCommand {
				if err := update(mesos.TASK_FAILED, "exit status 1"); err != nil {
					return err
				}
				return linger(ctx)
			}
			if err := update(mesos.TASK_RUNNING, ""); err != nil {
				return err
			}
		case mexec.Event_MESSAGE:
			m, err := contract.Decode(ev.Message.Data)
			if err != nil || m.Type != contract.TypeLinks || m.Snapshot == nil {
				continue
			}
			if v := m.Snapshot.Version; v > applied {
				applied = v
				tables++
				fmt.Fprintf(stdout, "applied link table version %d\n", v)
			}
			if err := sendMsg(contract.Message{Type: contract.TypeAck, TaskID: m.TaskID, Version: applied}); err != nil {
				return err
			}
			gates := map[string]control.GateCounters{}
			for _, g := range data.Gates {
				gates[g.Name] = control.GateCounters{Pattern: g.Pattern, Dir: g.Dir(), Sent: tables, Received: tables}
			}
			if err := sendMsg(contract.Message{Type: contract.TypeStatus, TaskID: m.TaskID, State: "running", Version: applied, Pushed: applied, Gates: gates}); err != nil {
				return err
			}
		case mexec.Event_KILL, mexec.Event_SHUTDOWN:
			if task != nil {
				if err := update(mesos.TASK_KILLED, ""); err != nil {
					return err
				}
			}
			return linger(ctx)
		}
	}
}

// linger gives the agent a moment to take the last update before the
// executor goes (an executor that exits at once can lose it, as in Mesos).
func linger(ctx context.Context) error {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
