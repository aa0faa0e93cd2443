package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client"
)

// system is one whole Tiltai on loopback: an embedded Mesos master and agent
// in this process (executors run as processes), and the tiltai scheduler as
// a process of its own that a test can kill and restart on the same state
// file and address.
type system struct {
	tb      testing.TB
	dir     string
	ctx     context.Context
	cluster *localmesos.Cluster
	sched   *schedProc
	listen  string // the scheduler API's host:port, fixed by the first start
	api     *client.Client
	client  *http.Client // for the master
	ports   [2]int       // the agent's port range (tasks' in-gates)
	// registry is the agents' --docker_registry, given to the scheduler
	// too.
	registry string
}

// newSystem starts the embedded Mesos; startScheduler starts the scheduler.
// Everything is stopped when the test ends, and the test fails if any
// process it started outlives it.
func newSystem(tb testing.TB) *system {
	tb.Helper()
	return newSystemWith(tb, systemOptions{})
}

// systemOptions shape the embedded Mesos.
type systemOptions struct {
	// Attributes gives each agent its attributes (Mesos --attributes
	// syntax); there are as many agents as entries (default one agent).
	// Each agent is a machine of its own (127.0.0.2, 127.0.0.3, …) with a
	// port range of its own, as tasks bind their ports on every address.
	Attributes []string
	// Mesos adjusts the rest of the embedded Mesos' configuration (e.g.
	// images on).
	Mesos func(*localmesos.Config)
}

func newSystemWith(tb testing.TB, opts systemOptions) *system {
	tb.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name())
	dir, err := os.MkdirTemp(runDir, name+"-")
	if err != nil {
		tb.Fatal(err)
	}
	s := &system{tb: tb, dir: dir, ctx: tb.Context(), client: &http.Client{Timeout: 30 * time.Second}}
	s.ports = reservePorts(tb, 200)
	logf, err := os.Create(filepath.Join(dir, "localmesos.log"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := localmesos.Config{
		Listen:    "127.0.0.1:0",
		Resources: fmt.Sprintf("cpus:32;mem:32768;disk:100000;ports:[%d-%d]", s.ports[0], s.ports[1]),
		WorkDir:   filepath.Join(dir, "mesos"),
		Logger:    slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if n := len(opts.Attributes); n > 0 {
		cfg.Agents, cfg.AgentAttributes = n, opts.Attributes
		per := (s.ports[1] - s.ports[0] + 1) / n
		for i := range n {
			lo := s.ports[0] + i*per
			cfg.AgentResources = append(cfg.AgentResources, fmt.Sprintf("cpus:8;mem:8192;disk:10000;ports:[%d-%d]", lo, lo+per-1))
		}
	}
	if opts.Mesos != nil {
		opts.Mesos(&cfg)
	}
	s.registry = cfg.DockerRegistry
	s.cluster, err = localmesos.New(ctx, cfg)
	if err != nil {
		logf.Close()
		tb.Fatalf("cannot start localmesos: %v", err)
	}
	tb.Cleanup(func() {
		if s.sched != nil {
			s.sched.kill()
		}
		s.cluster.Close()
		logf.Close()
		s.removeControlDirs()
		if leaks := waitNoProcessesUnder(dir, 20*time.Second); len(leaks) > 0 {
			tb.Errorf("%d processes outlived the test (killed now):\n  %s", len(leaks), strings.Join(leaks, "\n  "))
		}
		s.checkRaceReports()
		if tb.Failed() {
			s.dumpLogs()
		}
	})
	return s
}

// --- ports ---------------------------------------------------------------

var portBlocks struct {
	sync.Mutex
	used map[int]bool
}

// reservePorts picks a block of n ports below the ephemeral range that can
// all be bound now and that no other system of this run uses: tasks'
// in-gates bind ports from offers, and other test runs on this machine use
// localmesos' default range (31000-32000).
func reservePorts(tb testing.TB, n int) [2]int {
	portBlocks.Lock()
	defer portBlocks.Unlock()
	if portBlocks.used == nil {
		portBlocks.used = map[int]bool{}
	}
	const lo, hi = 20000, 30000
	blocks := (hi - lo) / n
	for _, b := range rand.Perm(blocks) {
		base := lo + b*n
		if portBlocks.used[base] || !bindable(base, base+n-1) {
			continue
		}
		portBlocks.used[base] = true
		tb.Cleanup(func() {
			portBlocks.Lock()
			delete(portBlocks.used, base)
			portBlocks.Unlock()
		})
		return [2]int{base, base + n - 1}
	}
	tb.Fatalf("no free block of %d ports in %d-%d", n, lo, hi)
	return [2]int{}
}

func bindable(first, last int) bool {
	for p := first; p <= last; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// --- the scheduler process ------------------------------------------------

// schedProc is one run of `tiltai scheduler`.
type schedProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed once it has exited and been reaped
	err  error         // from Wait
}

// startScheduler starts `tiltai scheduler` on the system's state file and
// waits until it has subscribed to the master. A restart reuses the address
// of the first start, as an operator's would.
func (s *system) startScheduler() *schedProc {
	s.tb.Helper()
	listen := s.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	tmp := filepath.Join(s.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		s.tb.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "scheduler.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	started := make(chan string, 1)
	w := &lineWriter{out: logf, line: func(line []byte) {
		var rec struct {
			Msg string `json:"msg"`
			API string `json:"api"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "scheduler started" {
			select {
			case started <- rec.API:
			default:
			}
		}
	}}
	fmt.Fprintf(logf, "=== %s: tiltai scheduler --listen %s\n", time.Now().Format(time.RFC3339Nano), listen)
	cmd := exec.Command(tiltaiBin, "scheduler",
		"--master", s.cluster.Addr(),
		"--state", filepath.Join(s.dir, "state.db"),
		"--listen", listen,
		"--log_format", "json", "--log_level", logLevel())
	if s.registry != "" {
		cmd.Args = append(cmd.Args, "--docker_registry", s.registry)
	}
	// The scheduler stages its executor binary under TMPDIR: keep it in the
	// run directory, where a SIGKILL leaves it.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = w, w
	// Should this test process die, so does the scheduler.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.tb.Fatalf("cannot start the scheduler: %v", err)
	}
	p := &schedProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	s.sched = p
	select {
	case p.url = <-started:
	case <-p.done:
		s.tb.Fatalf("the scheduler exited at start: %v", p.err)
	case <-time.After(time.Minute):
		s.tb.Fatal("the scheduler did not start within a minute")
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.url, "http://"))
	s.listen = net.JoinHostPort("127.0.0.1", port)
	if s.api, err = client.New(p.url, ""); err != nil {
		s.tb.Fatal(err)
	}
	s.waitFor(time.Minute, "the scheduler to subscribe", func() (bool, string) {
		h, err := s.health()
		if err != nil {
			return false, err.Error()
		}
		return h.Subscribed, fmt.Sprintf("%+v", h)
	})
	return p
}

// logLevel is the scheduler's log level: TILTAI_E2E_LOG_LEVEL, default info.
func logLevel() string {
	if l := os.Getenv("TILTAI_E2E_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// kill SIGKILLs the scheduler and waits for it.
func (p *schedProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exited waits for the scheduler to exit.
func (p *schedProc) exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// lineWriter writes to out and hands every complete line to line.
type lineWriter struct {
	mu   sync.Mutex
	out  io.Writer
	buf  []byte
	line func([]byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return w.out.Write(p)
}

// --- the scheduler API ----------------------------------------------------

// The API is used through scheduler/client, as the CLI does.

func (s *system) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, 30*time.Second)
}

func (s *system) health() (scheduler.Health, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	return s.api.Health(ctx)
}

func (s *system) status() (scheduler.Status, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	return s.api.Status(ctx)
}

func (s *system) tasks(service string) ([]scheduler.TaskInfo, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	return s.api.Tasks(ctx, service)
}

func (s *system) links() ([]scheduler.TaskLinks, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	return s.api.Links(ctx)
}

// submit PUTs a spec (YAML) and fails the test if it is refused.
func (s *system) submit(spec string) scheduler.SubmitResult {
	s.tb.Helper()
	ctx, cancel := s.reqCtx()
	defer cancel()
	res, err := s.api.Submit(ctx, "spec.yaml", []byte(spec))
	if err != nil {
		s.tb.Fatalf("cannot submit the spec: %v", err)
	}
	return res
}

// scale sets a service's instances and fails the test if it is refused.
func (s *system) scale(service string, n int) scheduler.SubmitResult {
	s.tb.Helper()
	ctx, cancel := s.reqCtx()
	defer cancel()
	res, err := s.api.Scale(ctx, service, n)
	if err != nil {
		s.tb.Fatalf("cannot scale %s to %d: %v", service, n, err)
	}
	return res
}

// metrics reads /metrics as "name{labels}" → value.
func (s *system) metrics() (map[string]float64, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	text, err := s.api.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// masterState is the part of the master's /state the tests read.
type masterState struct {
	Frameworks []struct {
		ID        string `json:"id"`
		Active    bool   `json:"active"`
		Connected bool   `json:"connected"`
		Tasks     []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"tasks"`
	} `json:"frameworks"`
	CompletedFrameworks []struct {
		ID string `json:"id"`
	} `json:"completed_frameworks"`
}

func (s *system) masterState() (st masterState, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.cluster.MasterURL()+"/state", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// --- waiting --------------------------------------------------------------

// waitFor polls cond until it holds, failing the test at the deadline with
// cond's last description of what it saw.
func (s *system) waitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			s.tb.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		select {
		case <-tick.C:
		case <-s.ctx.Done():
			s.tb.Fatalf("test ended while waiting for %s; last: %s", what, last)
		}
	}
}

// converge waits until the system has converged on spec version (or a
// later one): every service runs what the spec asks, with its links
// acknowledged. It fails the test at the timeout, or as soon as a service
// keeps crashing.
func (s *system) converge(version int, timeout time.Duration) scheduler.Status {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	st, err := s.api.WaitConverged(ctx, version, client.WaitOptions{Interval: 100 * time.Millisecond})
	if err != nil {
		s.tb.Fatalf("the system did not converge on spec version %d: %v", version, err)
	}
	return st
}

// running lists a service's running tasks that are neither retiring nor
// outdated, by ID.
func (s *system) running(service string) []scheduler.TaskInfo {
	s.tb.Helper()
	ts, err := s.tasks(service)
	if err != nil {
		s.tb.Fatal(err)
	}
	var out []scheduler.TaskInfo
	for _, t := range ts {
		if t.Phase == "running" && !t.Retiring && !t.Outdated && !t.Orphan {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *system) task(id string) (scheduler.TaskInfo, bool) {
	ts, err := s.tasks("")
	if err != nil {
		return scheduler.TaskInfo{}, false
	}
	for _, t := range ts {
		if t.ID == id {
			return t, true
		}
	}
	return scheduler.TaskInfo{}, false
}

// endpoint is where a task's in-gate listens, as link tables name it.
func endpoint(t scheduler.TaskInfo, gate string) string {
	return linkspec.Endpoint(t.Host, t.Ports[gate])
}

// --- sandboxes and processes ----------------------------------------------

// sandbox is the directory the agent ran a task's executor in.
func (s *system) sandbox(taskID string) (string, error) {
	pattern := filepath.Join(s.cluster.WorkDir(), "agents", "*", "slaves", "*", "frameworks", "*", "executors", "tiltai-executor."+taskID, "runs", "*")
	m, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	var dirs []string
	for _, d := range m {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) != 1 {
		return "", fmt.Errorf("task %s has %d sandboxes (%s)", taskID, len(dirs), pattern)
	}
	return dirs[0], nil
}

// servicePID finds a task's service process: the process under this system's
// directory whose environment names the task (TILTAI_TASK_ID, set by the
// executor for the service only).
func (s *system) servicePID(taskID string) (int, error) {
	var found []int
	for pid := range processesUnder(s.dir) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "TILTAI_TASK_ID="+taskID {
				found = append(found, pid)
			}
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d service processes for task %s: %v", len(found), taskID, found)
	}
	return found[0], nil
}

// servicePIDs maps every running task to its service process.
func (s *system) servicePIDs() map[string]int {
	s.tb.Helper()
	ts, err := s.tasks("")
	if err != nil {
		s.tb.Fatal(err)
	}
	out := map[string]int{}
	for _, t := range ts {
		pid, err := s.servicePID(t.ID)
		if err != nil {
			s.tb.Fatal(err)
		}
		out[t.ID] = pid
	}
	return out
}

var printerLineRE = regexp.MustCompile(`^printer(?: final)?: origins=(\d+) received=(\d+) duplicates=(\d+) missing=(\d+)`)

// printerCounts are the printer's totals over every origin.
type printerCounts struct {
	Origins, Received, Duplicates, Missing uint64
}

// lastPrinterLine reads the printer's latest summary from its stdout (it
// writes one every --report interval), for when the scheduler cannot be
// asked.
func lastPrinterLine(stdout string) (printerCounts, bool) {
	b, err := os.ReadFile(stdout)
	if err != nil {
		return printerCounts{}, false
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m := printerLineRE.FindStringSubmatch(lines[i]); m != nil {
			var c printerCounts
			c.Origins, _ = strconv.ParseUint(m[1], 10, 64)
			c.Received, _ = strconv.ParseUint(m[2], 10, 64)
			c.Duplicates, _ = strconv.ParseUint(m[3], 10, 64)
			c.Missing, _ = strconv.ParseUint(m[4], 10, 64)
			return c, true
		}
	}
	return printerCounts{}, false
}

// printerCounters are the printer's application counters as its executor
// last reported them to the scheduler.
func (s *system) printerCounters() (printerCounts, scheduler.TaskInfo, error) {
	ps := s.running("printer")
	if len(ps) != 1 {
		return printerCounts{}, scheduler.TaskInfo{}, fmt.Errorf("%d printers running", len(ps))
	}
	c := ps[0].Counters
	return printerCounts{
		Origins: uint64(c["printer.origins"]), Received: uint64(c["printer.received"]),
		Duplicates: uint64(c["printer.duplicates"]), Missing: uint64(c["printer.missing"]),
	}, ps[0], nil
}

// --- accounting -----------------------------------------------------------

// tally is the end-to-end account of one run of the pipeline.
type tally struct {
	Sent       uint64 // by the feeder, from its own final log line
	Received   uint64 // by the printer, duplicates included
	Duplicates uint64
	Missing    uint64 // gaps below the highest sequence number seen
	Lost       uint64 // sent and never received: Sent - (Received - Duplicates)
}

var feederSentRE = regexp.MustCompile(`msg="feeder stopping; delivering what is queued" sent=(\d+)`)

// stopFeeder stops the feeder the planned way (scaled to 0: drained, its
// queue delivered), reads how many it sent from its log, and waits until the
// printer's count accounts for every one of them: the highest sequence
// number seen is the last one sent (nothing lost at the tail), so every
// message is either received or counted missing. The caller judges the
// numbers.
func (s *system) stopFeeder() tally {
	s.tb.Helper()
	feeders := s.running("feeder")
	if len(feeders) != 1 {
		s.tb.Fatalf("%d feeders running, want 1", len(feeders))
	}
	id := feeders[0].ID
	box, err := s.sandbox(id)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.scale("feeder", 0)
	s.waitFor(time.Minute, "the feeder to stop", func() (bool, string) {
		t, ok := s.task(id)
		return !ok, fmt.Sprintf("%+v", t)
	})
	logb, err := os.ReadFile(filepath.Join(box, "stderr"))
	if err != nil {
		s.tb.Fatal(err)
	}
	m := feederSentRE.FindSubmatch(logb)
	if m == nil {
		s.tb.Fatalf("the feeder's log has no final count:\n%s", tail(logb, 20))
	}
	var tl tally
	tl.Sent, _ = strconv.ParseUint(string(m[1]), 10, 64)
	var pc printerCounts
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		pc, _, err = s.printerCounters()
		if err == nil && pc.Received-pc.Duplicates+pc.Missing == tl.Sent {
			break
		}
		if time.Now().After(deadline) {
			s.tb.Errorf("the printer never accounted for all %d messages sent: %+v (err %v)", tl.Sent, pc, err)
			break
		}
		<-time.After(200 * time.Millisecond)
	}
	tl.Received, tl.Duplicates, tl.Missing = pc.Received, pc.Duplicates, pc.Missing
	if distinct := pc.Received - pc.Duplicates; distinct < tl.Sent {
		tl.Lost = tl.Sent - distinct
	}
	if pc.Origins != 1 {
		s.tb.Errorf("the printer saw %d origins, want 1 (one feeder)", pc.Origins)
	}
	return tl
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkRaceReports fails the test on a data race reported by any process
// of the system: with TILTAI_E2E_BUILDFLAGS=-race the scheduler, executors
// and services are race-checked too, and report to their logs.
func (s *system) checkRaceReports() {
	files := []string{filepath.Join(s.dir, "scheduler.log")}
	boxes, _ := filepath.Glob(filepath.Join(s.cluster.WorkDir(), "agents", "*", "slaves", "*", "frameworks", "*", "executors", "*", "runs", "*", "std*"))
	files = append(files, boxes...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
			end := min(len(b), i+6000)
			rel, _ := filepath.Rel(s.dir, f)
			s.tb.Errorf("a data race was reported in %s:\n%s", rel, b[i:end])
		}
	}
}

var controlDirRE = regexp.MustCompile(`control=unix://(/\S*/tiltai-exec-[^/\s]+)/`)

// removeControlDirs removes the control-socket directories the executors
// made under the system's temporary directory (a unix socket path must be
// short, so they cannot live in the sandbox): an executor killed with
// SIGKILL, as Cluster.Close does, leaves its own behind.
func (s *system) removeControlDirs() {
	logs, _ := filepath.Glob(filepath.Join(s.cluster.WorkDir(), "agents", "*", "slaves", "*", "frameworks", "*", "executors", "*", "runs", "*", "executor.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, m := range controlDirRE.FindAllSubmatch(b, -1) {
			os.RemoveAll(string(m[1]))
		}
	}
}

// dumpLogs shows the end of every log of the system, for a failed test.
func (s *system) dumpLogs() {
	show := func(path string, n int) {
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			return
		}
		rel, _ := filepath.Rel(s.dir, path)
		s.tb.Logf("--- %s (last %d lines)\n%s", rel, n, tail(b, n))
	}
	show(filepath.Join(s.dir, "scheduler.log"), 60)
	show(filepath.Join(s.dir, "localmesos.log"), 30)
	boxes, _ := filepath.Glob(filepath.Join(s.cluster.WorkDir(), "agents", "*", "slaves", "*", "frameworks", "*", "executors", "*", "runs", "*"))
	for _, b := range boxes {
		if fi, err := os.Lstat(b); err != nil || !fi.IsDir() {
			continue
		}
		show(filepath.Join(b, "executor.log"), 15)
		show(filepath.Join(b, "stderr"), 15)
	}
	s.tb.Logf("system directory: %s (kept with -e2e.keep)", s.dir)
}

// --- the event stream -----------------------------------------------------

// eventLog records a scheduler's GET /v1/events stream.
type eventLog struct {
	mu      sync.Mutex
	evs     []scheduler.Event
	changed chan struct{} // closed and replaced on every event
	ended   bool
	err     error
	dropped bool
}

// watchEvents subscribes to the scheduler's events and records them until the
// stream ends (the scheduler stops, or the test ends). It returns once the
// subscription is in place, so nothing the scheduler does after is missed.
func (s *system) watchEvents() *eventLog {
	s.tb.Helper()
	l := &eventLog{changed: make(chan struct{})}
	stream, err := s.api.Events(s.ctx)
	if err != nil {
		s.tb.Fatalf("cannot watch the scheduler's events: %v", err)
	}
	go func() {
		defer stream.Close()
		for {
			ev, err := stream.Next()
			if err != nil {
				l.end(err)
				return
			}
			l.add(ev)
		}
	}()
	return l
}

func (l *eventLog) add(ev scheduler.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Type == "dropped" {
		l.dropped = true
	}
	l.evs = append(l.evs, ev)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended, l.err = true, err
	close(l.changed)
	l.changed = make(chan struct{})
}

// all returns the events so far.
func (l *eventLog) all() []scheduler.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]scheduler.Event(nil), l.evs...)
}

// find returns the events so far that match.
func (l *eventLog) find(match func(scheduler.Event) bool) []scheduler.Event {
	var out []scheduler.Event
	for _, ev := range l.all() {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// wait returns the first event from index from on that matches, waiting for
// it until the timeout; it fails the test if the stream lost events.
func (l *eventLog) wait(tb testing.TB, timeout time.Duration, what string, from int, match func(scheduler.Event) bool) (scheduler.Event, int) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := from; i < len(l.evs); i++ {
			if match(l.evs[i]) {
				ev := l.evs[i]
				l.mu.Unlock()
				return ev, i
			}
		}
		from = len(l.evs)
		changed, ended, err, dropped := l.changed, l.ended, l.err, l.dropped
		l.mu.Unlock()
		if dropped {
			tb.Fatalf("the event stream dropped events while waiting for %s", what)
		}
		if ended {
			tb.Fatalf("the event stream ended (%v) while waiting for %s", err, what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("timed out after %s waiting for the event: %s", timeout, what)
		}
	}
}

// evStr and evNum read an event's data.
func evStr(ev scheduler.Event, key string) string {
	v, _ := ev.Data[key].(string)
	return v
}

func evNum(ev scheduler.Event, key string) uint64 {
	v, _ := ev.Data[key].(float64)
	return uint64(v)
}

// evPeers is an out-gate's peers in a links_published event.
func evPeers(ev scheduler.Event, gate string) []string {
	b, _ := json.Marshal(ev.Data["out"])
	var out map[string]linkspec.OutGate
	_ = json.Unmarshal(b, &out)
	return out[gate].Peers
}

// evEndpoint is a task's in-gate endpoint in a task_running event.
func evEndpoint(ev scheduler.Event, gate string) string {
	ports, _ := ev.Data["ports"].(map[string]any)
	p, _ := ports[gate].(float64)
	return linkspec.Endpoint(evStr(ev, "host"), uint32(p))
}

func isEvent(typ string, kv ...string) func(scheduler.Event) bool {
	return func(ev scheduler.Event) bool {
		if ev.Type != typ {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if evStr(ev, kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
