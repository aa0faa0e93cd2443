package e2e

import (
	"fmt"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
)

// TestSchedulerKilled is docs/reliability.md F1: the scheduler is killed
// (SIGKILL) under traffic and restarted on the same state file. It must
// re-subscribe with the same framework ID, reconcile, launch nothing (the
// same tasks, the same service processes), republish the same link-table
// versions, and the services must keep exchanging messages throughout with
// none lost.
func TestSchedulerKilled(t *testing.T) {
	t.Parallel()
	testSchedulerRestart(t, syscall.SIGKILL)
}

// TestSchedulerTerminated is docs/reliability.md F2: SIGTERM stops the
// scheduler without a TEARDOWN (the master keeps the framework and its tasks
// run on), and a restart resumes them.
func TestSchedulerTerminated(t *testing.T) {
	t.Parallel()
	testSchedulerRestart(t, syscall.SIGTERM)
}

func testSchedulerRestart(t *testing.T, sig syscall.Signal) {
	const rate = 200 // feeder messages per second
	s := newSystem(t)
	s.startScheduler()
	res := s.submit(pipeline{Rate: rate, Encryptors: 3}.spec())
	s.converge(res.Version, 2*time.Minute)

	h0, err := s.health()
	if err != nil {
		t.Fatal(err)
	}
	tasks0 := taskStates(t, s)
	links0 := s.waitLinksAcked(time.Minute)
	pids0 := s.servicePIDs()
	if len(tasks0) != 5 || len(pids0) != 5 {
		t.Fatalf("want 5 tasks with a service process each, have %v and %v", tasks0, pids0)
	}
	printerBox, err := s.sandbox(s.running("printer")[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	printerOut := filepath.Join(printerBox, "stdout")
	var atStop printerCounts
	s.waitFor(time.Minute, "messages to reach the printer", func() (bool, string) {
		var ok bool
		atStop, ok = lastPrinterLine(printerOut)
		return ok && atStop.Received > 0, fmt.Sprintf("%+v", atStop)
	})

	// Stop the scheduler.
	p := s.sched
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if !p.exited(30 * time.Second) {
		t.Fatalf("the scheduler did not exit within 30s of %v", sig)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case sig == syscall.SIGKILL && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL):
		t.Fatalf("the scheduler ended with %v, not by SIGKILL", p.cmd.ProcessState)
	case sig == syscall.SIGTERM && !(ws.Exited() && ws.ExitStatus() == 0):
		t.Fatalf("SIGTERM: the scheduler ended with %v, want exit status 0 (log: %s)", p.cmd.ProcessState, filepath.Join(s.dir, "scheduler.log"))
	}

	// While it is away: no TEARDOWN reached the master, which keeps the
	// framework and every task running...
	ms, err := s.masterState()
	if err != nil {
		t.Fatal(err)
	}
	checkMasterKeeps(t, ms, h0.FrameworkID, tasks0)
	// ...and the services keep exchanging messages, none lost: the printer's
	// own output (the scheduler cannot be asked) shows its count growing by
	// two seconds' worth of traffic, with nothing missing.
	var during printerCounts
	s.waitFor(time.Minute, "traffic to flow while the scheduler is away", func() (bool, string) {
		var ok bool
		during, ok = lastPrinterLine(printerOut)
		return ok && during.Received >= atStop.Received+2*rate, fmt.Sprintf("%+v (at the stop: %+v)", during, atStop)
	})
	if during.Missing != 0 || during.Duplicates != 0 {
		t.Errorf("while the scheduler was away the printer counted %d missing and %d duplicates, want 0", during.Missing, during.Duplicates)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("the scheduler came back by itself")
	}

	// Restart on the same state file and address.
	s.startScheduler()
	events := s.watchEvents()
	h1, err := s.health()
	if err != nil {
		t.Fatal(err)
	}
	if h1.FrameworkID != h0.FrameworkID {
		t.Fatalf("re-subscribed as framework %s, want the same ID %s", h1.FrameworkID, h0.FrameworkID)
	}
	if h1.SpecVersion != res.Version {
		t.Errorf("restarted with spec version %d, want %d", h1.SpecVersion, res.Version)
	}
	s.converge(res.Version, time.Minute)
	links1 := s.waitLinksAcked(time.Minute)
	if !reflect.DeepEqual(links1, links0) {
		t.Errorf("link-table versions changed across the restart:\nbefore %v\nafter  %v", links0, links1)
	}
	if tasks1 := taskStates(t, s); !reflect.DeepEqual(tasks1, tasks0) {
		t.Errorf("tasks changed across the restart:\nbefore %v\nafter  %v", tasks0, tasks1)
	}
	if pids1 := s.servicePIDs(); !reflect.DeepEqual(pids1, pids0) {
		t.Errorf("service processes changed across the restart (something was relaunched):\nbefore %v\nafter  %v", pids0, pids1)
	}
	// What the restarted scheduler did, from its own counters (they start
	// at its start, so nothing it did before the event stream was watched
	// is missed).
	m, err := s.metrics()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]func(float64) bool{
		"tiltai_scheduler_task_launches_total":                             func(v float64) bool { return v == 0 },
		"tiltai_scheduler_task_kills_total":                                func(v float64) bool { return v == 0 },
		"tiltai_scheduler_link_table_versions_total":                       func(v float64) bool { return v == 0 },
		"tiltai_scheduler_subscriptions_total":                             func(v float64) bool { return v == 1 },
		"tiltai_scheduler_reconciliations_total":                           func(v float64) bool { return v >= 1 },
		`tiltai_scheduler_mesos_calls_total{call="RECONCILE",result="ok"}`: func(v float64) bool { return v >= 2 }, // explicit, then implicit
		`tiltai_scheduler_status_updates_total{state="TASK_RUNNING"}`:      func(v float64) bool { return v >= 5 }, // the master's answers
		"tiltai_scheduler_link_messages_total":                             func(v float64) bool { return v >= 5 }, // every table re-sent
		`tiltai_scheduler_mesos_calls_total{call="MESSAGE",result="ok"}`:   func(v float64) bool { return v >= 5 },
		"tiltai_scheduler_unknown_tasks_killed_total":                      func(v float64) bool { return v == 0 },
	} {
		if v, ok := m[name]; !ok || !want(v) {
			t.Errorf("after the restart %s = %v (present %v)", name, v, ok)
		}
	}
	ms, err = s.masterState()
	if err != nil {
		t.Fatal(err)
	}
	checkMasterKeeps(t, ms, h0.FrameworkID, tasks0)

	// Traffic goes on after the restart, and at the end every message sent
	// has arrived exactly once.
	s.waitFor(time.Minute, "the printer's count to grow past the outage", func() (bool, string) {
		pc, _, err := s.printerCounters()
		return err == nil && pc.Received > during.Received, fmt.Sprintf("%+v %v (during the outage: %+v)", pc, err, during)
	})
	if evs := events.find(func(ev scheduler.Event) bool {
		switch ev.Type {
		case "task_planned", "task_launching", "task_killing", "task_retiring", "links_published", "task_gone":
			return true
		}
		return false
	}); len(evs) > 0 {
		t.Errorf("the restarted scheduler changed tasks or tables: %+v", evs)
	}
	tl := s.stopFeeder()
	t.Logf("sent %d, received %d, duplicates %d, missing %d, lost %d", tl.Sent, tl.Received, tl.Duplicates, tl.Missing, tl.Lost)
	if tl.Lost != 0 || tl.Missing != 0 || tl.Duplicates != 0 {
		t.Errorf("across the scheduler's %v and restart: %d lost, %d missing, %d duplicates; want none", sig, tl.Lost, tl.Missing, tl.Duplicates)
	}
	if tl.Sent < during.Received {
		t.Errorf("the feeder sent %d, fewer than the printer had received during the outage (%d)", tl.Sent, during.Received)
	}
}

// taskStates maps each task to its phase.
func taskStates(t *testing.T, s *system) map[string]string {
	t.Helper()
	ts, err := s.tasks("")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ti := range ts {
		out[ti.ID] = ti.Phase + "/" + ti.State
	}
	return out
}

// waitLinksAcked waits until every task's executor has acknowledged its
// service's current link table, and returns each task's version.
func (s *system) waitLinksAcked(timeout time.Duration) map[string]uint64 {
	s.tb.Helper()
	out := map[string]uint64{}
	s.waitFor(timeout, "every link table to be acknowledged", func() (bool, string) {
		ls, err := s.links()
		if err != nil {
			return false, err.Error()
		}
		clear(out)
		for _, l := range ls {
			if l.Version == 0 || l.Acked != l.Version {
				return false, fmt.Sprintf("%s: version %d, acked %d", l.TaskID, l.Version, l.Acked)
			}
			out[l.TaskID] = l.Version
		}
		return len(ls) > 0, fmt.Sprintf("%d tasks", len(ls))
	})
	return out
}

// checkMasterKeeps checks the master still has the framework (not torn
// down) with exactly the given tasks, all running.
func checkMasterKeeps(t *testing.T, ms masterState, fwID string, tasks map[string]string) {
	t.Helper()
	for _, c := range ms.CompletedFrameworks {
		if c.ID == fwID {
			t.Fatalf("the master completed framework %s: it was torn down", fwID)
		}
	}
	for _, fw := range ms.Frameworks {
		if fw.ID != fwID {
			continue
		}
		got := map[string]bool{}
		for _, task := range fw.Tasks {
			if task.State != "TASK_RUNNING" {
				t.Errorf("the master has task %s in %s", task.ID, task.State)
			}
			got[task.ID] = true
		}
		for id := range tasks {
			if !got[id] {
				t.Errorf("the master no longer has task %s", id)
			}
		}
		if len(got) != len(tasks) {
			t.Errorf("the master has %d tasks, want %d", len(got), len(tasks))
		}
		return
	}
	t.Fatalf("the master does not know framework %s", fwID)
}
