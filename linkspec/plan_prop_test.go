package linkspec

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// randomSpec builds a valid spec of up to 6 services with random gates and
// compatible links.
func randomSpec(rng *rand.Rand) *Spec {
	s := &Spec{Version: FormatVersion, Services: map[string]*Service{}}
	n := 1 + rng.IntN(6)
	type gate struct {
		svc, name string
		p         Pattern
	}
	var outs, ins []gate
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%d", i)
		svc := defaultService(name)
		svc.Command = "run"
		svc.Instances = rng.IntN(5)
		svc.Args = []string{fmt.Sprint(rng.IntN(2))}
		for g := 0; g < rng.IntN(4); g++ {
			p := []Pattern{Push, Pull, Pub, Sub, Req, Rep}[rng.IntN(6)]
			gname := fmt.Sprintf("g%d", g)
			svc.Gates[gname] = p
			if p.Sends() {
				outs = append(outs, gate{name, gname, p})
			} else {
				ins = append(ins, gate{name, gname, p})
			}
		}
		s.Services[name] = svc
	}
	seen := map[Link]bool{}
	for _, o := range outs {
		for _, in := range ins {
			l := Link{GateRef{o.svc, o.name}, GateRef{in.svc, in.name}}
			if in.p == o.p.Peer() && rng.IntN(2) == 0 && !seen[l] {
				seen[l] = true
				s.Links = append(s.Links, l)
			}
		}
	}
	return s
}

// mutate changes a spec the way operators do: scale, change a definition,
// drop or add a link.
func mutate(rng *rand.Rand, s *Spec) *Spec {
	c := s.Clone()
	names := c.ServiceNames()
	if len(names) == 0 {
		return randomSpec(rng)
	}
	svc := c.Services[names[rng.IntN(len(names))]]
	switch rng.IntN(4) {
	case 0, 1:
		svc.Instances = rng.IntN(5)
	case 2:
		svc.Args = []string{fmt.Sprint(rng.IntN(3))}
	case 3:
		if len(c.Links) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(c.Links))
			c.Links = append(c.Links[:i], c.Links[i+1:]...)
		} else {
			delete(c.Services, svc.Name)
			var keep []Link
			for _, l := range c.Links {
				if l.From.Service != svc.Name && l.To.Service != svc.Name {
					keep = append(keep, l)
				}
			}
			c.Links = keep
		}
	}
	return c
}

// TestPlannerProperties drives the planner through random specs and a
// random world (launches that stall, crashes, lost agents, orphans, missing
// acks) and checks after every plan:
//   - every endpoint in a table is an advertised task's bound in-gate, and
//     every advertised task of a linked service is in its peers' tables;
//   - task IDs never repeat;
//   - the incremental planner agrees with planning from scratch;
//   - planning twice without observing anything gives the same plan, and
//     acting on a plan leaves nothing more to do until the world moves.
func TestPlannerProperties(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			s := newSim(t)
			spec := randomSpec(rng)
			if err := spec.Validate().Err(); err != nil {
				t.Fatalf("random spec invalid: %v", err)
			}
			s.p.SetSpec(spec)
			restarts := map[string]Restart{}
			ids := map[string]bool{}
			for step := 0; step < 60; step++ {
				s.now = s.now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
				plan := s.p.Plan(s.now)
				checkPlan(t, s.p, &plan, s.now, restarts)
				for _, l := range plan.Launch {
					if ids[l.TaskID] {
						t.Fatalf("step %d: task ID %s launched twice", step, l.TaskID)
					}
					ids[l.TaskID] = true
				}
				again := s.p.Plan(s.now)
				if !reflect.DeepEqual(actions(&plan), actions(&again)) {
					t.Fatalf("step %d: planning twice differs:\n%v\n%v", step, actions(&plan), actions(&again))
				}
				s.apply(&plan)
				if after := s.p.Plan(s.now); !after.Empty() {
					t.Fatalf("step %d: after acting on the plan there is more to do: %v", step, actions(&after))
				}
				switch r := rng.IntN(10); {
				case r < 5:
					s.world(rng.IntN(4) != 0)
				case r == 5:
					spec = mutate(rng, spec)
					if err := spec.Validate().Err(); err != nil {
						t.Fatalf("mutated spec invalid: %v", err)
					}
					s.p.SetSpec(spec)
				case r == 6: // a running task crashes
					if tk := s.pick(rng, Running); tk != nil {
						s.p.Forget(tk.ID)
						rs := restarts[tk.Service]
						rs.Failures++
						rs.Last = s.now
						restarts[tk.Service] = rs
						s.p.SetRestarts(tk.Service, rs)
					}
				case r == 7: // an agent is lost
					if tk := s.pick(rng, Running); tk != nil {
						c := *tk
						c.Phase = Unreachable
						s.p.Observe(c)
					}
				case r == 8: // an unreachable task comes back
					if tk := s.pick(rng, Unreachable); tk != nil {
						c := *tk
						c.Phase, c.Orphan = Running, true
						s.p.Observe(c)
					}
				default: // a service recovers
					for svc := range restarts {
						delete(restarts, svc)
						s.p.SetRestarts(svc, Restart{})
					}
				}
			}
			// With a cooperative world and no further changes, the system
			// converges to exactly what the spec asks for.
			for i := 0; i < 20; i++ {
				s.now = s.now.Add(10 * time.Minute)
				plan := s.p.Plan(s.now)
				s.apply(&plan)
				s.world(true)
			}
			final := s.p.Plan(s.now)
			if !final.Empty() {
				t.Fatalf("did not converge: %v", actions(&final))
			}
			for _, name := range spec.ServiceNames() {
				n := 0
				for _, tk := range s.p.svcs[name].tasks {
					if tk.Phase == Unreachable {
						continue // written off; killed if it ever comes back
					}
					if tk.Phase != Running || tk.Orphan || !tk.Retiring.IsZero() || tk.Config != s.p.digest[name] {
						t.Fatalf("did not converge: %s is %s (orphan %v, retiring %v)", tk.ID, tk.Phase, tk.Orphan, !tk.Retiring.IsZero())
					}
					n++
				}
				if n != spec.Services[name].Instances {
					t.Fatalf("service %s runs %d tasks, wants %d", name, n, spec.Services[name].Instances)
				}
			}
		})
	}
}

func (s *sim) pick(rng *rand.Rand, ph Phase) *Task {
	var c []*Task
	for _, t := range sortedTasks(s.p.tasks) {
		if t.Phase == ph && !t.Orphan {
			c = append(c, t)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[rng.IntN(len(c))]
}

type actionSet struct {
	Launch []Launch
	Cancel []string
	Retire []Retire
	Kill   []Kill
	Hold   []Hold
	Wake   time.Time
	Tables map[string]string
}

func actions(p *Plan) actionSet {
	a := actionSet{Launch: p.Launch, Cancel: p.Cancel, Retire: p.Retire, Kill: p.Kill, Hold: p.Hold, Wake: p.Wake, Tables: map[string]string{}}
	for n, t := range p.Tables {
		a.Tables[n] = t.Digest()
	}
	return a
}

func checkPlan(t *testing.T, p *Planner, plan *Plan, now time.Time, restarts map[string]Restart) {
	t.Helper()
	spec := p.spec
	// Expected peers of each out-gate, from first principles.
	for _, name := range spec.ServiceNames() {
		tb := plan.Tables[name]
		if tb == nil {
			t.Fatalf("no table for service %s", name)
		}
		for _, g := range spec.OutGates(name) {
			want := []string{}
			for _, l := range spec.Links {
				if l.From != (GateRef{name, g}) {
					continue
				}
				for _, tk := range p.tasks {
					if tk.Service == l.To.Service && tk.Phase == Running && tk.Retiring.IsZero() && !tk.Orphan {
						want = append(want, Endpoint(tk.Host, tk.Ports[l.To.Gate]))
					}
				}
			}
			sort.Strings(want)
			want = dedupSorted(want)
			if got := tb.Out[g].Peers; !reflect.DeepEqual(got, want) {
				t.Fatalf("table %s.%s = %v, want %v", name, g, got, want)
			}
		}
	}
	// The incremental planner agrees with a planner built from scratch.
	var tasks []Task
	for _, tk := range p.tasks {
		tasks = append(tasks, *tk)
	}
	fresh := PlanOnce(spec, tasks, restarts, p.nextSeq, now, p.opts)
	if got, want := actions(plan), actions(&fresh); !reflect.DeepEqual(got, want) {
		t.Fatalf("incremental plan differs from a fresh one:\n got %+v\nwant %+v", got, want)
	}
}
