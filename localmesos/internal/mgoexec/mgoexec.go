// Package mgoexec is a Mesos executor written only against mesos-go (no
// localmesos or Tiltai code), used to check that localmesos serves any v1
// executor: as a real process (cmd/mgoexec, fetched by the agent) in the
// conformance tests, and in-process in the scale benchmark. Task data
// steers it: "finish" ends the task at once, "fail" fails it, "crash" makes
// the executor exit with status 1; otherwise the task runs until killed.
// Every MESSAGE is answered with "echo:" + the data.
package mgoexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	mtime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/internal/uuid"
)

// ErrCrash is returned when a task asked the executor to crash.
var ErrCrash = errors.New("executor crashed on purpose")

// ConfigFromEnv reads the executor configuration from an environment
// lookup, like mesos-go's config.FromEnv but for any source (an in-process
// executor has no process environment of its own).
func ConfigFromEnv(getenv func(string) string) (config.Config, error) {
	var missing []string
	req := func(k string) string {
		v := getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	dur := func(k string) time.Duration {
		v := req(k)
		if v == "" {
			return 0
		}
		d, err := mtime.ParseDuration(v)
		if err != nil {
			missing = append(missing, k+" (invalid: "+err.Error()+")")
		}
		return d
	}
	c := config.Config{
		FrameworkID: req("MESOS_FRAMEWORK_ID"), ExecutorID: req("MESOS_EXECUTOR_ID"),
		Directory: req("MESOS_DIRECTORY"), Sandbox: req("MESOS_SANDBOX"), AgentEndpoint: req("MESOS_AGENT_ENDPOINT"),
		ExecutorShutdownGracePeriod: dur("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"),
	}
	if cp, _ := strconv.ParseBool(getenv("MESOS_CHECKPOINT")); cp {
		c.Checkpoint = true
		c.RecoveryTimeout = dur("MESOS_RECOVERY_TIMEOUT")
		c.SubscriptionBackoffMax = dur("MESOS_SUBSCRIPTION_BACKOFF_MAX")
	}
	if len(missing) > 0 {
		return config.Config{}, fmt.Errorf("incomplete executor environment: %v", missing)
	}
	return c, nil
}

type state struct {
	cfg      config.Config
	cli      calls.Sender
	executor mesos.ExecutorInfo
	tasks    map[string]mesos.TaskInfo // live tasks
	unacked  map[string]executor.Call_Update
	hadTasks bool
	shutdown bool
	crash    bool
}

// Run runs the executor until it is shut down, its tasks are all done and
// acknowledged, ctx ends, or it cannot reach its agent for longer than the
// recovery timeout.
// A non-nil dial replaces TCP for the connections to the agent (an
// in-process executor is handed one by its launcher).
func Run(ctx context.Context, cfg config.Config, codec encoding.MediaType, token string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) error {
	u := url.URL{Scheme: "http", Host: cfg.AgentEndpoint, Path: "/api/v1/executor"}
	opts := []httpcli.Opt{httpcli.Endpoint(u.String()), httpcli.Codec(codecs.ByMediaType[codec])}
	var transport *http.Transport
	if dial != nil {
		opts = append(opts, httpcli.Do(httpcli.With(httpcli.Transport(func(t *http.Transport) {
			t.DialContext = dial
			// In memory a connection costs nothing to open, while an idle
			// one holds buffers and goroutines: thousands of executors idle
			// between their rare calls.
			t.DisableKeepAlives = true
			transport = t
		}))))
	}
	defer func() {
		if transport != nil {
			transport.CloseIdleConnections()
		}
	}()
	if token != "" {
		opts = append(opts, httpcli.DefaultHeader("Authorization", "Bearer "+token))
	}
	client := httpcli.New(opts...)
	callOpts := executor.CallOptions{calls.Framework(cfg.FrameworkID), calls.Executor(cfg.ExecutorID)}
	s := &state{
		cfg:     cfg,
		cli:     calls.SenderWith(httpexec.NewSender(client.Send), callOpts...),
		tasks:   map[string]mesos.TaskInfo{},
		unacked: map[string]executor.Call_Update{},
	}
	subscriber := calls.SenderWith(httpexec.NewSender(client.Send, httpcli.Close(true)), callOpts...)
	var disconnected time.Time
	retry := backoff.Policy{Initial: 100 * time.Millisecond, Max: cfg.SubscriptionBackoffMax, Factor: 2}
	attempt := 0
	for {
		var unackedTasks []mesos.TaskInfo
		for _, t := range s.tasks {
			unackedTasks = append(unackedTasks, t)
		}
		var unackedUpdates []executor.Call_Update
		for _, u := range s.unacked {
			unackedUpdates = append(unackedUpdates, u)
		}
		resp, err := subscriber.Send(ctx, calls.NonStreaming(calls.Subscribe(unackedTasks, unackedUpdates)))
		if err == nil {
			disconnected, attempt = time.Time{}, 0
			err = s.loop(ctx, resp)
			resp.Close()
		}
		if s.crash {
			return ErrCrash
		}
		if s.shutdown || s.finished() {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !cfg.Checkpoint {
			return fmt.Errorf("disconnected from the agent (no checkpointing): %v", err)
		}
		if disconnected.IsZero() {
			disconnected = time.Now()
		}
		if time.Since(disconnected) > cfg.RecoveryTimeout {
			return fmt.Errorf("no agent within the recovery timeout: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry.Envelope(attempt)):
		}
		attempt++
	}
}

func (s *state) finished() bool { return s.hadTasks && len(s.tasks) == 0 && len(s.unacked) == 0 }

func (s *state) loop(ctx context.Context, resp mesos.Response) error {
	for {
		var e executor.Event
		if err := resp.Decode(&e); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch e.Type {
		case executor.Event_SUBSCRIBED:
			s.executor = e.Subscribed.ExecutorInfo
		case executor.Event_LAUNCH:
			s.launch(ctx, e.Launch.Task)
		case executor.Event_KILL:
			if t, ok := s.tasks[e.Kill.TaskID.Value]; ok {
				s.update(ctx, t.TaskID, mesos.TASK_KILLED, "killed by mgoexec")
			}
		case executor.Event_ACKNOWLEDGED:
			delete(s.unacked, string(e.Acknowledged.UUID))
		case executor.Event_MESSAGE:
			s.send(ctx, calls.Message(append([]byte("echo:"), e.Message.Data...)))
		case executor.Event_SHUTDOWN:
			for _, t := range s.tasks {
				s.update(ctx, t.TaskID, mesos.TASK_KILLED, "shut down")
			}
			s.shutdown = true
			return nil
		case executor.Event_ERROR:
			return errors.New("agent sent ERROR: " + e.Error.GetMessage())
		}
		if s.crash || s.finished() {
			return nil
		}
	}
}

func (s *state) launch(ctx context.Context, t mesos.TaskInfo) {
	if _, ok := s.tasks[t.TaskID.Value]; ok {
		return
	}
	s.tasks[t.TaskID.Value] = t
	s.hadTasks = true
	switch string(t.Data) {
	case "crash":
		s.crash = true
		return
	}
	s.update(ctx, t.TaskID, mesos.TASK_RUNNING, "mgoexec: running")
	switch string(t.Data) {
	case "finish":
		s.update(ctx, t.TaskID, mesos.TASK_FINISHED, "mgoexec: done")
	case "fail":
		s.update(ctx, t.TaskID, mesos.TASK_FAILED, "mgoexec: failed on purpose")
	}
}

func (s *state) update(ctx context.Context, id mesos.TaskID, st mesos.TaskState, msg string) {
	su := uuid.New().Bytes()
	status := mesos.TaskStatus{TaskID: id, State: st.Enum(), Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: su, Message: &msg}
	upd := calls.Update(status)
	s.unacked[string(su)] = *upd.Update
	if st != mesos.TASK_RUNNING && st != mesos.TASK_STARTING {
		delete(s.tasks, id.Value)
	}
	s.send(ctx, upd)
}

func (s *state) send(ctx context.Context, c *executor.Call) {
	resp, err := s.cli.Send(ctx, calls.NonStreaming(c))
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mgoexec: %s call failed (kept for re-subscription): %v\n", c.Type, err)
	}
}
