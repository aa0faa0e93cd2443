package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/store"
)

// harness is an embedded Mesos with lightweight executors, and a scheduler
// on it, all in this process on loopback.
type harness struct {
	t       testing.TB
	cluster *localmesos.Cluster
	exec    *lightExecutor
	store   *store.Mem
	sched   *Scheduler
	cfg     Config
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TILTAI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// tinyBinary stands in for the tiltai binary: the in-process executors do
// not run it, and every launch fetches it, so it should be small.
func tinyBinary(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "tiltai")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newHarness(t testing.TB, agents int, mod func(*localmesos.Config, *Config)) *harness {
	t.Helper()
	h := &harness{t: t, exec: newLightExecutor(), store: store.NewMem()}
	lc := localmesos.Config{
		Listen: "127.0.0.1:0", Agents: agents, SplitPorts: true,
		Resources:         "cpus:16;mem:65536;disk:100000;ports:[31000-39999]",
		HeartbeatInterval: time.Second, AllocationInterval: 100 * time.Millisecond,
		Launcher: h.exec.Launcher(), Logger: testLogger(t),
	}
	h.cfg = Config{
		FrameworkName: "tiltai-test", Listen: "127.0.0.1:0", Store: h.store, Checkpoint: true,
		ExecutorBinary: tinyBinary(t), Logger: testLogger(t),
		ResendMin: 100 * time.Millisecond, ResendMax: time.Second, SubscribeBackoffMin: 100 * time.Millisecond,
		SubscribeBackoffMax: time.Second, Refuse: time.Second, UnreachableReconcile: 300 * time.Millisecond,
	}
	if mod != nil {
		mod(&lc, &h.cfg)
	}
	c, err := localmesos.New(context.Background(), lc)
	if err != nil {
		t.Fatal(err)
	}
	h.cluster = c
	t.Cleanup(func() { c.Close() })
	h.cfg.Master = StaticMaster(c.MasterURL())
	h.start()
	return h
}

func (h *harness) start() {
	h.t.Helper()
	s, err := New(context.Background(), h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sched = s
	h.t.Cleanup(func() { s.Close() })
}

// restart closes the scheduler (as SIGTERM would) and starts a new one on
// the same store.
func (h *harness) restart() {
	h.sched.Close()
	h.start()
}

func (h *harness) url(path string) string { return h.sched.URL() + path }

func (h *harness) do(method, path string, body []byte, hdr map[string]string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url(path), bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (h *harness) submit(spec string) SubmitResult {
	h.t.Helper()
	code, body := h.do("PUT", "/v1/spec", []byte(spec), nil)
	if code != http.StatusOK {
		h.t.Fatalf("PUT /v1/spec: %d %s", code, body)
	}
	var res SubmitResult
	if err := json.Unmarshal(body, &res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) status() Status {
	h.t.Helper()
	code, body := h.do("GET", "/v1/status", nil, nil)
	if code != http.StatusOK {
		h.t.Fatalf("GET /v1/status: %d %s", code, body)
	}
	var st Status
	json.Unmarshal(body, &st)
	return st
}

func (h *harness) tasks() []TaskInfo {
	h.t.Helper()
	_, body := h.do("GET", "/v1/tasks", nil, nil)
	var ts []TaskInfo
	if err := json.Unmarshal(body, &ts); err != nil {
		h.t.Fatalf("GET /v1/tasks: %v: %s", err, body)
	}
	return ts
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", within, what, last)
}

func (h *harness) waitConverged(within time.Duration) Status {
	h.t.Helper()
	var st Status
	eventually(h.t, within, "convergence", func() (bool, string) {
		st = h.status()
		b, _ := json.Marshal(st)
		return st.Converged, string(b)
	})
	return st
}

const pipelineSpec = `
version: 1
services:
  feeder:
    command: tiltai
    gates: {plaintext: push}
  encryptor:
    command: tiltai
    instances: 3
    gates: {plaintext: pull, ciphertext: push}
  printer:
    command: tiltai
    gates: {ciphertext: pull}
links:
  - {from: feeder.plaintext, to: encryptor.plaintext}
  - {from: encryptor.ciphertext, to: printer.ciphertext}
`

func scaled(spec, service string, n int) string {
	// Only for pipelineSpec: encryptor carries the instances line.
	return strings.Replace(spec, "instances: 3", fmt.Sprintf("instances: %d", n), 1)
}
