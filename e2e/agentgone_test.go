package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler"
)

// TestAgentNeverComesBack is docs/reliability.md F11 end to end: the
// machine of an agent holding an encryptor dies under steady traffic — its
// agent stops and every process on it is killed (SIGKILL), and it never
// returns. After the master's removal timeout its tasks are unreachable;
// each leaves the feeder's link table at once (no later than its
// replacement is planned) and is never advertised again, a replacement
// runs on another agent, and the pipeline converges.
//
// What it may lose is what a crash loses (docs/gates.md, "What can be
// lost"; TestServiceCrash): the messages inside the dead encryptor. Every
// one is counted: the printer's sequence numbers show them as gaps
// (lost == missing: nothing lost after the loss), no more than the dead
// tasks can have held (holdBound at their last report), no surviving gate
// dropped anything, and every duplicate is a message the feeder re-routed.
//
// The feeder and the printer run on another agent (rack r1), so that the
// account can be closed: a printer that dies with its machine takes its
// count with it.
func TestAgentNeverComesBack(t *testing.T) {
	const rate = 200
	s := newSystemWith(t, systemOptions{
		Attributes: []string{"rack:r1", "rack:r2", "rack:r3"},
		Mesos:      func(c *localmesos.Config) { c.AgentRemovalTimeout = 3 * time.Second },
	})
	s.startScheduler()
	events := s.watchEvents()
	p := pipeline{Rate: rate, Encryptors: 2, Constraints: map[string]string{
		"feeder": "[[rack, IS, r1]]", "printer": "[[rack, IS, r1]]", "encryptor": `[[rack, LIKE, "r[23]"]]`,
	}}
	version := s.submit(p.spec()).Version
	s.converge(version, 2*time.Minute)
	s.waitLinksAcked(time.Minute)
	feeder := s.running("feeder")[0]

	// The machine to lose: the one of the first encryptor (both may be on
	// it; then both are lost).
	victims := s.running("encryptor")
	host := victims[0].Host
	var agent localmesos.AgentInfo
	for _, a := range s.cluster.Agents() {
		if a.Hostname == host {
			agent = a
		}
	}
	if agent.WorkDir == "" {
		t.Fatalf("no agent on %s: %+v", host, s.cluster.Agents())
	}
	var lost []scheduler.TaskInfo
	for _, v := range victims {
		if v.Host == host {
			lost = append(lost, v)
		}
	}
	time.Sleep(time.Second) // traffic through every encryptor

	// Kill right after fresh reports of the victims' counters, so that what
	// they can hold at the kill is known within a few milliseconds' traffic.
	var reports []scheduler.TaskInfo
	for _, v := range lost {
		reports = append(reports, s.nextReport(v))
	}
	if err := s.cluster.StopAgent(agent.Index); err != nil {
		t.Fatal(err)
	}
	pids := processesIn(s.dir, agent.WorkDir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	killed := time.Now()
	var bound uint64
	for _, r := range reports {
		bound += holdBound(r, rate, killed)
	}
	t.Logf("machine %s lost: agent %d stopped, %d processes killed (%s after the first report); %d encryptors on it can have held at most %d messages",
		host, agent.Index, len(pids), killed.Sub(reports[0].StatusAt).Round(time.Millisecond), len(lost), bound)
	if len(pids) < 2*len(lost) {
		t.Fatalf("found %d processes on the lost agent, want an executor and a service per task (%d)", len(pids), len(lost))
	}

	// Each lost task: unreachable, out of the feeder's table at once,
	// replaced elsewhere.
	start := 0
	dropped := map[string]int{} // endpoint → index of the feeder's table without it
	for _, v := range lost {
		ep := endpoint(v, "plaintext")
		gone, i := events.wait(t, time.Minute, v.ID+" unreachable", start, func(ev scheduler.Event) bool {
			return evStr(ev, "task_id") == v.ID && (ev.Type == "task_unreachable" || ev.Type == "task_gone")
		})
		t.Logf("%s: %s %s, %s after the loss", v.ID, gone.Type, evStr(gone, "state")+evStr(gone, "reason"), gone.Time.Sub(killed).Round(time.Millisecond))
		drop, j := events.wait(t, time.Minute, "the feeder's table without "+ep, i, func(ev scheduler.Event) bool {
			return isEvent("links_published", "service", "feeder")(ev) && !contains(evPeers(ev, "plaintext"), ep)
		})
		planned, _ := events.wait(t, time.Minute, "a replacement encryptor", i, isEvent("task_planned", "service", "encryptor"))
		if drop.Time.After(planned.Time) {
			t.Errorf("%s left the feeder's table %s after its replacement was planned", v.ID, drop.Time.Sub(planned.Time))
		}
		dropped[ep] = j
	}
	s.waitFor(2*time.Minute, "two encryptors running off "+host, func() (bool, string) {
		enc := s.running("encryptor")
		var where []string
		for _, e := range enc {
			if e.Host == host {
				return false, e.ID + " still on " + host
			}
			where = append(where, e.ID+"@"+e.Host)
		}
		return len(enc) == 2, strings.Join(where, " ")
	})
	s.converge(version, 2*time.Minute)
	acked := s.waitLinksAcked(time.Minute)
	t.Logf("converged again %s after the loss; tables acknowledged %v", time.Since(killed).Round(time.Millisecond), acked)

	// Never advertised again: in no table published since, nor in any
	// current one.
	for i, ev := range events.all() {
		for ep, j := range dropped {
			if i > j && ev.Type == "links_published" && contains(evPeers(ev, "plaintext"), ep) {
				t.Errorf("the lost %s is advertised again: %+v", ep, ev)
			}
		}
	}
	for _, v := range lost {
		ep := endpoint(v, "plaintext")
		links, err := s.links()
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range links {
			if tl.Table == nil {
				continue
			}
			for g, og := range tl.Table.Out {
				if contains(og.Peers, ep) {
					t.Errorf("%s's table still names the lost %s (%s) on %s", tl.TaskID, v.ID, ep, g)
				}
			}
		}
	}

	// The account.
	var rerouted, gateDropped uint64
	for _, svc := range []string{"feeder", "encryptor"} {
		for _, tk := range s.running(svc) {
			for g, c := range s.nextReport(tk).Gates {
				if tk.ID == feeder.ID && g == "plaintext" {
					rerouted = c.Rerouted
				}
				gateDropped += c.Dropped
			}
		}
	}
	tl := s.stopFeeder()
	t.Logf("sent %d, received %d, duplicates %d, missing %d, lost %d; the feeder re-routed %d; surviving gates dropped %d; the lost tasks could hold at most %d",
		tl.Sent, tl.Received, tl.Duplicates, tl.Missing, tl.Lost, rerouted, gateDropped, bound)
	if tl.Lost != tl.Missing {
		t.Errorf("%d messages lost but only %d are gaps: messages were lost after the agent was", tl.Lost, tl.Missing)
	}
	if tl.Missing > bound {
		t.Errorf("%d messages missing, more than the lost tasks can have held (%d)", tl.Missing, bound)
	}
	if gateDropped != 0 {
		t.Errorf("surviving gates dropped %d messages, want none", gateDropped)
	}
	if tl.Duplicates > rerouted {
		t.Errorf("%d duplicates, more than the feeder re-routed (%d)", tl.Duplicates, rerouted)
	}
}

// processesIn lists the processes of the system (under dir) whose working
// directory is under sub: an agent's executors and services run in their
// sandboxes, under the agent's work directory.
func processesIn(dir, sub string) []int {
	var out []int
	for pid := range processesUnder(dir) {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err == nil && (cwd == sub || strings.HasPrefix(cwd, sub+string(filepath.Separator))) {
			out = append(out, pid)
		}
	}
	return out
}
