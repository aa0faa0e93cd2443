package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
)

// TestLaunchBurst launches tasks in bursts on one agent while this process
// (which hosts the agent, as `tiltai up` and `tiltai localmesos` do) keeps
// starting other processes, as an agent does when it launches executors
// side by side. Every launch must succeed the first time: a task that
// fails to start is relaunched only after its service's backoff, and is a
// failure an operator sees.
//
// It fails today: the agent writes the fetched executor binary into the
// sandbox and then executes it; a process forked by any other goroutine of
// the agent's process while the file was open for writing holds a copy of
// that descriptor until it execs, and if it has not yet when the agent
// executes the file, execve fails with ETXTBSY ("text file busy", the Go
// issue golang.org/issue/22315) and the task ends TASK_FAILED
// (REASON_CONTAINER_LAUNCH_FAILED).
//
// Not parallel: the other process starts would hit the other tests'
// launches too.
func TestLaunchBurst(t *testing.T) {
	const (
		burst  = 20
		rounds = 2
	)
	s := newSystem(t)
	s.startScheduler()
	events := s.watchEvents()
	res := s.submit(`version: 1
services:
  idle:
    command: /bin/sleep
    args: [3600]
    instances: 0
    cpus: 0.01
    mem: 8
    kill_grace_period: 1s
`)
	s.converge(res.Version, time.Minute)

	// Other process starts in the agent's process, as concurrent launches
	// make.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = exec.Command("/bin/true").Run()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	launched := 0
	for range rounds {
		s.scale("idle", burst)
		s.waitRunning("idle", burst)
		s.scale("idle", 0)
		s.waitRunning("idle", 0)
		launched += burst
	}
	failed := events.find(func(ev scheduler.Event) bool {
		return ev.Type == "task_gone" && !strings.HasPrefix(evStr(ev, "reason"), "TASK_KILLED")
	})
	planned := len(events.find(isEvent("task_planned", "service", "idle")))
	t.Logf("%d tasks launched in %d bursts of %d (%d planned): %d did not start", launched, rounds, burst, planned, len(failed))
	for _, ev := range failed {
		t.Errorf("%s: %s", evStr(ev, "task_id"), evStr(ev, "reason"))
	}
	if planned != launched+len(failed) {
		t.Errorf("%d tasks planned for %d launches and %d failures", planned, launched, len(failed))
	}
}

// TestPlainServiceConverges: a service that does not use gates (any
// program: here /bin/sleep) has no link table to apply, and the system
// must still converge on a spec that runs it.
//
// It fails today: the scheduler publishes an (empty) link table for every
// service and counts a running task as converged only once its executor has
// acknowledged it; the executor acknowledges what its service applied over
// the control socket, and a service that never connects to it never
// applies anything. /v1/status stays "links 0/N acked", so `tiltai links
// submit` and `tiltai up` wait until their timeout, and the scheduler
// re-sends the table forever.
func TestPlainServiceConverges(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.startScheduler()
	res := s.submit(`version: 1
services:
  idle:
    command: /bin/sleep
    args: [3600]
    instances: 2
    cpus: 0.01
    mem: 8
    kill_grace_period: 1s
`)
	s.waitRunning("idle", 2)
	s.converge(res.Version, 30*time.Second)
}

// waitRunning waits until n tasks of the service run, none waiting to
// launch or to be killed; it does not wait for link acknowledgements.
func (s *system) waitRunning(service string, n int) {
	s.tb.Helper()
	s.waitFor(2*time.Minute, fmt.Sprintf("%d %s tasks running", n, service), func() (bool, string) {
		st, err := s.status()
		if err != nil {
			return false, err.Error()
		}
		ss := serviceStatus(st, service)
		return ss.Wanted == n && ss.Running == n && ss.Pending+ss.Launching+ss.Retiring+ss.Outdated == 0, fmt.Sprintf("%+v", ss)
	})
}
