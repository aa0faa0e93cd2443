package localmesos_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/localmesos"
)

// The scale benchmark: 100 agents, 10,000 tasks, each on its own
// lightweight in-process executor (the mesos-go test executor speaking the
// executor HTTP API to its agent). A mesos-go scheduler accepts offers as
// they come, packing tasks, and acknowledges every update. Reported: launch
// throughput from the first ACCEPT to the last TASK_RUNNING (tasks/s), and
// the heap in use once all run (MB, and KB per task).
//
//	go test -run '^$' -bench 'Scale|Baseline' -benchtime 1x ./localmesos/
//
// BenchmarkBaselineHTTPRoundTrip beside it is the floor: one loopback HTTP
// POST answered 202 (what every call and update costs at least); a task
// takes about five such exchanges (ACCEPT share, executor SUBSCRIBE and
// UPDATE, scheduler ACKNOWLEDGE, the event streams).
func BenchmarkScale100Agents10kTasks(b *testing.B) { benchScale(b, 100, 10000) }

// BenchmarkScale10Agents1kTasks is the same at a tenth of the size.
func BenchmarkScale10Agents1kTasks(b *testing.B) { benchScale(b, 10, 1000) }

func benchScale(b *testing.B, agents, tasks int) {
	for i := 0; i < b.N; i++ {
		cpu0 := cpuTime()
		rate, heapMB := runScale(b, agents, tasks)
		// CPU per task does not depend on how busy the machine is, unlike
		// the rate (this 2-core machine is often shared).
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(tasks), "cpu-ms/task")
		b.ReportMetric(rate, "tasks/s")
		b.ReportMetric(heapMB, "heap-MB")
		b.ReportMetric(heapMB*1024/float64(tasks), "heap-KB/task")
	}
}

func runScale(b *testing.B, agents, tasks int) (rate, heapMB float64) {
	b.Helper()
	perAgent := (tasks + agents - 1) / agents
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	c, err := localmesos.New(ctx, localmesos.Config{
		Agents: agents, WorkDir: benchWorkDir(b), AllocationInterval: 20 * time.Millisecond,
		Resources:         fmt.Sprintf("cpus:%d;mem:%d;disk:1000;ports:[31000-32000]", perAgent, perAgent*64),
		SplitPorts:        true,
		Launcher:          inProcessExecutors(),
		HeartbeatInterval: 15 * time.Second, StatusUpdateRetry: 30 * time.Second,
		ExecutorRegistrationTimeout: 5 * time.Minute,
	})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	cli := httpcliFor(c.SchedulerURL())
	failover := 3600.0
	fi := &mesos.FrameworkInfo{User: "root", Name: "bench", FailoverTimeout: &failover}
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	resp, err := cli.Call(sctx, calls.Subscribe(fi))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Close()
	var fwID string
	acks := make(chan *scheduler.Call, 100000)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ { // acknowledgements go out concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			for call := range acks {
				if r, err := cli.Call(context.Background(), call); err == nil && r != nil {
					r.Close()
				}
			}
		}()
	}
	defer func() { close(acks); wg.Wait() }()

	launched, running := 0, 0
	var start time.Time
	b.ResetTimer()
	for running < tasks {
		var e scheduler.Event
		if err := resp.Decode(&e); err != nil {
			b.Fatalf("scheduler stream: %v (running %d of %d)", err, running, tasks)
		}
		switch e.Type {
		case scheduler.Event_SUBSCRIBED:
			fwID = e.Subscribed.FrameworkID.Value
		case scheduler.Event_OFFERS:
			for _, o := range e.Offers.Offers {
				var batch []mesos.TaskInfo
				cpus, mem := offered(o)
				for launched < tasks && cpus >= 0.5 && mem >= 48 {
					id := fmt.Sprintf("t%05d", launched)
					ti := customTask(id, o, "", "", "protobuf")
					ti.Resources = []mesos.Resource{scalar("cpus", 0.4), scalar("mem", 32)}
					ti.Executor.Resources = []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 16)}
					batch = append(batch, ti)
					launched++
					cpus, mem = cpus-0.5, mem-48
				}
				accept := calls.Accept(calls.OfferOperations{calls.OpLaunch(batch...)}.WithOffers(o.ID)).With(calls.RefuseSeconds(time.Millisecond))
				if len(batch) == 0 {
					accept = calls.Decline(o.ID).With(calls.RefuseSeconds(time.Hour))
				}
				accept.FrameworkID = &mesos.FrameworkID{Value: fwID}
				if start.IsZero() && len(batch) > 0 {
					start = time.Now()
				}
				r, err := cli.Call(context.Background(), accept)
				if err != nil {
					b.Fatal(err)
				}
				if r != nil {
					r.Close()
				}
			}
		case scheduler.Event_UPDATE:
			st := e.Update.Status
			if st.GetState() == mesos.TASK_RUNNING {
				running++
				if running%1000 == 0 && testing.Verbose() {
					b.Logf("%d running after %v (launched %d)", running, time.Since(start), launched)
				}
			} else if st.GetState() != mesos.TASK_STARTING {
				b.Fatalf("task %s: %s %s", st.TaskID.Value, st.GetState(), st.GetMessage())
			}
			if st.UUID != nil {
				ack := calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID)
				ack.FrameworkID = &mesos.FrameworkID{Value: fwID}
				acks <- ack
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(tasks) / elapsed.Seconds(), float64(ms.HeapInuse) / (1 << 20)
}

// benchWorkDir puts the 10,000 sandboxes on tmpfs when the machine has
// one: creating sandbox directories on a journaling disk costs more than
// everything else per task, and the disk is not what is measured here.
func benchWorkDir(b *testing.B) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "localmesos-bench-")
		if err == nil {
			b.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return b.TempDir()
}

func offered(o mesos.Offer) (cpus, mem float64) {
	for _, r := range o.Resources {
		switch r.Name {
		case "cpus":
			cpus = r.GetScalar().GetValue()
		case "mem":
			mem = r.GetScalar().GetValue()
		}
	}
	return cpus, mem
}

// BenchmarkBaselineHTTPRoundTrip: loopback HTTP POSTs answered 202, 1000
// per iteration so that -benchtime 1x still measures something.
func BenchmarkBaselineHTTPRoundTrip(b *testing.B) {
	const perOp = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	body := bytes.Repeat([]byte("x"), 200)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N*perOp; i++ {
		resp, err := http.Post(srv.URL, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*perOp), "cpu-us/call")
}

// cpuTime is the user plus system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func httpcliFor(url string) calls.Caller {
	return newCaller(url, codecs.MediaTypeProtobuf)
}
