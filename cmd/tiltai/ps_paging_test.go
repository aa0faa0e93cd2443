package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// manyTasks makes n tasks of services a and b (half each), a's running,
// b's pending, in launch order.
func manyTasks(n int) []scheduler.TaskInfo {
	ts := make([]scheduler.TaskInfo, n)
	now := time.Now()
	for i := range ts {
		svc, phase := "a", "running"
		if i >= n/2 {
			svc, phase = "b", "pending"
		}
		ts[i] = scheduler.TaskInfo{ID: fmt.Sprintf("%s.%d", svc, i+1), Service: svc, Phase: phase, Host: "10.0.0.1",
			Ports: map[string]uint32{"in": uint32(31000 + i%1000)}, Created: now, Links: scheduler.LinkState{Version: 1, Acked: 1}}
	}
	return ts
}

func manyFake(t testing.TB, n int) *clienttest.Fake {
	f := clienttest.NewFake(clienttest.FakeConfig{})
	t.Cleanup(f.Close)
	f.SetTasks(manyTasks(n))
	a, b := svcStatus("a", n/2, n/2, 0, 0), svcStatus("b", n-n/2, 0, 0, 0)
	b.Pending, b.Converged = n-n/2, false
	f.ScriptStatus(statusOf(1, a, b))
	return f
}

// taskRows counts the task rows of ps's table.
func taskRows(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "a.") || strings.HasPrefix(line, "b.") {
			n++
		}
	}
	return n
}

// ps shows the first page and says how many there are; --limit, --all,
// --service and --phase choose what to show; --json is every task unless
// --limit.
func TestPsPaging(t *testing.T) {
	f := manyFake(t, 1200)
	cases := []struct {
		name   string
		args   []string
		code   int
		rows   int
		want   []string
		absent []string
	}{
		{"first page", nil, 0, 500, []string{"showing the first 500 of 1200 tasks: --all for every one", "a  600/600 running", "b  0/600 running, 600 pending", "spec version 1: converging"}, nil},
		{"limit", []string{"--limit", "10"}, 0, 10, []string{"a.10 ", "showing the first 10 of 1200 tasks"}, []string{"a.11 "}},
		{"all", []string{"--all"}, 0, 1200, []string{"b.1200 "}, []string{"showing the first"}},
		{"one service and phase", []string{"--service", "b", "--phase", "pending", "--limit", "5000"}, 0, 600, []string{"b.601 ", "b  0/600 running, 600 pending"}, []string{"a.1 ", "showing the first"}},
		{"nothing in a phase", []string{"--phase", "killing"}, 0, 0, []string{"no killing tasks"}, nil},
		{"bad phase", []string{"--phase", "sleeping"}, 2, 0, []string{`tiltai ps: --phase "sleeping": give pending, launched, running, killing or unreachable`}, nil},
		{"limit too large", []string{"--limit", "5001"}, 2, 0, []string{"tiltai ps: --limit 5001: give 1 to 5000, or --all"}, nil},
		{"limit zero", []string{"--limit", "0"}, 2, 0, []string{"--limit 0: give 1 to 5000"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", append([]string{"ps", "--scheduler", f.URL}, c.args...)...)
			if code != c.code || taskRows(out) != c.rows {
				t.Fatalf("exit %d, %d rows; want %d, %d\n%s%s", code, taskRows(out), c.code, c.rows, out, errs)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errs)
				}
			}
			for _, w := range c.absent {
				if strings.Contains(out+errs, w) {
					t.Errorf("output has %q:\n%s%s", w, out, errs)
				}
			}
		})
	}
	for _, c := range []struct {
		args []string
		n    int
	}{{nil, 1200}, {[]string{"--limit", "7"}, 7}, {[]string{"--service", "a"}, 600}} {
		code, out, _ := runCLI(t, "", append([]string{"ps", "--scheduler", f.URL, "--json"}, c.args...)...)
		var ts []scheduler.TaskInfo
		if err := json.Unmarshal([]byte(out), &ts); code != 0 || err != nil || len(ts) != c.n {
			t.Fatalf("--json %v: exit %d, %d tasks (%v), want %d", c.args, code, len(ts), err, c.n)
		}
	}
}

// At the largest spec allowed by default ps answers with one page, and
// --all fetches every one of the 20,000 (BenchmarkPS times both).
func TestPsAtMaxTasks(t *testing.T) {
	f := manyFake(t, 20000)
	code, out, errs := runCLI(t, "", "ps", "--scheduler", f.URL)
	if code != 0 || taskRows(out) != 500 || !strings.Contains(out, "showing the first 500 of 20000 tasks") {
		t.Fatalf("exit %d, %d rows\n%.300s\n%s", code, taskRows(out), out, errs)
	}
	code, out, errs = runCLI(t, "", "ps", "--scheduler", f.URL, "--all")
	if code != 0 || taskRows(out) != 20000 {
		t.Fatalf("--all: exit %d, %d rows\n%s", code, taskRows(out), errs)
	}
}

func BenchmarkPS(b *testing.B) {
	f := manyFake(b, 20000)
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"FirstPage20000", nil},
		{"All20000", []string{"--all"}},
		{"OneRow20000", []string{"--service", "a", "--limit", "1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				var out, errs strings.Builder
				if code := run(b.Context(), append([]string{"tiltai", "ps", "--scheduler", f.URL}, bc.args...), strings.NewReader(""), &out, &errs); code != 0 {
					b.Fatalf("exit %d: %s", code, errs.String())
				}
			}
		})
	}
}

// Nothing the scheduler sends reaches the terminal raw: task fields,
// service lines, JSON, and error answers are shown escaped.
func TestPsSanitised(t *testing.T) {
	const title, clear = "\x1b]0;pwned\x07", "\x1b[2J"
	f := newFake(t, clienttest.FakeConfig{})
	f.SetTasks([]scheduler.TaskInfo{{ID: "a.1" + clear, Service: "a", Phase: "running" + title, Host: "h\u202e\r\nFAKE ROW", Message: title, Created: time.Now()}})
	a := svcStatus("a", 1, 0, 0, 0)
	a.Failures, a.LastFailure = 1, "a.1 TASK_FAILED "+title+clear+"\nspec version 9: converged"
	f.ScriptStatus(statusOf(1, a))
	for _, args := range [][]string{{"ps"}, {"ps", "--json"}} {
		code, out, errs := runCLI(t, "", append(args, "--scheduler", f.URL)...)
		if code != 0 || strings.ContainsAny(out+errs, "\x1b\x07\r\u202e") {
			t.Fatalf("%v: exit %d, raw control characters in\n%q\n%q", args, code, out, errs)
		}
		if args[len(args)-1] == "ps" && (!strings.Contains(out, `a.1\x1b[2J`) || !strings.Contains(out, `last failure: a.1 TASK_FAILED \x1b]0;pwned\x07\x1b[2J\nspec version 9`) || strings.Contains(out, "\nFAKE ROW")) {
			t.Fatalf("not escaped as expected:\n%s", out)
		}
	}

	// An error answer is the scheduler's text too.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "no" + title + clear + "\r\u202e"})
	}))
	defer evil.Close()
	code, out, errs := runCLI(t, "", "ps", "--scheduler", evil.URL)
	if code != 1 || strings.ContainsAny(out+errs, "\x1b\x07\r\u202e") || !strings.Contains(errs, `no\x1b]0;pwned\x07\x1b[2J\r\u202e`) {
		t.Fatalf("error answer: exit %d\n%q", code, errs)
	}
}
