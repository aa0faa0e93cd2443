package marathontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner starts the tasks of the apps the server deploys. ProcessRunner runs
// them as local processes; another Runner can launch them elsewhere (as
// command tasks on a Mesos master) without the server changing.
type Runner interface {
	Run(ctx context.Context, spec TaskSpec) (Task, error)
}

// TaskSpec is what a Marathon app gives each of its tasks.
type TaskSpec struct {
	TaskID  string
	AppID   string
	Version string
	Cmd     string   // run by /bin/sh -c, as Marathon's cmd; empty: Args
	Args    []string // run directly when Cmd is empty
	Env     map[string]string
	Fetch   []Fetch
	// PortNames has one entry per port definition (names may be empty);
	// the runner picks a host port for each.
	PortNames []string
}

// Fetch is a URI to download into the task's sandbox before it starts.
type Fetch struct {
	URI        string `json:"uri"`
	Executable bool   `json:"executable"`
	Extract    bool   `json:"extract"`
	Cache      bool   `json:"cache"`
}

// Task is one running task.
type Task interface {
	Host() string
	Ports() []int
	// Done is closed when the task has exited; Err then says how.
	Done() <-chan struct{}
	Err() error
	// Kill asks the task to stop (SIGTERM), forces it after grace
	// (SIGKILL), and returns once it has exited.
	Kill(grace time.Duration)
}

// ProcessRunner runs each task as a local process in its own sandbox
// directory under Dir, its output in the sandbox's stdout and stderr files,
// on host ports it picks on 127.0.0.1.
type ProcessRunner struct {
	Dir    string
	Client *http.Client // for fetching http(s) URIs; nil: a 30 s timeout client
}

// Run fetches the task's URIs and starts it.
func (r *ProcessRunner) Run(ctx context.Context, spec TaskSpec) (Task, error) {
	sandbox := filepath.Join(r.Dir, spec.TaskID)
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the sandbox: %w", err)
	}
	for _, f := range spec.Fetch {
		if err := r.fetch(ctx, sandbox, f); err != nil {
			return nil, err
		}
	}
	ports := make([]int, len(spec.PortNames))
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("cannot pick a host port: %w", err)
		}
		ports[i] = p
	}
	var cmd *exec.Cmd
	switch {
	case spec.Cmd != "":
		cmd = exec.Command("/bin/sh", "-c", spec.Cmd)
	case len(spec.Args) > 0:
		cmd = exec.Command(spec.Args[0], spec.Args[1:]...)
	default:
		return nil, errors.New("the app has neither cmd nor args")
	}
	cmd.Dir = sandbox
	cmd.Env = taskEnv(spec, sandbox, "127.0.0.1", ports)
	stdout, err := os.Create(filepath.Join(sandbox, "stdout"))
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(sandbox, "stderr"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so Kill reaches what the shell started; and
	// it dies with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start the task: %w", err)
	}
	t := &procTask{cmd: cmd, ports: ports, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		close(t.done)
	}()
	return t, nil
}

// taskEnv is the environment Marathon gives a command task, on top of a
// minimal base (no variables of the test process leak in).
func taskEnv(spec TaskSpec, sandbox, host string, ports []int) []string {
	env := map[string]string{
		"PATH":                 os.Getenv("PATH"),
		"HOME":                 sandbox,
		"HOST":                 host,
		"MESOS_SANDBOX":        sandbox,
		"MESOS_TASK_ID":        spec.TaskID,
		"MARATHON_APP_ID":      spec.AppID,
		"MARATHON_APP_VERSION": spec.Version,
	}
	strs := make([]string, len(ports))
	for i, p := range ports {
		strs[i] = strconv.Itoa(p)
		env[fmt.Sprintf("PORT%d", i)] = strs[i]
		if name := spec.PortNames[i]; name != "" {
			env["PORT_"+strings.ToUpper(name)] = strs[i]
		}
	}
	if len(ports) > 0 {
		env["PORT"] = strs[0]
		env["PORTS"] = strings.Join(strs, ",")
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// maxFetch bounds one downloaded URI.
const maxFetch = 512 << 20

func (r *ProcessRunner) fetch(ctx context.Context, sandbox string, f Fetch) error {
	u, err := url.Parse(f.URI)
	if err != nil {
		return fmt.Errorf("cannot fetch %q: %w", f.URI, err)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return fmt.Errorf("cannot fetch %q: no file name in the URI", f.URI)
	}
	mode := os.FileMode(0o644)
	if f.Executable {
		mode = 0o755
	}
	dst, err := os.OpenFile(filepath.Join(sandbox, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	defer dst.Close()
	var src io.ReadCloser
	switch u.Scheme {
	case "file", "":
		src, err = os.Open(u.Path)
	case "http", "https":
		client := r.Client
		if client == nil {
			client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		}
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, f.URI, nil)
		if err == nil {
			var resp *http.Response
			resp, err = client.Do(req)
			if err == nil && resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				err = fmt.Errorf("HTTP %s", resp.Status)
			}
			if err == nil {
				src = resp.Body
			}
		}
	default:
		err = fmt.Errorf("scheme %q is not supported", u.Scheme)
	}
	if err != nil {
		return fmt.Errorf("cannot fetch %q: %w", f.URI, err)
	}
	defer src.Close()
	n, err := io.Copy(dst, io.LimitReader(src, maxFetch+1))
	if err != nil {
		return fmt.Errorf("cannot fetch %q: %w", f.URI, err)
	}
	if n > maxFetch {
		return fmt.Errorf("cannot fetch %q: larger than %d bytes", f.URI, maxFetch)
	}
	return dst.Close()
}

type procTask struct {
	cmd   *exec.Cmd
	ports []int
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

func (t *procTask) Host() string          { return "127.0.0.1" }
func (t *procTask) Ports() []int          { return t.ports }
func (t *procTask) Done() <-chan struct{} { return t.done }

func (t *procTask) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *procTask) Kill(grace time.Duration) {
	pgid := -t.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-t.done:
		return
	case <-timer.C:
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-t.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
