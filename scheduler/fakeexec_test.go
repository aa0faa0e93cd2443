package scheduler

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	mexec "github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"

	"github.com/tiltai/tiltai/executor"
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
	tables  map[string]executor.Message
	dropAck func(task string, v uint64) bool
}

func newLightExecutor() *lightExecutor {
	return &lightExecutor{applied: map[string]uint64{}, history: map[string][]uint64{}, tables: map[string]executor.Message{}}
}

func (l *lightExecutor) Applied(task string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied[task]
}

func (l *lightExecutor) Table(task string) (executor.Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.tables[task]
	return m, ok
}

func (l *lightExecutor) run(ctx context.Context, spec localmesos.ExecutorSpec) error {
	fw, ex, agent := spec.Getenv("MESOS_FRAMEWORK_ID"), spec.Getenv("MESOS_EXECUTOR_ID"), spec.Getenv("MESOS_AGENT_ENDPOINT")
	if fw == "" || ex == "" || agent == "" {
		return errors.New("incomplete executor environment")
	}
	cli := httpcli.New(
		httpcli.Endpoint("http://"+agent+"/api/v1/executor"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
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
	var task *mesos.TaskInfo
	update := func(state mesos.TaskState) error {
		id := make([]byte, 16)
		rand.Read(id)
		return call(calls.Update(mesos.TaskStatus{
			TaskID: task.TaskID, State: &state, Source: mesos.SOURCE_EXECUTOR.Enum(),
			UUID: id, ExecutorID: &mesos.ExecutorID{Value: ex},
		}))
	}
	for {
		var ev mexec.Event
		if err := resp.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch ev.Type {
		case mexec.Event_LAUNCH:
			t := ev.Launch.Task
			task = &t
			if err := update(mesos.TASK_STARTING); err != nil {
				return err
			}
			if err := update(mesos.TASK_RUNNING); err != nil {
				return err
			}
		case mexec.Event_MESSAGE:
			m, err := executor.Decode(ev.Message.Data)
			if err != nil || m.Type != executor.TypeLinks {
				continue
			}
			v := m.Snapshot.Version
			l.mu.Lock()
			if v > l.applied[m.TaskID] {
				l.applied[m.TaskID] = v
				l.history[m.TaskID] = append(l.history[m.TaskID], v)
				l.tables[m.TaskID] = m
			}
			applied := l.applied[m.TaskID]
			drop := l.dropAck != nil && l.dropAck(m.TaskID, applied)
			l.mu.Unlock()
			if drop {
				continue
			}
			ack, _ := executor.Encode(executor.Message{Type: executor.TypeAck, TaskID: m.TaskID, Version: applied})
			if err := call(calls.Message(ack)); err != nil {
				return err
			}
		case mexec.Event_KILL, mexec.Event_SHUTDOWN:
			if task != nil {
				if err := update(mesos.TASK_KILLED); err != nil {
					return err
				}
			}
			// Give the agent a moment to take the update before we go.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}
	}
}
