package conformance

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Maintenance, draining and MARK_AGENT_GONE, after src/master/maintenance.cpp,
// the maintenance and agent handlers of src/master/http.cpp
// (updateMaintenanceSchedule, startMaintenance, drainAgent,
// reactivateAgent, markAgentGone), validation::master::call::validate,
// Master::updateUnavailability and docs/maintenance.md; answers as
// recorded from Mesos 1.11.

var destructiveFlag = flag.Bool("destructive", false,
	"also run checks that take an agent away for good (START_MAINTENANCE, MARK_AGENT_GONE); they need two agents or more. On by default against the in-process localmesos")

// op posts an operator call in JSON.
func op(t *testing.T, body string) answer {
	t.Helper()
	return do(t, http.MethodPost, "/api/v1", jsonHdr, body)
}

func mustOp(t *testing.T, body string) string {
	t.Helper()
	a := op(t, body)
	if a.code != http.StatusOK {
		t.Fatalf("%s: %d %q, Mesos answers 200", body, a.code, a.body)
	}
	return a.body
}

// agentView is what the checks read of GET_AGENTS.
type agentView struct {
	AgentInfo struct {
		ID       struct{ Value string } `json:"id"`
		Hostname string                 `json:"hostname"`
	} `json:"agent_info"`
	Active      bool            `json:"active"`
	Deactivated bool            `json:"deactivated"`
	PID         string          `json:"pid"`
	DrainInfo   json.RawMessage `json:"drain_info"`
}

// machine is the agent's MachineID in JSON: its hostname and the IP of its
// pid, as Mesos keys machines.
func (a agentView) machine() string {
	_, addr, _ := strings.Cut(a.PID, "@")
	ip, _, _ := strings.Cut(addr, ":")
	return fmt.Sprintf(`{"hostname":%q,"ip":%q}`, a.AgentInfo.Hostname, ip)
}

func agents(t *testing.T) map[string]agentView {
	t.Helper()
	var resp struct {
		GetAgents struct {
			Agents []agentView `json:"agents"`
		} `json:"get_agents"`
	}
	if err := json.Unmarshal([]byte(mustOp(t, `{"type":"GET_AGENTS"}`)), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]agentView{}
	for _, a := range resp.GetAgents.Agents {
		out[a.AgentInfo.ID.Value] = a
	}
	return out
}

// runTask takes an offer, launches `sleep 300` on its agent and waits for
// TASK_RUNNING; it returns the agent id.
func (s *sched) runTask(taskID string) string {
	s.t.Helper()
	o := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	s.launch(o.ID.Value, o.AgentID.Value, taskID, "sleep 300", small, "")
	for {
		st := s.next(scheduler.Event_UPDATE).Update.Status
		s.ack(st)
		if st.TaskID.Value != taskID {
			continue
		}
		switch st.GetState() {
		case mesos.TASK_RUNNING:
			return o.AgentID.Value
		case mesos.TASK_STARTING, mesos.TASK_STAGING:
		default:
			s.t.Fatalf("task %s: %v", taskID, st)
		}
	}
}

// update waits for the next update of taskID, acknowledging it.
func (s *sched) update(taskID string) mesos.TaskStatus {
	s.t.Helper()
	for {
		st := s.next(scheduler.Event_UPDATE).Update.Status
		s.ack(st)
		if st.TaskID.Value == taskID {
			return st
		}
	}
}

// TestMaintenanceErrors: the refusals of the maintenance and agent calls,
// with Mesos' codes and texts. None of them changes anything.
func TestMaintenanceErrors(t *testing.T) {
	m := `{"hostname":"conformance-nowhere","ip":"10.9.9.9"}`
	mText := `Machine '{"hostname":"conformance-nowhere","ip":"10.9.9.9"}'`
	schedule := func(windows string) string {
		return `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[` + windows + `]}}}`
	}
	start := `"unavailability":{"start":{"nanoseconds":4102444800000000000}}`
	for _, c := range []struct {
		name, body string
		code       int
		text       string
	}{
		{"window without machines", schedule(`{"machine_ids":[],` + start + `}`), 400,
			"List of machines in the maintenance window is empty"},
		{"machine twice", schedule(`{"machine_ids":[` + m + `,` + m + `],` + start + `}`), 400,
			mText + " appears more than once in the schedule"},
		{"machine in two windows", schedule(`{"machine_ids":[` + m + `],` + start + `},{"machine_ids":[` + m + `],` + start + `}`), 400,
			mText + " appears more than once in the schedule"},
		{"machine without hostname and ip", schedule(`{"machine_ids":[{}],` + start + `}`), 400,
			"Both 'hostname' and 'ip' for a machine are empty"},
		{"negative duration", schedule(`{"machine_ids":[` + m + `],"unavailability":{"start":{"nanoseconds":4102444800000000000},"duration":{"nanoseconds":-1}}}`), 400,
			"Unavailability 'duration' is negative"},
		{"no schedule", `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{}}`, 400,
			"Failed to convert JSON into Call protobuf: Missing required fields: update_maintenance_schedule.schedule"},
		{"START_MAINTENANCE of an unscheduled machine", `{"type":"START_MAINTENANCE","start_maintenance":{"machines":[` + m + `]}}`, 400,
			mText + " is not part of a maintenance schedule"},
		{"DRAIN_AGENT without drain_agent", `{"type":"DRAIN_AGENT"}`, 400,
			"Failed to validate master::Call: Expecting 'drain_agent' to be present"},
		{"DRAIN_AGENT of an unknown agent", `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"no-such-agent"}}}`, 400, "Unknown agent"},
		{"DRAIN_AGENT with a string grace period", `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"no-such-agent"},"max_grace_period":"5s"}}`, 400,
			"Failed to convert JSON into Call protobuf: Not expecting a JSON string for field 'max_grace_period'"},
		{"MARK_AGENT_GONE of an unknown agent", `{"type":"MARK_AGENT_GONE","mark_agent_gone":{"agent_id":{"value":"no-such-agent"}}}`, 404,
			"Agent 'no-such-agent' not found"},
	} {
		t.Run(c.name, func(t *testing.T) { op(t, c.body).expect(t, c.code, c.text) })
	}
	t.Run("REACTIVATE_AGENT of an active agent", func(t *testing.T) {
		for id, a := range agents(t) {
			if !a.Deactivated {
				op(t, `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":{"value":"`+id+`"}}}`).expect(t, 400, "Agent is not deactivated")
				return
			}
		}
		t.Skip("no active agent")
	})
	// Nothing of the above was applied.
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_SCHEDULE"}`); strings.Contains(body, "conformance-nowhere") {
		t.Errorf("a refused schedule was applied: %s", body)
	}
}

// TestMaintenanceWindow: a window on a machine where a framework runs a
// task makes the machine DRAINING: the framework gets INVERSE_OFFERS with
// the window's unavailability, offers of the machine carry it,
// GET_MAINTENANCE_SCHEDULE echoes the schedule and GET_MAINTENANCE_STATUS
// lists the machine with the framework's answer. An empty schedule ends it.
func TestMaintenanceWindow(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, multiRole))
	agentID := s.runTask("maint-task")
	machine := agents(t)[agentID].machine()
	startNs := time.Now().Add(time.Hour).UnixNano() / 1e6 * 1e6
	window := fmt.Sprintf(`{"machine_ids":[%s],"unavailability":{"start":{"nanoseconds":%d},"duration":{"nanoseconds":60000000000}}}`, machine, startNs)
	mustOp(t, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[`+window+`]}}}`)
	t.Cleanup(func() { op(t, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{}}}`) })

	inv := s.next(scheduler.Event_INVERSE_OFFERS).InverseOffers.InverseOffers
	if len(inv) != 1 || inv[0].GetAgentID().GetValue() != agentID || inv[0].FrameworkID.Value != s.fwID ||
		inv[0].Unavailability.Start.Nanoseconds != startNs || inv[0].Unavailability.GetDuration().GetNanoseconds() != 60e9 {
		t.Fatalf("inverse offers %v, Mesos sends one for agent %s with start %d and duration 60 s", inv, agentID, startNs)
	}
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_SCHEDULE"}`); body !=
		`{"type":"GET_MAINTENANCE_SCHEDULE","get_maintenance_schedule":{"schedule":{"windows":[`+window+`]}}}` {
		t.Errorf("GET_MAINTENANCE_SCHEDULE %s, want the schedule as given", body)
	}
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_STATUS"}`); !strings.Contains(body, `"draining_machines":[{"id":`+machine) {
		t.Errorf("GET_MAINTENANCE_STATUS %s, want %s draining", body, machine)
	}

	// Offers of the machine carry the unavailability.
	s.mustCall(fmt.Sprintf(`{"type":"REVIVE",%s}`, s.fw()))
	for found := false; !found; {
		for _, o := range s.next(scheduler.Event_OFFERS).Offers.Offers {
			if o.AgentID.Value == agentID {
				found = true
				if o.Unavailability == nil || o.Unavailability.Start.Nanoseconds != startNs {
					t.Errorf("offer of the draining machine: unavailability %v, want start %d", o.Unavailability, startNs)
				}
			}
			s.decline(3600, o.ID.Value)
		}
	}

	s.mustCall(fmt.Sprintf(`{"type":"DECLINE_INVERSE_OFFERS",%s,"decline_inverse_offers":{"inverse_offer_ids":[{"value":%q}],"filters":{"refuse_seconds":5}}}`, s.fw(), inv[0].OfferID.Value))
	s.mustCall(fmt.Sprintf(`{"type":"ACCEPT_INVERSE_OFFERS",%s,"accept_inverse_offers":{"inverse_offer_ids":[{"value":"no-such-inverse-offer"}]}}`, s.fw()))
	deadline := time.Now().Add(wait)
	for {
		body := mustOp(t, `{"type":"GET_MAINTENANCE_STATUS"}`)
		if strings.Contains(body, fmt.Sprintf(`"statuses":[{"status":"DECLINE","framework_id":{"value":%q},"timestamp":{"nanoseconds":`, s.fwID)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET_MAINTENANCE_STATUS %s, want the framework's DECLINE", body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An empty schedule takes the machine out of maintenance.
	mustOp(t, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{}}}`)
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_STATUS"}`); body != `{"type":"GET_MAINTENANCE_STATUS","get_maintenance_status":{"status":{}}}` {
		t.Errorf("GET_MAINTENANCE_STATUS after an empty schedule: %s", body)
	}
}

// drainInfo waits until the agent's GET_AGENTS drain_info is want.
func waitDrainInfo(t *testing.T, agentID, want string) agentView {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		a := agents(t)[agentID]
		if string(a.DrainInfo) == want {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s drain_info %s, want %s", agentID, a.DrainInfo, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDrainAgent: DRAIN_AGENT deactivates the agent and kills its tasks;
// TASK_KILLING and the terminal update both carry REASON_AGENT_DRAINING;
// max_grace_period is a google.protobuf.Duration {seconds, nanos}, shown as
// {nanoseconds}; the agent is DRAINED once the updates are acknowledged;
// REACTIVATE_AGENT brings its offers back. A {nanoseconds} grace period is
// an unknown key to a Duration: dropped, the drain runs with 0.
func TestDrainAgent(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, `"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"},{"type":"TASK_KILLING_STATE"}]`))
	agentID := s.runTask("drained")
	reactivate := `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":{"value":"` + agentID + `"}}}`
	mustOp(t, `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"`+agentID+`"},"max_grace_period":{"seconds":1,"nanos":500000000}}}`)
	t.Cleanup(func() { op(t, reactivate) })
	for _, want := range []mesos.TaskState{mesos.TASK_KILLING, mesos.TASK_KILLED} {
		st := s.update("drained")
		if st.GetState() != want || st.GetReason() != mesos.REASON_AGENT_DRAINING {
			t.Errorf("update %v %v, Mesos sends %v with REASON_AGENT_DRAINING", st.GetState(), st.GetReason(), want)
		}
	}
	a := waitDrainInfo(t, agentID, `{"state":"DRAINED","config":{"max_grace_period":{"nanoseconds":1500000000},"mark_gone":false}}`)
	if !a.Deactivated || a.Active {
		t.Errorf("drained agent: deactivated %v active %v, Mesos shows deactivated true, active false", a.Deactivated, a.Active)
	}
	mustOp(t, reactivate)
	if a := agents(t)[agentID]; a.Deactivated || a.DrainInfo != nil {
		t.Errorf("reactivated agent: deactivated %v drain_info %s", a.Deactivated, a.DrainInfo)
	}
	op(t, reactivate).expect(t, 400, "Agent is not deactivated")

	// {nanoseconds} is not a Duration's key: the drain runs with 0.
	mustOp(t, `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"`+agentID+`"},"max_grace_period":{"nanoseconds":5000000000}}}`)
	waitDrainInfo(t, agentID, `{"state":"DRAINED","config":{"max_grace_period":{"nanoseconds":0},"mark_gone":false}}`)
	mustOp(t, reactivate)
	// Without max_grace_period the config has none.
	mustOp(t, `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"`+agentID+`"}}}`)
	waitDrainInfo(t, agentID, `{"state":"DRAINED","config":{"mark_gone":false}}`)
	mustOp(t, reactivate)
}

// TestDeactivateAgent: DEACTIVATE_AGENT (repeatable) stops the agent's
// offers and leaves its tasks running; REACTIVATE_AGENT brings them back.
func TestDeactivateAgent(t *testing.T) {
	s := subscribe(t, frameworkInfo(t, multiRole))
	agentID := s.runTask("kept")
	deactivate := `{"type":"DEACTIVATE_AGENT","deactivate_agent":{"agent_id":{"value":"` + agentID + `"}}}`
	mustOp(t, deactivate)
	mustOp(t, deactivate)
	reactivate := `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":{"value":"` + agentID + `"}}}`
	t.Cleanup(func() { op(t, reactivate) })
	if a := agents(t)[agentID]; !a.Deactivated || a.DrainInfo != nil {
		t.Errorf("deactivated agent: deactivated %v drain_info %s", a.Deactivated, a.DrainInfo)
	}
	s.mustCall(fmt.Sprintf(`{"type":"REVIVE",%s}`, s.fw()))
	if e := s.withinAgent(agentID, 2*time.Second); e != nil {
		t.Fatalf("an offer from the deactivated agent: %v", e)
	}
	mustOp(t, reactivate)
	if e := s.withinAgent(agentID, wait); e == nil {
		t.Fatal("no offer from the agent after REACTIVATE_AGENT")
	}
	if body := mustOp(t, `{"type":"GET_TASKS"}`); !strings.Contains(body, `"task_id":{"value":"kept"}`) {
		t.Errorf("the task did not run on: %s", body)
	}
}

// withinAgent returns an offer of agentID that comes within d, declining
// the others, or nil.
func (s *sched) withinAgent(agentID string, d time.Duration) *mesos.Offer {
	s.t.Helper()
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		e := s.within(scheduler.Event_OFFERS, left)
		if e == nil {
			return nil
		}
		for i, o := range e.Offers.Offers {
			if o.AgentID.Value == agentID {
				return &e.Offers.Offers[i]
			}
			s.decline(3600, o.ID.Value)
		}
	}
}

// destructive skips a check that takes an agent away unless asked to and
// another agent remains for the checks after it.
func destructive(t *testing.T) {
	t.Helper()
	if !*destructiveFlag {
		t.Skip("takes an agent away for good; run with -destructive")
	}
	active := 0
	for _, a := range agents(t) {
		if a.Active {
			active++
		}
	}
	if active < 2 {
		t.Skipf("takes an agent away for good; %d active agent(s), need 2", active)
	}
}

// TestMarkAgentGone: the agent's tasks end TASK_LOST REASON_AGENT_REMOVED
// for plain frameworks and TASK_GONE_BY_OPERATOR
// REASON_AGENT_REMOVED_BY_OPERATOR for partition-aware ones, "Agent has
// been marked gone", from the master; then FAILURE; the agent leaves
// GET_AGENTS; marking it again is 200, draining it "Unknown agent".
func TestMarkAgentGone(t *testing.T) {
	destructive(t)
	plain := subscribe(t, frameworkInfo(t, multiRole))
	agentID := plain.runTask("plain")
	// plain lets go of the agent's other resources, so they go to aware.
	plain.mustCall(fmt.Sprintf(`{"type":"SUPPRESS",%s}`, plain.fw()))
	plain.withinAgent("", time.Second)
	aware := subscribe(t, frameworkInfo(t, `"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"},{"type":"PARTITION_AWARE"}]`))
	if got := aware.runTaskOn(agentID, "aware"); got != agentID {
		t.Fatalf("task on %s, want %s", got, agentID)
	}
	gone := `{"type":"MARK_AGENT_GONE","mark_agent_gone":{"agent_id":{"value":"` + agentID + `"}}}`
	mustOp(t, gone)
	for _, c := range []struct {
		s      *sched
		task   string
		state  mesos.TaskState
		reason mesos.TaskStatus_Reason
	}{
		{plain, "plain", mesos.TASK_LOST, mesos.REASON_AGENT_REMOVED},
		{aware, "aware", mesos.TASK_GONE_BY_OPERATOR, mesos.REASON_AGENT_REMOVED_BY_OPERATOR},
	} {
		st := c.s.update(c.task)
		if st.GetState() != c.state || st.GetReason() != c.reason || st.GetMessage() != "Agent has been marked gone" || st.GetSource() != mesos.SOURCE_MASTER {
			t.Errorf("%s: %v %v %q %v, Mesos sends %v %v \"Agent has been marked gone\" from the master", c.task, st.GetState(), st.GetReason(), st.GetMessage(), st.GetSource(), c.state, c.reason)
		}
		if f := c.s.next(scheduler.Event_FAILURE).Failure; f.GetAgentID().GetValue() != agentID || f.ExecutorID != nil {
			t.Errorf("%s: FAILURE %v, Mesos sends {agent_id}", c.task, f)
		}
	}
	if _, ok := agents(t)[agentID]; ok {
		t.Errorf("the gone agent is still in GET_AGENTS")
	}
	mustOp(t, gone)
	op(t, `{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"`+agentID+`"}}}`).expect(t, 400, "Unknown agent")
	op(t, `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":{"value":"`+agentID+`"}}}`).expect(t, 400, "Agent is not deactivated")
}

// runTaskOn launches `sleep 300` on an offer of agentID.
func (s *sched) runTaskOn(agentID, taskID string) string {
	s.t.Helper()
	o := s.withinAgent(agentID, wait)
	if o == nil {
		s.t.Fatalf("no offer from agent %s", agentID)
	}
	s.launch(o.ID.Value, agentID, taskID, "sleep 300", small, "")
	for {
		st := s.update(taskID)
		switch st.GetState() {
		case mesos.TASK_RUNNING:
			return agentID
		case mesos.TASK_STARTING, mesos.TASK_STAGING:
		default:
			s.t.Fatalf("task %s: %v", taskID, st)
		}
	}
}

// TestStartMaintenance: START_MAINTENANCE takes a DRAINING machine down:
// its tasks end TASK_LOST REASON_AGENT_REMOVED "Agent HOST removed:
// Operator initiated 'Machine DOWN'" (for partition-aware frameworks too),
// then RESCIND_INVERSE_OFFER and FAILURE; the machine is in down_machines
// and cannot leave the schedule until STOP_MAINTENANCE.
func TestStartMaintenance(t *testing.T) {
	destructive(t)
	s := subscribe(t, frameworkInfo(t, `"roles":["*"],"capabilities":[{"type":"MULTI_ROLE"},{"type":"PARTITION_AWARE"}]`))
	agentID := s.runTask("downed")
	a := agents(t)[agentID]
	machine := a.machine()
	window := fmt.Sprintf(`{"machine_ids":[%s],"unavailability":{"start":{"nanoseconds":%d}}}`, machine, time.Now().Add(time.Hour).UnixNano())
	mustOp(t, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[`+window+`]}}}`)
	stop := `{"type":"STOP_MAINTENANCE","stop_maintenance":{"machines":[` + machine + `]}}`
	op(t, stop).expect(t, 400, "Machine '"+machine+"' is not in DOWN mode and cannot be brought up")
	inv := s.next(scheduler.Event_INVERSE_OFFERS).InverseOffers.InverseOffers[0]
	mustOp(t, `{"type":"START_MAINTENANCE","start_maintenance":{"machines":[`+machine+`]}}`)
	t.Cleanup(func() { op(t, stop) })
	st := s.update("downed")
	if want := "Agent " + a.AgentInfo.Hostname + " removed: Operator initiated 'Machine DOWN'"; st.GetState() != mesos.TASK_LOST ||
		st.GetReason() != mesos.REASON_AGENT_REMOVED || st.GetMessage() != want {
		t.Errorf("update %v %v %q, Mesos sends TASK_LOST REASON_AGENT_REMOVED %q", st.GetState(), st.GetReason(), st.GetMessage(), want)
	}
	if r := s.next(scheduler.Event_RESCIND_INVERSE_OFFER).RescindInverseOffer; r.InverseOfferID.Value != inv.OfferID.Value {
		t.Errorf("RESCIND_INVERSE_OFFER of %s, want %s", r.InverseOfferID.Value, inv.OfferID.Value)
	}
	if f := s.next(scheduler.Event_FAILURE).Failure; f.GetAgentID().GetValue() != agentID {
		t.Errorf("FAILURE %v, want agent %s", f, agentID)
	}
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_STATUS"}`); body != `{"type":"GET_MAINTENANCE_STATUS","get_maintenance_status":{"status":{"down_machines":[`+machine+`]}}}` {
		t.Errorf("GET_MAINTENANCE_STATUS %s, want %s down", body, machine)
	}
	op(t, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{}}}`).
		expect(t, 400, "Machine '"+machine+"' is deactivated and cannot be removed from the schedule")
	mustOp(t, stop)
	if body := mustOp(t, `{"type":"GET_MAINTENANCE_SCHEDULE"}`); body != `{"type":"GET_MAINTENANCE_SCHEDULE","get_maintenance_schedule":{"schedule":{}}}` {
		t.Errorf("GET_MAINTENANCE_SCHEDULE after STOP_MAINTENANCE: %s", body)
	}
}
