package localmesos

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func init() {
	// Times and build details differ run to run.
	for _, k := range []string{"nanoseconds", "start_time", "elected_time", "build_date", "build_time"} {
		variableKeys[k] = true
	}
}

// operatorSubst maps the addresses of recordings 10, 11 and 14 (master on
// 5050, agent on 5051) to the cluster's.
func operatorSubst(c *Cluster, s *rawSched) map[string]string {
	m := substitutions(c, s)
	m["127.0.0.1:5050"] = c.Addr()
	m["127.0.0.1:5051"] = c.Agents()[0].Endpoint
	return m
}

// runSleepTask subscribes the recording's framework and runs its sleep-1
// task to TASK_RUNNING, acknowledging every update.
func runSleepTask(t *testing.T, c *Cluster, entries []entry, subSeq, acceptSeq int) *rawSched {
	t.Helper()
	s := subscribeRaw(t, c, string(find(t, entries, subSeq).Request.Body))
	offer := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	accept := strings.ReplaceAll(string(find(t, entries, acceptSeq).Request.Body), "<MASTER_ID>-O0", offer.ID.Value)
	accept = strings.ReplaceAll(accept, "<MASTER_ID>-0000", s.fwID)
	s.mustCall(accept)
	for {
		u := s.next(scheduler.Event_UPDATE)
		s.ack(u)
		if u.ev.Update.Status.GetState().String() == "TASK_RUNNING" {
			return s
		}
	}
}

// TestOperatorAPIMasterReplay replays the master's calls of recording 10
// (one framework, one running command task) and compares the answers:
// status, headers, error texts and, for JSON answers, the shape.
func TestOperatorAPIMasterReplay(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "10-operator-api.json", operatorSubst(c, nil))
	s := runSleepTask(t, c, pre, 1, 5)
	entries := loadTranscript(t, "10-operator-api.json", operatorSubst(c, s))
	implemented := map[string]bool{"GET_HEALTH": true, "GET_FLAGS": true, "GET_VERSION": true, "GET_STATE": true,
		"GET_AGENTS": true, "GET_FRAMEWORKS": true, "GET_TASKS": true, "GET_EXECUTORS": true, "GET_MASTER": true,
		"GET_MAINTENANCE_SCHEDULE": true, "GET_MAINTENANCE_STATUS": true}
	ran := 0
	for _, e := range entries {
		if e.Kind != "call" || !strings.HasSuffix(e.Request.URL, c.Addr()+"/api/v1") {
			continue
		}
		var typ struct{ Type string }
		_ = json.Unmarshal(requestBody(e.Request), &typ)
		if e.Response.Code == 200 && !implemented[typ.Type] {
			continue // answered 501 by localmesos; see docs/localmesos.md
		}
		t.Run(fmt.Sprintf("%d %s", e.Seq, e.Note), func(t *testing.T) {
			ran++
			resp := send(t, c.MasterURL(), e, nil)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if e.Response.Code != 200 {
				return
			}
			checkOperatorAnswer(t, e, typ.Type, resp, body)
		})
	}
	if ran < 20 {
		t.Fatalf("only %d recorded calls replayed", ran)
	}
}

// checkOperatorAnswer compares a 200 answer with the recorded one.
func checkOperatorAnswer(t *testing.T, e entry, typ string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.Header.Get("Content-Type") == "application/x-protobuf" {
		var rec struct {
			Hex string `json:"hex_first_16_bytes"`
		}
		_ = json.Unmarshal(e.Response.Body, &rec)
		if got := hex.EncodeToString(body); !strings.HasPrefix(got, rec.Hex) {
			t.Errorf("protobuf answer %s, Mesos sent %s…", got, rec.Hex)
		}
		return
	}
	if typ == "GET_FLAGS" {
		// The values are this cluster's; the names are Mesos'.
		names := func(b []byte) string {
			var v struct {
				GetFlags struct{ Flags []struct{ Name string } } `json:"get_flags"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, f := range v.GetFlags.Flags {
				out = append(out, f.Name)
			}
			return strings.Join(out, ",")
		}
		if w, g := names(e.Response.Body), names(body); w != g {
			t.Errorf("flags\n got %s\nwant %s", g, w)
		}
		return
	}
	matchShape(t, typ, e.Response.Body, body)
}

// chunkReader reads a chunked HTTP body by hand to check that each RecordIO
// record travels in its own chunk, as in recording 14.
type chunkReader struct {
	t  *testing.T
	br *bufio.Reader
}

// next returns the next record's JSON, failing unless the chunk holds
// exactly one record.
func (r *chunkReader) next() []byte {
	r.t.Helper()
	line, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("reading a chunk size: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	if err != nil {
		r.t.Fatalf("chunk size %q: %v", line, err)
	}
	chunk := make([]byte, n+2)
	if _, err := io.ReadFull(r.br, chunk); err != nil {
		r.t.Fatalf("reading a chunk: %v", err)
	}
	chunk = chunk[:n]
	head, rec, ok := strings.Cut(string(chunk), "\n")
	size, err := strconv.Atoi(head)
	if !ok || err != nil || size != len(rec) {
		r.t.Fatalf("chunk %q is not exactly one record", chunk)
	}
	return []byte(rec)
}

// nextOf skips to the next event of a type.
func (r *chunkReader) nextOf(typ string) []byte {
	r.t.Helper()
	for {
		rec := r.next()
		var v struct{ Type string }
		_ = json.Unmarshal(rec, &v)
		if v.Type == typ {
			return rec
		}
	}
}

// openOperatorStream subscribes over a raw connection and returns the
// response header and a reader of its chunks.
func openOperatorStream(t *testing.T, c *Cluster) (string, *chunkReader) {
	t.Helper()
	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := `{"type":"SUBSCRIBE"}`
	fmt.Fprintf(conn, "POST /api/v1 HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n%s", c.Addr(), len(body), body)
	br := bufio.NewReader(conn)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		head.WriteString(line)
	}
	return head.String(), &chunkReader{t: t, br: br}
}

// TestOperatorStreamReplay follows recording 14: the operator stream's
// headers and chunking, SUBSCRIBED and HEARTBEAT, then the events of a
// framework's life (added, tasks added and updated, updated on
// re-subscription, a task killed by TEARDOWN, removed) and of an agent
// removed and added again, compared in shape with Mesos'.
func TestOperatorStreamReplay(t *testing.T) {
	cfg := testConfig(t)
	cfg.Hostname = "localhost"
	cfg.Resources = "cpus:4;mem:4096;disk:10000;ports:[31000-32000]"
	cfg.AgentRemovalTimeout = 100 * time.Millisecond
	c := startCluster(t, cfg)
	rec := loadTranscript(t, "14-operator-stream.json", operatorSubst(c, nil))
	head, ops := openOperatorStream(t, c)
	if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "Transfer-Encoding: chunked\r\n") ||
		!strings.Contains(head, "Content-Type: application/json\r\n") || strings.Contains(head, "Mesos-Stream-Id") {
		t.Fatalf("operator stream header:\n%s", head)
	}
	matchShape(t, "SUBSCRIBED", find(t, rec, 2).Event, ops.next())
	if hb := string(ops.next()); hb != `{"type":"HEARTBEAT"}` {
		t.Fatalf("second record %s, want a HEARTBEAT", hb)
	}

	s := subscribeRaw(t, c, string(find(t, rec, 5).Request.Body))
	rec = loadTranscript(t, "14-operator-stream.json", operatorSubst(c, s))
	matchShape(t, "FRAMEWORK_ADDED", find(t, rec, 7).Event, ops.nextOf("FRAMEWORK_ADDED"))

	// short-1, long-1 and (so that TEARDOWN has a task to kill) long-2 in
	// one ACCEPT.
	offer := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	var call, call2 struct {
		Type        string `json:"type"`
		FrameworkID any    `json:"framework_id"`
		Accept      struct {
			OfferIDs   []map[string]string `json:"offer_ids"`
			Operations []struct {
				Type   string `json:"type"`
				Launch struct {
					TaskInfos []any `json:"task_infos"`
				} `json:"launch"`
			} `json:"operations"`
			Filters any `json:"filters"`
		} `json:"accept"`
	}
	if json.Unmarshal(find(t, rec, 10).Request.Body, &call) != nil || json.Unmarshal(find(t, rec, 33).Request.Body, &call2) != nil {
		t.Fatal("recorded ACCEPTs do not parse")
	}
	call.Accept.OfferIDs[0]["value"] = offer.ID.Value
	call.Accept.Operations[0].Launch.TaskInfos = append(call.Accept.Operations[0].Launch.TaskInfos, call2.Accept.Operations[0].Launch.TaskInfos...)
	accept := mustJSON(call)
	s.mustCall(accept)
	go func() {
		for e := range s.events {
			if e.ev != nil && e.ev.Type == scheduler.Event_UPDATE {
				st := e.ev.Update.Status
				if st.UUID != nil {
					_, _ = s.call(fmt.Sprintf(`{"type":"ACKNOWLEDGE","framework_id":{"value":%q},"acknowledge":{"agent_id":{"value":%q},"task_id":{"value":%q},"uuid":%s}}`,
						s.fwID, st.AgentID.Value, st.TaskID.Value, mustJSON(st.UUID)))
				}
			}
		}
	}()
	added := map[string][]byte{}
	for len(added) < 3 {
		e := ops.nextOf("TASK_ADDED")
		var v struct {
			TaskAdded struct{ Task struct{ Name string } } `json:"task_added"`
		}
		_ = json.Unmarshal(e, &v)
		added[v.TaskAdded.Task.Name] = e
	}
	matchShape(t, "TASK_ADDED short-1", find(t, rec, 11).Event, added["short-1"])
	matchShape(t, "TASK_ADDED long-1", find(t, rec, 12).Event, added["long-1"])

	// Updates until short-1 finished: STARTING and RUNNING of each task,
	// then FINISHED.
	var starting, finished []byte
	for finished == nil {
		e := ops.nextOf("TASK_UPDATED")
		switch {
		case strings.Contains(string(e), `"value":"short-1"},"state":"TASK_STARTING"`):
			starting = e
		case strings.Contains(string(e), `"state":"TASK_FINISHED"`):
			finished = e
		}
	}
	matchShape(t, "TASK_UPDATED TASK_STARTING", find(t, rec, 13).Event, starting)
	matchShape(t, "TASK_UPDATED TASK_FINISHED", find(t, rec, 27).Event, finished)

	// Re-subscription → FRAMEWORK_UPDATED.
	s.body.Close()
	resub := strings.Replace(string(find(t, rec, 45).Request.Body), "<MASTER_ID>-0000", s.fwID, -1)
	s2 := subscribeRaw(t, c, resub)
	matchShape(t, "FRAMEWORK_UPDATED", find(t, rec, 48).Event, ops.nextOf("FRAMEWORK_UPDATED"))

	// TEARDOWN → the running tasks TASK_KILLED REASON_FRAMEWORK_REMOVED,
	// then FRAMEWORK_REMOVED.
	s2.mustCall(fmt.Sprintf(`{"type":"TEARDOWN","framework_id":{"value":%q}}`, s.fwID))
	var killed []byte
	for killed == nil {
		e := ops.nextOf("TASK_UPDATED")
		if strings.Contains(string(e), `"value":"long-2"},"state":"TASK_KILLED"`) {
			killed = e
		}
	}
	matchShape(t, "TASK_UPDATED REASON_FRAMEWORK_REMOVED", find(t, rec, 51).Event, killed)
	matchShape(t, "FRAMEWORK_REMOVED", find(t, rec, 53).Event, ops.nextOf("FRAMEWORK_REMOVED"))

	// The agent goes away for longer than AgentRemovalTimeout, then comes
	// back with its id.
	if err := c.StopAgent(0); err != nil {
		t.Fatal(err)
	}
	matchShape(t, "AGENT_REMOVED", find(t, rec, 56).Event, ops.nextOf("AGENT_REMOVED"))
	if err := c.StartAgent(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	var back struct {
		AgentAdded struct {
			Agent struct {
				AgentInfo struct{ ID struct{ Value string } } `json:"agent_info"`
				Active    bool
			}
		} `json:"agent_added"`
	}
	if err := json.Unmarshal(ops.nextOf("AGENT_ADDED"), &back); err != nil {
		t.Fatal(err)
	}
	if back.AgentAdded.Agent.AgentInfo.ID.Value != c.Agents()[0].ID || !back.AgentAdded.Agent.Active {
		t.Errorf("AGENT_ADDED %+v, want agent %s active", back, c.Agents()[0].ID)
	}
}

// TestOperatorAPIAgentReplay replays the agent's calls of recording 10.
// The command executor differs from Mesos' (built in, not mesos-executor),
// so executors are compared by count; flags are a subset of Mesos' names.
func TestOperatorAPIAgentReplay(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "10-operator-api.json", operatorSubst(c, nil))
	s := runSleepTask(t, c, pre, 1, 5)
	entries := loadTranscript(t, "10-operator-api.json", operatorSubst(c, s))
	agent := c.Agents()[0].Endpoint
	implemented := map[string]bool{"GET_HEALTH": true, "GET_FLAGS": true, "GET_VERSION": true, "GET_STATE": true,
		"GET_FRAMEWORKS": true, "GET_TASKS": true, "GET_EXECUTORS": true}
	ran := 0
	for _, e := range entries {
		if e.Kind != "call" || !strings.HasSuffix(e.Request.URL, agent+"/api/v1") {
			continue
		}
		var typ struct{ Type string }
		_ = json.Unmarshal(requestBody(e.Request), &typ)
		if e.Response.Code == 200 && !implemented[typ.Type] {
			continue
		}
		t.Run(fmt.Sprintf("%d %s", e.Seq, e.Note), func(t *testing.T) {
			ran++
			resp := send(t, "http://"+agent, e, nil)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if e.Response.Code != 200 || resp.Header.Get("Content-Type") != "application/json" {
				if e.Response.Code == 200 {
					checkOperatorAnswer(t, e, typ.Type, resp, body)
				}
				return
			}
			switch typ.Type {
			case "GET_FLAGS":
				var w, g struct {
					GetFlags struct{ Flags []struct{ Name string } } `json:"get_flags"`
				}
				_ = json.Unmarshal(e.Response.Body, &w)
				_ = json.Unmarshal(body, &g)
				known := map[string]bool{}
				for _, f := range w.GetFlags.Flags {
					known[f.Name] = true
				}
				for _, f := range g.GetFlags.Flags {
					if !known[f.Name] {
						t.Errorf("flag %q is not a Mesos 1.11 agent flag", f.Name)
					}
				}
			case "GET_EXECUTORS", "GET_STATE":
				var w, g map[string]json.RawMessage
				_ = json.Unmarshal(e.Response.Body, &w)
				_ = json.Unmarshal(body, &g)
				key := strings.ToLower(typ.Type)
				var ws, gs map[string]json.RawMessage
				_ = json.Unmarshal(w[key], &ws)
				_ = json.Unmarshal(g[key], &gs)
				if typ.Type == "GET_STATE" {
					matchShape(t, "get_tasks", ws["get_tasks"], gs["get_tasks"])
					matchShape(t, "get_frameworks", ws["get_frameworks"], gs["get_frameworks"])
					_ = json.Unmarshal(ws["get_executors"], &ws)
					_ = json.Unmarshal(gs["get_executors"], &gs)
				}
				var we, ge []json.RawMessage
				_ = json.Unmarshal(ws["executors"], &we)
				_ = json.Unmarshal(gs["executors"], &ge)
				if len(we) != len(ge) || string(gs["completed_executors"]) != "[]" {
					t.Errorf("executors: got %s, Mesos sent %d executors", body, len(we))
				}
			default:
				matchShape(t, typ.Type, e.Response.Body, body)
			}
		})
	}
	if ran < 10 {
		t.Fatalf("only %d recorded calls replayed", ran)
	}
}
