package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

// TestBusyRetry runs Submit and Scale against a fake that refuses the
// first writes with 503, as a scheduler whose parse slots are full does,
// over real HTTP.
func TestBusyRetry(t *testing.T) {
	const ms = time.Millisecond
	scaled := strings.Replace(pipeline, "instances: 3", "instances: 4", 1)
	type wait struct {
		attempt    int
		min, max   time.Duration
		retryAfter bool
	}
	tests := []struct {
		name       string
		busy       int           // writes the fake refuses
		retryAfter time.Duration // their Retry-After (0: none)
		retry      *client.BusyRetry
		scale      bool // POST …/scale instead of PUT /v1/spec
		cancel     bool // cancel the context at the first wait
		wantReqs   int
		wantWaits  []wait
		wantErr    string // "" : the write is accepted
		minElapsed time.Duration
	}{
		{
			name: "retry-after honoured, capped", busy: 2, retryAfter: time.Second,
			retry:    &client.BusyRetry{MaxRetryAfter: 20 * ms},
			wantReqs: 3, wantWaits: []wait{{2, 20 * ms, 20 * ms, true}, {3, 20 * ms, 20 * ms, true}},
		},
		{
			name: "retry-after honoured as it is", busy: 1, retryAfter: time.Second,
			retry:    &client.BusyRetry{},
			wantReqs: 2, wantWaits: []wait{{2, time.Second, time.Second, true}}, minElapsed: time.Second,
		},
		{
			name: "scale body sent again", busy: 2, retryAfter: time.Second, scale: true,
			retry:    &client.BusyRetry{MaxRetryAfter: 5 * ms},
			wantReqs: 3, wantWaits: []wait{{2, 5 * ms, 5 * ms, true}, {3, 5 * ms, 5 * ms, true}},
		},
		{
			name: "no retry-after: exponential backoff", busy: 3,
			retry:    &client.BusyRetry{Initial: 4 * ms, Max: 10 * ms},
			wantReqs: 4, wantWaits: []wait{{2, 2 * ms, 4 * ms, false}, {3, 4 * ms, 8 * ms, false}, {4, 5 * ms, 10 * ms, false}},
		},
		{
			name: "gives up after Attempts", busy: 10, retryAfter: time.Second,
			retry:    &client.BusyRetry{Attempts: 3, MaxRetryAfter: ms},
			wantReqs: 3, wantWaits: []wait{{2, ms, ms, true}, {3, ms, ms, true}},
			wantErr: "the scheduler was still busy after 3 attempts in ",
		},
		{
			// The second wait would end past MaxElapsed: not made.
			name: "gives up after MaxElapsed", busy: 10, retryAfter: time.Second,
			retry:    &client.BusyRetry{MaxRetryAfter: 100 * ms, MaxElapsed: 150 * ms},
			wantReqs: 2, wantWaits: []wait{{2, 100 * ms, 100 * ms, true}},
			wantErr: "the scheduler was still busy after 2 attempts in ",
		},
		{
			name: "stops when the context ends", busy: 10, retryAfter: 5 * time.Second,
			retry: &client.BusyRetry{}, cancel: true,
			wantReqs: 1, wantWaits: []wait{{2, 5 * time.Second, 5 * time.Second, true}},
			wantErr: "PUT /v1/spec: stopped retrying after 1 attempts (the scheduler was busy; nothing was changed): context canceled",
		},
		{
			name: "without WithBusyRetry a 503 is returned at once", busy: 1, retryAfter: time.Second,
			wantReqs: 1,
			wantErr:  "the scheduler is busy checking other specs; retry in a second (HTTP 503 from PUT /v1/spec)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake(t, clienttest.FakeConfig{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				mu    sync.Mutex
				waits []client.BusyWait
			)
			var opts []client.Option
			if tt.retry != nil {
				r := *tt.retry
				r.Notify = func(w client.BusyWait) {
					mu.Lock()
					waits = append(waits, w)
					mu.Unlock()
					if tt.cancel {
						cancel()
					}
				}
				opts = append(opts, client.WithBusyRetry(r))
			}
			c := newClient(t, f.URL, "", opts...)
			if _, err := c.Submit(ctx, "pipeline.yaml", []byte(pipeline)); err != nil {
				t.Fatal(err)
			}
			before := len(f.Requests())
			f.Busy(tt.busy, tt.retryAfter)

			start := time.Now()
			var err error
			if tt.scale {
				_, err = c.Scale(ctx, "encryptor", 4)
			} else {
				_, err = c.Submit(ctx, "pipeline.yaml", []byte(scaled))
			}
			elapsed := time.Since(start)

			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("write: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("write: error %v, want one containing %q", err, tt.wantErr)
			}
			wantVersion := 2
			if tt.wantErr != "" {
				wantVersion = 1
				// A refusal stays a refusal: callers tell "retry later"
				// from "invalid" with errors.Is.
				if !tt.cancel && !errors.Is(err, client.ErrUnavailable) {
					t.Errorf("errors.Is(%v, ErrUnavailable) = false", err)
				}
				if tt.cancel && !errors.Is(err, context.Canceled) {
					t.Errorf("errors.Is(%v, context.Canceled) = false", err)
				}
			}
			if v := f.Version(); v != wantVersion {
				t.Errorf("fake at spec version %d, want %d", v, wantVersion)
			}
			if got := f.Spec().Services["encryptor"].Instances; got != map[int]int{1: 3, 2: 4}[wantVersion] {
				t.Errorf("encryptor has %d instances", got)
			}
			if elapsed < tt.minElapsed {
				t.Errorf("the write took %s, less than the %s Retry-After asked", elapsed, tt.minElapsed)
			}
			if tt.cancel && elapsed > 2*time.Second {
				t.Errorf("the write took %s after the context was cancelled", elapsed)
			}

			// Every attempt sent the whole body again.
			reqs := f.Requests()[before:]
			if len(reqs) != tt.wantReqs {
				t.Fatalf("%d requests, want %d", len(reqs), tt.wantReqs)
			}
			for i, r := range reqs {
				if len(r.Body) == 0 || !bytes.Equal(r.Body, reqs[0].Body) || r.Method != reqs[0].Method || r.Path != reqs[0].Path {
					t.Errorf("request %d: %s %s %q, want %s %s %q", i+1, r.Method, r.Path, r.Body, reqs[0].Method, reqs[0].Path, reqs[0].Body)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			attempts := client.DefaultBusyAttempts
			if tt.retry != nil && tt.retry.Attempts > 0 {
				attempts = tt.retry.Attempts
			}
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("waits %+v, want %d", waits, len(tt.wantWaits))
			}
			for i, w := range waits {
				want := tt.wantWaits[i]
				if w.Attempt != want.attempt || w.Delay < want.min || w.Delay > want.max || w.RetryAfter != want.retryAfter ||
					w.Attempts != attempts ||
					w.Err == nil || w.Err.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("wait %d: %+v, want attempt %d, delay in [%s, %s], retryAfter %v", i, w, want.attempt, want.min, want.max, want.retryAfter)
				}
			}
		})
	}
}

// TestBusyRetryOnlyRetries503 checks that answers which will not change by
// themselves are returned at once, retry or not.
func TestBusyRetryOnlyRetries503(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{Token: "s3cret"})
	notified := 0
	c := newClient(t, f.URL, "wrong", client.WithBusyRetry(client.BusyRetry{Notify: func(client.BusyWait) { notified++ }}))
	f.Busy(5, time.Second)
	if _, err := c.Submit(context.Background(), "pipeline.yaml", []byte(pipeline)); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	c = newClient(t, f.URL, "s3cret", client.WithBusyRetry(client.BusyRetry{Notify: func(client.BusyWait) { notified++ }, MaxRetryAfter: time.Millisecond}))
	f.Busy(0, 0)
	if _, err := c.Scale(context.Background(), "nosuch", 2); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := c.Submit(context.Background(), "bad.yaml", []byte("version: 1\nservices: {a: {command: x, instances: -1}}\n")); !errors.Is(err, client.ErrInvalidSpec) {
		t.Fatalf("invalid spec: %v", err)
	}
	if notified != 0 || len(f.Requests()) != 3 {
		t.Fatalf("%d waits, %d requests; want none retried", notified, len(f.Requests()))
	}
}
