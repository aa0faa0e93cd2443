package conformance

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"
)

// The operator API v1 (POST /api/v1) after Master::Http::api
// (src/master/http.cpp), validation::master::call::validate
// (src/master/validation.cpp), include/mesos/v1/master/master.proto and
// docs/operator-http-api.md.

// TestOperatorReadCalls: each read call answers 200 with
// {"type": T, "<t>": {...}} in JSON, and in protobuf when asked.
func TestOperatorReadCalls(t *testing.T) {
	for _, typ := range []string{"GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_MASTER", "GET_STATE",
		"GET_AGENTS", "GET_FRAMEWORKS", "GET_TASKS", "GET_EXECUTORS"} {
		t.Run(typ, func(t *testing.T) {
			a := do(t, http.MethodPost, "/api/v1", jsonHdr, `{"type":"`+typ+`"}`)
			if a.code != http.StatusOK || a.hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s %q, Mesos answers 200 application/json", a.code, a.hdr.Get("Content-Type"), a.body)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(a.body), &raw); err != nil {
				t.Fatal(err)
			}
			if string(raw["type"]) != `"`+typ+`"` || raw[strings.ToLower(typ)] == nil || len(raw) != 2 {
				t.Errorf("answer %s, Mesos answers {\"type\":%q,%q:{...}}", a.body, typ, strings.ToLower(typ))
			}
			var resp mmaster.Response
			if err := json.Unmarshal([]byte(a.body), &resp); err != nil {
				t.Fatalf("not a master.Response: %v", err)
			}
			switch typ {
			case "GET_HEALTH":
				if resp.GetHealth == nil || !resp.GetHealth.Healthy {
					t.Errorf("GET_HEALTH %s", a.body)
				}
			case "GET_VERSION":
				if v := resp.GetVersion.GetVersionInfo().Version; !strings.HasPrefix(v, "1.11.") {
					t.Errorf("version %q, want 1.11.x", v)
				}
			case "GET_AGENTS":
				if len(resp.GetAgents.GetAgents()) == 0 {
					t.Errorf("GET_AGENTS lists no agent")
				}
			case "GET_FLAGS":
				if len(resp.GetFlags.GetFlags()) == 0 {
					t.Errorf("GET_FLAGS lists no flag")
				}
			}
		})
	}
	t.Run("protobuf", func(t *testing.T) {
		a := do(t, http.MethodPost, "/api/v1", map[string]string{"Content-Type": "application/json", "Accept": "application/x-protobuf"}, `{"type":"GET_HEALTH"}`)
		if a.code != http.StatusOK || a.hdr.Get("Content-Type") != "application/x-protobuf" {
			t.Fatalf("%d %s, Mesos answers 200 application/x-protobuf", a.code, a.hdr.Get("Content-Type"))
		}
		var resp mmaster.Response
		if err := resp.Unmarshal([]byte(a.body)); err != nil || resp.Type != mmaster.Response_GET_HEALTH || !resp.GetHealth.GetHealthy() {
			t.Errorf("protobuf answer %v (%v)", resp, err)
		}
	})
}

// TestOperatorErrors: the refusals of Master::Http::api and of
// validation::master::call::validate, with Mesos' status codes and texts.
func TestOperatorErrors(t *testing.T) {
	for _, c := range []struct {
		name, method, ctype, accept, body string
		code                              int
		text                              string
	}{
		{"unknown type", "POST", "application/json", "application/json", `{"type":"GET_NOTHING_SUCH"}`, 400,
			"Failed to validate master::Call: Expecting 'type' to be present"},
		{"no type", "POST", "application/json", "application/json", `{}`, 400,
			"Failed to validate master::Call: Expecting 'type' to be present"},
		{"agent-only call", "POST", "application/json", "application/json", `{"type":"GET_CONTAINERS"}`, 400,
			"Failed to validate master::Call: Expecting 'type' to be present"},
		{"type UNKNOWN", "POST", "application/json", "application/json", `{"type":"UNKNOWN"}`, 501, "501 Not Implemented."},
		{"GET_METRICS without get_metrics", "POST", "application/json", "application/json", `{"type":"GET_METRICS"}`, 400,
			"Failed to validate master::Call: Expecting 'get_metrics' to be present"},
		{"bad Accept", "POST", "application/json", "text/html", `{"type":"GET_HEALTH"}`, 406,
			"Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'"},
		{"text/plain", "POST", "text/plain", "application/json", `{"type":"GET_HEALTH"}`, 415,
			"Expecting 'Content-Type' of application/json or application/x-protobuf"},
		{"no Content-Type", "POST", "", "application/json", `{"type":"GET_HEALTH"}`, 400, "Expecting 'Content-Type' to be present"},
		{"GET", "GET", "", "application/json", "", 405, "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"Accept": c.accept}
			if c.ctype != "" {
				hdr["Content-Type"] = c.ctype
			}
			a := do(t, c.method, "/api/v1", hdr, c.body)
			a.expect(t, c.code, c.text)
			if c.code == 405 && a.hdr.Get("Allow") != "POST" {
				t.Errorf("Allow %q, Mesos sends POST", a.hdr.Get("Allow"))
			}
		})
	}
	t.Run("malformed JSON", func(t *testing.T) {
		a := do(t, http.MethodPost, "/api/v1", jsonHdr, `{"type":`)
		if a.code != http.StatusBadRequest || !strings.HasPrefix(a.body, "Failed to parse body into JSON: ") {
			t.Errorf("%d %q, Mesos answers 400 \"Failed to parse body into JSON: …\"", a.code, a.body)
		}
	})
}
