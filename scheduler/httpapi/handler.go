package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/console"
)

// Config configures the handler.
type Config struct {
	// Service answers the reads and makes the writes (required).
	Service Service
	// Token, when set, is required (Bearer) on writes and on a task's
	// files, and on reads unless OpenReads.
	Token     string
	OpenReads bool
	// MaxSpecBytes is the body limit of PUT /v1/spec (default
	// linkspec.MaxSpecBytes).
	MaxSpecBytes int
	// Now is the clock of "dropped" events (default time.Now).
	Now func() time.Time
	// Metrics serves GET /metrics, open to all (nil: 404).
	Metrics http.Handler
	// Artifacts serves GET /v1/artifacts/{name}, open to all (nil: 404).
	Artifacts http.Handler
}

// New returns the API's handler. Reads are answered from the service's
// latest view, so every answer is consistent and none waits for a write;
// writes return once the service stored them.
func New(cfg Config) http.Handler {
	if cfg.MaxSpecBytes == 0 {
		cfg.MaxSpecBytes = linkspec.MaxSpecBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &api{cfg: cfg, svc: cfg.Service}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.getHealth)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Artifacts != nil {
		mux.Handle("GET /v1/artifacts/{name}", cfg.Artifacts)
	}
	mux.HandleFunc("GET /v1/spec", a.read(a.getSpec))
	mux.HandleFunc("PUT /v1/spec", a.write(a.putSpec))
	mux.HandleFunc("GET /v1/tasks", a.read(a.getTasks))
	mux.HandleFunc("GET /v1/tasks/{id}/files/{name}", a.private(a.getTaskFile))
	mux.HandleFunc("GET /v1/links", a.read(a.getLinks))
	mux.HandleFunc("GET /v1/status", a.read(a.getStatus))
	mux.HandleFunc("GET /v1/services/{name}", a.read(a.getService))
	mux.HandleFunc("GET /v1/agents", a.read(a.getAgents))
	mux.HandleFunc("POST /v1/services/{name}/scale", a.write(a.postScale))
	mux.HandleFunc("GET /v1/events", a.read(a.getEvents))
	mux.HandleFunc("GET /{$}", a.getIndex)
	mux.HandleFunc("GET /v1", a.getIndex)
	mux.Handle("GET /console/", console.Handler())
	return console.Secure(mux)
}

type api struct {
	cfg Config
	svc Service
}

var writeErr = WriteError

// authorized checks the bearer token in constant time.
func (a *api) authorized(r *http.Request) bool {
	if a.cfg.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) == 1
}

// guard answers 401 with why unless the request may pass.
func (a *api) guard(open bool, why string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !open && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "%s", why)
			return
		}
		h(w, r)
	}
}

func (a *api) read(h http.HandlerFunc) http.HandlerFunc {
	return a.guard(a.cfg.OpenReads, "this scheduler needs a token: pass --token or set TILTAI_TOKEN", h)
}

func (a *api) write(h http.HandlerFunc) http.HandlerFunc {
	return a.guard(false, "changes need the scheduler's token: pass --token or set TILTAI_TOKEN", h)
}

// private guards what needs the token even with open reads: a task's logs
// can hold what a service should not show everyone.
func (a *api) private(h http.HandlerFunc) http.HandlerFunc {
	return a.guard(false, "a task's logs need the scheduler's token: pass --token or set TILTAI_TOKEN", h)
}

// view returns the latest view, or answers 503 when the service stopped.
func (a *api) view(w http.ResponseWriter) (View, bool) {
	v, err := a.svc.View()
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
		return nil, false
	}
	return v, true
}

// getIndex is the console for a browser, the JSON index for tools (and at
// GET /v1).
func (a *api) getIndex(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && console.WantsPage(r) {
		console.Handler().ServeHTTP(w, r)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{
		"name": "tiltai scheduler",
		"endpoints": []string{
			"GET / (the web console; JSON with Accept: application/json)", "GET /v1 (this index)", "GET /health", "GET /metrics", "GET /v1/spec", "PUT /v1/spec[?dry_run=1] (If-Match: VERSION)",
			"GET /v1/services/{name}",
			"GET /v1/agents",
			"POST /v1/services/{name}/scale {\"instances\": N}",
			"GET /v1/tasks[?service=S&phase=P&limit=N&after=ID|&view=summary]",
			"GET /v1/tasks/{id}/files/{stdout|stderr}[?offset=N&length=N] (needs the token)", "GET /v1/links",
			"GET /v1/status", "GET /v1/events (Server-Sent Events)",
		},
	})
}

func (a *api) getHealth(w http.ResponseWriter, r *http.Request) {
	v, err := a.svc.View()
	if err != nil {
		WriteJSON(w, http.StatusServiceUnavailable, apitypes.Health{Status: "stopped"})
		return
	}
	WriteJSON(w, http.StatusOK, v.Health())
}

func (a *api) getSpec(w http.ResponseWriter, r *http.Request) {
	v, ok := a.view(w)
	if !ok {
		return
	}
	info := v.Spec()
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(info.Version)))
	if r.URL.Query().Get("format") == "source" {
		w.Header().Set("Content-Type", "application/yaml")
		io.WriteString(w, info.Source)
		return
	}
	WriteJSON(w, http.StatusOK, info)
}

func (a *api) putSpec(w http.ResponseWriter, r *http.Request) {
	match, err := ifMatch(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	name, src, err := readSpec(r, a.cfg.MaxSpecBytes)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	res, err := a.svc.SubmitSpec(r.Context(), name, src, SubmitOptions{IfMatch: match, DryRun: dryRun(r)})
	answerSubmit(w, res, err)
}

func answerSubmit(w http.ResponseWriter, res apitypes.SubmitResult, err error) {
	var (
		inv      *InvalidSpecError
		conflict *ConflictError
		notFound *UnknownServiceError
		busy     *BusyError
	)
	switch {
	case err == nil:
		w.Header().Set("ETag", strconv.Quote(strconv.Itoa(res.Version)))
		WriteJSON(w, http.StatusOK, res)
	case errors.As(err, &inv):
		n := len(inv.Problems.Errors())
		WriteJSON(w, http.StatusUnprocessableEntity, Error{Error: fmt.Sprintf("the spec is invalid (%d %s); nothing was changed", n, plural(n, "problem", "problems")), Problems: inv.Problems})
	case errors.As(err, &conflict):
		WriteJSON(w, http.StatusConflict, Error{Error: conflict.Error(), Version: &conflict.Current})
	case errors.As(err, &notFound):
		writeErr(w, http.StatusNotFound, "%v", err)
	case errors.As(err, &busy):
		writeBusy(w, busy.RetryAfter, "the scheduler is busy checking other specs; retry in a second")
	case errors.Is(err, ErrBusy):
		writeBusy(w, time.Second, "the scheduler is busy checking other specs; retry in a second")
	case errors.Is(err, ErrStopped):
		writeErr(w, http.StatusServiceUnavailable, "the scheduler is stopping or busy; retry")
	default:
		writeErr(w, http.StatusInternalServerError, "%v", err)
	}
}

type scaleRequest struct {
	Instances *int `json:"instances"`
}

func (a *api) postScale(w http.ResponseWriter, r *http.Request) {
	match, err := ifMatch(r)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	var req scaleRequest
	if err := decodeJSON(r, 4096, &req, `{"instances": N}`); err != nil {
		writeStatusError(w, err)
		return
	}
	if req.Instances == nil {
		writeErr(w, http.StatusBadRequest, `the body must be {"instances": N}; "instances" is missing`)
		return
	}
	res, err := a.svc.Scale(r.Context(), r.PathValue("name"), *req.Instances, SubmitOptions{IfMatch: match, DryRun: dryRun(r)})
	answerSubmit(w, res, err)
}

func (a *api) getAgents(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.view(w); ok {
		WriteJSON(w, http.StatusOK, v.Agents())
	}
}

// getService is GET /v1/services/{name}: the service's progress, as in
// GET /v1/status, with why its pending tasks wait.
func (a *api) getService(w http.ResponseWriter, r *http.Request) {
	v, ok := a.view(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	st := v.Status()
	for _, ss := range st.Services {
		if ss.Name == name {
			WriteJSON(w, http.StatusOK, ss)
			return
		}
	}
	writeErr(w, http.StatusNotFound, "%s", fmt.Sprintf("no service %q in spec version %d", name, st.SpecVersion))
}

// getTasks lists one page of the tasks, in launch order (the view's), or
// their summary. Only the page's entries are built, so a page costs the
// same with 20 or 20,000 tasks around it.
func (a *api) getTasks(w http.ResponseWriter, r *http.Request) {
	q, err := parseTaskQuery(r.URL.Query())
	if err != nil {
		writeStatusError(w, err)
		return
	}
	v, ok := a.view(w)
	if !ok {
		return
	}
	if q.Summary {
		WriteJSON(w, http.StatusOK, q.Summarize(v.Tasks(), v.Task))
		return
	}
	idx, next, total := q.Page(v.Tasks(), v.Task)
	page := make([]apitypes.TaskInfo, 0, len(idx))
	for _, i := range idx {
		page = append(page, v.TaskInfo(i))
	}
	setPageHeaders(w, r, next, total)
	WriteJSON(w, http.StatusOK, page)
}

// getTaskFile is GET /v1/tasks/{id}/files/{name}: a piece of a task's
// stdout or stderr, read from its sandbox.
func (a *api) getTaskFile(w http.ResponseWriter, r *http.Request) {
	req := FileRequest{Task: r.PathValue("id"), File: r.PathValue("name"), Offset: -1, Length: -1}
	if !slices.Contains(apitypes.SandboxFiles, req.File) {
		writeErr(w, http.StatusNotFound, "%s", fmt.Sprintf("no file %q: a task's sandbox is read for stdout or stderr", req.File))
		return
	}
	q := r.URL.Query()
	for _, k := range []string{"offset", "length"} {
		p := map[string]*int64{"offset": &req.Offset, "length": &req.Length}[k]
		if !q.Has(k) {
			continue
		}
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || n < 0 || k == "length" && n > apitypes.MaxFileRead {
			writeErr(w, http.StatusBadRequest, "%s", fmt.Sprintf("?%s=%q: want a whole number from 0 (length at most %d)", k, q.Get(k), apitypes.MaxFileRead))
			return
		}
		*p = n
	}
	if _, ok := a.view(w); !ok {
		return
	}
	f, err := a.svc.TaskFile(r.Context(), req)
	if err != nil {
		writeStatusErrorOr(w, err, http.StatusBadGateway)
		return
	}
	f.TaskID, f.File = req.Task, req.File
	WriteJSON(w, http.StatusOK, f)
}

func (a *api) getLinks(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.view(w); ok {
		WriteJSON(w, http.StatusOK, v.Links())
	}
}

func (a *api) getStatus(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.view(w); ok {
		WriteJSON(w, http.StatusOK, v.Status())
	}
}

// getEvents streams events as Server-Sent Events until the client goes.
func (a *api) getEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub := a.svc.Subscribe()
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": tiltai scheduler events\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			return
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-sub.Notify():
			evs, dropped := sub.Take()
			if len(evs) == 0 && dropped == 0 {
				continue
			}
			if dropped > 0 {
				lost := apitypes.Event{Type: "dropped", Time: a.cfg.Now().UTC(), Data: map[string]any{"events": dropped, "why": "this client read too slowly"}}
				if _, err := w.Write(lost.SSE()); err != nil {
					return
				}
			}
			for _, ev := range evs {
				if _, err := w.Write(ev.SSE()); err != nil {
					return
				}
			}
			fl.Flush()
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
