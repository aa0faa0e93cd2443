package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/examples"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/store"
)

// liveSystem is what `tiltai up` runs, in this process: the embedded Mesos
// (its executors and the demo services are processes of the tiltai binary)
// and the scheduler, which a test can restart on the same store and
// address.
type liveSystem struct {
	t       testing.TB
	cluster *localmesos.Cluster
	cfg     scheduler.Config
	sched   *scheduler.Scheduler
}

const liveToken = "s3cret-console-token"

func startLive(t testing.TB) *liveSystem {
	t.Helper()
	bin := tiltaiBinary(t)
	lo := freePortBlock(t, 100)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("TILTAI_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cluster, err := localmesos.New(context.Background(), localmesos.Config{
		Listen: "127.0.0.1:0", Agents: 1, SplitPorts: true, WorkDir: t.TempDir(), Logger: log,
		Resources: fmt.Sprintf("cpus:8;mem:8192;disk:10000;ports:[%d-%d]", lo, lo+99),
	})
	if err != nil {
		t.Fatalf("cannot start the embedded Mesos: %v", err)
	}
	s := &liveSystem{t: t, cluster: cluster, cfg: scheduler.Config{
		Master: scheduler.StaticMaster(cluster.MasterURL()), Store: store.NewMem(), Listen: "127.0.0.1:0",
		Checkpoint: true, ExecutorBinary: bin, APIToken: liveToken, Logger: log,
		ResendMin: 100 * time.Millisecond, ResendMax: time.Second,
		SubscribeBackoffMin: 100 * time.Millisecond, SubscribeBackoffMax: time.Second,
	}}
	t.Cleanup(func() {
		if s.sched != nil {
			s.sched.Close()
		}
		cluster.Close()
	})
	s.start()
	if _, err := s.sched.SubmitSpec(s.ctx(), "examples/pipeline.yaml", examples.Pipeline, scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatalf("cannot submit the pipeline: %v", err)
	}
	s.waitStatus("the pipeline to converge", 2*time.Minute, func(st scheduler.Status) bool { return st.Converged })
	return s
}

// start starts a scheduler; after the first, on the same store and
// address, as an operator's restart would.
func (s *liveSystem) start() {
	s.t.Helper()
	sched, err := scheduler.New(context.Background(), s.cfg)
	if err != nil {
		s.t.Fatalf("cannot start the scheduler: %v", err)
	}
	s.sched = sched
	s.cfg.Listen = strings.TrimPrefix(sched.URL(), "http://") // a restart keeps the address
}

func (s *liveSystem) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

// waitStatus polls the scheduler's status until ok holds.
func (s *liveSystem) waitStatus(what string, timeout time.Duration, ok func(scheduler.Status) bool) scheduler.Status {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.sched.Status(s.ctx())
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s; last: %+v %v", timeout, what, st, err)
		}
		<-tick.C
	}
}

func serviceOf(st scheduler.Status, name string) scheduler.ServiceStatus {
	for _, ss := range st.Services {
		if ss.Name == name {
			return ss
		}
	}
	return scheduler.ServiceStatus{}
}

var build struct {
	sync.Once
	dir, bin string
	err      error
	out      []byte
}

// tiltaiBinary builds ./cmd/tiltai once per run: the executors and the
// demo services run as its processes.
func tiltaiBinary(t testing.TB) string {
	t.Helper()
	build.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "tiltai-console-test-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "tiltai")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/tiltai")
		cmd.Dir = "../.."
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("cannot build tiltai: %v\n%s", build.err, build.out)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// freePortBlock picks n ports below the ephemeral range that can all be
// bound now, for the agent's offers (tasks' in-gates bind them); the
// default range is what other runs on the machine use.
func freePortBlock(t testing.TB, n int) int {
	t.Helper()
	const lo, hi = 20000, 30000
	for _, b := range rand.Perm((hi - lo) / n) {
		base, ok := lo+b*n, true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if ok = err == nil; ok {
				l.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no free block of %d ports in %d-%d", n, lo, hi)
	return 0
}

// TestConsoleLive runs the console against `tiltai up`'s system: the demo
// pipeline drawn with live rates, a scale from the page, a change from
// the API shown at once, a bad spec's located problems, a dry run and an
// apply under If-Match (with a hostile spec name), and the stream coming
// back after the scheduler restarts.
func TestConsoleLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	s := startLive(t)
	p := newPage(t)
	p.open(s.sched.URL() + "/")
	p.wait("the token prompt", 20*time.Second, `document.getElementById('notice').textContent.includes('needs a token')`, jsNotice)
	p.setValue("#token", liveToken)
	p.click("#token-form button")
	p.wait("3 services and 2 links", 20*time.Second, jsNodes+` === 3 && `+jsEdges+` === 2`, jsGraphText)
	p.wait("the live stream", 20*time.Second, `document.getElementById('conn').dataset.state === 'live'`, jsNotice)
	p.wait("non-zero rates on both links", time.Minute,
		`[...document.querySelectorAll('#graph text[data-kind=rate]')].every((t) => /^[1-9]|^0\.[1-9]/.test(t.textContent))`, jsGraphText)

	// Scale from the page.
	eval[bool](p, `(document.querySelector('#graph g.node[data-service=encryptor]').dispatchEvent(new MouseEvent('click', {bubbles: true})), true)`)
	p.wait("the encryptor's tasks", 10*time.Second, `document.querySelectorAll('#detail table[data-kind=tasks] tbody tr').length === 3`, jsDetailText)
	p.setValue("#scale-n", "5")
	p.click("#scale-go")
	p.wait("5 encryptors on the page", 2*time.Minute, nodeCounts("encryptor")+` === '5/5 running'`, jsGraphText)
	st := s.waitStatus("5 encryptors in the API", 30*time.Second, func(st scheduler.Status) bool { return serviceOf(st, "encryptor").Running == 5 })
	ts, err := s.sched.Tasks(s.ctx(), "encryptor")
	if err != nil || len(ts) != 5 {
		t.Fatalf("tiltai ps shows %d encryptors (%v), status %+v", len(ts), err, serviceOf(st, "encryptor"))
	}
	p.wait("5 rows with sparklines", 30*time.Second, `[...document.querySelectorAll('#detail table[data-kind=tasks] tbody tr')].filter((r) => r.querySelector('polyline')).length === 5`, jsDetailText)
	p.wait("the link table acknowledged", 30*time.Second, jsDetailText+`.includes('acknowledged by 5 of 5 tasks')`, jsDetailText)
	p.wait("rates after the scale", time.Minute,
		`[...document.querySelectorAll('#graph text[data-kind=rate]')].every((t) => /^[1-9]|^0\.[1-9]/.test(t.textContent))`, jsGraphText)
	// A task's logs, read from its sandbox on the agent: its stderr holds
	// its executor's log.
	eval[bool](p, `(document.getElementById('log-file').value = 'stderr', document.getElementById('log-file').dispatchEvent(new Event('change')), true)`)
	eval[bool](p, `(document.querySelector('#detail table[data-kind=tasks] tbody tr').dispatchEvent(new MouseEvent('click', {bubbles: true})), true)`)
	p.wait("a task's stderr", 20*time.Second, `(document.querySelector('#d-log pre[data-kind=log]') || {}).textContent?.includes('level=')`, `document.getElementById('d-log').textContent`)
	if *updateShot {
		p.screenshot("../../docs/console.png")
	}

	// A change made elsewhere (the CLI) shows within a second.
	start := time.Now()
	if _, err := s.sched.Scale(s.ctx(), "printer", 2, scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatal(err)
	}
	p.wait("the CLI's scale on the page", 5*time.Second, nodeCounts("printer")+`.endsWith('/2 running')`, jsGraphText)
	shown := time.Since(start)
	t.Logf("a scale from the API showed on the page in %s", shown.Round(time.Millisecond))
	if shown > time.Second {
		t.Errorf("the page showed the API's change after %s, want within a second", shown.Round(time.Millisecond))
	}

	// A bad spec: its problems, located, before anything is applied.
	p.click("#edit-spec")
	p.wait("the current spec in the editor", 10*time.Second, `document.getElementById('spec-text').value.includes('encryptor')`, `document.getElementById('spec-result').textContent`)
	bad := strings.Replace(string(examples.Pipeline), "instances: 3", "instances: -2", 1) + "  - from: printer.ciphertext\n    to: nowhere.in\n"
	p.setValue("#spec-text", bad)
	p.click("#spec-check")
	p.wait("the located problems", 10*time.Second, `document.querySelectorAll('#spec-result [data-kind=problems] li').length >= 2`, `document.getElementById('spec-result').textContent`)
	problems := eval[string](p, `document.getElementById('spec-result').textContent`)
	for _, want := range []string{"instances -2 is out of range", `unknown service "nowhere"`} {
		if !strings.Contains(problems, want) {
			t.Errorf("the problems lack %q:\n%s", want, problems)
		}
	}
	line := strings.Count(bad[:strings.Index(bad, "instances: -2")], "\n") + 1
	if !strings.Contains(problems, fmt.Sprintf(":%d:", line)) {
		t.Errorf("the problems do not name line %d:\n%s", line, problems)
	}
	if eval[bool](p, `!document.getElementById('spec-apply').disabled`) {
		t.Error("Apply is enabled for an invalid spec")
	}

	// Someone else changes the spec: the editor's apply is refused.
	p.click("#spec-reload")
	p.wait("the reloaded spec", 10*time.Second, `document.getElementById('spec-result').textContent === ''`, `document.getElementById('spec-result').textContent`)
	good := strings.Replace(string(examples.Pipeline), "instances: 3", "instances: 4", 1)
	p.setValue("#spec-text", good)
	p.setValue("#spec-name", `<img src=x onerror=__pwned=1>.yaml`)
	if _, err := s.sched.Scale(s.ctx(), "printer", 1, scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatal(err)
	}
	p.click("#spec-check")
	p.wait("the conflict", 10*time.Second, `!!document.querySelector('#spec-result [data-kind=conflict]')`, `document.getElementById('spec-result').textContent`)

	// Reloaded, checked (the dry run's changes), applied.
	p.click("#spec-reload")
	p.wait("the reloaded spec", 10*time.Second, `document.getElementById('spec-result').textContent === ''`, `document.getElementById('spec-result').textContent`)
	p.setValue("#spec-text", good)
	p.setValue("#spec-name", `<img src=x onerror=__pwned=1>.yaml`)
	p.click("#spec-check")
	p.wait("the dry run", 10*time.Second, `!!document.querySelector('#spec-result [data-kind=dry-run]') && !document.getElementById('spec-apply').disabled`, `document.getElementById('spec-result').textContent`)
	if got := eval[string](p, `document.getElementById('spec-result').textContent`); !strings.Contains(got, "encryptor") {
		t.Errorf("the dry run does not show the encryptor's change: %s", got)
	}
	if st := serviceOf(s.waitStatus("status", time.Second, func(scheduler.Status) bool { return true }), "encryptor"); st.Wanted != 5 {
		t.Fatalf("the dry run changed the spec: encryptor wants %d", st.Wanted)
	}
	p.click("#spec-apply")
	p.wait("the applied spec", 10*time.Second, `document.getElementById('spec-result').textContent.includes('Applied')`, `document.getElementById('spec-result').textContent`)
	p.click(`#spec-form button[value=cancel]`)
	p.wait("4 encryptors and the spec's name", time.Minute, nodeCounts("encryptor")+` === '4/4 running' && document.getElementById('spec-info').textContent.includes('<img src=x onerror=__pwned=1>.yaml')`, `document.getElementById('spec-info').textContent + ' ' + `+jsGraphText)
	p.cleanPage()

	// The scheduler restarts: the page says it lost the stream, and
	// follows the new one.
	streams := eval[int](p, `window.__console.streams`)
	s.sched.Close()
	p.wait("the lost stream", 20*time.Second, `document.getElementById('conn').dataset.state === 'lost'`, jsNotice)
	s.start()
	p.wait("the stream again", time.Minute, fmt.Sprintf(`window.__console.streams > %d && document.getElementById('conn').dataset.state === 'live'`, streams), jsNotice)
	if _, err := s.sched.Scale(s.ctx(), "encryptor", 2, scheduler.SubmitOptions{IfMatch: -1}); err != nil {
		t.Fatal(err)
	}
	p.wait("a change after the restart", time.Minute, nodeCounts("encryptor")+`.endsWith('/2 running')`, jsGraphText)
	p.cleanPage()
}
