package core

import (
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/linkspec"
)

// steadyMachine is a machine with n running tasks (n-1 senders, one
// target), every one of them on its service's current table and
// acknowledged, its outbox empty: the state a large deployment is in
// between changes.
func steadyMachine(tb testing.TB, n int) (*Machine, time.Time) {
	tb.Helper()
	m, err := New(testConfig(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Step(now, Subscribed{FrameworkID: "fw", Master: "m"})
	spec, probs := linkspec.Parse("fan.yaml", fmt.Appendf(nil, `
version: 1
services:
  sink: {command: x, instances: %d, cpus: 0.01, mem: 1, gates: {in: pull, out: push}}
  target: {command: x, cpus: 0.01, mem: 1, gates: {in: pull}}
links:
  - {from: sink.out, to: target.in}
`, n-1))
	if err := probs.Err(); err != nil {
		tb.Fatal(err)
	}
	m.Step(now, SubmitSpec{ID: 1, Spec: spec, IfMatch: -1})
	m.Step(now)
	// One offer per 500 tasks, as agents would.
	var offers []mesos.Offer
	for i := 0; i*500 < n; i++ {
		agent := fmt.Sprintf("a%d", i)
		offers = append(offers, mesos.Offer{
			ID: mesos.OfferID{Value: fmt.Sprintf("o%d", i)}, AgentID: mesos.AgentID{Value: agent}, Hostname: agent,
			Resources: []mesos.Resource{
				{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 100}},
				{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 100000}},
				{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 10000, End: 20000}}}},
			},
		})
	}
	m.Step(now, Offers{Offers: offers})
	var ins []Input
	for id, t := range m.st.tasks {
		ins = append(ins, Update{Status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: id}, State: mesos.TASK_RUNNING.Enum(), AgentID: &mesos.AgentID{Value: t.AgentID}, UUID: []byte("u")}})
	}
	m.Step(now, ins...)
	ins = ins[:0]
	for _, t := range m.st.tasks {
		ins = append(ins, ackOf(tb, t, m.tables[t.Service].version))
	}
	for range m.inFlight {
		ins = append(ins, Flushed{At: now})
	}
	m.Step(now, ins...)
	m.Step(now)
	if len(m.st.tasks) != n || len(m.idx.sendNow) != 0 || m.inFlight != 0 {
		tb.Fatalf("not steady: %d tasks, %d to send, %d batches in flight", len(m.st.tasks), len(m.idx.sendNow), m.inFlight)
	}
	return m, now
}

func ackOf(tb testing.TB, t *taskRecord, v uint64) Input {
	data, err := contract.Encode(contract.Message{Type: contract.TypeAck, TaskID: t.ID, Version: v})
	if err != nil {
		tb.Fatal(err)
	}
	return Message{AgentID: t.AgentID, ExecutorID: t.executorID(), Data: data}
}

// BenchmarkStep is one step for one input in a steady deployment of 1,000
// and 10,000 tasks: an executor's acknowledgement, and a status update
// (TASK_RUNNING again, as after reconciliation), each beside the other.
// The cost per input must not grow with the tasks the input does not
// touch.
func BenchmarkStep(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		m, now := steadyMachine(b, n)
		ids := make([]*taskRecord, 0, n)
		for _, t := range m.st.tasks {
			ids = append(ids, t)
		}
		b.Run(fmt.Sprintf("ack/tasks=%d", n), func(b *testing.B) {
			// Each ack is the first of a new version: every sink task was
			// sent one and waits for its acknowledgement (a link change in
			// flight, the costly case); when all have acknowledged, the
			// next version is published, outside the timing.
			var ins []Input
			republish := func() {
				m.republish("sink", now)
				m.Step(now)
				m.Step(now, Flushed{At: now})
				ins = ins[:0]
				for _, t := range ids {
					ins = append(ins, ackOf(b, t, m.tables[t.Service].version))
				}
			}
			republish()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%len(ins) == 0 {
					b.StopTimer()
					republish()
					b.StartTimer()
				}
				now = now.Add(time.Microsecond)
				m.Step(now, ins[i%len(ins)])
			}
		})
		b.Run(fmt.Sprintf("update/tasks=%d", n), func(b *testing.B) {
			ins := make([]Input, len(ids))
			for i, t := range ids {
				ins[i] = Update{Status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: t.ID}, State: mesos.TASK_RUNNING.Enum(), AgentID: &mesos.AgentID{Value: t.AgentID}}}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Microsecond)
				m.Step(now, ins[i%len(ins)])
			}
		})
	}
}
