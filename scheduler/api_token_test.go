package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/localmesos"
)

// TestAPITokenNeverShown checks docs/reliability.md S2's other half: the
// API token is never logged or served. A scheduler with a token runs a spec
// through submission, convergence and a scale change, is sent wrong tokens
// (one that begins with the real one, the real one as Basic credentials),
// and every log record (debug included), every read endpoint, /metrics,
// the index, the console and the event stream are searched for the token,
// plainly and base64-encoded.
func TestAPITokenNeverShown(t *testing.T) {
	b := make([]byte, 16)
	rand.Read(b)
	token := "tok-" + hex.EncodeToString(b)
	logger, logs := captureLogger(t, "scheduler")
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.APIToken, c.Logger = token, logger })
	auth := map[string]string{"Authorization": "Bearer " + token}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url("/v1/events"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %v %v", resp, err)
	}
	events := &syncBuffer{}
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		io.Copy(events, resp.Body)
		resp.Body.Close()
	}()

	for _, wrong := range []string{"Bearer " + token + "x", "Bearer " + token[:len(token)-1], "Basic " + base64.StdEncoding.EncodeToString([]byte(token)), token} {
		if code, _ := h.do("PUT", "/v1/spec", []byte(pipelineSpec), map[string]string{"Authorization": wrong}); code != http.StatusUnauthorized {
			t.Fatalf("a wrong token (%.20s…): %d, want 401", wrong, code)
		}
	}
	if code, body := h.do("PUT", "/v1/spec", []byte(pipelineSpec), auth); code != http.StatusOK {
		t.Fatalf("PUT /v1/spec: %d %s", code, body)
	}
	eventually(t, 30*time.Second, "convergence", func() (bool, string) {
		_, body := h.do("GET", "/v1/status", nil, auth)
		return strings.Contains(string(body), `"converged": true`) || strings.Contains(string(body), `"converged":true`), string(body)
	})
	if code, body := h.do("POST", "/v1/services/encryptor/scale", []byte(`{"instances": 2}`), auth); code != http.StatusOK {
		t.Fatalf("scale: %d %s", code, body)
	}
	eventually(t, 30*time.Second, "the scale change in the event stream", func() (bool, string) {
		return strings.Contains(events.String(), "task_killing") || strings.Contains(events.String(), "task_retiring"), ""
	})

	exposed := ""
	for _, p := range []string{"/", "/v1", "/health", "/metrics", "/v1/spec", "/v1/tasks", "/v1/links", "/v1/status", "/console/"} {
		for _, hdr := range []map[string]string{nil, auth} {
			code, body := h.do("GET", p, nil, hdr)
			if code >= 500 {
				t.Fatalf("GET %s: %d", p, code)
			}
			if tokenIn(string(body), token) {
				exposed += p + " "
			}
		}
	}
	cancel()
	<-streamed
	if !strings.Contains(events.String(), "spec_accepted") {
		t.Fatalf("the event stream read holds no spec_accepted: %.300s", events.String())
	}
	if tokenIn(events.String(), token) {
		exposed += "/v1/events "
	}
	if !strings.Contains(logs.String(), "subscribed") {
		t.Fatal("the logs checked are not the scheduler's (nothing about subscribing)")
	}
	if tokenIn(logs.String(), token) {
		exposed += "the logs "
	}
	if exposed != "" {
		t.Fatalf("the API token is exposed in: %s", exposed)
	}
}

// tokenIn reports whether text holds token, or most of it, plainly or in
// base64.
func tokenIn(text, token string) bool {
	return strings.Contains(text, token[:len(token)-4]) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(token))[:len(token)-4])
}
