// Package up runs the whole of Tiltai on one machine: the embedded Mesos
// master and agents, the scheduler, and a link spec's services (by default
// the pipeline demo), reporting what flows until it is stopped. It is what
// `tiltai up` does; tests run it in-process.
package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/tiltai/tiltai/examples"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/store"
)

// Config configures a run.
type Config struct {
	// SpecName and Spec are the link spec to run (default: the embedded
	// examples/pipeline.yaml).
	SpecName string
	Spec     []byte
	// Listen is the scheduler API's address; MasterListen the embedded
	// master's.
	Listen       string
	MasterListen string
	// Agents, Resources and WorkDir configure the embedded Mesos.
	Agents    int
	Resources string
	// AgentAttributes: Mesos attribute syntax, one for all agents or one
	// per agent (localmesos.Config.AgentAttributes).
	AgentAttributes []string
	WorkDir         string
	// ImageProviders, DockerRegistry, DockerStoreDir and Isolation are the
	// embedded agents' flags for services in container images
	// (localmesos.Config).
	ImageProviders, DockerRegistry, DockerStoreDir, Isolation string
	// Report is the period of the counts line (0: no counts).
	Report time.Duration
	// ConvergeTimeout bounds the wait for the spec to run.
	ConvergeTimeout time.Duration
	// MaxTasks is the scheduler's limit on a spec's tasks (default
	// linkspec.DefaultMaxTasks).
	MaxTasks int
	// ExecutorBinary is the tiltai binary to run as executor and services
	// (default: this process's executable).
	ExecutorBinary string
	// Logger receives the components' logs; MesosLogger, when set, the
	// embedded Mesos' (it warns about every message an executor missed
	// while starting, which the scheduler re-sends anyway).
	Logger      *slog.Logger
	MesosLogger *slog.Logger
	// Ready, when set, is called with the running system once the spec has
	// converged (tests use it).
	Ready func(*Running)
}

// Running is a started system.
type Running struct {
	Cluster   *localmesos.Cluster
	Scheduler *scheduler.Scheduler
}

// Run starts everything, waits for the spec to converge (showing
// progress), then reports counts every Report until ctx ends, and stops
// everything: the scheduler first, then Mesos, whose executors drain their
// services.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Spec == nil {
		cfg.SpecName, cfg.Spec = "examples/pipeline.yaml", examples.Pipeline
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConvergeTimeout == 0 {
		cfg.ConvergeTimeout = 2 * time.Minute
	}
	spec, probs := linkspec.ParseWith(ctx, cfg.SpecName, cfg.Spec, linkspec.ParseOptions{MaxTasks: cfg.MaxTasks})
	if err := probs.Err(); err != nil {
		return fmt.Errorf("the spec has problems:\n%w", err)
	}
	tasks := 0
	for _, s := range spec.Services {
		tasks += s.Instances
	}

	start := time.Now()
	// The components outlive ctx (Ctrl-C): they are stopped in order by
	// the deferred calls, after the services have drained.
	life := context.WithoutCancel(ctx)
	mesosLog := cfg.Logger.With("component", "localmesos")
	if cfg.MesosLogger != nil {
		mesosLog = cfg.MesosLogger
	}
	cluster, err := localmesos.New(life, localmesos.Config{
		Listen: cfg.MasterListen, Agents: cfg.Agents, Resources: cfg.Resources, AgentAttributes: cfg.AgentAttributes, SplitPorts: true,
		WorkDir: cfg.WorkDir, Logger: mesosLog,
		ImageProviders: cfg.ImageProviders, DockerRegistry: cfg.DockerRegistry, DockerStoreDir: cfg.DockerStoreDir, Isolation: cfg.Isolation,
	})
	if err != nil {
		return fmt.Errorf("cannot start the embedded Mesos: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "tiltai up: stopping Mesos")
		cluster.Close()
	}()
	fmt.Fprintf(out, "tiltai up: Mesos master %s, %d agent(s), sandboxes under %s\n", cluster.MasterURL(), len(cluster.Agents()), cluster.WorkDir())

	sched, err := scheduler.New(life, scheduler.Config{
		Master: scheduler.StaticMaster(cluster.MasterURL()), Store: store.NewMem(),
		Listen: cfg.Listen, Checkpoint: true, ExecutorBinary: cfg.ExecutorBinary, MaxTasks: cfg.MaxTasks,
		DockerRegistry: cfg.DockerRegistry, Logger: cfg.Logger.With("component", "scheduler"),
	})
	if err != nil {
		return fmt.Errorf("cannot start the scheduler: %w", err)
	}
	defer func() {
		drain(sched, out)
		fmt.Fprintln(out, "tiltai up: stopping the scheduler")
		sched.Close()
	}()
	fmt.Fprintf(out, "tiltai up: scheduler %s  (try: tiltai ps --scheduler %s)\n", sched.URL(), sched.URL())
	fmt.Fprintf(out, "tiltai up: web console: open %s/\n", sched.URL())

	res, err := sched.SubmitSpec(ctx, cfg.SpecName, cfg.Spec, scheduler.SubmitOptions{IfMatch: -1})
	if err != nil {
		return fmt.Errorf("cannot submit %s: %w", cfg.SpecName, err)
	}
	fmt.Fprintf(out, "tiltai up: %s is spec version %d: %d services, %d tasks, %d links\n",
		cfg.SpecName, res.Version, len(spec.Services), tasks, len(spec.Links))

	if err := waitConverged(ctx, sched, flowOrder(spec), cfg.ConvergeTimeout, start, out); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(&Running{Cluster: cluster, Scheduler: sched})
	}
	if cfg.Report <= 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-sched.Done():
			return fmt.Errorf("the scheduler stopped: %w", sched.Err())
		}
	}
	t := time.NewTicker(cfg.Report)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return nil
		case <-sched.Done():
			return fmt.Errorf("the scheduler stopped: %w", sched.Err())
		case <-t.C:
			ts, err := sched.Tasks(ctx, "")
			if err != nil {
				continue
			}
			fmt.Fprintf(out, "%7s  %s\n", time.Since(start).Round(time.Second), countsLine(spec, ts))
		}
	}
}

// waitConverged shows progress until every service runs what the spec
// asks, with links acknowledged.
func waitConverged(ctx context.Context, s *scheduler.Scheduler, order []string, timeout time.Duration, start time.Time, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		st, err := s.Status(ctx)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the services did not come up within %s; last: %s", timeout, last)
			}
			return nil // interrupted
		}
		if line := progressLine(st, order); line != last {
			fmt.Fprintf(out, "%7s  %s\n", time.Since(start).Round(100*time.Millisecond), line)
			last = line
		}
		if st.Converged {
			fmt.Fprintf(out, "tiltai up: running, every link acknowledged (%s). Counts follow; Ctrl-C stops.\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		for _, ss := range st.Services {
			if ss.Failures >= 3 {
				return fmt.Errorf("service %s keeps failing (%d in a row): %s", ss.Name, ss.Failures, ss.LastFailure)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the services did not come up within %s; last: %s", timeout, last)
			}
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func progressLine(st scheduler.Status, order []string) string {
	rank := map[string]int{}
	for i, n := range order {
		rank[n] = i
	}
	sort.SliceStable(st.Services, func(i, j int) bool { return rank[st.Services[i].Name] < rank[st.Services[j].Name] })
	var parts []string
	for _, ss := range st.Services {
		p := fmt.Sprintf("%s %d/%d running", ss.Name, ss.Running, ss.Wanted)
		if n := ss.Pending + ss.Launching; n > 0 {
			p += fmt.Sprintf(" (%d starting)", n)
		}
		if ss.Unacked > 0 {
			p += fmt.Sprintf(" (%d linking)", ss.Unacked)
		}
		parts = append(parts, p)
	}
	if !st.Subscribed {
		parts = append([]string{"subscribing to Mesos"}, parts...)
	}
	return strings.Join(parts, " │ ")
}

// countsLine sums each service's application counters over its tasks:
// "feeder: sent=40 │ encryptor ×3: hashed=38 │ printer: received=37 missing=0".
func countsLine(spec *linkspec.Spec, ts []scheduler.TaskInfo) string {
	sums := map[string]map[string]int64{}
	running := map[string]int{}
	for _, t := range ts {
		if t.Phase != "running" {
			continue
		}
		running[t.Service]++
		if sums[t.Service] == nil {
			sums[t.Service] = map[string]int64{}
		}
		for k, v := range t.Counters {
			sums[t.Service][strings.TrimPrefix(k, t.Service+".")] += v
		}
	}
	var parts []string
	for _, name := range flowOrder(spec) {
		head := name
		if n := running[name]; n != 1 {
			head = fmt.Sprintf("%s ×%d", name, n)
		}
		keys := make([]string, 0, len(sums[name]))
		for k := range sums[name] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, fmt.Sprintf("%s=%d", k, sums[name][k]))
		}
		parts = append(parts, head+": "+strings.Join(kv, " "))
	}
	return strings.Join(parts, " │ ")
}

// flowOrder lists services upstream first (by their longest distance from
// a service nothing sends to), then by name: feeder, encryptor, printer.
func flowOrder(spec *linkspec.Spec) []string {
	depth := map[string]int{}
	for range spec.Services { // at most len(services) rounds to settle
		changed := false
		for _, l := range spec.Links {
			if l.From.Service != l.To.Service && depth[l.To.Service] < depth[l.From.Service]+1 && depth[l.From.Service] < len(spec.Services) {
				depth[l.To.Service] = depth[l.From.Service] + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	names := spec.ServiceNames()
	sort.SliceStable(names, func(i, j int) bool { return depth[names[i]] < depth[names[j]] })
	return names
}

// drainTimeout bounds the planned shutdown; a second Ctrl-C ends it sooner.
const drainTimeout = 30 * time.Second

// drain removes every service the planned way: the scheduler retires each
// task from its senders' link tables before it kills it, and the executor
// lets the service finish what its in-gates hold. Nothing is lost, as on
// any scale-down.
func drain(s *scheduler.Scheduler, out io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	fmt.Fprintln(out, "tiltai up: draining every service (retire from senders' links, finish in-flight messages, stop); Ctrl-C again to cut it short")
	last, _ := s.Tasks(ctx, "")
	if _, err := s.SubmitSpec(ctx, "shutdown", []byte("version: 1\nservices: {}\n"), scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		fmt.Fprintf(out, "tiltai up: cannot drain: %v\n", err)
		return
	}
	start := time.Now()
	for {
		ts, err := s.Tasks(ctx, "")
		if err != nil {
			fmt.Fprintf(out, "tiltai up: gave up draining after %s; %d tasks left\n", time.Since(start).Round(100*time.Millisecond), len(last))
			return
		}
		if len(ts) == 0 {
			fmt.Fprintf(out, "tiltai up: every service drained and stopped (%s)\n", time.Since(start).Round(100*time.Millisecond))
			return
		}
		last = ts
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
