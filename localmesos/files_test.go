package localmesos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// TestFiles reads a running command task's sandbox through the agent's
// /files endpoints as Mesos' UI and tools do: by the virtual path of the
// executor's latest run and by the real path; offsets and lengths; and
// nothing outside an attached sandbox (traversal, a symlink out, another
// directory of the machine) is served.
func TestFiles(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"files"}}}`)
	task := `{"name":"talker","task_id":{"value":"talker"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],` +
		`"command":{"shell":true,"value":"ln -s /etc/hostname escape; ln -s stdout inside; printf 'hello from the sandbox\\n'; sleep 300"}}`
	s.runTasks(0, task)
	agent := "http://" + c.Agents()[0].Endpoint
	get := func(path string, q url.Values) (int, string) {
		t.Helper()
		resp, err := http.Get(agent + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	virtual := "/frameworks/" + s.fwID + "/executors/talker/runs/latest"
	var got struct {
		Data   string
		Offset int64
	}
	eventually(t, "the task's output in its sandbox", func() bool {
		code, body := get("/files/read", url.Values{"path": {virtual + "/stdout"}, "offset": {"0"}})
		return code == 200 && json.Unmarshal([]byte(body), &got) == nil && strings.Contains(got.Data, "hello from the sandbox")
	})
	if got.Offset != 0 {
		t.Errorf("offset %d, want 0", got.Offset)
	}

	// Without an offset: the size, and no data (how a tail starts).
	code, body := get("/files/read", url.Values{"path": {virtual + "/stdout"}})
	var tail struct {
		Data   string
		Offset int64
	}
	if code != 200 || json.Unmarshal([]byte(body), &tail) != nil || tail.Data != "" || tail.Offset < int64(len("hello from the sandbox\n")) {
		t.Errorf("read without offset: %d %s", code, body)
	}
	// A length, and an offset past the end.
	if code, body := get("/files/read", url.Values{"path": {virtual + "/stdout"}, "offset": {"0"}, "length": {"5"}}); code != 200 || !strings.Contains(body, `"data":"`) || json.Unmarshal([]byte(body), &got) != nil || len(got.Data) != 5 {
		t.Errorf("length 5: %d %s", code, body)
	}
	if code, body := get("/files/read", url.Values{"path": {virtual + "/stdout"}, "offset": {"100000000"}}); code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Data != "" || got.Offset != tail.Offset {
		t.Errorf("offset past the end: %d %s", code, body)
	}
	// A symlink inside the sandbox is followed.
	if code, body := get("/files/read", url.Values{"path": {virtual + "/inside"}, "offset": {"0"}}); code != 200 || !strings.Contains(body, "hello from the sandbox") {
		t.Errorf("symlink inside: %d %s", code, body)
	}

	// The listing, by the real path too.
	code, body = get("/files/browse", url.Values{"path": {virtual}})
	if code != 200 || !strings.Contains(body, `"path":"`+virtual+`/stdout"`) {
		t.Fatalf("browse: %d %s", code, body)
	}
	matches, _ := filepath.Glob(filepath.Join(agentDir(c.cfg.WorkDir, 0), "slaves", "*", "frameworks", s.fwID, "executors", "talker", "runs", "*-*"))
	if len(matches) != 1 {
		t.Fatalf("sandboxes %v", matches)
	}
	real := matches[0]
	if code, body := get("/files/read", url.Values{"path": {real + "/stdout"}, "offset": {"0"}}); code != 200 || !strings.Contains(body, "hello from the sandbox") {
		t.Errorf("real path: %d %s", code, body)
	}
	if code, body := get("/files/download", url.Values{"path": {virtual + "/stdout"}}); code != 200 || !strings.HasPrefix(body, "hello from the sandbox") {
		t.Errorf("download: %d %q", code, body)
	}

	// Refusals.
	for _, tc := range []struct {
		endpoint string
		q        url.Values
		code     int
		body     string
	}{
		{"/files/read", url.Values{}, 400, "Expecting 'path=value' in query.\n"},
		{"/files/read", url.Values{"path": {virtual + "/stdout"}, "offset": {"x"}}, 400, "Failed to parse offset: Failed to convert 'x' to number.\n"},
		{"/files/read", url.Values{"path": {virtual}}, 400, "Cannot read a directory.\n"},
		{"/files/read", url.Values{"path": {virtual + "/no-such-file"}}, 404, ""},
		{"/files/read", url.Values{"path": {"/etc/hostname"}}, 404, ""},
		{"/files/read", url.Values{"path": {virtual + strings.Repeat("/..", 40) + "/etc/hostname"}}, 400, "is inaccessible"},
		{"/files/read", url.Values{"path": {virtual + "/escape"}}, 400, "is inaccessible"},
		{"/files/browse", url.Values{"path": {"/"}}, 404, ""},
		{"/files/download", url.Values{"path": {virtual + "/escape"}}, 400, "is inaccessible"},
		{"/slave(1)/files/read", url.Values{"path": {virtual + "/stdout"}}, 404, ""},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.endpoint, tc.q.Encode()), func(t *testing.T) {
			code, body := get(tc.endpoint, tc.q)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}
}
