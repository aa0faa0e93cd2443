package localmesos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func init() { variableKeys["registered_time"] = true }

// localmesosMetrics are the /metrics/snapshot keys localmesos adds beside
// Mesos' own (docs/localmesos.md).
var localmesosMetrics = []string{
	"faults/events_black_holed", "faults/messages_delayed", "faults/messages_dropped", "faults/messages_duplicated",
	"master/messages_to_executors", "master/messages_to_schedulers", "master/messages_undeliverable",
	"master/offers_declined", "master/offers_made", "master/offers_rescinded", "master/status_updates_forwarded",
	"master/status_updates_undeliverable", "master/tasks_active", "master/tasks_invalid", "master/tasks_launched",
	"master/unsupported_operations",
}

func getJSON(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestLegacyEndpointsReplay replays recording 11 (the same run as 10: one
// MULTI_ROLE framework, one running command task): /master/frameworks,
// /master/slaves, /master/tasks (also with limit and order), /frameworks
// compared in shape; the master's and agent's /flags by name.
func TestLegacyEndpointsReplay(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "10-operator-api.json", operatorSubst(c, nil))
	s := runSleepTask(t, c, pre, 1, 5)
	entries := loadTranscript(t, "11-legacy-endpoints.json", operatorSubst(c, s))
	agentBase := "http://" + c.Agents()[0].Endpoint
	ran := 0
	for _, e := range entries {
		if e.Kind != "call" {
			continue
		}
		path := e.Request.URL[strings.Index(e.Request.URL, "/"):]
		base := c.MasterURL()
		if strings.HasPrefix(e.Note, "agent") {
			base = agentBase
		}
		p, _, _ := strings.Cut(path, "?")
		switch {
		case strings.HasSuffix(p, "/flags"):
			t.Run(path, func(t *testing.T) {
				resp := send(t, base, e, nil)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkFlagNames(t, base == agentBase, e.Response.Body, body)
			})
			ran++
		case strings.HasSuffix(p, "/frameworks"), strings.HasSuffix(p, "/slaves"), strings.HasSuffix(p, "/tasks"):
			t.Run(path, func(t *testing.T) {
				resp := send(t, base, e, nil)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				matchShape(t, path, e.Response.Body, body)
			})
			ran++
		case strings.Contains(p, "/maintenance/"):
			t.Run(path, func(t *testing.T) {
				resp := send(t, base, e, nil)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != e.Response.Code || string(body) != string(e.Response.Body) {
					t.Errorf("%d %s, Mesos answered %d %s", resp.StatusCode, body, e.Response.Code, e.Response.Body)
				}
			})
			ran++
		}
	}
	if ran != 11 {
		t.Fatalf("replayed %d legacy calls, want 11", ran)
	}
}

// checkFlagNames compares {"flags": {...}} answers by name: the master
// has all of Mesos' flags, an agent those localmesos has.
func checkFlagNames(t *testing.T, agent bool, want, got []byte) {
	t.Helper()
	names := func(b []byte) []string {
		var v struct{ Flags map[string]string }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		out := make([]string, 0, len(v.Flags))
		for k := range v.Flags {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	w, g := names(want), names(got)
	if !agent {
		if !slices.Equal(w, g) {
			t.Errorf("flags\n got %v\nwant %v", g, w)
		}
		return
	}
	for _, n := range g {
		if !slices.Contains(w, n) {
			t.Errorf("agent flag %q is not a Mesos 1.11 agent flag", n)
		}
	}
}

// TestLegacyTasksQuery checks /master/tasks' limit, offset and order.
func TestLegacyTasksQuery(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"q"}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	var tasks []string
	for i := range 3 {
		tasks = append(tasks, fmt.Sprintf(`{"name":"t%d","task_id":{"value":"t%d"},"agent_id":{"value":%q},"command":{"value":"sleep 30"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}]}`, i, i, o.AgentID.Value))
	}
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[%s]}}]}}`,
		s.fwID, o.ID.Value, strings.Join(tasks, ",")))
	ids := func(q string) string {
		_, body := getJSON(t, c.MasterURL()+"/master/tasks"+q)
		var v struct{ Tasks []struct{ ID string } }
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range v.Tasks {
			out = append(out, x.ID)
		}
		return strings.Join(out, ",")
	}
	// Each task's first status (TASK_STARTING) orders them; wait for all.
	deadline := time.Now().Add(20 * time.Second)
	for {
		running := 0
		for range 3 {
			if e := s.within(scheduler.Event_UPDATE, 100*time.Millisecond); e != nil {
				s.ack(*e)
			}
		}
		_, body := getJSON(t, c.MasterURL()+"/master/tasks")
		var v struct{ Tasks []struct{ State string } }
		_ = json.Unmarshal(body, &v)
		for _, x := range v.Tasks {
			if x.State == "TASK_RUNNING" {
				running++
			}
		}
		if running == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks not running: %s", body)
		}
	}
	all := ids("?order=asc")
	if len(strings.Split(all, ",")) != 3 {
		t.Fatalf("tasks %q", all)
	}
	asc := strings.Split(all, ",")
	desc := strings.Join([]string{asc[2], asc[1], asc[0]}, ",")
	for q, want := range map[string]string{
		"": desc, "?order=desc": desc, "?order=bogus": desc, "?limit=1&order=asc": asc[0],
		"?limit=2&offset=1&order=asc": asc[1] + "," + asc[2], "?offset=3": "", "?offset=-1": "",
		"?limit=-1": desc, "?limit=x": desc, "?task_id=" + asc[1]: asc[1], "?framework_id=nope": "",
	} {
		if got := ids(q); got != want {
			t.Errorf("/master/tasks%s = %q, want %q", q, got, want)
		}
	}
}

// TestMetricsSnapshotKeys compares the master's and the agent's
// /metrics/snapshot key sets with recording 11's (same state: one MULTI_ROLE
// framework "ops-recorder" with one running task), and checks Mesos' number
// form: every value a double.
func TestMetricsSnapshotKeys(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "10-operator-api.json", operatorSubst(c, nil))
	s := runSleepTask(t, c, pre, 1, 5)
	entries := loadTranscript(t, "11-legacy-endpoints.json", operatorSubst(c, s))
	_ = entries
	raw, err := os.ReadFile("testdata/mesos-1.11/11-legacy-endpoints.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Entries []struct {
			Kind, Note string
			Data       []string
		}
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	subst := operatorSubst(c, s)
	keysOf := func(note string) []string {
		for _, e := range rec.Entries {
			if e.Kind == "note" && strings.HasPrefix(e.Note, note) {
				keys := slices.Clone(e.Data)
				for i, k := range keys {
					for from, to := range subst {
						if strings.HasPrefix(from, "<") {
							k = strings.ReplaceAll(k, from, to)
						}
					}
					keys[i] = k
				}
				return keys
			}
		}
		t.Fatalf("no note %q", note)
		return nil
	}
	check := func(url string, want []string, extra []string) map[string]json.RawMessage {
		_, body := getJSON(t, url)
		var got map[string]json.RawMessage
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		want = append(slices.Clone(want), extra...)
		for _, k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("%s lacks %q", url, k)
			}
		}
		for k, v := range got {
			if !slices.Contains(want, k) {
				t.Errorf("%s has %q, not a Mesos key nor a documented extra", url, k)
			}
			if !strings.ContainsAny(string(v), ".e") {
				t.Errorf("%s: %s = %s, Mesos writes doubles with a fraction", url, k, v)
			}
		}
		return got
	}
	check(c.MasterURL()+"/metrics/snapshot", keysOf("master /metrics/snapshot"), localmesosMetrics)
	check("http://"+c.Agents()[0].Endpoint+"/metrics/snapshot", keysOf("agent /metrics/snapshot"), nil)
}

func metricValue(t *testing.T, url, key string) float64 {
	t.Helper()
	_, body := getJSON(t, url)
	var m map[string]float64
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	v, ok := m[key]
	if !ok {
		t.Fatalf("%s has no %s", url, key)
	}
	return v
}

// waitMetric polls until key has the value want.
func waitMetric(t *testing.T, url, key string, want float64) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		got := metricValue(t, url, key)
		if got == want {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%s = %v, want %v", key, got, want)
		case <-tick.C:
		}
	}
}

// TestMetricsSnapshotFollowsState: the values are the master's and agent's
// state: a task launched and running moves tasks_running 0 → 1, a stopped
// agent leaves slaves_active and joins slaves_disconnected.
func TestMetricsSnapshotFollowsState(t *testing.T) {
	cfg := testConfig(t)
	cfg.Agents = 2
	c := startCluster(t, cfg)
	mu := c.MasterURL() + "/metrics/snapshot"
	au := "http://" + c.Agents()[0].Endpoint + "/metrics/snapshot"
	for k, want := range map[string]float64{"master/tasks_running": 0, "master/slaves_active": 2,
		"master/frameworks_active": 0, "master/elected": 1, "slave/registered": 1} {
		u := mu
		if strings.HasPrefix(k, "slave/") {
			u = au
		}
		if got := metricValue(t, u, k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"m"}}}`)
	waitMetric(t, mu, "master/frameworks_active", 1)
	waitMetric(t, mu, "master/frameworks_connected", 1)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":%q},"command":{"value":"sleep 30"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"mem","type":"SCALAR","scalar":{"value":64}}]}]}}]}}`,
		s.fwID, o.ID.Value, o.AgentID.Value))
	for {
		u := s.next(scheduler.Event_UPDATE)
		s.ack(u)
		if u.ev.Update.Status.GetState().String() == "TASK_RUNNING" {
			break
		}
	}
	waitMetric(t, mu, "master/tasks_running", 1)
	if got := metricValue(t, mu, "master/cpus_used"); got != 0.5 {
		t.Errorf("master/cpus_used = %v, want 0.5", got)
	}
	prefix := "master/frameworks/m/" + s.fwID + "/"
	if got := metricValue(t, mu, prefix+"calls/accept"); got != 1 {
		t.Errorf("%scalls/accept = %v, want 1", prefix, got)
	}
	if got := metricValue(t, mu, prefix+"tasks/active/task_running"); got != 1 {
		t.Errorf("%stasks/active/task_running = %v, want 1", prefix, got)
	}
	i := 1
	if c.Agents()[0].ID == o.AgentID.Value {
		i = 0
	}
	agentURL := "http://" + c.Agents()[i].Endpoint + "/metrics/snapshot"
	waitMetric(t, agentURL, "slave/tasks_running", 1)
	if got := metricValue(t, agentURL, "slave/cpus_used"); got != 0.5 {
		t.Errorf("slave/cpus_used = %v, want 0.5", got)
	}
	if err := c.StopAgent(1 - i); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, mu, "master/slaves_active", 1)
	waitMetric(t, mu, "master/slaves_disconnected", 1)
}

// TestLegacyMaintenanceSchedulePost: POST /master/maintenance/schedule
// replaces the schedule as UPDATE_MAINTENANCE_SCHEDULE does, refused with
// the same answer; methods other than GET and POST get 405.
func TestLegacyMaintenanceSchedulePost(t *testing.T) {
	c := replayCluster(t)
	url := c.MasterURL() + "/master/maintenance/schedule"
	do := func(method, body string) (int, string) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	empty := `{"windows":[{"machine_ids":[],"unavailability":{"start":{"nanoseconds":1}}}]}`
	code, body := do("POST", empty)
	opCode, opBody := opCall(t, c, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":`+empty+`}}`)
	if code != http.StatusBadRequest || code != opCode || body != opBody {
		t.Errorf("invalid schedule: %d %q; the operator call answered %d %q", code, body, opCode, opBody)
	}
	if code, body := do("POST", `{"windows": [`); code != http.StatusBadRequest || !strings.Contains(body, "Failed to convert JSON into Schedule protobuf") {
		t.Errorf("bad JSON: %d %q", code, body)
	}
	good := `{"windows":[{"machine_ids":[{"hostname":"h1","ip":"10.0.0.1"}],"unavailability":{"start":{"nanoseconds":1796624776573588480},"duration":{"nanoseconds":60000000000}}}]}`
	if code, body := do("POST", good); code != http.StatusOK || body != "" {
		t.Fatalf("valid schedule: %d %q", code, body)
	}
	want := `{"windows":[{"machine_ids":[{"hostname":"h1","ip":"10.0.0.1"}],"unavailability":{"duration":{"nanoseconds":60000000000},"start":{"nanoseconds":1796624776573588480}}}]}`
	if code, body := do("GET", ""); code != http.StatusOK || body != want {
		t.Errorf("GET after POST: %d %s\nwant %s", code, body, want)
	}
	if code, body := do("PUT", good); code != http.StatusMethodNotAllowed || body != "Expecting 'GET' or 'POST', received 'PUT'" {
		t.Errorf("PUT: %d %q", code, body)
	}
}
