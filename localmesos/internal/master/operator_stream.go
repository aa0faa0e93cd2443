package master

import (
	"errors"
	"net/http"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// The operator event stream (SUBSCRIBE on /api/v1): SUBSCRIBED with the
// state, a HEARTBEAT right after it and every heartbeat interval, then
// TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED, FRAMEWORK_ADDED,
// FRAMEWORK_UPDATED and FRAMEWORK_REMOVED (Mesos 1.11 master.proto, Event).
//
// Rather than a hook at every place the master changes, the events are
// derived after each turn of the master's loop by comparing its state with
// what the subscribers were last told (diffOperatorView): a task's statuses
// are append-only, a framework's re-registration time moves when it
// re-subscribes, and an agent is present until removed. Events of one turn
// come in the order framework, agent, task, removals; within a kind by id.

// operatorState is the master's side of the operator streams.
type operatorState struct {
	subs []*wire.Stream
	view operatorView
}

// operatorView is what the subscribers have been told.
type operatorView struct {
	frameworks map[string]time.Time // id → last (re-)registration
	agents     map[string]bool
	tasks      map[*task]int // statuses published
}

// opEvent is an operator event in both encodings.
type opEvent struct {
	pb   *mmaster.Event
	json []byte
}

func (e opEvent) Marshal() ([]byte, error)   { return e.pb.Marshal() }
func (e opEvent) Unmarshal([]byte) error     { return errors.New("an operator event is write-only") }
func (e opEvent) MesosJSON() ([]byte, error) { return e.json, nil }

// plainEvent is an event whose JSON is the plain rendering of its message.
func plainEvent(e *mmaster.Event) opEvent { return opEvent{pb: e, json: api.Raw(e)} }

func (h *masterHTTP) operatorSubscribe(w http.ResponseWriter, r *http.Request, codec wire.Codec) error {
	stream := wire.NewStream(codec, "")
	if !h.onMaster(func(m *Master) { m.operatorSubscribe(stream) }) {
		return errMasterStopping
	}
	// No Mesos-Stream-Id on the operator stream.
	w.Header().Set("Content-Type", codec.MediaType())
	ctx, cancel := h.streamContext(r)
	defer cancel()
	stream.Serve(ctx, w, wire.ServeOptions{
		Heartbeat:         &mmaster.Event{Type: mmaster.Event_HEARTBEAT},
		HeartbeatInterval: h.m.cfg.HeartbeatInterval,
		RecordPerChunk:    true,
	})
	h.m.box.Post(masterFunc(func(m *Master) { m.operatorUnsubscribe(stream) }))
	return nil
}

func (m *Master) operatorSubscribe(s *wire.Stream) {
	// Tell the others what changed so far this turn, so that the new
	// subscriber's snapshot and the view agree.
	m.publishOperatorEvents()
	if len(m.ops.subs) == 0 {
		m.ops.view = operatorView{frameworks: map[string]time.Time{}, agents: map[string]bool{}, tasks: map[*task]int{}}
		m.diffOperatorView() // the snapshot itself: nothing to send
	}
	m.ops.subs = append(m.ops.subs, s)
	st, sj := m.opState()
	hb := m.cfg.HeartbeatInterval.Seconds()
	s.Send(opEvent{
		pb: &mmaster.Event{Type: mmaster.Event_SUBSCRIBED, Subscribed: &mmaster.Event_Subscribed{GetState: st, HeartbeatIntervalSeconds: &hb}},
		json: ojson.Marshal(ojson.Object{{K: "type", V: "SUBSCRIBED"}, {K: "subscribed", V: ojson.Object{
			{K: "get_state", V: sj}, {K: "heartbeat_interval_seconds", V: ojson.Double(hb)}}}}),
	})
	s.Send(&mmaster.Event{Type: mmaster.Event_HEARTBEAT})
}

func (m *Master) operatorUnsubscribe(s *wire.Stream) {
	for i, x := range m.ops.subs {
		if x == s {
			m.ops.subs = append(m.ops.subs[:i], m.ops.subs[i+1:]...)
			return
		}
	}
}

// publishOperatorEvents sends what changed since the last turn to every
// operator subscriber. It runs after each turn of the master's loop.
func (m *Master) publishOperatorEvents() {
	if len(m.ops.subs) == 0 {
		return
	}
	events := m.diffOperatorView()
	live := m.ops.subs[:0]
	for _, s := range m.ops.subs {
		for _, e := range events {
			s.Send(e)
		}
		if !s.Gone() {
			live = append(live, s)
		}
	}
	m.ops.subs = live
}

// diffOperatorView returns the events that bring the view up to the
// Master's state, and updates the view.
func (m *Master) diffOperatorView() []opEvent {
	v := &m.ops.view
	var fwEvents, agentEvents, taskEvents, removals []opEvent
	for _, id := range api.SortedKeys(m.frameworks) {
		fw := m.frameworks[id]
		stamp := fw.registered
		if !fw.reregistered.IsZero() {
			stamp = fw.reregistered
		}
		prev, known := v.frameworks[id]
		if known && prev.Equal(stamp) {
			continue
		}
		v.frameworks[id] = stamp
		pb, _ := m.opFramework(fw, true)
		e := &mmaster.Event{Type: mmaster.Event_FRAMEWORK_ADDED, FrameworkAdded: &mmaster.Event_FrameworkAdded{Framework: pb}}
		if known {
			e = &mmaster.Event{Type: mmaster.Event_FRAMEWORK_UPDATED, FrameworkUpdated: &mmaster.Event_FrameworkUpdated{Framework: pb}}
		}
		fwEvents = append(fwEvents, plainEvent(e))
	}
	for _, id := range sortedAgentIDs(m.agents) {
		a := m.agents[id]
		if a.removed || v.agents[id] {
			continue
		}
		v.agents[id] = true
		pb, js := m.opAgent(a)
		agentEvents = append(agentEvents, opEvent{
			pb:   &mmaster.Event{Type: mmaster.Event_AGENT_ADDED, AgentAdded: &mmaster.Event_AgentAdded{Agent: pb}},
			json: ojson.Marshal(ojson.Object{{K: "type", V: "AGENT_ADDED"}, {K: "agent_added", V: ojson.Object{{K: "agent", V: js}}}}),
		})
	}
	// Tasks of current frameworks and of those removed since the last turn.
	fws := make([]*framework, 0, len(m.frameworks))
	for _, id := range api.SortedKeys(m.frameworks) {
		fws = append(fws, m.frameworks[id])
	}
	var gone []*framework
	for _, fw := range m.completedFws {
		if _, told := v.frameworks[fw.id]; told && m.frameworks[fw.id] == nil {
			gone = append(gone, fw)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].id < gone[j].id })
	seen := map[*task]bool{}
	for _, fw := range append(fws, gone...) {
		for _, t := range append(tasksOf(fw), fw.completed...) {
			seen[t] = true
			n, known := v.tasks[t]
			if !known {
				added := opTask(t)
				staging := mesos.TASK_STAGING
				added.State, added.Statuses, added.StatusUpdateState, added.StatusUpdateUUID = &staging, nil, nil, nil
				taskEvents = append(taskEvents, plainEvent(&mmaster.Event{Type: mmaster.Event_TASK_ADDED, TaskAdded: &mmaster.Event_TaskAdded{Task: added}}))
			}
			for _, st := range t.statuses[n:] {
				state := st.GetState()
				taskEvents = append(taskEvents, plainEvent(&mmaster.Event{Type: mmaster.Event_TASK_UPDATED, TaskUpdated: &mmaster.Event_TaskUpdated{
					FrameworkID: mesos.FrameworkID{Value: t.fwID}, Status: st, State: &state}}))
			}
			v.tasks[t] = len(t.statuses)
		}
	}
	for t := range v.tasks {
		if !seen[t] {
			delete(v.tasks, t) // no longer kept by the master
		}
	}
	for _, fw := range gone {
		delete(v.frameworks, fw.id)
		removals = append(removals, plainEvent(&mmaster.Event{Type: mmaster.Event_FRAMEWORK_REMOVED,
			FrameworkRemoved: &mmaster.Event_FrameworkRemoved{FrameworkInfo: api.FrameworkInfoShown(fw.info)}}))
	}
	for _, id := range api.SortedKeys(v.frameworks) {
		if m.frameworks[id] == nil { // removed and already dropped from the completed list
			delete(v.frameworks, id)
		}
	}
	for _, id := range api.SortedKeys(v.agents) {
		if a := m.agents[id]; a == nil || a.removed {
			delete(v.agents, id)
			if a != nil && a.gone {
				continue // recording 13: MARK_AGENT_GONE sends no AGENT_REMOVED
			}
			removals = append(removals, plainEvent(&mmaster.Event{Type: mmaster.Event_AGENT_REMOVED,
				AgentRemoved: &mmaster.Event_AgentRemoved{AgentID: mesos.AgentID{Value: id}}}))
		}
	}
	out := append(fwEvents, agentEvents...)
	out = append(out, taskEvents...)
	return append(out, removals...)
}
