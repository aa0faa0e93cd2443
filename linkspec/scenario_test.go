package linkspec

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/internal/scripttest"
)

// A scenario file (see package scripttest) drives a Planner and a small
// simulation of the driver and of Mesos (see sim), so each file reads as a
// story: what was asked, what the planner decided.
func TestScenarios(t *testing.T) {
	scripttest.Walk(t, "testdata/plan", func(t *testing.T, path string) {
		s := newSim(t)
		scripttest.RunFile(t, path, func(t *testing.T, d *scripttest.Cmd) string { return s.run(d) })
	})
}

// sim is the planner plus a faithful-enough stand-in for the driver (which
// records intents, retirements and kills) and for Mesos and the executors
// (which launch, run, ack and end tasks).
type sim struct {
	t        testing.TB
	p        *Planner
	now      time.Time
	nextPort uint32
	hosts    int
	last     Plan
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSim(t testing.TB) *sim {
	return &sim{t: t, p: NewPlanner(Options{DrainTimeout: 30 * time.Second}), now: epoch, nextPort: 31000}
}

func (s *sim) run(d *scripttest.Cmd) string {
	pos := d.Positional()
	if v, ok := d.Lookup("t"); ok {
		t, err := time.ParseDuration(v)
		if err != nil {
			s.t.Fatalf("%s: bad t: %v", d.Pos, err)
		}
		s.now = epoch.Add(t)
	}
	switch d.Name {
	case "spec":
		spec, probs := Parse("spec.yaml", []byte(d.Input))
		var out []string
		for _, p := range probs {
			out = append(out, p.String())
		}
		if spec != nil {
			s.p.SetSpec(spec)
			out = append(out, "ok")
		}
		return strings.Join(out, "\n")
	case "task":
		return s.task(d)
	case "forget":
		s.p.Forget(pos[0])
		return "ok"
	case "restarts":
		n, _ := strconv.Atoi(d.Value("failures"))
		last, _ := time.ParseDuration(d.Value("last"))
		s.p.SetRestarts(pos[0], Restart{Failures: n, Last: epoch.Add(last)})
		return "ok"
	case "plan":
		s.last = s.p.Plan(s.now)
		return formatPlan(&s.last, s.now, d.Value("tables") != "off")
	case "apply":
		s.last = s.p.Plan(s.now)
		out := formatPlan(&s.last, s.now, d.Value("tables") != "off")
		s.apply(&s.last)
		return out
	case "world":
		return s.world(d.Value("ack") != "off")
	case "tasks":
		return s.formatTasks()
	}
	s.t.Fatalf("%s: unknown command %q", d.Pos, d.Name)
	return ""
}

// task observes a task by hand: task ID PHASE [host=H] [ports=g:1,h:2]
// [config=current|old] [retiring=DUR] [orphan] [acked=current|none]
func (s *sim) task(d *scripttest.Cmd) string {
	pos := d.Positional()
	id := pos[0]
	svc, seqStr, _ := strings.Cut(id, ".")
	seq, _ := strconv.ParseUint(seqStr, 10, 64)
	ph, err := ParsePhase(pos[1])
	if err != nil {
		s.t.Fatal(err)
	}
	t := Task{ID: id, Seq: seq, Service: svc, Phase: ph, Host: d.Value("host"), Config: s.p.digest[svc]}
	if d.Value("config") == "old" {
		t.Config = "old"
	}
	if ports := d.Value("ports"); ports != "" {
		t.Ports = map[string]uint32{}
		for _, gp := range strings.Split(ports, ",") {
			g, p, _ := strings.Cut(gp, ":")
			n, _ := strconv.Atoi(p)
			t.Ports[g] = uint32(n)
		}
	}
	if r, ok := d.Lookup("retiring"); ok {
		d, _ := time.ParseDuration(r)
		t.Retiring = epoch.Add(d)
	}
	for _, p := range pos[2:] {
		if p == "orphan" {
			t.Orphan = true
		}
	}
	if d.Value("acked") == "current" {
		t.Acked = s.p.Plan(s.now).Tables[svc]
	}
	s.p.Observe(t)
	return "ok"
}

// apply does what the driver does with a plan: record intents, retirements
// and kills.
func (s *sim) apply(plan *Plan) {
	for _, l := range plan.Launch {
		s.p.Observe(Task{ID: l.TaskID, Seq: l.Seq, Service: l.Service, Config: l.Config, Phase: Pending})
	}
	for _, id := range plan.Cancel {
		s.p.Forget(id)
	}
	for _, r := range plan.Retire {
		t, _ := s.p.Task(r.TaskID)
		t.Retiring = s.now
		s.p.Observe(t)
	}
	for _, k := range plan.Kill {
		t, _ := s.p.Task(k.TaskID)
		t.Phase = Killing
		s.p.Observe(t)
	}
}

// world moves every task one step as Mesos and the executors would:
// pending → launched (an agent and ports) → running; killing → gone; and
// every running task's executor acknowledges its current table.
func (s *sim) world(ack bool) string {
	var out []string
	tables := s.p.Plan(s.now).Tables
	for _, t := range sortedTasks(s.p.tasks) {
		c := *t
		switch t.Phase {
		case Pending:
			c.Phase = Launched
			s.hosts++
			c.Host = fmt.Sprintf("h%d", s.hosts)
			c.Ports = map[string]uint32{}
			for _, g := range s.p.spec.InGates(t.Service) {
				c.Ports[g] = s.nextPort
				s.nextPort++
			}
			out = append(out, t.ID+" launched on "+c.Host)
		case Launched:
			c.Phase = Running
			out = append(out, t.ID+" running")
		case Killing:
			s.p.Forget(t.ID)
			out = append(out, t.ID+" ended")
			continue
		case Running:
			if ack && !t.Acked.Equal(tables[t.Service]) {
				c.Acked = tables[t.Service]
				out = append(out, t.ID+" acked")
			}
		}
		s.p.Observe(c)
	}
	return strings.Join(out, "\n")
}

func (s *sim) formatTasks() string {
	var out []string
	tables := s.p.Plan(s.now).Tables
	for _, t := range sortedTasks(s.p.tasks) {
		line := fmt.Sprintf("%s %s", t.ID, t.Phase)
		if t.Host != "" {
			line += " " + t.Host
		}
		if t.Config != s.p.digest[t.Service] {
			line += " outdated"
		}
		if !t.Retiring.IsZero() {
			line += fmt.Sprintf(" retiring@%s", t.Retiring.Sub(epoch))
		}
		if t.Orphan {
			line += " orphan"
		}
		if t.Phase == Running && !t.Acked.Equal(tables[t.Service]) {
			line += " unacked"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func formatPlan(p *Plan, now time.Time, tables bool) string {
	var out []string
	for _, l := range p.Launch {
		out = append(out, fmt.Sprintf("launch %s ports=%v cpus=%g mem=%g", l.TaskID, l.InGates, l.CPUs, l.Mem))
	}
	for _, id := range p.Cancel {
		out = append(out, "cancel "+id)
	}
	for _, r := range p.Retire {
		out = append(out, fmt.Sprintf("retire %s: %s", r.TaskID, r.Reason))
	}
	for _, k := range p.Kill {
		out = append(out, fmt.Sprintf("kill %s (grace %s): %s", k.TaskID, k.Grace, k.Reason))
	}
	for _, h := range p.Hold {
		out = append(out, fmt.Sprintf("hold %s: %d missing until %s", h.Service, h.Missing, h.Until.Sub(epoch)))
	}
	if !p.Wake.IsZero() {
		out = append(out, fmt.Sprintf("wake at %s", p.Wake.Sub(epoch)))
	}
	if tables {
		for _, n := range sortedKeys(p.Tables) {
			tb := p.Tables[n]
			for _, g := range sortedKeys(tb.Out) {
				og := tb.Out[g]
				peers := strings.Join(og.Peers, " ")
				if peers == "" {
					peers = "(no peers)"
				}
				out = append(out, fmt.Sprintf("table %s.%s %s -> %s", n, g, og.Pattern, peers))
			}
		}
	}
	if len(out) == 0 {
		return "nothing to do"
	}
	return strings.Join(out, "\n")
}
