package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
)

// Issue 14 on the embedded Mesos with three agents (machines 127.0.0.2-4,
// racks r1-r3). The feeder is pinned to r3; the encryptors (2) and the
// printer may run on r1 or r2, so the printer and one encryptor share an
// agent, which is then taken away while the feeder sends steadily.
var rackedAgents = []string{"rack:r1", "rack:r2", "rack:r3"}

func rackedPipeline() pipeline {
	return pipeline{Rate: 300, Encryptors: 2, Constraints: map[string]string{
		"feeder": "[[rack, IS, r3]]", "encryptor": `[[rack, LIKE, "r[12]"]]`, "printer": `[[rack, LIKE, "r[12]"]]`,
	}}
}

// TestMaintenanceMovesWithoutLoss: a maintenance window is scheduled on the
// agent holding the printer and an encryptor. The master sends inverse
// offers; the scheduler starts replacements on the other agent, retires the
// old tasks drain-first, and accepts the inverse offers once the agent is
// empty. Counted by the printers' sequence numbers: nothing lost, nothing
// twice.
func TestMaintenanceMovesWithoutLoss(t *testing.T) {
	s := newSystemWith(t, systemOptions{Attributes: rackedAgents})
	s.startScheduler()
	s.converge(s.submit(rackedPipeline().spec()).Version, 2*time.Minute)
	host, oldPrinter := s.printerHost()
	time.Sleep(time.Second) // some traffic before the move

	start := time.Now().Add(time.Minute)
	s.operator(fmt.Sprintf(`{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[`+
		`{"machine_ids":[{"hostname":%q,"ip":%q}],"unavailability":{"start":{"nanoseconds":%d},"duration":{"nanoseconds":%d}}}]}}}`,
		host, host, start.UnixNano(), time.Hour.Nanoseconds()))
	s.waitMovedOff(host)
	s.waitFor(time.Minute, "the inverse offer to be accepted", func() (bool, string) {
		m, err := s.metrics()
		return err == nil && m["tiltai_scheduler_inverse_offers_accepted_total"] >= 1, fmt.Sprint(err)
	})
	s.checkNoLoss(oldPrinter)
}

// TestDrainAgentLosesNothing: `tiltai drain --max_grace_period 5s` on the
// agent holding the printer and an encryptor. The agent kills them
// (TASK_KILLING, REASON_AGENT_DRAINING); they leave every link table at
// once, drain their in-gates within the grace period, and replacements
// start on the other agent. The dying encryptor often holds a message for
// a printer when the old one has gone and the new one does not run yet: it
// is still sent the encryptor table while it is killed, so it delivers that
// message to the new printer (this lost one message in about half the runs
// while tables went to running tasks only).
func TestDrainAgentLosesNothing(t *testing.T) {
	s := newSystemWith(t, systemOptions{Attributes: rackedAgents})
	s.startScheduler()
	s.converge(s.submit(rackedPipeline().spec()).Version, 2*time.Minute)
	host, oldPrinter := s.printerHost()
	time.Sleep(time.Second)

	out, err := exec.Command(tiltaiBin, "drain", "--master", s.cluster.Addr(), "--max_grace_period", "5s", host).CombinedOutput()
	if err != nil {
		t.Fatalf("tiltai drain: %v\n%s", err, out)
	}
	t.Logf("tiltai drain: %s", bytes.TrimSpace(out))
	s.waitMovedOff(host)
	s.checkNoLoss(oldPrinter)
	agents, err := exec.Command(tiltaiBin, "ps", "--agents", "--scheduler", s.sched.url, "--master", s.cluster.Addr()).CombinedOutput()
	if err != nil || !regexp.MustCompile(regexp.QuoteMeta(host)+`\s+0\s+(draining|drained)`).Match(agents) {
		t.Errorf("tiltai ps --agents does not show %s drained and empty (%v):\n%s", host, err, agents)
	}
}

// TestUniqueHostnameShowsWhyWaiting: 4 encryptors, one per hostname, on 3
// agents. One waits, and tiltai ps says why without any log.
func TestUniqueHostnameShowsWhyWaiting(t *testing.T) {
	s := newSystemWith(t, systemOptions{Attributes: rackedAgents})
	s.startScheduler()
	p := pipeline{Rate: 50, Encryptors: 4, Constraints: map[string]string{"encryptor": "[[hostname, UNIQUE]]"}}
	s.submit(p.spec())
	var ss scheduler.ServiceStatus
	s.waitFor(time.Minute, "3 encryptors running and one waiting for hostname:UNIQUE", func() (bool, string) {
		st, err := s.status()
		if err != nil {
			return false, err.Error()
		}
		ss = serviceStatus(st, "encryptor")
		return ss.Running == 3 && ss.Pending == 1 && ss.Waiting != nil && ss.Waiting.Reason == "hostname:UNIQUE", fmt.Sprintf("%+v %+v", ss, ss.Waiting)
	})
	out, err := exec.Command(tiltaiBin, "ps", "--scheduler", s.sched.url).CombinedOutput()
	if err != nil {
		t.Fatalf("tiltai ps: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`WAITING\s+encryptor\s+1 task: hostname:UNIQUE ruled out \d+ offers?`).Match(out) {
		t.Errorf("tiltai ps has no WAITING line for the encryptor:\n%s", out)
	}
	tasks, err := s.tasks("encryptor")
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, tk := range tasks {
		switch {
		case tk.Phase == "pending" && (tk.Waiting == nil || tk.Waiting.Reason != "hostname:UNIQUE"):
			t.Errorf("GET /v1/tasks: pending %s has no waiting reason: %+v", tk.ID, tk.Waiting)
		case tk.Host != "" && hosts[tk.Host]:
			t.Errorf("two encryptors on %s", tk.Host)
		}
		hosts[tk.Host] = true
	}
}

// printerHost is the agent the printer runs on, checked to hold an
// encryptor too.
func (s *system) printerHost() (string, string) {
	s.tb.Helper()
	pr := s.running("printer")
	if len(pr) != 1 {
		s.tb.Fatalf("%d printers running", len(pr))
	}
	host := pr[0].Host
	for _, e := range s.running("encryptor") {
		if e.Host == host {
			return host, pr[0].ID
		}
	}
	s.tb.Fatalf("no encryptor on the printer's agent %s: the scenario needs one", host)
	return "", ""
}

// operator makes a call of the master's operator API (JSON).
func (s *system) operator(body string) {
	s.tb.Helper()
	resp, err := s.client.Post(s.cluster.MasterURL()+"/api/v1", "application/json", strings.NewReader(body))
	if err != nil {
		s.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.tb.Fatalf("operator call: %s: %s", resp.Status, b)
	}
}

// waitMovedOff waits until no task is left on host and the system has
// converged (printer and 2 encryptors running elsewhere, links acked).
func (s *system) waitMovedOff(host string) {
	s.tb.Helper()
	s.waitFor(2*time.Minute, "every task to move off "+host, func() (bool, string) {
		ts, err := s.tasks("")
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, t := range ts {
			if t.Host == host {
				left = append(left, t.ID+":"+t.Phase)
			}
		}
		st, err := s.status()
		return err == nil && len(left) == 0 && st.Converged, fmt.Sprintf("left %v; converged %v", left, st.Converged)
	})
}

var printerFinalRE = regexp.MustCompile(`printer final: origins=(\d+) received=(\d+) duplicates=(\d+) missing=(\d+)`)

// checkNoLoss stops the feeder and accounts for every message it sent
// across both printers: the old one's final count (its log) and the
// current one's. Each counts duplicates of what it saw; a message seen by
// both would be a duplicate neither sees, but one can only arise from a
// re-route (docs/gates.md), which the feeder's and encryptors' counters
// show.
func (s *system) checkNoLoss(oldPrinter string) {
	s.tb.Helper()
	box, err := s.sandbox(oldPrinter)
	if err != nil {
		s.tb.Fatal(err)
	}
	var oldRecv, oldDups uint64
	s.waitFor(30*time.Second, "the old printer's final count", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(box, "stdout"))
		m := printerFinalRE.FindSubmatch(b)
		if m == nil {
			return false, tail(b, 3)
		}
		oldRecv, _ = strconv.ParseUint(string(m[2]), 10, 64)
		oldDups, _ = strconv.ParseUint(string(m[3]), 10, 64)
		return true, ""
	})
	var rerouted uint64
	for _, svc := range []string{"feeder", "encryptor"} {
		for _, t := range s.running(svc) {
			for _, g := range s.nextReport(t).Gates {
				rerouted += g.Rerouted
			}
		}
	}
	tl := s.stopFeeder()
	distinct := (oldRecv - oldDups) + (tl.Received - tl.Duplicates)
	s.tb.Logf("sent %d; old printer received %d (%d twice), new printer %d (%d twice); re-routed %d",
		tl.Sent, oldRecv, oldDups, tl.Received, tl.Duplicates, rerouted)
	if distinct != tl.Sent {
		s.tb.Errorf("the printers received %d distinct messages of %d sent: %d lost", distinct, tl.Sent, int64(tl.Sent)-int64(distinct))
	}
	if oldDups != 0 || tl.Duplicates != 0 || rerouted != 0 {
		s.tb.Errorf("duplicates: %d at the old printer, %d at the new, %d re-routed; want none", oldDups, tl.Duplicates, rerouted)
	}
}
