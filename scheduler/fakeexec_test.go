package scheduler

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	mexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/localmesos"
)

// lightExecutor is an in-process executor that speaks the real executor
// HTTP API to its agent but runs no service: it reports RUNNING at once,
// acknowledges every link table it gets, and ends its task on KILL. It
// stands in for the Tiltai executor where thousands of real processes
// would not fit, and records what it saw for assertions.
type lightExecutor struct {
	mu      sync.Mutex
	applied map[string]uint64   // task → newest link version applied
	history map[string][]uint64 // task → versions applied, in order
	tables  map[string]contract.Message
	seen    map[string][]contract.Message // task → every table applied
	fail    map[string]chan struct{}      // task → closed to make it fail
	// duplicate sends every status update twice (same uuid) and a late
	// TASK_STARTING after TASK_RUNNING, as retries and reordering do.
	duplicate bool
}

func newLightExecutor() *lightExecutor {
	return &lightExecutor{applied: map[string]uint64{}, history: map[string][]uint64{}, tables: map[string]contract.Message{}, seen: map[string][]contract.Message{}, fail: map[string]chan struct{}{}}
}

func (l *lightExecutor) Applied(task string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied[task]
}

func (l *lightExecutor) Table(task string) (contract.Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.tables[task]
	return m, ok
}

// Fail makes a running task report TASK_FAILED (as a crashed service).
func (l *lightExecutor) Fail(task string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.fail[task]
	if ok {
		close(ch)
		delete(l.fail, task)
	}
	return ok
}

func (l *lightExecutor) run(ctx context.Context, spec localmesos.ExecutorSpec) error {
	fw, ex, agent := spec.Getenv("MESOS_FRAMEWORK_ID"), spec.Getenv("MESOS_EXECUTOR_ID"), spec.Getenv("MESOS_AGENT_ENDPOINT")
	if fw == "" || ex == "" || agent == "" {
		return errors.New("incomplete executor environment")
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
	resp, err := send.Send(ctx, calls.NonStreaming(calls.Subscribe(nil, nil)))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer resp.Close()
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
	var task *mesos.TaskInfo
	var failCh chan struct{}
	update := func(state mesos.TaskState) error {
		id := make([]byte, 16)
		rand.Read(id)
		st := mesos.TaskStatus{
			TaskID: task.TaskID, State: &state, Source: mesos.SOURCE_EXECUTOR.Enum(),
			UUID: id, ExecutorID: &mesos.ExecutorID{Value: ex},
		}
		for i := 0; i < 1+btoi(l.duplicate); i++ {
			if err := call(calls.Update(st)); err != nil {
				return err
			}
		}
		return nil
	}
	linger := func() {
		// Give the agent a moment to take the last update before we go.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
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
			if err := update(mesos.TASK_FAILED); err != nil {
				return err
			}
			linger()
			return nil
		case ev := <-events:
			switch ev.Type {
			case mexec.Event_LAUNCH:
				t := ev.Launch.Task
				task = &t
				failCh = make(chan struct{})
				l.mu.Lock()
				l.fail[t.TaskID.Value] = failCh
				l.mu.Unlock()
				if err := update(mesos.TASK_STARTING); err != nil {
					return err
				}
				if err := update(mesos.TASK_RUNNING); err != nil {
					return err
				}
				if d, err := contract.DecodeTaskData(t.Data); err == nil && d.Command == "finish" {
					// A service that ends at once, exit status 0.
					if err := update(mesos.TASK_FINISHED); err != nil {
						return err
					}
					linger()
					return nil
				}
				if l.duplicate {
					if err := update(mesos.TASK_STARTING); err != nil {
						return err
					}
				}
			case mexec.Event_MESSAGE:
				m, err := contract.Decode(ev.Message.Data)
				if err != nil || m.Type != contract.TypeLinks {
					continue
				}
				v := m.Snapshot.Version
				l.mu.Lock()
				if v > l.applied[m.TaskID] {
					l.applied[m.TaskID] = v
					l.history[m.TaskID] = append(l.history[m.TaskID], v)
					l.tables[m.TaskID] = m
					l.seen[m.TaskID] = append(l.seen[m.TaskID], m)
				}
				applied := l.applied[m.TaskID]
				l.mu.Unlock()
				ack, _ := contract.Encode(contract.Message{Type: contract.TypeAck, TaskID: m.TaskID, Version: applied})
				if err := call(calls.Message(ack)); err != nil {
					return err
				}
			case mexec.Event_KILL, mexec.Event_SHUTDOWN:
				if task != nil {
					if err := update(mesos.TASK_KILLED); err != nil {
						return err
					}
				}
				linger()
				return nil
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (l *lightExecutor) seenTables(task string) []contract.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]contract.Message(nil), l.seen[task]...)
}
