package localmesos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/internal/uuid"
	"github.com/tiltai/tiltai/localmesos/internal/api"
)

// Where a real Mesos 1.11 master refuses something, localmesos must refuse
// it too: a framework that works here must not fail on a real cluster. The
// expected texts are Mesos' own (src/master/validation.cpp, master.cpp,
// http.cpp, src/common/resources.cpp).

const multiRole = `"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"}]`

// within returns the first event of type typ that arrives within d, or
// nil: for checks that something does not happen.
func (s *rawSched) within(typ scheduler.Event_Type, d time.Duration) *rawEvent {
	s.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err != nil {
				return nil
			}
			if e.ev.Type == typ {
				return &e
			}
		case <-timer.C:
			return nil
		}
	}
}

// closed waits for the end of the stream and reports the events before it.
func (s *rawSched) closed() []rawEvent {
	s.t.Helper()
	var got []rawEvent
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err == io.EOF {
				return got
			}
			if e.err != nil {
				s.t.Fatalf("stream ended with %v, want EOF", e.err)
			}
			got = append(got, e)
		case <-deadline:
			s.t.Fatalf("stream not closed; events so far: %d", len(got))
		}
	}
}

func (s *rawSched) accept(offerID, tasks string, refuse float64) {
	s.t.Helper()
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[%s]}}],"filters":{"refuse_seconds":%g}}}`,
		s.fwID, offerID, tasks, refuse))
}

func (s *rawSched) decline(offerID string, refuse float64) {
	s.t.Helper()
	s.mustCall(fmt.Sprintf(`{"type":"DECLINE","framework_id":{"value":%q},"decline":{"offer_ids":[{"value":%q}],"filters":{"refuse_seconds":%g}}}`, s.fwID, offerID, refuse))
}

func TestStrictSuppressedRoles(t *testing.T) {
	c := startCluster(t, testConfig(t))
	t.Run("no offers until REVIVE", func(t *testing.T) {
		s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"sup",`+multiRole+`},"suppressed_roles":["*"]}}`)
		if e := s.within(scheduler.Event_OFFERS, 500*time.Millisecond); e != nil {
			t.Fatalf("OFFERS while the role is suppressed: %s", e.raw)
		}
		s.mustCall(fmt.Sprintf(`{"type":"REVIVE","framework_id":{"value":%q}}`, s.fwID))
		s.next(scheduler.Event_OFFERS)
		s.mustCall(fmt.Sprintf(`{"type":"TEARDOWN","framework_id":{"value":%q}}`, s.fwID))
	})
	for _, tc := range []struct{ name, info, suppressed, want string }{
		{"role not held", `"roles":["*"]`, `["other"]`, "Suppressed role 'other' is not contained in the list of roles"},
		{"one of two not held", `"roles":["a","b"]`, `["a","c"]`, "Suppressed role 'c' is not contained in the list of roles"},
		{"role with roles", `"role":"*","roles":["*"]`, `[]`, "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"},
		{"duplicate roles", `"roles":["a","a"]`, `[]`, "'FrameworkInfo.roles' contains duplicate items: { a }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStream(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"bad",`+tc.info+`,"capabilities":[{"type":"MULTI_ROLE"}]},"suppressed_roles":`+tc.suppressed+`}}`)
			got := s.closed()
			if len(got) != 1 || got[0].ev.Type != scheduler.Event_ERROR || got[0].ev.Error.Message != tc.want {
				t.Fatalf("stream: %d events, first %s; want only ERROR %q", len(got), firstRaw(got), tc.want)
			}
		})
	}
	t.Run("roles without MULTI_ROLE", func(t *testing.T) {
		s := openStream(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"bad","roles":["*"]}}}`)
		got := s.closed()
		if want := "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"; len(got) != 1 || got[0].ev.Error == nil || got[0].ev.Error.Message != want {
			t.Fatalf("stream: %s, want ERROR %q", firstRaw(got), want)
		}
	})
}

func firstRaw(es []rawEvent) string {
	if len(es) == 0 {
		return "(none)"
	}
	return string(es[0].raw)
}

func TestStrictTaskValidation(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"strict-tasks"}}}`)
	const cpuMem = `{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}`
	const cmd = `"command":{"value":"sleep 600"}`
	for _, tc := range []struct{ name, task, want string }{
		{"no resources", `"resources":[],` + cmd, "Task uses no resources"},
		{"negative kill grace", `"resources":[` + cpuMem + `],` + cmd + `,"kill_policy":{"grace_period":{"nanoseconds":-1}}`,
			"Task's 'kill_policy.grace_period' must be non-negative"},
		{"overlapping port ranges", `"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31005},{"begin":31003,"end":31004}]}}],` + cmd,
			"Task uses invalid resources: Invalid resources: Invalid ranges resource: overlapping ranges"},
		{"empty resource name", `"resources":[` + cpuMem + `,{"name":"","type":"SCALAR","scalar":{"value":1}}],` + cmd,
			"Task uses invalid resources: Invalid resources: Empty resource name"},
		{"negative executor grace", `"resources":[` + cpuMem + `],"executor":{"executor_id":{"value":"e"},"command":{"value":"true"},"shutdown_grace_period":{"nanoseconds":-1}}`,
			"ExecutorInfo's 'shutdown_grace_period' must be non-negative"},
		{"port of task and executor", `"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}],"executor":{"executor_id":{"value":"e"},"command":{"value":"true"},"resources":[` + cpuMem + `,{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]}}]}`,
			"There are overlapping resources in the task resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
			s.accept(o.ID.Value, fmt.Sprintf(`{"name":"t","task_id":{"value":"t"},"agent_id":{"value":%q},%s}`, o.AgentID.Value, tc.task), 0)
			st := s.next(scheduler.Event_UPDATE).ev.Update.Status
			if st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_INVALID || !strings.HasPrefix(st.GetMessage(), tc.want) {
				t.Fatalf("update %s %s %q, want TASK_ERROR REASON_TASK_INVALID %q", st.GetState(), st.GetReason(), st.GetMessage(), tc.want)
			}
		})
	}
}

// TestStrictNotSubscribed: every call of a framework whose stream is gone
// is 403 "Framework is not subscribed", whatever stream id it carries.
func TestStrictNotSubscribed(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"gone","failover_timeout":60}}}`)
	s.body.Close()
	revive := fmt.Sprintf(`{"type":"REVIVE","framework_id":{"value":%q}}`, s.fwID)
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := s.call(revive); code == http.StatusAccepted; code, _ = s.call(revive) {
		if time.Now().After(deadline) {
			t.Fatal("the master did not notice the closed stream")
		}
	}
	for _, tc := range []struct{ name, streamID, body string }{
		{"REVIVE with its last stream id", s.streamID, revive},
		{"REVIVE without a stream id", "", revive},
		{"REVIVE with a made-up stream id", uuid.New().String(), revive},
		{"TEARDOWN", s.streamID, fmt.Sprintf(`{"type":"TEARDOWN","framework_id":{"value":%q}}`, s.fwID)},
		{"ACKNOWLEDGE", s.streamID, fmt.Sprintf(`{"type":"ACKNOWLEDGE","framework_id":{"value":%q},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"x"},"uuid":"a9/DxVC0TLaXWSUCyABcDA=="}}`, s.fwID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
			if tc.streamID != "" {
				hdr["Mesos-Stream-Id"] = tc.streamID
			}
			resp := post(t, s.url, hdr, []byte(tc.body))
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || string(b) != "Framework is not subscribed" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("%d %q (%s), want 403 \"Framework is not subscribed\" as text/plain", resp.StatusCode, b, resp.Header.Get("Content-Type"))
			}
		})
	}
	// An unknown framework is looked up before the stream id is asked for.
	resp := post(t, s.url, map[string]string{"Content-Type": "application/json"}, []byte(`{"type":"REVIVE","framework_id":{"value":"nope"}}`))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || string(b) != "Framework cannot be found" {
		t.Fatalf("unknown framework without a stream id: %d %q", resp.StatusCode, b)
	}
}

type fwState struct {
	Name, User, Principal string
	Checkpoint            bool
}

func frameworkState(t *testing.T, c *Cluster, id string) fwState {
	t.Helper()
	resp, err := http.Get(c.MasterURL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Frameworks []struct {
			ID string
			fwState
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Frameworks {
		if f.ID == id {
			return f.fwState
		}
	}
	t.Fatalf("framework %s not in /master/state", id)
	return fwState{}
}

// TestStrictResubscribe: a re-SUBSCRIBE may not change the principal (the
// new stream gets ERROR and ends, the old one stays); a new user or
// checkpoint is ignored while other fields are updated.
func TestStrictResubscribe(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"p","principal":"alice","failover_timeout":60,"checkpoint":false}}}`)
	again := func(info string) string {
		return fmt.Sprintf(`{"type":"SUBSCRIBE","framework_id":{"value":%q},"subscribe":{"framework_info":{"id":{"value":%q},"failover_timeout":60,%s}}}`, s.fwID, s.fwID, info)
	}
	for _, tc := range []struct{ name, info string }{
		{"new principal", `"user":"root","name":"p","principal":"bob"`},
		{"no principal", `"user":"root","name":"p"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := openStream(t, c, again(tc.info)).closed()
			if want := "Changing framework's principal is not allowed."; len(got) != 1 || got[0].ev.Error == nil || got[0].ev.Error.Message != want {
				t.Fatalf("re-subscribe stream: %s, want only ERROR %q", firstRaw(got), want)
			}
			s.mustCall(fmt.Sprintf(`{"type":"REVIVE","framework_id":{"value":%q}}`, s.fwID))
		})
	}
	t.Run("user and checkpoint kept", func(t *testing.T) {
		openStream(t, c, again(`"user":"nobody","name":"renamed","principal":"alice","checkpoint":true`)).next(scheduler.Event_SUBSCRIBED)
		got := frameworkState(t, c, s.fwID)
		if want := (fwState{Name: "renamed", User: "root", Principal: "alice", Checkpoint: false}); got != want {
			t.Fatalf("framework after re-subscribe: %+v, want %+v", got, want)
		}
	})
}

func TestStrictUpdateFramework(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"u",`+multiRole+`}}}`)
	update := func(info, suppressed string) string {
		return fmt.Sprintf(`{"type":"UPDATE_FRAMEWORK","framework_id":{"value":%q},"update_framework":{"framework_info":{"id":{"value":%q},%s,`+multiRole+`},"suppressed_roles":%s}}`, s.fwID, s.fwID, info, suppressed)
	}
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"user", update(`"user":"nobody","name":"u"`, `[]`), 400,
			"FrameworkInfo update is not valid: Updating 'FrameworkInfo.user' is unsupported; attempted to update from 'root' to 'nobody'"},
		{"checkpoint", update(`"user":"root","name":"u","checkpoint":true`, `[]`), 400,
			"FrameworkInfo update is not valid: Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from 'false' to 'true'"},
		{"principal", update(`"user":"root","name":"u","principal":"p"`, `[]`), 400,
			"FrameworkInfo update is not valid: Changing framework's principal is not allowed."},
		{"suppressed role not held", update(`"user":"root","name":"u"`, `["x"]`), 400,
			"Suppressed role 'x' is not contained in the list of roles"},
		{"other id", fmt.Sprintf(`{"type":"UPDATE_FRAMEWORK","framework_id":{"value":%q},"update_framework":{"framework_info":{"id":{"value":"x"},"user":"root","name":"u"}}}`, s.fwID), 400,
			"Failed to validate scheduler::Call: 'framework_id' differs from 'update_framework.framework_info.id'"},
		{"name", update(`"user":"root","name":"renamed"`, `[]`), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, text := s.call(tc.body); code != tc.code || text != tc.want {
				t.Fatalf("%d %q, want %d %q", code, text, tc.code, tc.want)
			}
		})
	}
	if got := frameworkState(t, c, s.fwID); got.Name != "renamed" || got.User != "root" {
		t.Fatalf("framework after UPDATE_FRAMEWORK: %+v", got)
	}
}

// TestStrictMultiRoleOffers: offers to a MULTI_ROLE framework carry
// allocation_info on the offer and on every resource.
func TestStrictMultiRoleOffers(t *testing.T) {
	c := startCluster(t, testConfig(t))
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"mr",`+multiRole+`}}}`)
	o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
	if o.AllocationInfo.GetRole() != "*" {
		t.Fatalf("offer allocation_info %v, want role *", o.AllocationInfo)
	}
	for _, r := range o.Resources {
		if r.AllocationInfo.GetRole() != "*" || r.GetRole() != "*" {
			t.Fatalf("resource %s: role %q allocation_info %v, want * and role *", r.Name, r.GetRole(), r.AllocationInfo)
		}
	}
}

// TestStrictDeclineFilters: a DECLINE filter holds back the refused
// resources only; refuse_seconds < 0 is the default filter, 0 none.
func TestStrictDeclineFilters(t *testing.T) {
	cfg := testConfig(t)
	cfg.DefaultRefuse = time.Hour
	c := startCluster(t, cfg)
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"f"}}}`)
	t.Run("freed resources are offered", func(t *testing.T) {
		o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
		s.accept(o.ID.Value, fmt.Sprintf(`{"name":"k","task_id":{"value":"k"},"agent_id":{"value":%q},"command":{"value":"sleep 600"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]}`, o.AgentID.Value), 0)
		// The offer of what the task left comes before or among its updates.
		var rest *mesos.Offer
		for running := false; !running || rest == nil; {
			select {
			case e := <-s.events:
				if e.err != nil {
					t.Fatal(e.err)
				}
				switch e.ev.Type {
				case scheduler.Event_OFFERS:
					rest = &e.ev.Offers.Offers[0]
				case scheduler.Event_UPDATE:
					s.ack(e)
					running = running || e.ev.Update.Status.GetState() == mesos.TASK_RUNNING
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("running %v, offer of the rest %v", running, rest != nil)
			}
		}
		s.decline(rest.ID.Value, 60)
		s.mustCall(fmt.Sprintf(`{"type":"KILL","framework_id":{"value":%q},"kill":{"task_id":{"value":"k"}}}`, s.fwID))
		for {
			e := s.next(scheduler.Event_UPDATE)
			s.ack(e)
			if api.Terminal(e.ev.Update.Status.GetState()) {
				break
			}
		}
		e := s.within(scheduler.Event_OFFERS, 5*time.Second)
		if e == nil {
			t.Fatal("no offer after the task ended: the DECLINE filter held back resources it did not refuse")
		}
		if cpus := scalarOf(e.ev.Offers.Offers[0].Resources, "cpus"); cpus != 4 {
			t.Fatalf("offer after the task ended has cpus %v, want 4", cpus)
		}
		s.decline(e.ev.Offers.Offers[0].ID.Value, 0)
	})
	t.Run("refuse_seconds 0 filters nothing", func(t *testing.T) {
		o := s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0]
		s.decline(o.ID.Value, -1)
	})
	t.Run("negative refuse_seconds is the default", func(t *testing.T) {
		if e := s.within(scheduler.Event_OFFERS, 500*time.Millisecond); e != nil {
			t.Fatalf("offer within 0.5 s of a DECLINE with refuse_seconds -1 (default %v): %s", cfg.DefaultRefuse, e.raw)
		}
	})
}

func scalarOf(rs []mesos.Resource, name string) float64 {
	for _, r := range rs {
		if r.Name == name {
			return r.GetScalar().GetValue()
		}
	}
	return 0
}

func TestStrictExecutorHeartbeatDefault(t *testing.T) {
	if got := (Config{}).withDefaults().ExecutorHeartbeatInterval; got != 30*time.Minute {
		t.Fatalf("default executor heartbeat %v, want Mesos' 30m", got)
	}
}
