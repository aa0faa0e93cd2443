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
	"strconv"
	"strings"
	"sync"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/httpapi"
)

// GET /v1/tasks/{id}/files/{name}: a piece of a task's stdout or stderr,
// read from its agent's /files/read as Mesos' web UI reads sandboxes. The
// scheduler asks the leading master which address the task's agent has
// (GET_AGENTS) and reads the executor's latest run under its virtual
// path. (The handler, in httpapi, asks for the token whenever one is
// configured, even with open reads: logs can hold what a service should
// not show everyone.)

// maxFileRead bounds one read (Mesos caps it at 16 pages itself).
const maxFileRead = apitypes.MaxFileRead

// TaskFile implements httpapi.Files: the handler has checked the file's
// name and the range.
func (a apiService) TaskFile(ctx context.Context, req httpapi.FileRequest) (TaskFile, error) {
	fail := func(code int, format string, args ...any) (TaskFile, error) {
		return TaskFile{}, &httpapi.StatusError{Code: code, Msg: fmt.Sprintf(format, args...)}
	}
	id, name := req.Task, req.File
	params := url.Values{}
	if req.Offset >= 0 {
		params.Set("offset", strconv.FormatInt(req.Offset, 10))
	}
	if req.Length >= 0 {
		params.Set("length", strconv.FormatInt(req.Length, 10))
	}
	v := a.view.Load()
	var task *core.TaskView
	for i := range v.Tasks {
		if v.Tasks[i].ID == id {
			task = &v.Tasks[i]
			break
		}
	}
	switch {
	case task == nil:
		return fail(http.StatusNotFound, "no task %q (tiltai ps --all lists them)", id)
	case task.AgentID == "":
		return fail(http.StatusConflict, "task %q has no sandbox yet: it was not launched", id)
	case v.Master == "":
		return fail(http.StatusServiceUnavailable, "no leading Mesos master is known yet; retry")
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	agent, err := a.sandboxes.agentAddress(ctx, v.Master, task.AgentID)
	if err != nil {
		return fail(http.StatusBadGateway, "cannot find task %q's agent %s: %v", id, task.AgentID, err)
	}
	params.Set("path", "/frameworks/"+v.FrameworkID+"/executors/"+core.ExecutorID(id)+"/runs/latest/"+name)
	f, status, err := a.sandboxes.read(ctx, agent, params)
	if err != nil {
		a.sandboxes.forget(task.AgentID)
		return fail(http.StatusBadGateway, "cannot read task %q's %s from agent %s: %v", id, name, agent, err)
	}
	if status == http.StatusNotFound {
		return fail(http.StatusNotFound, "task %q's sandbox on agent %s has no %s (gone, or not made yet)", id, agent, name)
	}
	return f, nil
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
