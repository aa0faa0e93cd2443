package core

import "github.com/tiltai/tiltai/linkspec"

// index keeps the tasks by what a step looks for, so that a step costs
// what its inputs touch, not what the whole state holds: with 10,000
// tasks, an acknowledgement must not make the step scan them all for
// pending launches, kills to repeat, tables to resend or tasks to
// reconcile. Every change of a task record goes through touch (it must be
// stored anyway), which re-indexes it; a change of what a task has
// acknowledged, or of its service's table, goes through resync.
type index struct {
	of          map[string]indexed                // task → how it is indexed now
	pending     map[string]*taskRecord            // phase pending
	launched    map[string]*taskRecord            // phase launched
	killing     map[string]*taskRecord            // phase killing
	unreachable map[string]*taskRecord            // phase unreachable
	running     map[string]map[string]*taskRecord // service → tasks in phase running
	service     map[string]map[string]*taskRecord // service → every task
	spread      map[string]map[string]int         // agent → service → tasks placed there
	agent       map[string]map[string]*taskRecord // agent → tasks placed there
	sendNow     map[string]*taskRecord            // sendable tasks not yet sent their service's current table, or due for anti-entropy
	resends     resendHeap                        // tasks sent their current table and not acknowledging it, by when it is due again
}

type indexed struct {
	phase, service, agent string
}

func newIndex() index {
	return index{
		of: map[string]indexed{}, pending: map[string]*taskRecord{}, launched: map[string]*taskRecord{},
		killing: map[string]*taskRecord{}, unreachable: map[string]*taskRecord{},
		running: map[string]map[string]*taskRecord{}, service: map[string]map[string]*taskRecord{},
		spread: map[string]map[string]int{}, agent: map[string]map[string]*taskRecord{}, sendNow: map[string]*taskRecord{},
	}
}

func (x *index) byPhase(phase string) map[string]*taskRecord {
	switch phase {
	case linkspec.Pending.String():
		return x.pending
	case linkspec.Launched.String():
		return x.launched
	case linkspec.Killing.String():
		return x.killing
	case linkspec.Unreachable.String():
		return x.unreachable
	}
	return nil
}

func addTo[V any](m map[string]map[string]V, k, id string, v V) {
	if m[k] == nil {
		m[k] = map[string]V{}
	}
	m[k][id] = v
}

func removeFrom[V any](m map[string]map[string]V, k, id string) {
	delete(m[k], id)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

func (x *index) remove(id string) {
	old, ok := x.of[id]
	if !ok {
		return
	}
	delete(x.of, id)
	if p := x.byPhase(old.phase); p != nil {
		delete(p, id)
	}
	if old.phase == linkspec.Running.String() {
		removeFrom(x.running, old.service, id)
	}
	removeFrom(x.service, old.service, id)
	if old.agent != "" {
		removeFrom(x.agent, old.agent, id)
		x.spread[old.agent][old.service]--
		if x.spread[old.agent][old.service] == 0 {
			delete(x.spread[old.agent], old.service)
			if len(x.spread[old.agent]) == 0 {
				delete(x.spread, old.agent)
			}
		}
	}
	delete(x.sendNow, id) // a resend entry goes when it comes up
}

func (x *index) add(t *taskRecord) {
	x.of[t.ID] = indexed{phase: t.Phase, service: t.Service, agent: t.AgentID}
	if p := x.byPhase(t.Phase); p != nil {
		p[t.ID] = t
	}
	if t.Phase == linkspec.Running.String() {
		addTo(x.running, t.Service, t.ID, t)
	}
	addTo(x.service, t.Service, t.ID, t)
	if t.AgentID != "" {
		addTo(x.agent, t.AgentID, t.ID, t)
		if x.spread[t.AgentID] == nil {
			x.spread[t.AgentID] = map[string]int{}
		}
		x.spread[t.AgentID][t.Service]++
	}
}

// touch marks a task's record changed (to be stored) and re-indexes it.
func (m *Machine) touch(t *taskRecord) {
	m.st.touchTask(t.ID)
	m.reindex(t)
}

func (m *Machine) reindex(t *taskRecord) {
	if old, ok := m.idx.of[t.ID]; !ok || old != (indexed{phase: t.Phase, service: t.Service, agent: t.AgentID}) {
		m.idx.remove(t.ID)
		m.idx.add(t)
	}
	m.resync(t)
}

// resync puts a task where resendLinks finds it: to be sent now (never
// sent the current version, or anti-entropy), waiting for its
// acknowledgement, or nowhere (in sync, or not running).
func (m *Machine) resync(t *taskRecord) {
	tb := m.tables[t.Service]
	l := m.links[t.ID]
	switch {
	case !sendable(t) || tb == nil:
		delete(m.idx.sendNow, t.ID)
	case l == nil || l.sent != tb.version || l.force:
		m.idx.sendNow[t.ID] = t
	case l.acked != tb.version:
		delete(m.idx.sendNow, t.ID)
		m.queueResend(t.ID, l)
	default:
		delete(m.idx.sendNow, t.ID)
	}
}

// needsSend: the task runs, its service has a table, and its executor has
// not acknowledged it (or must be sent it again, anti-entropy).
func (m *Machine) needsSend(t *taskRecord) bool {
	if !sendable(t) {
		return false
	}
	tb := m.tables[t.Service]
	if tb == nil {
		return false
	}
	l := m.links[t.ID]
	return l == nil || l.acked != tb.version || l.force
}

// resyncService re-checks every task of a service (its table changed).
func (m *Machine) resyncService(service string) {
	for _, t := range m.idx.service[service] {
		m.resync(t)
	}
}

// dropTask forgets a deleted task in the index.
func (m *Machine) dropTask(id string) {
	m.st.deleteTask(id)
	m.idx.remove(id)
}
