package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tiltai/tiltai/internal/elfstatic"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/localmesos"
	"github.com/tiltai/tiltai/scheduler/httpapi"
)

// PUT /v1/spec takes YAML and JSON by their media types (or none, sniffed);
// anything else, or a compressed body, is refused with 415 saying what to
// send. A name that would garble a terminal is refused with 400.
func TestSpecRequestChecks(t *testing.T) {
	h := newHarness(t, 1, nil)
	jsonSpec := `{"version": 1, "services": {"a": {"command": "x", "cpus": 0.01, "mem": 1}}}`
	cases := []struct {
		name  string
		query string
		body  string
		hdr   map[string]string
		code  int
		want  string
	}{
		{"no type, YAML", "", pipelineSpec, nil, 200, ""},
		{"no type, JSON", "", jsonSpec, nil, 200, ""},
		{"application/yaml", "", pipelineSpec, map[string]string{"Content-Type": "application/yaml"}, 200, ""},
		{"application/x-yaml", "", pipelineSpec, map[string]string{"Content-Type": "application/x-yaml"}, 200, ""},
		{"text/yaml; charset=utf-8", "", pipelineSpec, map[string]string{"Content-Type": "text/yaml; charset=utf-8"}, 200, ""},
		{"text/x-yaml", "", pipelineSpec, map[string]string{"Content-Type": "text/x-yaml"}, 200, ""},
		{"text/plain", "", pipelineSpec, map[string]string{"Content-Type": "text/plain"}, 200, ""},
		{"application/json", "", jsonSpec, map[string]string{"Content-Type": "application/json"}, 200, ""},
		{"form (curl -d)", "", pipelineSpec, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/yaml, application/x-yaml"},
		{"octet-stream", "", pipelineSpec, map[string]string{"Content-Type": "application/octet-stream"}, 415, "is not a spec type"},
		{"malformed type", "", pipelineSpec, map[string]string{"Content-Type": "yaml;;"}, 415, "is not a spec type"},
		{"latin-1", "", pipelineSpec, map[string]string{"Content-Type": "text/yaml; charset=iso-8859-1"}, 415, "a spec is UTF-8"},
		{"gzip", "", pipelineSpec, map[string]string{"Content-Encoding": "gzip"}, 415, `Content-Encoding \"gzip\" is not accepted`},
		{"identity", "", pipelineSpec, map[string]string{"Content-Encoding": "identity"}, 200, ""},
		{"name with ESC (title)", "?name=" + urlEscape("a\x1b]0;pwned\x07.yaml"), pipelineSpec, nil, 400, `?name= \"a\\x1b]0;pwned\\a.yaml\" holds control characters`},
		{"name with ESC (clear)", "?name=" + urlEscape("\x1b[2J"), pipelineSpec, nil, 400, "holds control characters"},
		{"name with a line break", "?name=" + urlEscape("a\nb"), pipelineSpec, nil, 400, "holds control characters"},
		{"name with bidi override", "?name=" + urlEscape("lmy.\u202eyaml"), pipelineSpec, nil, 400, "holds control characters"},
		{"name not UTF-8", "?name=%ff", pipelineSpec, nil, 400, "is not UTF-8"},
		{"name too long", "?name=" + strings.Repeat("n", 256), pipelineSpec, nil, 400, "256 bytes long; give at most 255"},
		{"name of 255 bytes", "?name=" + strings.Repeat("n", 255), pipelineSpec, nil, 200, ""},
		{"If-Match echoed safely", "", pipelineSpec, map[string]string{"If-Match": "3\u202e"}, 400, `If-Match \"3\\u202e\" is not a spec version`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.do("PUT", "/v1/spec"+c.query, []byte(c.body), c.hdr)
			if code != c.code || !strings.Contains(string(body), c.want) {
				t.Fatalf("%d, want %d with %q: %s", code, c.code, c.want, body)
			}
			if bytes.ContainsAny(body, "\x1b\x07\u202e") {
				t.Fatalf("the answer carries raw control characters: %q", body)
			}
		})
	}
}

// urlEscape percent-encodes every byte, control characters included.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// A spec that starts with a UTF-8 byte-order mark (as some editors save
// it) is accepted.
func TestSpecWithBOM(t *testing.T) {
	if _, probs := linkspec.Parse("bom.yaml", []byte("\ufeff"+pipelineSpec)); probs.Err() != nil {
		t.Skip("TODO: linkspec does not strip a leading BOM yet (its owner is adding it); this test passes once it does")
	}
	h := newHarness(t, 1, nil)
	if code, body := h.do("PUT", "/v1/spec?name=bom.yaml", []byte("\ufeff"+pipelineSpec), map[string]string{"Content-Type": "application/yaml"}); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
}

// Every JSON body is one value and nothing else: data after it is refused,
// not silently ignored.
func TestScaleBodyIsOneJSONValue(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.submit(pipelineSpec)
	cases := []struct {
		name, body string
		code       int
		want       string
	}{
		{"two values", `{"instances":3}{"instances":4}`, 400, "nothing after it"},
		{"trailing garbage", `{"instances":3} x`, 400, "nothing after it"},
		{"trailing white space", "{\"instances\":2}\n ", 200, `"version": 2`},
		{"unknown field", `{"instances":3,"force":true}`, 400, `unknown field \"force\"`},
		{"missing instances", `{}`, 400, `"instances\" is missing`},
		{"not JSON", `instances=3`, 400, `the body must be {\"instances\": N}`},
		{"too large", `{"instances":3}` + strings.Repeat(" ", 5000), 413, "larger than 4096 bytes"},
		{"compressed", "", 415, "Content-Encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if c.name == "compressed" {
				hdr["Content-Encoding"] = "gzip"
			}
			code, body := h.do("POST", "/v1/services/encryptor/scale", []byte(c.body), hdr)
			if code != c.code || !strings.Contains(string(body), c.want) {
				t.Fatalf("%d, want %d with %q: %s", code, c.code, c.want, body)
			}
		})
	}
	// An unknown service in the path is echoed quoted, never raw.
	code, body := h.do("POST", "/v1/services/"+urlEscape("x\x1b[2J")+"/scale", []byte(`{"instances":1}`), nil)
	if code != 404 || !strings.Contains(string(body), `no service \"x\\x1b[2J\"`) {
		t.Fatalf("unknown service: %d %s", code, body)
	}
}

// Specs are parsed a few at a time: a submission that finds every slot
// taken for longer than it may wait gets 503 with Retry-After, and is
// counted.
func TestParseSlotsBounded(t *testing.T) {
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.parseSlots, c.parseWait = 2, 50*time.Millisecond })
	h.submit(pipelineSpec)
	for range 2 {
		h.sched.parseSlots <- struct{}{}
	}
	for _, req := range []struct{ method, path, body string }{
		{"PUT", "/v1/spec", scaled(pipelineSpec, "encryptor", 4)},
		{"POST", "/v1/services/encryptor/scale", `{"instances": 4}`},
	} {
		req2, _ := http.NewRequest(req.method, h.url(req.path), strings.NewReader(req.body))
		resp, err := http.DefaultClient.Do(req2)
		if err != nil {
			t.Fatal(err)
		}
		var e httpapi.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(e.Error, "busy checking other specs; retry") {
			t.Fatalf("%s %s with every slot taken: %d Retry-After %q %+v", req.method, req.path, resp.StatusCode, resp.Header.Get("Retry-After"), e)
		}
	}
	if n := h.metric("tiltai_scheduler_api_parse_refused_total"); n != 2 {
		t.Fatalf("api_parse_refused_total = %v, want 2", n)
	}
	<-h.sched.parseSlots
	if code, body := h.do("PUT", "/v1/spec", []byte(scaled(pipelineSpec, "encryptor", 4)), nil); code != 200 {
		t.Fatalf("with a slot free: %d %s", code, body)
	}
	if v := h.status().SpecVersion; v != 2 {
		t.Fatalf("spec version %d, want 2: a refused submission changed the spec", v)
	}
}

// --max_tasks bounds what a submission or a scale may ask for; a stored
// spec above it (accepted under a larger limit) still loads, with a
// warning.
func TestMaxTasks(t *testing.T) {
	logger, logs := captureLogger(t, "scheduler")
	h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) { c.MaxTasks, c.Logger = 6, logger })
	h.submit(pipelineSpec) // 5 tasks
	cases := []struct {
		method, path, body string
	}{
		{"PUT", "/v1/spec?name=big.yaml", scaled(pipelineSpec, "encryptor", 5)},
		{"POST", "/v1/services/encryptor/scale", `{"instances": 5}`},
	}
	for _, c := range cases {
		code, body := h.do(c.method, c.path, []byte(c.body), nil)
		if code != 422 || !strings.Contains(string(body), "the spec asks for 7 tasks in all; at most 6 are allowed") || !strings.Contains(string(body), "--max_tasks") {
			t.Fatalf("%s %s above the limit: %d %s", c.method, c.path, code, body)
		}
	}
	if code, body := h.do("POST", "/v1/services/encryptor/scale", []byte(`{"instances": 4}`), nil); code != 200 {
		t.Fatalf("at the limit: %d %s", code, body)
	}
	// A restart needs the framework ID stored: wait until subscribed and running.
	h.waitConverged(20 * time.Second)
	h.sched.Close()
	h.cfg.MaxTasks = 3
	h.start()
	if v := h.status().SpecVersion; v != 2 {
		t.Fatalf("the stored spec did not load: version %d", v)
	}
	if !strings.Contains(logs.String(), "the stored spec asks for more tasks than --max_tasks allows") || !strings.Contains(logs.String(), "tasks=6 max_tasks=3") {
		t.Fatalf("no warning about the stored spec:\n%s", logs)
	}
}

func TestMaxTasksConfig(t *testing.T) {
	c := Config{MaxTasks: -1}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max tasks -1: give a positive number") {
		t.Fatalf("Validate: %v", err)
	}
	if d := (&Config{}).withDefaults(); d.MaxTasks != linkspec.DefaultMaxTasks {
		t.Fatalf("default MaxTasks %d", d.MaxTasks)
	}
}

// A service in an image is accepted when the executor binary is static and
// the service names its command; otherwise it is refused at the image's
// line, saying why and what to do.
func TestImageSpecs(t *testing.T) {
	static, dynamic := "/bin/busybox", "/bin/sh"
	if ok, err := elfstatic.IsStatic(static); err != nil || !ok {
		t.Skipf("needs a static %s (Debian's busybox-static): %v", static, err)
	}
	if ok, err := elfstatic.IsStatic(dynamic); err != nil || ok {
		t.Skipf("needs a dynamically linked %s: static=%v %v", dynamic, ok, err)
	}
	withCommand := "version: 1\nservices:\n  a:\n    image: busybox:1.36\n    command: /bin/true\n"
	noCommand := "version: 1\nservices:\n  a:\n    image: busybox:1.36\n"
	for _, tc := range []struct {
		name, binary, spec string
		code               int
		want               []string
	}{
		{"static", static, withCommand, 200, nil},
		{"no command", static, noCommand, 422, []string{`has an image but no command`, `start it with --docker_registry`, `"line": 4`}},
		{"dynamic", dynamic, withCommand, 422, []string{`is dynamically linked (interpreter `, "CGO_ENABLED=0", `"line": 4`}},
		{"not ELF", "", withCommand, 422, []string{`cannot tell whether the executor binary`, "CGO_ENABLED=0", `"line": 4`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1, func(_ *localmesos.Config, c *Config) {
				if tc.binary != "" {
					c.ExecutorBinary = tc.binary
				}
			})
			code, body := h.do("PUT", "/v1/spec", []byte(tc.spec), nil)
			if code != tc.code {
				t.Fatalf("PUT: %d %s", code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("PUT: the answer lacks %q: %s", w, body)
				}
			}
		})
	}
}
