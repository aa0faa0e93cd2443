package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
)

// unplaceableSpec asks for a and b tasks that no agent can fit (cpus:
// 1000): they stay pending, in the state, as many as asked.
func unplaceableSpec(a, b int) string {
	return fmt.Sprintf(`
version: 1
services:
  a:
    command: x
    instances: %d
    cpus: 1000
    gates: {in: pull}
  b:
    command: x
    instances: %d
    cpus: 1000
    gates: {in: pull}
`, a, b)
}

// waitTasks waits until the state holds n tasks.
func waitTasks(tb testing.TB, s *Scheduler, n int) {
	tb.Helper()
	eventually(tb, 60*time.Second, fmt.Sprintf("%d tasks", n), func() (bool, string) {
		have := len(s.view.Load().Tasks)
		return have == n, fmt.Sprintf("%d tasks", have)
	})
}

// GET /v1/tasks filters by service and phase, pages in launch order with
// a cursor (the Link header) and summarises; the body stays a JSON array.
func TestTasksPaging(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(unplaceableSpec(7, 3))
	waitTasks(t, h.sched, 10)
	all := h.tasks()
	if len(all) != 10 {
		t.Fatalf("%d tasks without paging parameters, want every one of 10", len(all))
	}

	get := func(t *testing.T, query string) (code int, ids []string, next, total string, body []byte) {
		t.Helper()
		resp, err := http.Get(h.url("/v1/tasks" + query))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			var ts []TaskInfo
			if err := json.Unmarshal(body, &ts); err != nil {
				t.Fatalf("not a JSON array of tasks: %v: %s", err, body)
			}
			for _, ti := range ts {
				ids = append(ids, ti.ID)
			}
		}
		return resp.StatusCode, ids, resp.Header.Get("Link"), resp.Header.Get("X-Total-Count"), body
	}
	ids := func(from, to int) string {
		var out []string
		for _, ti := range all[from:to] {
			out = append(out, ti.ID)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		name, query      string
		code             int
		ids, link, total string
		want             string
	}{
		{"first page", "?limit=4", 200, ids(0, 4), `</v1/tasks?after=` + all[3].ID + `&limit=4>; rel="next"`, "10", ""},
		{"second page", "?limit=4&after=" + all[3].ID, 200, ids(4, 8), `</v1/tasks?after=` + all[7].ID + `&limit=4>; rel="next"`, "10", ""},
		{"last page", "?limit=4&after=" + all[7].ID, 200, ids(8, 10), "", "10", ""},
		{"exact fit", "?limit=10", 200, ids(0, 10), "", "10", ""},
		{"a cursor past the end", "?after=a.999999", 200, "", "", "10", ""},
		{"one service", "?service=b", 200, ids(7, 10), "", "3", ""},
		{"one service, paged", "?service=a&limit=5", 200, ids(0, 5), `</v1/tasks?after=` + all[4].ID + `&limit=5&service=a>; rel="next"`, "7", ""},
		{"by phase", "?phase=pending&limit=2", 200, ids(0, 2), `</v1/tasks?after=` + all[1].ID + `&limit=2&phase=pending>; rel="next"`, "10", ""},
		{"no such phase among them", "?phase=running", 200, "", "", "0", ""},
		{"unknown service", "?service=nosuch", 200, "", "", "0", ""},
		{"limit too large", "?limit=5001", 400, "", "", "", "give 1 to 5000 tasks a page"},
		{"limit zero", "?limit=0", 400, "", "", "", "give 1 to 5000"},
		{"bad phase", "?phase=sleeping", 400, "", "", "", "is not a phase; give pending, launched, running, killing or unreachable"},
		{"bad cursor", "?after=nodot", 400, "", "", "", "is not a task ID"},
		{"bad view", "?view=tree", 400, "", "", "", "the only view is summary"},
		{"service with ESC", "?service=" + urlEscape("\x1b[2J"), 400, "", "", "", "holds control characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, got, link, total, body := get(t, c.query)
			if code != c.code || strings.Join(got, ",") != c.ids || link != c.link || total != c.total || !strings.Contains(string(body), c.want) {
				t.Fatalf("%d ids %v Link %q total %q: %s\nwant %d ids %v Link %q total %q with %q", code, got, link, total, body, c.code, c.ids, c.link, c.total, c.want)
			}
		})
	}

	code, body := h.do("GET", "/v1/tasks?view=summary", nil, nil)
	var sum TaskSummary
	if err := json.Unmarshal(body, &sum); code != 200 || err != nil {
		t.Fatalf("summary: %d %v %s", code, err, body)
	}
	if got, _ := json.Marshal(sum); string(got) != `{"total":10,"services":[{"service":"a","total":7,"phases":{"pending":7}},{"service":"b","total":3,"phases":{"pending":3}}]}` {
		t.Fatalf("summary %s", got)
	}
	_, body = h.do("GET", "/v1/tasks?view=summary&service=b", nil, nil)
	if !strings.Contains(string(body), `"total": 3`) || strings.Contains(string(body), `"service": "a"`) {
		t.Fatalf("summary of b: %s", body)
	}
}

// BenchmarkMemoryPerTask measures what a task costs the scheduler: heap in
// use after GC, before and after N tasks that no agent can take (they stay
// pending in the state and the store), divided by N. The figure is
// docs/operations.md's; --max_tasks is chosen from it. Run with
// -benchtime=1x: each N is one measurement.
func BenchmarkMemoryPerTask(b *testing.B) {
	for _, n := range []int{1000, 10000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				h := newHarness(b, 1, func(lc *localmesos.Config, c *Config) {
					lc.AllocationInterval = time.Second
					c.MaxTasks = n
				})
				before, hwm := heapInUse(), peakRSS()
				if _, err := h.sched.SubmitSpec(context.Background(), "big.yaml", []byte(unplaceableSpec(n/2, n-n/2)), SubmitOptions{IfMatch: -1}); err != nil {
					b.Fatal(err)
				}
				waitTasks(b, h.sched, n)
				after := heapInUse()
				b.ReportMetric(float64(after-before)/float64(n), "heap-bytes/task")
				b.ReportMetric(float64(after)/(1<<20), "heap-MiB")
				if p := peakRSS(); p > 0 && hwm > 0 {
					// Parsing, planning and the first store batch are
					// transient, but the process holds its peak until the
					// Go runtime returns it to the OS.
					b.ReportMetric(float64(p-hwm)/float64(n), "peak-rss-bytes/task")
				}
				h.sched.Close()
				h.cluster.Close()
			}
		})
	}
}

// peakRSS is the process's peak resident set (VmHWM, Linux), 0 elsewhere.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// BenchmarkTasksAPI20000 times GET /v1/tasks on the real handler with
// 20,000 tasks: the default page, the largest page, and the summary.
func BenchmarkTasksAPI20000(b *testing.B) {
	const n = 20000
	h := newHarness(b, 1, func(lc *localmesos.Config, c *Config) { lc.AllocationInterval = time.Second })
	if _, err := h.sched.SubmitSpec(context.Background(), "big.yaml", []byte(unplaceableSpec(n/2, n/2)), SubmitOptions{IfMatch: -1}); err != nil {
		b.Fatal(err)
	}
	waitTasks(b, h.sched, n)
	for _, bc := range []struct{ name, query string }{
		{"Page500", ""}, {"Page5000", "?limit=5000"}, {"Summary", "?view=summary"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				if code, body := h.do("GET", "/v1/tasks"+bc.query, nil, nil); code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
		})
	}
}
