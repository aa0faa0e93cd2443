package localmesos

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
)

// nextOf returns the next event of one of the types, skipping the others.
func (s *rawSched) nextOf(types ...scheduler.Event_Type) rawEvent {
	s.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok || e.err != nil {
				s.t.Fatalf("stream ended waiting for %v: %v", types, e.err)
			}
			for _, typ := range types {
				if e.ev.Type == typ {
					return e
				}
			}
		case <-deadline:
			s.t.Fatalf("no %v event within 20s", types)
		}
	}
}

// runTasks accepts the next offer with the tasks (JSON TaskInfos without
// agent_id, which is filled in) and acknowledges updates until all run.
func (s *rawSched) runTasks(refuse float64, tasks ...string) {
	s.t.Helper()
	s.runTasksOn(s.next(scheduler.Event_OFFERS).ev.Offers.Offers[0], refuse, tasks...)
}

func (s *rawSched) runTasksOn(o mesos.Offer, refuse float64, tasks ...string) {
	s.t.Helper()
	var infos []string
	for _, ti := range tasks {
		infos = append(infos, strings.Replace(ti, "{", fmt.Sprintf(`{"agent_id":{"value":%q},`, o.AgentID.Value), 1))
	}
	s.accept(o.ID.Value, strings.Join(infos, ","), refuse)
	running := 0
	for running < len(tasks) {
		u := s.next(scheduler.Event_UPDATE)
		s.ack(u)
		if u.ev.Update.Status.GetState().String() == "TASK_RUNNING" {
			running++
		}
	}
}

func sleepTask(name string) string {
	return fmt.Sprintf(`{"name":%q,"task_id":{"value":%q},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],"command":{"shell":true,"value":"sleep 300"}}`, name, name)
}

// replayOp replays a recorded operator call (status, headers, texts) and,
// for a 200 with a body, compares the answer's shape.
func replayOp(t *testing.T, c *Cluster, entries []entry, seq int) {
	t.Helper()
	e := find(t, entries, seq)
	resp := send(t, c.MasterURL(), e, nil)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != e.Response.Code {
		t.Errorf("seq %d (%s): status %d %s, Mesos answered %d", seq, e.Note, resp.StatusCode, body, e.Response.Code)
		return
	}
	if e.Response.Code == 200 && len(e.Response.Body) > 0 && string(e.Response.Body) != "null" {
		matchShape(t, fmt.Sprintf("seq %d", seq), e.Response.Body, body)
	} else if e.Response.Code == 200 && len(body) > 0 {
		t.Errorf("seq %d (%s): body %q, Mesos answered none", seq, e.Note, body)
	}
}

func opCall(t *testing.T, c *Cluster, body string) (int, string) {
	t.Helper()
	resp := post(t, c.MasterURL()+"/api/v1", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, []byte(body))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually waits for cond, polling, up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentRefused reports whether agent i was told to shut down.
func agentRefused(c *Cluster, i int) bool {
	c.mu.Lock()
	a := c.agents[i].a
	c.mu.Unlock()
	if a == nil {
		return false
	}
	return a.Refused()
}

// TestMaintenanceReplay replays recording 12: a schedule on the agent's
// machine, inverse offers and their answers, offers with unavailability,
// START_MAINTENANCE (tasks lost, the agent refused while DOWN) and
// STOP_MAINTENANCE, with Mesos' validation texts.
func TestMaintenanceReplay(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "12-maintenance.json", operatorSubst(c, nil))
	a := subscribeRaw(t, c, string(find(t, pre, 1).Request.Body))
	a.runTasks(3600, sleepTask("a-sleep")) // A stays out of the offers from now on
	p := subscribeRaw(t, c, string(find(t, pre, 10).Request.Body))
	p.runTasks(0, sleepTask("p-sleep"))
	subst := operatorSubst(c, a)
	subst["<MASTER_ID>-0001"] = p.fwID
	entries := loadTranscript(t, "12-maintenance.json", subst)

	for _, seq := range []int{22, 23, 24, 25, 26, 27, 28} {
		replayOp(t, c, entries, seq)
	}
	// P gets its offer again with the unavailability, and both frameworks
	// (each has a task there) an inverse offer.
	var pInverse rawEvent
	for sawOffer := false; !sawOffer || pInverse.ev == nil; {
		e := p.nextOf(scheduler.Event_OFFERS, scheduler.Event_INVERSE_OFFERS)
		switch {
		case e.ev.Type == scheduler.Event_INVERSE_OFFERS:
			matchShape(t, "P inverse offers", find(t, entries, 33).Event, e.raw)
			pInverse = e
		case e.ev.Offers.Offers[0].Unavailability != nil:
			matchShape(t, "P offers", find(t, entries, 31).Event, e.raw)
			sawOffer = true
		}
	}
	aInverse := a.next(scheduler.Event_INVERSE_OFFERS)
	matchShape(t, "A inverse offers", find(t, entries, 32).Event, aInverse.raw)
	for _, seq := range []int{34, 35, 36, 37} { // 36, 37: the legacy endpoints
		replayOp(t, c, entries, seq)
	}

	a.mustCall(fmt.Sprintf(`{"type":"ACCEPT_INVERSE_OFFERS","framework_id":{"value":%q},"accept_inverse_offers":{"inverse_offer_ids":[{"value":%q}],"filters":{"refuse_seconds":0.5}}}`,
		a.fwID, aInverse.ev.InverseOffers.InverseOffers[0].OfferID.Value))
	p.mustCall(fmt.Sprintf(`{"type":"DECLINE_INVERSE_OFFERS","framework_id":{"value":%q},"decline_inverse_offers":{"inverse_offer_ids":[{"value":%q}],"filters":{"refuse_seconds":0.5}}}`,
		p.fwID, pInverse.ev.InverseOffers.InverseOffers[0].OfferID.Value))
	replayOp(t, c, entries, 41) // DECLINE (latest) first, then ACCEPT
	a.mustCall(string(find(t, entries, 42).Request.Body))
	// An answer does not end them: they come again after the filter.
	matchShape(t, "A inverse offers again", find(t, entries, 44).Event, a.next(scheduler.Event_INVERSE_OFFERS).raw)
	matchShape(t, "P inverse offers again", find(t, entries, 45).Event, p.next(scheduler.Event_INVERSE_OFFERS).raw)

	replayOp(t, c, entries, 51)
	replayOp(t, c, entries, 52)
	for _, x := range []struct {
		s    *rawSched
		seqs []int
	}{{a, []int{53, 56, 58}}, {p, []int{54, 55, 57}}} {
		for _, seq := range x.seqs {
			e := x.s.nextOf(scheduler.Event_UPDATE, scheduler.Event_RESCIND_INVERSE_OFFER, scheduler.Event_FAILURE)
			matchShape(t, fmt.Sprintf("seq %d", seq), find(t, entries, seq).Event, e.raw)
		}
	}
	for _, seq := range []int{62, 63, 64, 67} {
		replayOp(t, c, entries, seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.RestartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent on the DOWN machine to be refused", func() bool { return agentRefused(c, 0) })
	replayOp(t, c, entries, 71)
	for _, seq := range []int{73, 76, 77} {
		replayOp(t, c, entries, seq)
	}
	if err := c.RestartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	replayOp(t, c, entries, 81) // the same agent id again
}

// killPolicyTask runs `sleep` ignoring SIGTERM, with a long kill policy.
func killPolicyTask(name string, grace time.Duration) string {
	return fmt.Sprintf(`{"name":%q,"task_id":{"value":%q},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],"command":{"shell":true,"value":"trap 'echo ignoring' TERM; while true; do sleep 0.2; done"},"kill_policy":{"grace_period":{"nanoseconds":%d}}}`,
		name, name, grace.Nanoseconds())
}

// TestDrainReplay replays recording 13: DRAIN_AGENT's errors, the drain of
// running tasks (TASK_KILLING and TASK_KILLED with REASON_AGENT_DRAINING,
// a kill policy capped by max_grace_period), DRAINING then DRAINED only
// once the terminal updates are acknowledged, no offers meanwhile, and
// REACTIVATE_AGENT; then DEACTIVATE_AGENT alone.
func TestDrainReplay(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "13-drain-agent.json", operatorSubst(c, nil))
	a := subscribeRaw(t, c, string(find(t, pre, 3).Request.Body))
	a.runTasks(3600, sleepTask("a-sleep-2"))
	k := subscribeRaw(t, c, string(find(t, pre, 7).Request.Body))
	k.runTasks(3600, killPolicyTask("k-ignore-2", time.Minute),
		strings.Replace(sleepTask("k-trap-2"), "sleep 300", "trap 'exit 0' TERM; while true; do sleep 0.2; done", 1))
	subst := operatorSubst(c, a)
	subst["<MASTER_ID>-0001"] = k.fwID
	entries := loadTranscript(t, "13-drain-agent.json", subst)
	for _, seq := range []int{39, 40, 41, 42} {
		replayOp(t, c, entries, seq)
	}
	// max_grace_period {seconds: 1}: k-ignore's one minute is cut to 1 s.
	start := time.Now()
	if code, text := opCall(t, c, fmt.Sprintf(`{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":%q},"max_grace_period":{"seconds":1}}}`, c.Agents()[0].ID)); code != 200 || text != "" {
		t.Fatalf("DRAIN_AGENT: %d %q", code, text)
	}
	// DRAINING at once (phase 2's GET_AGENTS; some tasks may have ended).
	if _, body := opCall(t, c, `{"type":"GET_AGENTS"}`); !strings.Contains(body, `"active":false,"deactivated":true,`) ||
		!strings.Contains(body, `"drain_info":{"state":"DRAINING","config":{"max_grace_period":{"nanoseconds":1000000000},"mark_gone":false}},"estimated_drain_start_time":{"nanoseconds":`) {
		t.Errorf("GET_AGENTS right after DRAIN_AGENT: %s", body)
	}
	killed := a.next(scheduler.Event_UPDATE)
	matchShape(t, "a TASK_KILLED", find(t, entries, 119).Event, killed.raw)
	want := map[string]int{"k-trap-2 TASK_KILLING": 113, "k-ignore-2 TASK_KILLING": 116, "k-trap-2 TASK_KILLED": 122, "k-ignore-2 TASK_KILLED": 127}
	var ignored rawEvent
	for len(want) > 0 {
		u := k.next(scheduler.Event_UPDATE)
		key := u.ev.Update.Status.TaskID.Value + " " + u.ev.Update.Status.GetState().String()
		seq, ok := want[key]
		if !ok {
			t.Fatalf("unexpected update %s", u.raw)
		}
		delete(want, key)
		matchShape(t, key, find(t, entries, seq).Event, u.raw)
		if key == "k-ignore-2 TASK_KILLED" {
			ignored = u
			continue
		}
		k.ack(u)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("k-ignore-2 took %v to die: max_grace_period not applied", d)
	}
	// Not DRAINED while a terminal update is unacknowledged.
	if _, body := opCall(t, c, `{"type":"GET_AGENTS"}`); !strings.Contains(body, `"state":"DRAINING"`) {
		t.Errorf("drained before the acknowledgements: %s", body)
	}
	k.ack(ignored)
	a.ack(killed)
	eventually(t, "DRAINED", func() bool {
		_, body := opCall(t, c, `{"type":"GET_AGENTS"}`)
		return strings.Contains(body, `"state":"DRAINED"`)
	})
	replayOp(t, c, entries, 134)
	a.mustCall(fmt.Sprintf(`{"type":"REVIVE","framework_id":{"value":%q}}`, a.fwID))
	if e := a.within(scheduler.Event_OFFERS, 300*time.Millisecond); e != nil {
		t.Fatalf("offer from a drained agent: %s", e.raw)
	}
	replayOp(t, c, entries, 135)
	e := a.within(scheduler.Event_OFFERS, 10*time.Second)
	if e == nil {
		_, body := opCall(t, c, `{"type":"GET_AGENTS"}`)
		t.Fatalf("no offer after REACTIVATE_AGENT: %s", body)
	}

	// DEACTIVATE_AGENT alone: the offer is rescinded, the task runs on.
	a.runTasksOn(e.ev.Offers.Offers[0], 0, sleepTask("a-sleep-3"))
	for _, seq := range []int{151, 153, 154} {
		replayOp(t, c, entries, seq)
	}
	a.mustCall(fmt.Sprintf(`{"type":"REVIVE","framework_id":{"value":%q}}`, a.fwID))
	if e := a.within(scheduler.Event_OFFERS, 300*time.Millisecond); e != nil {
		t.Fatalf("offer from a deactivated agent: %s", e.raw)
	}
	for _, seq := range []int{158, 161, 162} {
		replayOp(t, c, entries, seq)
	}
	// An idle agent is DRAINED at once; the `nanoseconds` key of phase 1 is
	// no field of google.protobuf.Duration and is dropped.
	a.mustCall(fmt.Sprintf(`{"type":"KILL","framework_id":{"value":%q},"kill":{"task_id":{"value":"a-sleep-3"}}}`, a.fwID))
	for {
		u := a.next(scheduler.Event_UPDATE)
		a.ack(u)
		if u.ev.Update.Status.GetState().String() == "TASK_KILLED" {
			break
		}
	}
	eventually(t, "a-sleep-3 to be gone", func() bool {
		_, body := opCall(t, c, `{"type":"GET_TASKS"}`)
		return strings.Contains(body, `"tasks":[]`)
	})
	replayOp(t, c, entries, 44)
	_, body := opCall(t, c, `{"type":"GET_AGENTS"}`)
	if !strings.Contains(body, `"drain_info":{"state":"DRAINED","config":{"max_grace_period":{"nanoseconds":0},"mark_gone":false}}`) {
		t.Errorf("GET_AGENTS after DRAIN_AGENT {nanoseconds: 5e9} of an idle agent: %s", body)
	}
}

// TestMarkAgentGone replays run 2 of recording 13: MARK_AGENT_GONE ends the
// tasks (TASK_GONE_BY_OPERATOR for a partition-aware framework, TASK_LOST
// otherwise), the agent shuts down and is refused when it comes back, and
// DRAIN_AGENT with mark_gone ends the same way once drained.
func TestMarkAgentGone(t *testing.T) {
	c := replayCluster(t)
	pre := loadTranscript(t, "13-drain-agent.json", operatorSubst(c, nil))
	a := subscribeRaw(t, c, string(find(t, pre, 188).Request.Body))
	a.runTasks(3600, sleepTask("a2-sleep"))
	p := subscribeRaw(t, c, string(find(t, pre, 201).Request.Body))
	p.runTasks(3600, sleepTask("p2-sleep"))
	subst := operatorSubst(c, a)
	subst["<MASTER_ID_2>-0000"], subst["<MASTER_ID_2>-0001"], subst["<MASTER_ID_2>-S0"] = a.fwID, p.fwID, c.Agents()[0].ID
	entries := loadTranscript(t, "13-drain-agent.json", subst)
	replayOp(t, c, entries, 215)
	replayOp(t, c, entries, 216)
	matchShape(t, "P2 gone", find(t, entries, 218).Event, p.next(scheduler.Event_UPDATE).raw)
	matchShape(t, "A2 lost", find(t, entries, 220).Event, a.next(scheduler.Event_UPDATE).raw)
	matchShape(t, "A2 failure", find(t, entries, 222).Event, a.next(scheduler.Event_FAILURE).raw)
	matchShape(t, "P2 failure", find(t, entries, 223).Event, p.next(scheduler.Event_FAILURE).raw)
	for _, seq := range []int{227, 229, 230, 231} {
		replayOp(t, c, entries, seq)
	}
	eventually(t, "the gone agent to shut down", func() bool { return agentRefused(c, 0) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.RestartAgent(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restarted gone agent to be refused", func() bool { return agentRefused(c, 0) })
	replayOp(t, c, entries, 242)
}

// TestDrainMarkGone: DRAIN_AGENT with mark_gone removes the agent once it
// is drained.
func TestDrainMarkGone(t *testing.T) {
	c := startCluster(t, testConfig(t))
	a := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x",`+multiRole+`}}}`)
	a.runTasks(0, sleepTask("t"))
	if code, text := opCall(t, c, fmt.Sprintf(`{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":%q},"mark_gone":true}}`, c.Agents()[0].ID)); code != 200 {
		t.Fatalf("DRAIN_AGENT: %d %q", code, text)
	}
	u := a.next(scheduler.Event_UPDATE)
	if u.ev.Update.Status.GetState().String() != "TASK_KILLED" || u.ev.Update.Status.GetReason().String() != "REASON_AGENT_DRAINING" {
		t.Fatalf("drain update: %s", u.raw)
	}
	a.ack(u)
	a.next(scheduler.Event_FAILURE)
	eventually(t, "the drained agent to be gone", func() bool { return agentRefused(c, 0) })
	if _, body := opCall(t, c, `{"type":"GET_AGENTS"}`); !strings.Contains(body, `"agents":[]`) {
		t.Errorf("GET_AGENTS: %s", body)
	}
}

func TestParseAttributes(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "rack:r1;zone:a", want: `[{"name":"rack","type":"TEXT","text":{"value":"r1"}},{"name":"zone","type":"TEXT","text":{"value":"a"}}]`},
		{in: "level:2;slots:[1-4,8-9]", want: `[{"name":"level","type":"SCALAR","scalar":{"value":2.0}},{"name":"slots","type":"RANGES","ranges":{"range":[{"begin":1,"end":4},{"begin":8,"end":9}]}}]`},
		{in: "", want: `[]`},
		{in: "rack", err: "invalid attribute key:value pair"},
		{in: "s:{a,b}", err: "set values are not allowed"},
		{in: "r:[4-1]", err: "invalid range"},
	} {
		attrs, err := ParseAttributes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := string(ojsonList(attrs)); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func ojsonList(attrs []mesos.Attribute) []byte { return ojson.Marshal(api.RawList(attrs)) }

// TestAgentMachines: with several agents each is a machine of its own
// (127.0.0.2, 127.0.0.3: hostname and address), with its attributes in
// offers and GET_AGENTS; a schedule on one machine touches that agent only.
func TestAgentMachines(t *testing.T) {
	cfg := testConfig(t)
	cfg.Agents, cfg.SplitPorts = 2, true
	cfg.AgentAttributes = []string{"rack:r1;zone:a", "rack:r2;level:2"}
	c := startCluster(t, cfg)
	agents := c.Agents()
	for i, want := range []string{"127.0.0.2", "127.0.0.3"} {
		if agents[i].Hostname != want || !strings.HasPrefix(agents[i].Endpoint, want+":") {
			t.Fatalf("agent %d: hostname %s endpoint %s, want %s", i, agents[i].Hostname, agents[i].Endpoint, want)
		}
	}
	s := subscribeRaw(t, c, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x",`+multiRole+`}}}`)
	seen := map[string]string{}
	for len(seen) < 2 {
		for _, o := range s.next(scheduler.Event_OFFERS).ev.Offers.Offers {
			seen[o.Hostname] = string(ojsonList(o.Attributes))
			if o.URL.Address.GetIP() != o.Hostname {
				t.Errorf("offer url address %s on %s", o.URL.Address.GetIP(), o.Hostname)
			}
		}
	}
	if want := `[{"name":"rack","type":"TEXT","text":{"value":"r2"}},{"name":"level","type":"SCALAR","scalar":{"value":2.0}}]`; seen["127.0.0.3"] != want {
		t.Errorf("attributes in offers of 127.0.0.3: %s, want %s", seen["127.0.0.3"], want)
	}
	if _, body := opCall(t, c, `{"type":"GET_AGENTS"}`); !strings.Contains(body, `"hostname":"127.0.0.2","port":`) ||
		!strings.Contains(body, `"attributes":[{"name":"rack","type":"TEXT","text":{"value":"r1"}}`) || !strings.Contains(body, `"pid":"slave(1)@127.0.0.3:`) {
		t.Errorf("GET_AGENTS: %s", body)
	}
	// A window on 127.0.0.3's machine: only its offers carry it.
	if code, text := opCall(t, c, `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[{"machine_ids":[{"hostname":"127.0.0.3","ip":"127.0.0.3"}],"unavailability":{"start":{"nanoseconds":1}}}]}}}`); code != 200 {
		t.Fatalf("UPDATE_MAINTENANCE_SCHEDULE: %d %s", code, text)
	}
	for got := 0; got < 2; {
		for _, o := range s.next(scheduler.Event_OFFERS).ev.Offers.Offers {
			if (o.Hostname == "127.0.0.3") != (o.Unavailability != nil) {
				t.Errorf("offer on %s with unavailability %v", o.Hostname, o.Unavailability)
			}
			got++
			s.decline(o.ID.Value, 0)
		}
	}
}
