package console_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/console"
)

// cannedAPI serves the console and canned answers of the scheduler's API:
// whatever a test puts in it, hostile names included (the real API's
// validation would refuse some), and events it pushes.
type cannedAPI struct {
	URL string
	srv *httptest.Server

	mu     sync.Mutex
	spec   scheduler.SpecInfo
	status scheduler.Status
	tasks  []scheduler.TaskInfo
	links  []scheduler.TaskLinks
	token  string
	logs   map[string]string // "task/file" → what the task wrote
	writes []string          // "METHOD path" of accepted writes
	subs   map[chan []byte]struct{}
	seq    uint64
}

func newCannedAPI(t testing.TB) *cannedAPI {
	f := &cannedAPI{subs: map[chan []byte]struct{}{}, links: []scheduler.TaskLinks{}, tasks: []scheduler.TaskInfo{}}
	mux := http.NewServeMux()
	get := func(v func() any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !f.authorized(w, r) {
				return
			}
			f.mu.Lock()
			b, _ := json.Marshal(v())
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /v1/spec", get(func() any { return f.spec }))
	mux.HandleFunc("GET /v1/status", get(func() any { return f.status }))
	mux.HandleFunc("GET /v1/links", get(func() any { return f.links }))
	mux.HandleFunc("GET /v1/tasks/{id}/files/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		data, ok := f.logs[r.PathValue("id")+"/"+r.PathValue("name")]
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such file"}`))
			return
		}
		q := r.URL.Query()
		file := scheduler.TaskFile{TaskID: r.PathValue("id"), File: r.PathValue("name"), Offset: int64(len(data))}
		if q.Has("offset") {
			off, _ := strconv.Atoi(q.Get("offset"))
			end := len(data)
			if n, err := strconv.Atoi(q.Get("length")); err == nil {
				end = min(end, off+n)
			}
			if off < end {
				file.Offset, file.Data = int64(off), data[off:end]
			}
		}
		get(func() any { return file })(w, r)
	})
	mux.HandleFunc("GET /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		svc := r.URL.Query().Get("service")
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		get(func() any {
			out, total := []scheduler.TaskInfo{}, 0
			for _, t := range f.tasks {
				if svc == "" || t.Service == svc {
					total++
					if limit == 0 || len(out) < limit {
						out = append(out, t)
					}
				}
			}
			w.Header().Set("X-Total-Count", strconv.Itoa(total))
			return out
		})(w, r)
	})
	write := func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r) {
			return
		}
		io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
		v := f.spec.Version
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"version": %d, "changed": false, "changes": []}`, v)
	}
	mux.HandleFunc("PUT /v1/spec", write)
	mux.HandleFunc("POST /v1/services/{name}/scale", write)
	mux.HandleFunc("GET /v1/events", f.events)
	mux.Handle("GET /", console.Handler())
	f.srv = httptest.NewServer(console.Secure(mux))
	f.URL = f.srv.URL
	t.Cleanup(f.close)
	return f
}

func (f *cannedAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	tok := f.token
	f.mu.Unlock()
	if tok == "" || r.Header.Get("Authorization") == "Bearer "+tok {
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"error": "this scheduler needs a token: pass --token or set TILTAI_TOKEN"}`)
	return false
}

func (f *cannedAPI) events(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	ch := make(chan []byte, 1024)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": canned\n\n")
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-ch:
			if !ok {
				return
			}
			w.Write(b)
			w.(http.Flusher).Flush()
		}
	}
}

// publish sends an event to every stream.
func (f *cannedAPI) publish(typ string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	ev := scheduler.Event{Seq: f.seq, Time: time.Now().UTC(), Type: typ, Data: data}
	b, _ := json.Marshal(ev)
	msg := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, typ, b)
	for ch := range f.subs {
		select {
		case ch <- msg:
		default:
		}
	}
}

// update changes the canned state under the lock.
func (f *cannedAPI) update(fn func(f *cannedAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *cannedAPI) close() {
	f.mu.Lock()
	for ch := range f.subs {
		close(ch)
		delete(f.subs, ch)
	}
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// layered fills f with services in layers (each sending to two of the
// next layer), tasks of each, running, and gate counters that grow with
// round.
func (f *cannedAPI) layered(layers, width, tasksEach, round int) {
	spec := &linkspec.Spec{Version: 1, Services: map[string]*linkspec.Service{}}
	st := scheduler.Status{SpecVersion: 1, Subscribed: true, Converged: true}
	name := func(l, i int) string { return fmt.Sprintf("s%02d-%02d", l, i) }
	f.tasks = f.tasks[:0]
	now := time.Now()
	for l := range layers {
		for i := range width {
			n := name(l, i)
			gates := map[string]linkspec.Pattern{}
			if l > 0 {
				gates["in"] = linkspec.Pull
			}
			if l < layers-1 {
				gates["out"] = linkspec.Push
				for _, j := range []int{i, (i + 1) % width} {
					spec.Links = append(spec.Links, linkspec.Link{From: linkspec.GateRef{Service: n, Gate: "out"}, To: linkspec.GateRef{Service: name(l+1, j), Gate: "in"}})
				}
			}
			spec.Services[n] = &linkspec.Service{Command: "worker", Args: []string{"--layer", strconv.Itoa(l)}, Instances: tasksEach, Gates: gates}
			sum := map[string]scheduler.GateCountersReport{}
			for g, p := range gates {
				sum[g] = scheduler.GateCountersReport{Pattern: string(p), Sent: uint64(round * 100 * tasksEach), Received: uint64(round * 100 * tasksEach)}
			}
			st.Services = append(st.Services, scheduler.ServiceStatus{Name: n, Wanted: tasksEach, Running: tasksEach, Converged: true, Gates: sum})
			for k := range tasksEach {
				f.tasks = append(f.tasks, scheduler.TaskInfo{ID: fmt.Sprintf("%s.%d", n, k+1), Service: n, Phase: "running", State: "TASK_RUNNING",
					AgentID: "agent-1", Host: "127.0.0.1", Ports: map[string]uint32{"in": uint32(20000 + k)}, Created: now, Updated: now,
					Links: scheduler.LinkState{Version: 1, Sent: 1, Acked: 1}})
			}
		}
	}
	f.spec = scheduler.SpecInfo{Version: 1, Name: "layered.yaml", Spec: spec}
	f.status = st
}
