package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/core"
)

// GET /v1/tasks/{id}/files/{name}: a piece of a task's stdout or stderr,
// read from its agent's /files/read as Mesos' web UI reads sandboxes. The
// scheduler asks the leading master which address the task's agent has
// (GET_AGENTS) and reads the executor's latest run under its virtual
// path. Logs can hold what a service should not show everyone, so this
// needs the token whenever one is configured, even with open reads.

// maxFileRead bounds one read (Mesos caps it at 16 pages itself).
const maxFileRead = apitypes.MaxFileRead

func (s *Scheduler) private(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tiltai"`)
			writeErr(w, http.StatusUnauthorized, "a task's logs need the scheduler's token: pass --token or set TILTAI_TOKEN")
			return
		}
		h(w, r)
	}
}

func (s *Scheduler) getTaskFile(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	if !slices.Contains(apitypes.SandboxFiles, name) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no file %q: a task's sandbox is read for stdout or stderr", name))
		return
	}
	q := r.URL.Query()
	params := url.Values{}
	for _, k := range []string{"offset", "length"} {
		if !q.Has(k) {
			continue
		}
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || n < 0 || k == "length" && n > maxFileRead {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("?%s=%q: want a whole number from 0 (length at most %d)", k, q.Get(k), maxFileRead))
			return
		}
		params.Set(k, strconv.FormatInt(n, 10))
	}
	v, ok := s.readView(w)
	if !ok {
		return
	}
	var task *core.TaskView
	for i := range v.Tasks {
		if v.Tasks[i].ID == id {
			task = &v.Tasks[i]
			break
		}
	}
	switch {
	case task == nil:
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no task %q (tiltai ps --all lists them)", id))
		return
	case task.AgentID == "":
		writeErr(w, http.StatusConflict, fmt.Sprintf("task %q has no sandbox yet: it was not launched", id))
		return
	case v.Master == "":
		writeErr(w, http.StatusServiceUnavailable, "no leading Mesos master is known yet; retry")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	agent, err := s.sandboxes.agentAddress(ctx, v.Master, task.AgentID)
	if err != nil {
		writeErr(w, http.StatusBadGateway, fmt.Sprintf("cannot find task %q's agent %s: %v", id, task.AgentID, err))
		return
	}
	params.Set("path", "/frameworks/"+v.FrameworkID+"/executors/"+core.ExecutorID(id)+"/runs/latest/"+name)
	f, status, err := s.sandboxes.read(ctx, agent, params)
	if err != nil {
		s.sandboxes.forget(task.AgentID)
		writeErr(w, http.StatusBadGateway, fmt.Sprintf("cannot read task %q's %s from agent %s: %v", id, name, agent, err))
		return
	}
	if status == http.StatusNotFound {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("task %q's sandbox on agent %s has no %s (gone, or not made yet)", id, agent, name))
		return
	}
	f.TaskID, f.File = id, name
	writeJSON(w, http.StatusOK, f)
}

// sandboxReader reads sandboxes from agents. It remembers each agent's
// address (agents keep theirs while they live); the cache is its own,
// apart from the loop's state, and forgets an agent that fails a read.
type sandboxReader struct {
	client            *http.Client
	principal, secret string

	mu     sync.Mutex
	agents map[string]string // agent id → scheme://host:port
}

func newSandboxReader(cfg Config) *sandboxReader {
	return &sandboxReader{
		client: &http.Client{
			Transport: &http.Transport{TLSClientConfig: cfg.TLS.Clone(), ResponseHeaderTimeout: cfg.CallTimeout},
			// A master that does not lead answers 307 to the leader; the
			// redirect is followed for reads, which are safe to repeat.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return http.ErrUseLastResponse
				}
				return nil
			},
		},
		principal: cfg.Principal, secret: cfg.Secret,
		agents: map[string]string{},
	}
}

func (sr *sandboxReader) forget(agentID string) {
	sr.mu.Lock()
	delete(sr.agents, agentID)
	sr.mu.Unlock()
}

func (sr *sandboxReader) do(ctx context.Context, method, u string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
	}
	if sr.principal != "" {
		req.SetBasicAuth(sr.principal, sr.secret)
	}
	return sr.client.Do(req)
}

// agentAddress is the base URL of an agent, from the master's GET_AGENTS
// (the agent's pid, "slave(1)@ip:port").
func (sr *sandboxReader) agentAddress(ctx context.Context, master, agentID string) (string, error) {
	sr.mu.Lock()
	addr, ok := sr.agents[agentID]
	sr.mu.Unlock()
	if ok {
		return addr, nil
	}
	resp, err := sr.do(ctx, http.MethodPost, strings.TrimRight(master, "/")+"/api/v1", []byte(`{"type":"GET_AGENTS"}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("the master answered GET_AGENTS with %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var got struct {
		GetAgents struct {
			Agents []struct {
				AgentInfo struct {
					ID struct{ Value string } `json:"id"`
				} `json:"agent_info"`
				PID string `json:"pid"`
			} `json:"agents"`
		} `json:"get_agents"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&got); err != nil {
		return "", fmt.Errorf("cannot read the master's GET_AGENTS answer: %w", err)
	}
	scheme := "http"
	if strings.HasPrefix(master, "https://") {
		scheme = "https"
	}
	found := map[string]string{}
	for _, a := range got.GetAgents.Agents {
		_, hostport, ok := strings.Cut(a.PID, "@")
		if _, _, err := net.SplitHostPort(hostport); !ok || err != nil {
			continue
		}
		found[a.AgentInfo.ID.Value] = scheme + "://" + hostport
	}
	sr.mu.Lock()
	sr.agents = found // the master's list replaces what was known
	sr.mu.Unlock()
	if addr, ok := found[agentID]; ok {
		return addr, nil
	}
	return "", fmt.Errorf("the master does not know agent %s (removed?)", agentID)
}

// read asks an agent's /files/read. A 404 is returned as a status, not an
// error.
func (sr *sandboxReader) read(ctx context.Context, agent string, params url.Values) (TaskFile, int, error) {
	resp, err := sr.do(ctx, http.MethodGet, agent+"/files/read?"+params.Encode(), nil)
	if err != nil {
		return TaskFile{}, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return TaskFile{}, resp.StatusCode, nil
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return TaskFile{}, resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var f TaskFile
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8*maxFileRead)).Decode(&f); err != nil {
		return TaskFile{}, 0, fmt.Errorf("cannot read the agent's answer: %w", err)
	}
	return f, resp.StatusCode, nil
}
