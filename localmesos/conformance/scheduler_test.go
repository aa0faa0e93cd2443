package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// The scheduler API where Mesos is strict. Each expectation names where
// Mesos 1.11 decides it.

// TestNotSubscribed: Master::Http::scheduler answers 403 "Framework is not
// subscribed" for any call of a known framework that has no stream, before
// it looks at Mesos-Stream-Id; an unknown framework is 400 "Framework
// cannot be found".
func TestNotSubscribed(t *testing.T) {
	info := frameworkInfo(t, `"failover_timeout":60`)
	s := subscribe(t, info)
	old := s.streamID
	s.cancel() // the scheduler goes away; the framework stays for 60 s
	revive := fmt.Sprintf(`{"type":"REVIVE",%s}`, s.fw())
	// The master notices the closed connection asynchronously.
	deadline := time.After(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		a := s.callWith(old, revive)
		if a.code == http.StatusForbidden {
			a.expect(t, http.StatusForbidden, "Framework is not subscribed")
			break
		}
		select {
		case <-deadline:
			t.Fatalf("after the stream closed: %d %q, want 403", a.code, a.body)
		case <-tick.C:
		}
	}
	s.callWith("", revive).expect(t, http.StatusForbidden, "Framework is not subscribed")
	s.callWith("made-up", revive).expect(t, http.StatusForbidden, "Framework is not subscribed")
	s.callWith(old, fmt.Sprintf(`{"type":"TEARDOWN",%s}`, s.fw())).expect(t, http.StatusForbidden, "Framework is not subscribed")

	// Re-subscribed, the old stream id is refused with 400.
	s2 := open(t, withID(info, s.fwID), s.fwID)
	s2.subscribed()
	s2.callWith(old, revive).expect(t, http.StatusBadRequest, fmt.Sprintf(
		"The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", old, s.fwID))
	s2.mustCall(revive)

	do(t, http.MethodPost, "/api/v1/scheduler", jsonHdr, `{"type":"REVIVE","framework_id":{"value":"no-such-framework"}}`).
		expect(t, http.StatusBadRequest, "Framework cannot be found")
}

// TestTaskUsesNoResources: validation::task::internal::validateResources
// refuses a task with no resources: TASK_ERROR, REASON_TASK_INVALID, from
// the master.
func TestTaskUsesNoResources(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, multiRole))
	o := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	s.launch(o.ID.Value, o.AgentID.Value, "no-res", "true", "[]", "")
	st := s.next(scheduler.Event_UPDATE).Update.Status
	if st.TaskID.Value != "no-res" || st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_INVALID ||
		st.GetMessage() != "Task uses no resources" || st.GetSource() != mesos.SOURCE_MASTER || st.UUID != nil {
		t.Errorf("update %v, Mesos sends TASK_ERROR REASON_TASK_INVALID \"Task uses no resources\" from the master, without uuid", st)
	}
}

// TestSuppressedRoles: SUBSCRIBE with suppressed_roles gets no offers for
// them until REVIVE; a suppressed role not among the framework's roles is
// refused (validation::framework::validateSuppressedRoles) with an ERROR
// event and the end of the stream.
func TestSuppressedRoles(t *testing.T) {
	t.Run("suppressed", func(t *testing.T) {
		s := openSuppressed(t, frameworkInfo(t, multiRole), `["*"]`)
		s.subscribed()
		if e := s.within(scheduler.Event_OFFERS, 3*time.Second); e != nil {
			t.Fatalf("OFFERS for a suppressed role: %v", e.Offers.Offers)
		}
		s.mustCall(fmt.Sprintf(`{"type":"REVIVE",%s}`, s.fw()))
		s.next(scheduler.Event_OFFERS)
	})
	t.Run("not a role of the framework", func(t *testing.T) {
		s := openSuppressed(t, frameworkInfo(t, multiRole), `["other"]`)
		got := s.closed()
		if len(got) != 1 || got[0].Type != scheduler.Event_ERROR ||
			got[0].Error.Message != "Suppressed role 'other' is not contained in the list of roles" {
			t.Errorf("events %v, Mesos sends one ERROR \"Suppressed role 'other' is not contained in the list of roles\" and ends the stream", got)
		}
	})
}

// openSuppressed subscribes with Call.Subscribe.suppressed_roles.
func openSuppressed(t *testing.T, info, roles string) *sched {
	t.Helper()
	return openCall(t, fmt.Sprintf(`{"type":"SUBSCRIBE","subscribe":{"framework_info":%s,"suppressed_roles":%s}}`, info, roles))
}

// TestPrincipalChange: a re-SUBSCRIBE may not change the principal
// (Master::validateFrameworkSubscription): the new stream gets ERROR
// "Changing framework's principal is not allowed." and ends; the
// framework's stream stays.
func TestPrincipalChange(t *testing.T) {
	info := frameworkInfo(t, multiRole+`,"failover_timeout":60,"principal":"conformance-a"`)
	s := subscribe(t, info)
	changed := strings.Replace(info, `"conformance-a"`, `"conformance-b"`, 1)
	s2 := open(t, withID(changed, s.fwID), s.fwID)
	got := s2.closed()
	if len(got) != 1 || got[0].Type != scheduler.Event_ERROR || got[0].Error.Message != "Changing framework's principal is not allowed." {
		t.Errorf("events %v, Mesos sends one ERROR \"Changing framework's principal is not allowed.\" and ends the stream", got)
	}
	s.mustCall(fmt.Sprintf(`{"type":"REVIVE",%s}`, s.fw())) // the first stream is still the framework's
}

// TestDeclineFiltersRefusedResourcesOnly: the filter of an ACCEPT's
// unused resources (HierarchicalAllocatorProcess' RefusedOfferFilter)
// covers those resources only: when the task ends, the agent's resources
// are offered again though the filter still runs.
func TestDeclineFiltersRefusedResourcesOnly(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, multiRole))
	o := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	agent := o.AgentID.Value
	s.launch(o.ID.Value, agent, "short", "sleep 2", small, `"filters":{"refuse_seconds":60}`)
	finished := false
	deadline := time.After(wait)
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err != nil {
				t.Fatalf("stream ended: %v", e.err)
			}
			switch e.ev.Type {
			case scheduler.Event_UPDATE:
				st := e.ev.Update.Status
				s.ack(st)
				if st.TaskID.Value == "short" && st.GetState() == mesos.TASK_FINISHED {
					finished = true
				} else if st.GetState() != mesos.TASK_STARTING && st.GetState() != mesos.TASK_RUNNING {
					t.Fatalf("task: %v", st)
				}
			case scheduler.Event_OFFERS:
				for _, x := range e.ev.Offers.Offers {
					if x.AgentID.Value != agent {
						s.decline(3600, x.ID.Value) // another agent: out of the way
						continue
					}
					if !finished {
						t.Fatalf("offer of the refused resources within their 60 s filter: %v", x)
					}
					return // the freed resources came back
				}
			}
		case <-deadline:
			t.Fatalf("no offer from agent %s after its task ended (finished: %v)", agent, finished)
		}
	}
}

// TestRefuseSecondsNegative: a negative refuse_seconds is not "no filter":
// Mesos uses the default filter of 5 seconds (Filters.refuse_seconds,
// include/mesos/v1/mesos.proto; Master::decline).
func TestRefuseSecondsNegative(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, multiRole))
	o := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	declined := time.Now()
	s.decline(-1, o.ID.Value)
	for {
		e := s.next(scheduler.Event_OFFERS)
		for _, x := range e.Offers.Offers {
			if x.AgentID.Value != o.AgentID.Value {
				s.decline(3600, x.ID.Value)
				continue
			}
			if d := time.Since(declined); d < 4*time.Second {
				t.Fatalf("offered again after %s; a negative refuse_seconds is the 5 s default", d)
			}
			return
		}
	}
}

// TestMultiRoleAllocationInfo: offers to a MULTI_ROLE framework carry
// allocation_info on the offer and on every resource; offers to other
// frameworks carry role "*" and no allocation_info.
func TestMultiRoleAllocationInfo(t *testing.T) {
	check := func(t *testing.T, info string, multi bool) {
		s := subscribe(t, info)
		o := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
		if multi != (o.AllocationInfo != nil && o.AllocationInfo.GetRole() == "*") {
			t.Errorf("offer allocation_info %v (MULTI_ROLE: %v)", o.AllocationInfo, multi)
		}
		for _, r := range o.Resources {
			if multi != (r.AllocationInfo != nil && r.AllocationInfo.GetRole() == "*") {
				t.Errorf("resource %s allocation_info %v (MULTI_ROLE: %v)", r.Name, r.AllocationInfo, multi)
			}
			if r.GetRole() != "*" {
				t.Errorf("resource %s role %q, want \"*\"", r.Name, r.GetRole())
			}
		}
		s.decline(0, o.ID.Value)
	}
	t.Run("MULTI_ROLE", func(t *testing.T) { check(t, frameworkInfo(t, multiRole), true) })
	t.Run("single role", func(t *testing.T) { check(t, frameworkInfo(t, ""), false) })
}

// TestUpdateFramework: UPDATE_FRAMEWORK answers 200; changing the user is
// refused (validation::framework::validateUpdate); framework_id must match
// the FrameworkInfo's id (validation::scheduler::call::validate).
func TestUpdateFramework(t *testing.T) {
	info := frameworkInfo(t, multiRole)
	s := subscribe(t, info)
	update := func(fi string) answer {
		return s.call(fmt.Sprintf(`{"type":"UPDATE_FRAMEWORK",%s,"update_framework":{"framework_info":%s}}`, s.fw(), fi))
	}
	renamed := strings.Replace(withID(info, s.fwID), `"name":"conformance-`, `"name":"renamed-`, 1)
	if a := update(renamed); a.code != http.StatusOK {
		t.Errorf("UPDATE_FRAMEWORK of the name: %d %q, Mesos answers 200", a.code, a.body)
	}
	var fi struct{ User string }
	if err := json.Unmarshal([]byte(info), &fi); err != nil {
		t.Fatal(err)
	}
	otherUser := strings.Replace(renamed, fmt.Sprintf(`"user":%q`, fi.User), `"user":"conformance-nobody"`, 1)
	update(otherUser).expect(t, http.StatusBadRequest, fmt.Sprintf(
		"FrameworkInfo update is not valid: Updating 'FrameworkInfo.user' is unsupported; attempted to update from '%s' to 'conformance-nobody'", fi.User))
	otherID := strings.Replace(renamed, s.fwID, s.fwID+"-other", 1)
	update(otherID).expect(t, http.StatusBadRequest, "Failed to validate scheduler::Call: 'framework_id' differs from 'update_framework.framework_info.id'")
}
