package master

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// masterHTTP serves the master's endpoints and hands calls to the state
// goroutine through its mailbox.
type masterHTTP struct {
	m      *Master
	faults *Faults
	auth   SchedulerAuth
	ctx    context.Context // ends when the master stops: streams end with it
}

func (h *masterHTTP) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/scheduler", h.scheduler)
	mux.HandleFunc("/master/api/v1/scheduler", h.scheduler)
	mux.HandleFunc("/api/v1", h.operator)
	mux.HandleFunc("/master/api/v1", h.operator)
	mux.HandleFunc("/state", h.state)
	mux.HandleFunc("/master/state", h.state)
	mux.HandleFunc("/health", api.Health)
	mux.HandleFunc("/master/health", api.Health)
	mux.HandleFunc("/version", api.ServeVersion)
	mux.HandleFunc("/master/version", api.ServeVersion)
	mux.HandleFunc("/redirect", h.redirect)
	mux.HandleFunc("/master/redirect", h.redirect)
	mux.HandleFunc("/metrics/snapshot", h.metrics)
	mux.HandleFunc("/frameworks", h.legacy(renderFrameworks))
	mux.HandleFunc("/master/frameworks", h.legacy(renderFrameworks))
	mux.HandleFunc("/slaves", h.legacy(renderSlaves))
	mux.HandleFunc("/master/slaves", h.legacy(renderSlaves))
	mux.HandleFunc("/tasks", h.legacy(renderTasks))
	mux.HandleFunc("/master/tasks", h.legacy(renderTasks))
	mux.HandleFunc("/flags", h.legacy(renderMasterFlags))
	mux.HandleFunc("/master/flags", h.legacy(renderMasterFlags))
	mux.HandleFunc("/maintenance/schedule", h.maintenanceSchedule)
	mux.HandleFunc("/master/maintenance/schedule", h.maintenanceSchedule)
	mux.HandleFunc("/maintenance/status", h.legacy(renderMaintenanceStatus))
	mux.HandleFunc("/master/maintenance/status", h.legacy(renderMaintenanceStatus))
	mux.HandleFunc("/teardown", h.teardown)
	mux.HandleFunc("/master/teardown", h.teardown)
	mux.HandleFunc("/", api.NotFound)
	return mux
}

// redirect answers like a leading Mesos master: 307 to itself,
// scheme-relative, by hostname.
func (h *masterHTTP) redirect(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Location", fmt.Sprintf("//%s:%d", h.m.hostname, h.m.port))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

func (h *masterHTTP) ask(msg func(chan []byte) any) ([]byte, bool) {
	reply := make(chan []byte, 1)
	if !h.m.box.Post(msg(reply)) {
		return nil, false
	}
	select {
	case b := <-reply:
		return b, true
	case <-h.m.done:
		return nil, false
	}
}

func (h *masterHTTP) state(w http.ResponseWriter, r *http.Request) {
	body, ok := h.ask(func(c chan []byte) any { return stateRequest{reply: c} })
	if !ok {
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"})
		return
	}
	api.WriteJSON(w, body)
}

func (h *masterHTTP) metrics(w http.ResponseWriter, r *http.Request) {
	body, ok := h.ask(func(c chan []byte) any { return metricsRequest{reply: c} })
	if !ok {
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"})
		return
	}
	api.WriteJSON(w, body)
}

type metricsRequest struct{ reply chan []byte }

// teardownRequest is the operator's POST /master/teardown: remove a
// framework and kill its tasks, as its own TEARDOWN call would.
type teardownRequest struct {
	fwID  string
	reply chan []byte
}

// teardown serves POST /master/teardown (form field frameworkId), as Mesos:
// 200 with an empty body; 400 when the field is missing or names no
// framework; 405 for other methods. With framework authentication on, it
// needs a principal's credentials like the scheduler API.
func (h *masterHTTP) teardown(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		wire.WriteError(w, &wire.Error{Status: http.StatusMethodNotAllowed, Text: "Expecting 'POST', received '" + r.Method + "'"})
		return
	}
	if h.auth != nil {
		if _, err := h.auth.Authenticate(r.Header.Get("Authorization")); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="mesos"`)
			wire.WriteError(w, &wire.Error{Status: http.StatusUnauthorized, Text: "Unauthorized"})
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		wire.WriteError(w, &wire.Error{Status: http.StatusBadRequest, Text: "Unable to parse the request body: " + err.Error()})
		return
	}
	id := r.PostForm.Get("frameworkId")
	if id == "" {
		wire.WriteError(w, &wire.Error{Status: http.StatusBadRequest, Text: "Unable to find 'frameworkId' in the request body"})
		return
	}
	body, ok := h.ask(func(c chan []byte) any { return teardownRequest{fwID: id, reply: c} })
	if !ok {
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"})
		return
	}
	if len(body) > 0 {
		wire.WriteError(w, &wire.Error{Status: http.StatusBadRequest, Text: string(body)})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *masterHTTP) scheduler(w http.ResponseWriter, r *http.Request) {
	if loc, unavailable := h.faults.httpFault(); unavailable {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, wire.MaxBody))
		wire.WriteError(w, &wire.Error{Status: http.StatusServiceUnavailable, Text: "No leader elected"})
		return
	} else if loc != "" {
		w.Header().Set("Location", loc)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	if err := h.serveCall(w, r); err != nil {
		wire.WriteError(w, err)
	}
}

func (h *masterHTTP) serveCall(w http.ResponseWriter, r *http.Request) error {
	if err := wire.CheckPost(r); err != nil {
		return err
	}
	if h.auth != nil {
		if _, err := h.auth.Authenticate(r.Header.Get("Authorization")); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="mesos"`)
			return &wire.Error{Status: http.StatusUnauthorized, Text: "Unauthorized"}
		}
	}
	codec, err := wire.RequestCodec(r)
	if err != nil {
		return err
	}
	body, err := wire.ReadBody(r)
	if err != nil {
		return err
	}
	call := new(scheduler.Call)
	if err := wire.Decode(codec, body, call); err != nil {
		return err
	}
	if err := validateSchedulerCall(call); err != nil {
		return err
	}
	sc := schedCall{call: call, streamID: r.Header.Get("Mesos-Stream-Id"), reply: make(chan callResult, 1)}
	if call.Type == scheduler.Call_SUBSCRIBE {
		if sc.codec, err = wire.ResponseCodec(r); err != nil {
			return err
		}
		if sc.streamID != "" {
			return wire.BadRequest("Subscribe calls should not include the 'Mesos-Stream-Id' header")
		}
	}
	if !h.m.box.Post(sc) {
		return &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"}
	}
	var res callResult
	select {
	case res = <-sc.reply:
	case <-h.m.done:
		return &wire.Error{Status: http.StatusServiceUnavailable, Text: "Master is stopping"}
	}
	if res.err != nil {
		return res.err
	}
	if res.stream == nil && res.status != 0 {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(res.status)
		return nil
	}
	if res.stream == nil {
		wire.WriteAccepted(w)
		return nil
	}
	w.Header().Set("Content-Type", res.stream.Codec.MediaType())
	w.Header().Set("Mesos-Stream-Id", res.stream.ID)
	ctx, cancel := h.streamContext(r)
	defer cancel()
	res.stream.Serve(ctx, w, wire.ServeOptions{
		Heartbeat:         &scheduler.Event{Type: scheduler.Event_HEARTBEAT},
		HeartbeatInterval: h.m.cfg.HeartbeatInterval,
		BlackHole:         h.faults.blackHoled,
	})
	h.m.box.Post(streamEnded{fwID: res.fwID, streamID: res.stream.ID})
	return nil
}

// validateSchedulerCall is Mesos' validation::scheduler::call::validate:
// the checks that need no master state.
func validateSchedulerCall(c *scheduler.Call) error {
	bad := func(s string) error { return wire.BadRequest("Failed to validate scheduler::Call: %s", s) }
	if c.Type == scheduler.Call_UNKNOWN {
		return bad("Expecting 'type' to be present")
	}
	if c.Type == scheduler.Call_SUBSCRIBE {
		if c.Subscribe == nil {
			return bad("Expecting 'subscribe' to be present")
		}
		fi := c.Subscribe.FrameworkInfo
		if fi == nil {
			return bad("Expecting 'framework_info' to be present")
		}
		if c.FrameworkID != nil && (fi.ID == nil || fi.ID.Value != c.FrameworkID.Value) {
			return bad("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		return nil
	}
	if c.FrameworkID == nil {
		return bad("Expecting 'framework_id' to be present")
	}
	missing := func(name string, present bool) error {
		if present {
			return nil
		}
		return bad("Expecting '" + name + "' to be present")
	}
	switch c.Type {
	case scheduler.Call_ACCEPT:
		return missing("accept", c.Accept != nil)
	case scheduler.Call_DECLINE:
		return missing("decline", c.Decline != nil)
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		return missing("accept_inverse_offers", c.AcceptInverseOffers != nil)
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		return missing("decline_inverse_offers", c.DeclineInverseOffers != nil)
	case scheduler.Call_KILL:
		return missing("kill", c.Kill != nil)
	case scheduler.Call_SHUTDOWN:
		return missing("shutdown", c.Shutdown != nil)
	case scheduler.Call_ACKNOWLEDGE:
		if c.Acknowledge == nil {
			return bad("Expecting 'acknowledge' to be present")
		}
		if len(c.Acknowledge.UUID) != 16 {
			return bad("Not a valid UUID")
		}
	case scheduler.Call_RECONCILE:
		return missing("reconcile", c.Reconcile != nil)
	case scheduler.Call_MESSAGE:
		return missing("message", c.Message != nil)
	case scheduler.Call_REQUEST:
		return missing("requests", c.Request != nil)
	case scheduler.Call_UPDATE_FRAMEWORK:
		if c.UpdateFramework == nil {
			return bad("Expecting 'update_framework' to be present")
		}
		if id := c.UpdateFramework.FrameworkInfo.ID; id == nil || id.Value != c.FrameworkID.Value {
			return bad("'framework_id' differs from 'update_framework.framework_info.id'")
		}
	}
	return nil
}

// ipUint32 encodes an IPv4 address as Mesos' MasterInfo.ip: the address in
// network byte order read as a little-endian integer (127.0.0.1 is
// 16777343).
func ipUint32(s string) uint32 {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(ip)
}
