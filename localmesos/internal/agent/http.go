package agent

import (
	"context"
	"net/http"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// agentHTTP serves one agent's endpoints: the executor API, /state,
// /health, /version.
type agentHTTP struct {
	a   *Agent
	ctx context.Context // ends when this agent incarnation stops
}

func (h *agentHTTP) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/executor", h.executor)
	mux.HandleFunc("/slave(1)/api/v1/executor", h.executor)
	mux.HandleFunc("/api/v1", h.operator)
	mux.HandleFunc("/slave(1)/api/v1", h.operator)
	mux.HandleFunc("/state", h.state)
	mux.HandleFunc("/slave(1)/state", h.state)
	mux.HandleFunc("/health", api.Health)
	mux.HandleFunc("/slave(1)/health", api.Health)
	mux.HandleFunc("/version", api.ServeVersion)
	mux.HandleFunc("/flags", h.flags)
	mux.HandleFunc("/slave(1)/flags", h.flags)
	mux.HandleFunc("/metrics/snapshot", h.metrics)
	// The files process of Mesos' agent: its own endpoints, not
	// under /slave(1).
	files := filesHTTP{h.a.files}
	mux.HandleFunc("/files/read", files.read)
	mux.HandleFunc("/files/browse", files.browse)
	mux.HandleFunc("/files/download", files.download)
	mux.HandleFunc("/", api.NotFound)
	return mux
}

func (h *agentHTTP) state(w http.ResponseWriter, _ *http.Request) {
	reply := make(chan []byte, 1)
	if !h.a.box.Post(agentStateRequest{reply: reply}) {
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"})
		return
	}
	select {
	case body := <-reply:
		api.WriteJSON(w, body)
	case <-h.a.done:
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"})
	}
}

func (h *agentHTTP) executor(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		wire.WriteError(w, err)
	}
}

func (h *agentHTTP) serve(w http.ResponseWriter, r *http.Request) error {
	if err := wire.CheckPost(r); err != nil {
		return err
	}
	codec, err := wire.RequestCodec(r)
	if err != nil {
		return err
	}
	body, err := wire.ReadBody(r)
	if err != nil {
		return err
	}
	call := new(executor.Call)
	if err := wire.Decode(codec, body, call); err != nil {
		if we, ok := err.(*wire.Error); ok {
			we.Text = strings.Replace(we.Text, "Call protobuf", "Executor::Call protobuf", 1)
		}
		return err
	}
	if auth := h.a.cfg.ExecutorAuth; auth != nil {
		if err := auth.Authenticate(r.Header.Get("Authorization"), call.FrameworkID.Value, call.ExecutorID.Value); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mesos-agent-executor"`)
			return &wire.Error{Status: http.StatusUnauthorized, Text: "Unauthorized"}
		}
	}
	if err := validateExecutorCall(call); err != nil {
		return err
	}
	x := execCall{call: call, codec: codec, reply: make(chan execReply, 1)}
	if call.Type == executor.Call_SUBSCRIBE {
		if x.codec, err = wire.ResponseCodec(r); err != nil {
			return err
		}
	}
	if !h.a.box.Post(x) {
		return &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"}
	}
	var rep execReply
	select {
	case rep = <-x.reply:
	case <-h.a.done:
		return &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"}
	}
	if rep.err != nil {
		return rep.err
	}
	if rep.stream == nil {
		wire.WriteAccepted(w)
		return nil
	}
	// No Mesos-Stream-Id on the executor API.
	w.Header().Set("Content-Type", rep.stream.Codec.MediaType())
	// The stream ends with the request or with this incarnation.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()
	rep.stream.Serve(ctx, w, wire.ServeOptions{
		Heartbeat:         &executor.Event{Type: executor.Event_HEARTBEAT},
		HeartbeatInterval: h.a.cfg.ExecutorHeartbeatInterval,
	})
	h.a.box.Post(execStreamEnded{fwID: call.FrameworkID.Value, execID: call.ExecutorID.Value, stream: rep.stream})
	return nil
}

// validateExecutorCall mirrors Mesos' validation of Executor::Call, with its
// texts.
func validateExecutorCall(c *executor.Call) error {
	bad := func(s string) error { return wire.BadRequest("Failed to validate Executor::Call: %s", s) }
	switch c.Type {
	case executor.Call_UNKNOWN:
		return bad("Expecting 'type' to be present")
	case executor.Call_SUBSCRIBE:
		if c.Subscribe == nil {
			return bad("Expecting 'subscribe' to be present")
		}
	case executor.Call_UPDATE:
		if c.Update == nil {
			return bad("Expecting 'update' to be present")
		}
		st := c.Update.Status
		if st.UUID == nil {
			return bad("Expecting 'uuid' to be present")
		}
		if len(st.UUID) != 16 {
			return bad("Not a valid UUID")
		}
		if st.GetSource() != mesos.SOURCE_EXECUTOR {
			return bad("Received Call from executor " + c.ExecutorID.Value + " of framework " + c.FrameworkID.Value + " with invalid source, expecting 'SOURCE_EXECUTOR'")
		}
		if st.GetState() == mesos.TASK_STAGING {
			return bad("Received TASK_STAGING from executor " + c.ExecutorID.Value + " of framework " + c.FrameworkID.Value + " which is not allowed")
		}
		if st.ExecutorID != nil && st.ExecutorID.Value != c.ExecutorID.Value {
			return bad("ExecutorID in Call: " + c.ExecutorID.Value + " does not match ExecutorID in TaskStatus: " + st.ExecutorID.Value)
		}
	case executor.Call_MESSAGE:
		if c.Message == nil {
			return bad("Expecting 'message' to be present")
		}
	}
	return nil
}

// onAgent runs f on the agent's goroutine and waits for it.
func (h *agentHTTP) onAgent(f func(*Agent)) bool {
	done := make(chan struct{})
	if !h.a.box.Post(agentFunc(func(a *Agent) { f(a); close(done) })) {
		return false
	}
	select {
	case <-done:
		return true
	case <-h.a.done:
		return false
	}
}

var errAgentStopping = &wire.Error{Status: http.StatusServiceUnavailable, Text: "Agent is stopping"}

// flags serves the agent's /flags (and /slave(1)/flags).
func (h *agentHTTP) flags(w http.ResponseWriter, _ *http.Request) {
	var body []byte
	if !h.onAgent(func(a *Agent) { body = api.FlagsJSON(a.flags()) }) {
		wire.WriteError(w, errAgentStopping)
		return
	}
	api.WriteJSON(w, body)
}
