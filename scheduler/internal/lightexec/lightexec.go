// Package lightexec is an in-process stand-in for the Tiltai executor, for
// tests of the scheduler on the embedded Mesos: it speaks the real v1
// executor HTTP API to its agent and the link-table protocol to the
// scheduler, but runs no service. It reports TASK_STARTING and
// TASK_RUNNING at once, applies and acknowledges every link table, ends
// its task on KILL, and records what it saw. Thousands fit in one test
// process where real executors would not.
package lightexec

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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
)

// Commands a task's data may name to ask for a way of ending.
const (
	// FailCommand fails the task at once (TASK_FAILED, "exit status 1"),
	// as /bin/false would: a crashing service.
	FailCommand = "/bin/false"
	// FinishCommand ends the task at once with TASK_FINISHED (exit 0).
	FinishCommand = "finish"
)

// Executors run light executors and record what they saw, by task.
// Configure before the first Run.
type Executors struct {
	// Duplicate sends every status update twice (same uuid) and a late
	// TASK_STARTING after TASK_RUNNING, as retries and reordering do.
	Duplicate bool
	// Report sends a status report after each link table: each gate's
	// sent and received count the tables applied, so a report can be
	// seen passing through.
	Report bool
	// Log writes to the sandbox's stdout, as the real executor does: a
	// line when it subscribes and one per link table applied.
	Log bool
	// Logger receives debug lines (nil: none).
	Logger *slog.Logger

	mu       sync.Mutex
	applied  map[string]uint64 // task → newest link version applied
	tables   map[string]contract.Message
	seen     map[string][]contract.Message // task → every table applied
	fail     map[string]chan struct{}      // task → closed to make it fail
	launched int
}

// New returns Executors with no task yet.
func New() *Executors {
	return &Executors{applied: map[string]uint64{}, tables: map[string]contract.Message{}, seen: map[string][]contract.Message{}, fail: map[string]chan struct{}{}}
}

// Applied is the newest link version task applied.
func (l *Executors) Applied(task string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied[task]
}

// Table is the newest link table task applied.
func (l *Executors) Table(task string) (contract.Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.tables[task]
	return m, ok
}

// SeenTables is every link table task applied, in order.
func (l *Executors) SeenTables(task string) []contract.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]contract.Message(nil), l.seen[task]...)
}

// Launched is how many tasks were ever launched.
func (l *Executors) Launched() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.launched
}

// Fail makes a running task report TASK_FAILED (as a crashed service).
func (l *Executors) Fail(task string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.fail[task]
	if ok {
		close(ch)
		delete(l.fail, task)
	}
	return ok
}

// Launcher runs these executors in the embedded Mesos' agents.
func (l *Executors) Launcher() localmesos.Launcher {
	return localmesos.InProcess(l.Run)
}

func (l *Executors) debug(msg string, args ...any) {
	if l.Logger != nil {
		l.Logger.Debug(msg, args...)
	}
}

// Run is one executor, until its task ends or ctx does.
func (l *Executors) Run(ctx context.Context, spec localmesos.ExecutorSpec) error {
	fw, ex, agent := spec.Getenv("MESOS_FRAMEWORK_ID"), spec.Getenv("MESOS_EXECUTOR_ID"), spec.Getenv("MESOS_AGENT_ENDPOINT")
	if fw == "" || ex == "" || agent == "" {
		return errors.New("incomplete executor environment: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID and MESOS_AGENT_ENDPOINT are needed")
	}
	var opts []httpcli.ConfigOpt
	if spec.Dial != nil {
		// In memory: a thousand executors need no thousand sockets.
		tr := &http.Transport{DialContext: spec.Dial, MaxIdleConnsPerHost: 2}
		defer tr.CloseIdleConnections()
		opts = append(opts, httpcli.RoundTripper(tr))
	}
	cli := httpcli.New(
		httpcli.Endpoint("http://"+agent+"/api/v1/executor"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(opts...)),
	)
	send := calls.SenderWith(httpexec.NewSender(cli.Send), calls.Framework(fw), calls.Executor(ex))
	call := func(c *mexec.Call) error {
		return calls.SendNoData(ctx, send, calls.NonStreaming(c))
	}
	l.debug("light executor subscribing", "executor_id", ex, "agent", agent)
	resp, err := send.Send(ctx, calls.NonStreaming(calls.Subscribe(nil, nil)))
	if err != nil {
		return fmt.Errorf("cannot subscribe to the agent: %w", err)
	}
	defer resp.Close()
	logf := func(string, ...any) {}
	if l.Log {
		stdout, err := os.OpenFile(filepath.Join(spec.Sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("cannot open the sandbox's stdout: %w", err)
		}
		defer stdout.Close()
		logf = func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	}
	logf("light executor %s subscribed", ex)

	events := make(chan *mexec.Event)
	readErr := make(chan error, 1)
	go func() {
		for {
			var ev mexec.Event
			if err := resp.Decode(&ev); err != nil {
				readErr <- err
				return
			}
			select {
			case events <- &ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		task   *mesos.TaskInfo
		data   contract.TaskData
		failCh chan struct{}
		tables uint64
	)
	update := func(state mesos.TaskState, msg string) error {
		id := make([]byte, 16)
		rand.Read(id)
		st := mesos.TaskStatus{TaskID: task.TaskID, State: &state, Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: id, ExecutorID: &mesos.ExecutorID{Value: ex}}
		if msg != "" {
			st.Message = &msg
		}
		for range 1 + btoi(l.Duplicate) {
			if err := call(calls.Update(st)); err != nil {
				return err
			}
		}
		return nil
	}
	sendMsg := func(m contract.Message) error {
		b, err := contract.Encode(m)
		if err != nil {
			return err
		}
		return call(calls.Message(b))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		case <-failCh:
			if err := update(mesos.TASK_FAILED, "exit status 1"); err != nil {
				return err
			}
			return linger(ctx)
		case ev := <-events:
			l.debug("light executor event", "executor_id", ex, "type", ev.Type.String())
			switch ev.Type {
			case mexec.Event_LAUNCH:
				t := ev.Launch.Task
				task = &t
				failCh = make(chan struct{})
				l.mu.Lock()
				l.fail[t.TaskID.Value] = failCh
				l.launched++
				l.mu.Unlock()
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
				if data.Command == FinishCommand {
					if err := update(mesos.TASK_FINISHED, ""); err != nil {
						return err
					}
					return linger(ctx)
				}
				if l.Duplicate {
					if err := update(mesos.TASK_STARTING, ""); err != nil {
						return err
					}
				}
			case mexec.Event_MESSAGE:
				m, err := contract.Decode(ev.Message.Data)
				if err != nil || m.Type != contract.TypeLinks || m.Snapshot == nil {
					continue
				}
				// What the task applied is kept across its executors
				// (one that an agent restart relaunched goes on from it).
				v := m.Snapshot.Version
				l.mu.Lock()
				if v > l.applied[m.TaskID] {
					l.applied[m.TaskID] = v
					l.tables[m.TaskID] = m
					l.seen[m.TaskID] = append(l.seen[m.TaskID], m)
					tables++
					logf("applied link table version %d", v)
				}
				applied := l.applied[m.TaskID]
				l.mu.Unlock()
				if err := sendMsg(contract.Message{Type: contract.TypeAck, TaskID: m.TaskID, Version: applied}); err != nil {
					return err
				}
				if !l.Report {
					continue
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
