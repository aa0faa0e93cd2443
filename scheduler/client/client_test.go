package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
	"github.com/tiltai/tiltai/scheduler/client"
	"github.com/tiltai/tiltai/scheduler/client/clienttest"
)

const pipeline = `version: 1
services:
  feeder:
    command: feeder
    gates: {plaintext: push}
  encryptor:
    command: encryptor
    instances: 3
    gates: {plaintext: pull, ciphertext: push}
  printer:
    command: printer
    gates: {ciphertext: pull}
links:
  - {from: feeder.plaintext, to: encryptor.plaintext}
  - {from: encryptor.ciphertext, to: printer.ciphertext}
`

func newClient(t *testing.T, url, token string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fake(t *testing.T, cfg clienttest.FakeConfig) *clienttest.Fake {
	t.Helper()
	f := clienttest.NewFake(cfg)
	t.Cleanup(f.Close)
	return f
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "http://127.0.0.1:7070", want: "http://127.0.0.1:7070"},
		{in: "127.0.0.1:7070", want: "http://127.0.0.1:7070"},
		{in: " https://sched.example:443/tiltai/ ", want: "https://sched.example:443/tiltai"},
		{in: "", err: "no scheduler URL"},
		{in: "ftp://x:1", err: `scheme "ftp" is not http or https`},
		{in: "http://", err: "has no host"},
		{in: "http://h:1/?x=1", err: "no query"},
		{in: "http://u:p@h:1", err: "no query, fragment or user"},
		{in: "http://h:1/%zz", err: "is not a URL"},
	} {
		u, err := client.ParseURL(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %v, %v; want error with %q", tc.in, u, err, tc.err)
			}
		case err != nil || u.String() != tc.want:
			t.Errorf("ParseURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
	if _, err := client.New("http://h:1", "tok\nen"); err == nil {
		t.Error("a token with a line break was accepted")
	}
}

func TestSubmitGetScale(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{Token: "s3cret"})
	c := newClient(t, f.URL, "s3cret")
	ctx := context.Background()

	// Dry run: the changes, nothing accepted.
	res, err := c.Submit(ctx, "pipeline.yaml", []byte(pipeline), client.DryRun())
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Changed || res.Version != 0 || len(res.Changes) != 5 || f.Version() != 0 {
		t.Fatalf("dry run: %+v (fake at version %d)", res, f.Version())
	}

	// Only if nothing was submitted yet: If-Match 0.
	res, err = c.Submit(ctx, "pipeline.yaml", []byte(pipeline), client.IfMatch(0))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Version != 1 {
		t.Fatalf("submit: %+v", res)
	}
	reqs := f.Requests()
	last := reqs[len(reqs)-1]
	if last.Header.Get("Authorization") != "Bearer s3cret" || last.Header.Get("If-Match") != `"0"` ||
		last.Query.Get("name") != "pipeline.yaml" || last.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("request: %+v", last)
	}

	// The same again changes nothing and keeps the version.
	if res, err = c.Submit(ctx, "pipeline.yaml", []byte(pipeline)); err != nil || res.Changed || res.Version != 1 || len(res.Changes) != 0 {
		t.Fatalf("resubmit: %+v %v", res, err)
	}

	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Version != 1 || spec.Name != "pipeline.yaml" || spec.Source != pipeline || spec.Accepted.IsZero() {
		t.Fatalf("spec: %+v", spec)
	}
	parsed, err := spec.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Services["encryptor"].Instances != 3 || len(parsed.Links) != 2 {
		t.Fatalf("parsed spec: %+v", parsed)
	}
	src, v, err := c.SpecSource(ctx)
	if err != nil || v != 1 || string(src) != pipeline {
		t.Fatalf("source: v%d %q %v", v, src, err)
	}

	res, err = c.Scale(ctx, "encryptor", 5)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Version != 2 || len(res.Changes) != 1 || res.Changes[0].Kind != linkspec.ServiceScaled || res.Changes[0].To != 5 {
		t.Fatalf("scale: %+v", res)
	}
	if f.Spec().Services["encryptor"].Instances != 5 {
		t.Fatal("the fake did not scale")
	}
	// The scaled spec's source is its normalised JSON, which parses back.
	if spec, err = c.Spec(ctx); err != nil || spec.Name != "scaled.json" {
		t.Fatalf("after scale: %+v %v", spec, err)
	}
	if parsed, err = spec.Parse(); err != nil || parsed.Services["encryptor"].Instances != 5 {
		t.Fatalf("after scale: %v %v", parsed, err)
	}
	if res, err = c.Scale(ctx, "encryptor", 4, client.DryRun()); err != nil || res.Changed || !res.DryRun || f.Version() != 2 {
		t.Fatalf("scale dry run: %+v %v", res, err)
	}
}

func TestErrors(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{Token: "s3cret", MaxSpecBytes: 4096})
	c := newClient(t, f.URL, "s3cret")
	ctx := context.Background()
	if _, err := c.Submit(ctx, "pipeline.yaml", []byte(pipeline)); err != nil {
		t.Fatal(err)
	}

	var ae *client.APIError
	check := func(what string, err error, kind error, status int, text string) {
		t.Helper()
		if !errors.Is(err, kind) || !errors.As(err, &ae) || ae.StatusCode != status || !strings.Contains(err.Error(), text) {
			t.Fatalf("%s: %v (%T); want %v, HTTP %d, %q", what, err, err, kind, status, text)
		}
		for _, other := range []error{client.ErrInvalidSpec, client.ErrConflict, client.ErrUnauthorized, client.ErrNotFound, client.ErrTooLarge, client.ErrUnreachable} {
			if other != kind && errors.Is(err, other) {
				t.Fatalf("%s: %v also matches %v", what, err, other)
			}
		}
	}

	// 422: every located problem comes back; nothing changed.
	bad := "services:\n  a:\n    command: x\n    instances: -2\n    gates: {out: push}\nlinks:\n  - {from: a.out, to: b.in}\n"
	_, err := c.Submit(ctx, "bad.yaml", []byte(bad))
	check("invalid", err, client.ErrInvalidSpec, 422, "the spec is invalid (2 problems); nothing was changed (HTTP 422 from PUT /v1/spec)\nbad.yaml:4:16: instances -2 is out of range")
	if len(ae.Problems) != 2 || ae.Problems[1].Pos != (linkspec.Pos{Line: 7, Col: 23}) {
		t.Fatalf("problems: %+v", ae.Problems)
	}
	// 422 from scale: out of range.
	_, err = c.Scale(ctx, "encryptor", linkspec.MaxInstances+1)
	check("scale out of range", err, client.ErrInvalidSpec, 422, "pipeline.yaml:8:16: instances 10001 is out of range")

	// 409: the current version is told.
	_, err = c.Submit(ctx, "pipeline.yaml", []byte(strings.Replace(pipeline, "instances: 3", "instances: 4", 1)), client.IfMatch(0))
	check("conflict", err, client.ErrConflict, 409, "the spec is at version 1, not 0")
	if ae.CurrentVersion != 1 {
		t.Fatalf("current version %d", ae.CurrentVersion)
	}
	_, err = c.Scale(ctx, "encryptor", 4, client.IfMatch(7))
	check("scale conflict", err, client.ErrConflict, 409, "not 7")
	if f.Version() != 1 {
		t.Fatalf("version %d after refused writes", f.Version())
	}

	// 404: an unknown service; an unknown route is not the scheduler's JSON.
	_, err = c.Scale(ctx, "nosuch", 2)
	check("unknown service", err, client.ErrNotFound, 404, `no service "nosuch" in spec version 1`)
	_, err = newClient(t, f.URL+"/wrong/prefix", "s3cret").Status(ctx)
	check("unknown route", err, client.ErrNotFound, 404, "is this the URL of a Tiltai scheduler?")

	// 413 from the scheduler, and the client's own limit (nothing sent).
	_, err = c.Submit(ctx, "big.yaml", []byte(pipeline+"# "+strings.Repeat("x", 5000)+"\n"))
	check("too large", err, client.ErrTooLarge, 413, "larger than 4096 bytes")
	n := len(f.Requests())
	_, err = c.Submit(ctx, "huge.yaml", make([]byte, linkspec.MaxSpecBytes+1))
	check("too large locally", err, client.ErrTooLarge, 413, "not sent")
	if len(f.Requests()) != n {
		t.Fatal("an oversized spec was sent")
	}

	// 401: no token, a wrong one; reads need it too (not opened).
	for _, tok := range []string{"", "wrong"} {
		_, err = newClient(t, f.URL, tok).Scale(ctx, "encryptor", 2)
		check("write without token", err, client.ErrUnauthorized, 401, "changes need the scheduler's token")
		_, err = newClient(t, f.URL, tok).Tasks(ctx, "")
		check("read without token", err, client.ErrUnauthorized, 401, "this scheduler needs a token")
	}
	if client.Retryable(err) {
		t.Fatal("401 is retryable")
	}

	// Unreachable: nothing listens.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = newClient(t, dead.URL, "").Status(ctx)
	if !errors.Is(err, client.ErrUnreachable) || !client.Retryable(err) || !strings.Contains(err.Error(), "cannot reach the scheduler at "+dead.URL) {
		t.Fatalf("unreachable: %v", err)
	}

	// No answer in time: unreachable too, and the caller's own deadline is
	// the caller's.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	_, err = newClient(t, slow.URL, "", client.WithTimeout(50*time.Millisecond)).Status(ctx)
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "no answer to GET /v1/status within 50ms") {
		t.Fatalf("timeout: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = newClient(t, slow.URL, "").Status(short)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("caller's deadline: %v", err)
	}

	// Something else answers: said plainly.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>gateway down</html>", http.StatusBadGateway)
	}))
	defer other.Close()
	_, err = newClient(t, other.URL, "").Tasks(ctx, "")
	check("proxy", err, client.ErrUnavailable, 502, `unexpected answer "502 Bad Gateway": "<html>gateway down</html>"`)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer notJSON.Close()
	if _, err = newClient(t, notJSON.URL, "").Status(ctx); err == nil || !strings.Contains(err.Error(), "cannot decode the answer to GET /v1/status") {
		t.Fatalf("not JSON: %v", err)
	}
}

func TestReads(t *testing.T) {
	f := fake(t, clienttest.FakeConfig{Token: "s3cret", OpenReads: true})
	anon := newClient(t, f.URL, "")
	ctx := context.Background()
	f.SetTasks([]apitypes.TaskInfo{
		{ID: "feeder-1", Service: "feeder", Phase: "running", Host: "127.0.0.1", Ports: map[string]uint32{}},
		{ID: "printer-1", Service: "printer", Phase: "running", Host: "127.0.0.1", Ports: map[string]uint32{"ciphertext": 31001},
			Gates: map[string]apitypes.GateCountersReport{"ciphertext": {Pattern: "pull", Received: 42}}},
	})
	f.SetLinks([]apitypes.TaskLinks{{TaskID: "feeder-1", Service: "feeder", Version: 2, Acked: 1,
		Table: &linkspec.Table{Out: map[string]linkspec.OutGate{"plaintext": {Pattern: "push", Peers: []string{"tcp://127.0.0.1:31000"}}}}}})

	ts, err := anon.Tasks(ctx, "printer")
	if err != nil || len(ts) != 1 || ts[0].Ports["ciphertext"] != 31001 || ts[0].Gates["ciphertext"].Received != 42 {
		t.Fatalf("tasks: %+v %v", ts, err)
	}
	if ts, err = anon.Tasks(ctx, ""); err != nil || len(ts) != 2 {
		t.Fatalf("all tasks: %+v %v", ts, err)
	}
	ls, err := anon.Links(ctx)
	if err != nil || len(ls) != 1 || ls[0].Table.Out["plaintext"].Peers[0] != "tcp://127.0.0.1:31000" || ls[0].Acked != 1 {
		t.Fatalf("links: %+v %v", ls, err)
	}
	h, err := anon.Health(ctx)
	if err != nil || h.Status != "ok" || !h.Subscribed {
		t.Fatalf("health: %+v %v", h, err)
	}
	m, err := anon.Metrics(ctx)
	if err != nil || !strings.Contains(string(m), "tiltai_spec_version 0") {
		t.Fatalf("metrics: %q %v", m, err)
	}
	// Opened reads, but writes still need the token.
	if _, err := anon.Submit(ctx, "p.yaml", []byte(pipeline)); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("anonymous write: %v", err)
	}
	st, err := anon.Status(ctx)
	if err != nil || st.SpecVersion != 0 || !st.Converged {
		t.Fatalf("status: %+v %v", st, err)
	}
	// The empty spec of a fresh scheduler parses.
	spec, err := anon.Spec(ctx)
	if err != nil || spec.Version != 0 {
		t.Fatalf("spec: %+v %v", spec, err)
	}
	if p, err := spec.Parse(); err != nil || len(p.Services) != 0 {
		t.Fatalf("empty spec: %+v %v", p, err)
	}
}
