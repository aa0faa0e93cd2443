package linkspec

import (
	"fmt"
	"testing"
	"time"
)

// benchWorld is 100 services × 100 instances (10,000 tasks) with 200 links:
// each service pushes to the next two, all tasks running and acknowledged.
func benchWorld(b *testing.B) (*Spec, []Task) {
	b.Helper()
	const services, instances = 100, 100
	s := &Spec{Version: FormatVersion, Services: map[string]*Service{}}
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("svc-%d", i)
		svc := defaultService(name)
		svc.Command = "run"
		svc.Instances = instances
		svc.Gates = map[string]Pattern{"in": Pull, "a": Push, "b": Push}
		s.Services[name] = svc
		for j, g := range []string{"a", "b"} {
			s.Links = append(s.Links, Link{GateRef{name, g}, GateRef{fmt.Sprintf("svc-%d", (i+1+j)%services), "in"}})
		}
	}
	if err := s.Validate().Err(); err != nil {
		b.Fatal(err)
	}
	var tasks []Task
	seq := uint64(1)
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("svc-%d", i)
		for j := 0; j < instances; j++ {
			tasks = append(tasks, Task{
				ID: TaskID(name, seq), Seq: seq, Service: name, Config: s.ServiceDigest(name), Phase: Running,
				Host: fmt.Sprintf("agent-%d.example.com", j%50), Ports: map[string]uint32{"in": uint32(31000 + i*100 + j)},
			})
			seq++
		}
	}
	// Every executor has acknowledged its current table.
	tables := PlanOnce(s, tasks, nil, seq, epoch, Options{}).Tables
	for i := range tasks {
		tasks[i].Acked = tables[tasks[i].Service]
	}
	return s, tasks
}

// BenchmarkPlanFull plans 10,000 tasks from scratch (the scheduler does this
// once, at start or failover). Target: < 50 ms.
func BenchmarkPlanFull(b *testing.B) {
	spec, tasks := benchWorld(b)
	b.ReportAllocs()
	for b.Loop() {
		plan := PlanOnce(spec, tasks, nil, 20000, epoch, Options{})
		if !plan.Empty() {
			b.Fatal("steady state should need no action")
		}
	}
}

// BenchmarkPlanIncremental replans after one task changes state (it crashes,
// or comes back), the common case while running. Target: < 1 ms.
func BenchmarkPlanIncremental(b *testing.B) {
	spec, tasks := benchWorld(b)
	p := NewPlanner(Options{})
	p.SetSpec(spec)
	for _, t := range tasks {
		p.Observe(t)
	}
	p.Plan(epoch)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t := tasks[(i*7919)%len(tasks)]
		i++
		// The task's agent is lost: it leaves two tables and a replacement
		// is launched; then it is back (as it was), restoring the tables.
		lost := t
		lost.Phase = Unreachable
		p.Observe(lost)
		if plan := p.Plan(epoch.Add(time.Second)); len(plan.Launch) != 1 {
			b.Fatalf("want one replacement, got %d", len(plan.Launch))
		}
		p.Observe(t)
		p.Plan(epoch.Add(time.Second))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/replan")
}
