package localmesos

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/tiltai/tiltai/localmesos/internal/protojson"

	"github.com/tiltai/tiltai/internal/recordio"
)

// TestAgentAttributesConfig: --agent_attributes once for all agents or
// once per agent in order; any other count, a set value or a malformed
// pair is refused by Validate with a text that says what to give.
func TestAgentAttributesConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		agents int
		attrs  []string
		want   []string // each agent's attributes, as JSON
		err    string
	}{
		{name: "none", agents: 2, want: []string{`[]`, `[]`}},
		{name: "one for all", agents: 3, attrs: []string{"rack:r1;level:2"},
			want: []string{
				`[{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}}]`,
				`[{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}}]`,
				`[{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}}]`,
			}},
		{name: "one per agent", agents: 2, attrs: []string{"rack:r1", "slots:[1-2,5-6]"},
			want: []string{
				`[{"name":"rack","type":"TEXT","text":{"value":"r1"}}]`,
				`[{"name":"slots","type":"RANGES","ranges":{"range":[{"begin":1,"end":2},{"begin":5,"end":6}]}}]`,
			}},
		{name: "one agent", agents: 1, attrs: []string{"zone:a"}, want: []string{`[{"name":"zone","type":"TEXT","text":{"value":"a"}}]`}},
		{name: "too many", agents: 2, attrs: []string{"a:1", "b:2", "c:3"},
			err: "3 agent attributes for 2 agents (give one for all, or one per agent)"},
		{name: "too few", agents: 3, attrs: []string{"a:1", "b:2"},
			err: "2 agent attributes for 3 agents (give one for all, or one per agent)"},
		{name: "set", agents: 2, attrs: []string{"a:1", "s:{x,y}"},
			err: `agent 1 attributes: attribute "s": set values are not allowed for attributes`},
		{name: "no value", agents: 1, attrs: []string{"rack"},
			err: `agent 0 attributes: invalid attribute key:value pair "rack"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Agents: tc.agents, AgentAttributes: tc.attrs}
			err := cfg.Validate()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Validate: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				if got := string(ojsonList(cfg.agentAttributes(i))); got != want {
					t.Errorf("agent %d:\n got %s\nwant %s", i, got, want)
				}
			}
		})
	}
}

// TestParseAttributesForms: the value forms of Mesos' attribute parser
// (src/common/attributes.cpp): numbers are scalars, bracketed lists are
// ranges, anything else is text; braces (sets) are refused.
func TestParseAttributesForms(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "level:2.5", want: `[{"name":"level","type":"SCALAR","scalar":{"value":2.5}}]`},
		{in: "n:-3", want: `[{"name":"n","type":"SCALAR","scalar":{"value":-3.0}}]`},
		{in: "host:a.b-c_d", want: `[{"name":"host","type":"TEXT","text":{"value":"a.b-c_d"}}]`},
		{in: "v:1.2.3", want: `[{"name":"v","type":"TEXT","text":{"value":"1.2.3"}}]`},
		{in: " rack : r1 ; ; zone:a ", want: `[{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"zone","type":"TEXT","text":{"value":"a"}}]`},
		{in: "p:[31000-31000]", want: `[{"name":"p","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}]`},
		{in: "s:{}", err: `attribute "s": set values are not allowed for attributes`},
		{in: "p:[1-2", err: `ranges "[1-2" must end with ']'`},
		{in: "p:[a-b]", err: "invalid range"},
		{in: "x:a]b", err: "unexpected bracket"},
		{in: ":v", err: "invalid attribute key:value pair"},
		{in: "a:b:c", err: "invalid attribute key:value pair"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			attrs, err := ParseAttributes(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(ojsonList(attrs)); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestAgentMachineExecutor: with two agents each listens on its own
// loopback address; an executor launched on the second reaches its agent
// over a real socket at MESOS_AGENT_ENDPOINT (127.0.0.3) and its
// SUBSCRIBED carries that agent's hostname and attributes.
func TestAgentMachineExecutor(t *testing.T) {
	cfg := testConfig(t)
	cfg.Agents, cfg.SplitPorts = 2, true
	cfg.AgentAttributes = []string{"rack:r1", "rack:r2;level:2;slots:[1-4]"}
	type seen struct {
		endpoint, pid string
		subscribed    []byte
		err           error
	}
	got := make(chan seen, 1)
	cfg.Launcher = InProcess(func(ctx context.Context, spec ExecutorSpec) error {
		s := seen{endpoint: spec.Getenv("MESOS_AGENT_ENDPOINT"), pid: spec.Getenv("MESOS_SLAVE_PID")}
		s.subscribed, s.err = executorSubscribed(ctx, spec)
		got <- s
		<-ctx.Done()
		return nil
	})
	c := startCluster(t, cfg)

	// Each agent answers on its own address, and only there.
	for i, a := range c.Agents() {
		host, port, _ := net.SplitHostPort(a.Endpoint)
		if want := fmt.Sprintf("127.0.0.%d", i+2); host != want || a.Hostname != want {
			t.Fatalf("agent %d on %s (hostname %s), want %s", i, a.Endpoint, a.Hostname, want)
		}
		resp, err := http.Get("http://" + a.Endpoint + "/slave(1)/state")
		if err != nil {
			t.Fatalf("agent %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`"hostname":"127.0.0.%d"`, i+2); !strings.Contains(string(body), want) {
			t.Errorf("agent %d /state lacks %s", i, want)
		}
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
			conn.Close()
			t.Errorf("agent %d also answers on 127.0.0.1:%s", i, port)
		}
	}

	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x",`+multiRole+`}}}`)
	var offer string
	var agentID string
	for offer == "" {
		for _, o := range s.next(scheduler.Event_OFFERS).ev.Offers.Offers {
			if o.Hostname == "127.0.0.3" && offer == "" {
				offer, agentID = o.ID.Value, o.AgentID.Value
			} else {
				s.decline(o.ID.Value, 3600)
			}
		}
	}
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":%q},"executor":{"executor_id":{"value":"e"},"type":"CUSTOM","command":{"value":"true"}},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]}]}}]}}`,
		s.fwID, offer, agentID))
	var e seen
	select {
	case e = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the executor was not launched")
	}
	if e.err != nil {
		t.Fatal(e.err)
	}
	if !strings.HasPrefix(e.endpoint, "127.0.0.3:") || !strings.HasPrefix(e.pid, "slave(1)@127.0.0.3:") {
		t.Errorf("MESOS_AGENT_ENDPOINT %s, MESOS_SLAVE_PID %s: want the agent's own 127.0.0.3", e.endpoint, e.pid)
	}
	var ev executor.Event
	if err := protojson.Unmarshal(e.subscribed, &ev); err != nil {
		t.Fatal(err)
	}
	ai := ev.GetSubscribed().GetAgentInfo()
	if ai.GetHostname() != "127.0.0.3" {
		t.Errorf("SUBSCRIBED agent_info.hostname %q, want 127.0.0.3", ai.GetHostname())
	}
	if got, want := string(ojsonList(ai.Attributes)),
		`[{"name":"rack","type":"TEXT","text":{"value":"r2"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}},{"name":"slots","type":"RANGES","ranges":{"range":[{"begin":1,"end":4}]}}]`; got != want {
		t.Errorf("SUBSCRIBED agent_info.attributes\n got %s\nwant %s", got, want)
	}
}

// executorSubscribed subscribes as spec's executor over TCP to
// MESOS_AGENT_ENDPOINT and returns the SUBSCRIBED record.
func executorSubscribed(ctx context.Context, spec ExecutorSpec) ([]byte, error) {
	body := fmt.Sprintf(`{"type":"SUBSCRIBE","framework_id":{"value":%q},"executor_id":{"value":%q},"subscribe":{}}`, spec.FrameworkID, spec.ExecutorID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+spec.Getenv("MESOS_AGENT_ENDPOINT")+"/api/v1/executor", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("executor SUBSCRIBE: %s %s", resp.Status, b)
	}
	go func() { <-ctx.Done(); resp.Body.Close() }()
	rec, err := recordio.NewReader(resp.Body, 1<<20).Read()
	if err != nil {
		return nil, fmt.Errorf("executor stream: %w", err)
	}
	return append([]byte(nil), rec...), nil
}
