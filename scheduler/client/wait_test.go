package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

func svc(name string, wanted, running int, mod ...func(*apitypes.ServiceStatus)) apitypes.ServiceStatus {
	ss := apitypes.ServiceStatus{Name: name, Wanted: wanted, Running: running}
	for _, m := range mod {
		m(&ss)
	}
	ss.Converged = ss.Running == ss.Wanted && ss.Unacked == 0 && ss.Pending == 0 && ss.Launching == 0 && ss.Retiring == 0 && ss.Outdated == 0
	return ss
}

func status(version int, services ...apitypes.ServiceStatus) apitypes.Status {
	st := apitypes.Status{SpecVersion: version, Subscribed: true, Converged: true, Services: services}
	for _, ss := range services {
		st.Converged = st.Converged && ss.Converged
	}
	return st
}

func failing(n int, last string, held time.Time) func(*apitypes.ServiceStatus) {
	return func(ss *apitypes.ServiceStatus) { ss.Failures, ss.LastFailure, ss.HeldUntil = n, last, held }
}

func launching(n int) func(*apitypes.ServiceStatus) {
	return func(ss *apitypes.ServiceStatus) { ss.Launching = n }
}

func unacked(n int) func(*apitypes.ServiceStatus) {
	return func(ss *apitypes.ServiceStatus) { ss.Unacked = n }
}

func TestWaitConverged(t *testing.T) {
	fast := 5 * time.Millisecond
	for _, tc := range []struct {
		name    string
		script  []apitypes.Status
		version int
		opts    client.WaitOptions
		timeout time.Duration
		reads   int    // status reads when the wait ends
		err     string // "" for success
		check   func(t *testing.T, err error)
	}{
		{
			name: "converges through launching and link acks",
			script: []apitypes.Status{
				status(1, svc("enc", 3, 0, launching(3))),
				status(2, svc("enc", 5, 3, launching(2))), // the new version arrives
				status(2, svc("enc", 5, 5, unacked(2))),
				status(2, svc("enc", 5, 5)),
			},
			version: 2, reads: 4,
		},
		{
			name:    "a later version counts",
			script:  []apitypes.Status{status(3, svc("enc", 5, 5))},
			version: 2, reads: 1,
		},
		{
			name: "not subscribed is not converged",
			script: []apitypes.Status{
				func() apitypes.Status {
					st := status(2, svc("enc", 1, 1))
					st.Subscribed, st.Converged = false, false
					return st
				}(),
				status(2, svc("enc", 1, 1)),
			},
			version: 2, reads: 2,
		},
		{
			name: "a service that keeps failing fails the wait with its last failure",
			script: []apitypes.Status{
				status(2, svc("enc", 3, 3), svc("bad", 1, 0, failing(4, "bad-1 TASK_FAILED: old", time.Time{}))),
				status(2, svc("enc", 3, 3), svc("bad", 1, 0, failing(5, "bad-2 TASK_FAILED: exit status 1", time.Time{}))),
				status(2, svc("enc", 3, 3), svc("bad", 1, 0, failing(6, "bad-3 TASK_FAILED: exit status 1", time.Time{}))),
				status(2, svc("enc", 3, 3), svc("bad", 1, 0, failing(7, "bad-4 TASK_FAILED: exit status 2", time.Time{}))),
			},
			version: 2, reads: 4,
			err: "service bad failed 3 times since the change; last failure: bad-4 TASK_FAILED: exit status 2",
			check: func(t *testing.T, err error) {
				var sf *client.ServiceFailedError
				if !errors.As(err, &sf) || sf.Service != "bad" || sf.Failures != 3 || sf.Status.Services[1].Failures != 7 {
					t.Fatalf("%#v", err)
				}
			},
		},
		{
			name: "failures count from the given baseline",
			script: []apitypes.Status{
				status(2, svc("bad", 1, 0, failing(1, "bad-1 TASK_FAILED", time.Time{}))),
			},
			opts:    client.WaitOptions{MaxFailures: 1, Baseline: &apitypes.Status{}},
			version: 2, reads: 1,
			err: "service bad failed once since the change",
		},
		{
			name: "a reset count is a new baseline; a converged service's failures do not matter",
			script: []apitypes.Status{
				status(2, svc("a", 1, 0, failing(5, "x", time.Time{})), svc("b", 1, 1, failing(1, "y", time.Time{}))),
				status(2, svc("a", 1, 0, launching(1)), svc("b", 1, 1, failing(4, "y", time.Time{}))),
				status(2, svc("a", 1, 0, failing(2, "z", time.Time{})), svc("b", 1, 1)),
				status(2, svc("a", 1, 1), svc("b", 1, 1)),
			},
			version: 2, reads: 4,
		},
		{
			name: "held in crash backoff past the deadline",
			script: []apitypes.Status{
				status(2, svc("bad", 1, 0, failing(30, "bad-30 TASK_FAILED: exit status 1", time.Now().Add(time.Hour)))),
			},
			timeout: time.Minute, version: 2, reads: 1,
			err: "service bad is held in crash backoff until",
		},
		{
			name: "the deadline ends the wait with what is left",
			script: []apitypes.Status{
				status(2, svc("enc", 5, 3, launching(2)), svc("printer", 1, 1)),
			},
			timeout: 50 * time.Millisecond, version: 2,
			err: "not converged on spec version 2 (context deadline exceeded): enc 3/5 running, 2 launching, links 3/3 acked",
			check: func(t *testing.T, err error) {
				var nc *client.NotConvergedError
				if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &nc) || !nc.Seen || strings.Contains(err.Error(), "printer") {
					t.Fatalf("%#v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake(t, clienttest.FakeConfig{})
			f.ScriptStatus(tc.script...)
			c := newClient(t, f.URL, "")
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			opts := tc.opts
			opts.Interval = fast
			var seen []apitypes.Status
			opts.Progress = func(st apitypes.Status) { seen = append(seen, st) }
			st, err := c.WaitConverged(ctx, tc.version, opts)
			if tc.err == "" {
				if err != nil || !st.Converged || st.SpecVersion < tc.version {
					t.Fatalf("wait: %+v %v", st, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("wait: %v; want %q", err, tc.err)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			if tc.reads > 0 && (f.StatusReads() != tc.reads || len(seen) != tc.reads) {
				t.Fatalf("%d status reads, %d progress calls; want %d", f.StatusReads(), len(seen), tc.reads)
			}
		})
	}
}

// The wait rides out a scheduler that is busy or away for a while, and
// stops at once on an answer that will not change.
func TestWaitRetries(t *testing.T) {
	var calls atomic.Int32
	f := fake(t, clienttest.FakeConfig{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1, 2:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"the scheduler is stopping or busy; retry"}`))
			return
		}
		resp, err := http.Get(f.URL + r.URL.Path)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		var buf [4096]byte
		n, _ := resp.Body.Read(buf[:])
		w.Write(buf[:n])
	}))
	defer proxy.Close()
	var retries []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := newClient(t, proxy.URL, "").WaitConverged(ctx, 0, client.WaitOptions{
		Interval: 5 * time.Millisecond,
		Retry:    func(err error) { retries = append(retries, err.Error()) },
	})
	if err != nil || len(retries) != 2 || !strings.Contains(retries[0], "stopping or busy") {
		t.Fatalf("wait: %v; retries %q", err, retries)
	}

	// Unauthorized: no retry.
	g := fake(t, clienttest.FakeConfig{Token: "s3cret"})
	_, err = newClient(t, g.URL, "").WaitConverged(ctx, 1, client.WaitOptions{Interval: 5 * time.Millisecond})
	if !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), "cannot follow the progress of spec version 1") {
		t.Fatalf("unauthorized: %v", err)
	}

	// Unreachable the whole time: the deadline says so, with the cause.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	_, err = newClient(t, dead.URL, "").WaitConverged(short, 1, client.WaitOptions{Interval: 5 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the last poll failed: cannot reach the scheduler") {
		t.Fatalf("unreachable: %v", err)
	}
}
