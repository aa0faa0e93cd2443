package core

import (
	"maps"
	"slices"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/linkspec"
	placer "github.com/tiltai/tiltai/scheduler/placement"
)

// Agent maintenance. An inverse offer says a maintenance window is coming
// for an agent: its tasks are moved the way a rolling replacement moves
// them (a replacement placed elsewhere first, as the agent's offers carry
// the window and placement will not use them; then the old task retired
// drain-first), and the inverse offer is accepted once no task of ours is
// left there. A task the agent itself kills for DRAIN_AGENT (TASK_KILLING,
// REASON_AGENT_DRAINING) is in phase killing at once: out of every table,
// and replaced.

var (
	phaseLaunched    = linkspec.Launched.String()
	phaseRunning     = linkspec.Running.String()
	phaseKilling     = linkspec.Killing.String()
	phaseUnreachable = linkspec.Unreachable.String()
)

// maintenance is set on an agent from its first inverse offer until an
// offer of it carries no unavailability (the window was cancelled, or the
// agent is back from it).
func (a *agentInfo) leaving() bool { return a != nil && a.Maintenance }

// moving: the task's agent is going into maintenance.
func (m *Machine) moving(t *taskRecord) bool {
	return t.AgentID != "" && m.agents[t.AgentID].leaving()
}

func (m *Machine) onInverseOffer(io *mesos.InverseOffer, now time.Time) {
	if io.AgentID == nil {
		return // a whole-framework inverse offer: Mesos never sends one for maintenance
	}
	a := m.agent(io.AgentID.Value)
	if !slices.Contains(a.Inverse, io.OfferID.Value) {
		a.Inverse = append(a.Inverse, io.OfferID.Value)
	}
	if u := io.URL; u != nil && u.Address.Hostname != nil && a.Hostname == "" {
		a.Hostname = *u.Address.Hostname
	}
	u := io.Unavailability
	w := &placer.Window{Start: time.Unix(0, u.Start.Nanoseconds)}
	if u.Duration != nil {
		w.Duration = time.Duration(u.Duration.Nanoseconds)
	}
	a.Unavailability = w
	m.viewDirty = true
	if a.Maintenance {
		return
	}
	a.Maintenance = true
	n := len(m.idx.agent[a.ID])
	m.event("agent_maintenance", map[string]any{"agent_id": a.ID, "host": a.Hostname, "start": w.Start.UTC(), "tasks": n})
	m.logf(LevelInfo, "agent going into maintenance: moving its tasks", "agent_id", a.ID, "host", a.Hostname, "start", w.Start.UTC(), "tasks", n)
	m.reobserveAgent(a.ID)
}

func (m *Machine) onRescindInverse(id string) {
	for _, a := range m.agents {
		if i := slices.Index(a.Inverse, id); i >= 0 {
			a.Inverse = slices.Delete(a.Inverse, i, i+1)
			m.viewDirty = true
		}
	}
}

// forgetInverse: inverse offers die with the subscription (the master
// makes new ones); the agents stay in maintenance.
func (m *Machine) forgetInverse() {
	for _, a := range m.agents {
		a.Inverse = nil
	}
}

// maintenanceOver: an offer of an agent in maintenance came without
// unavailability.
func (m *Machine) maintenanceOver(a *agentInfo) {
	a.Maintenance = false
	a.Inverse = nil
	m.viewDirty = true
	m.event("agent_available", map[string]any{"agent_id": a.ID, "host": a.Hostname})
	m.reobserveAgent(a.ID)
}

func (m *Machine) reobserveAgent(id string) {
	for _, t := range m.idx.agent[id] {
		m.observe(t)
	}
}

// maintain accepts the inverse offers of agents no task of ours is on
// any more.
func (m *Machine) maintain(now time.Time) {
	if !m.subscribed {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(m.agents)) {
		a := m.agents[id]
		if !a.Maintenance || len(a.Inverse) == 0 || len(m.idx.agent[a.ID]) > 0 {
			continue
		}
		ids := make([]mesos.OfferID, len(a.Inverse))
		for i, id := range a.Inverse {
			ids[i] = mesos.OfferID{Value: id}
		}
		a.Inverse = nil
		m.queue(calls.AcceptInverseOffers(ids...))
		m.out.Metrics.InverseAccepted++
		m.viewDirty = true
		m.event("agent_vacated", map[string]any{"agent_id": a.ID, "host": a.Hostname})
		m.logf(LevelInfo, "agent vacated for maintenance: inverse offer accepted", "agent_id", a.ID, "host", a.Hostname)
	}
}

// onDraining notes an agent the operator drains (DRAIN_AGENT), from a
// TASK_KILLING we did not ask for.
func (m *Machine) onDraining(t *taskRecord, now time.Time) {
	t.KillSent = now // the agent kills it, within the drain's grace period
	a := m.agent(t.AgentID)
	if !a.Draining {
		a.Draining = true
		m.viewDirty = true
		m.event("agent_draining", map[string]any{"agent_id": a.ID, "host": t.Host})
		m.logf(LevelInfo, "agent draining: its tasks are replaced elsewhere", "agent_id", a.ID, "host", t.Host)
	}
}

func acceptLaunch(offerID string, tasks []mesos.TaskInfo) *scheduler.Call {
	return calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(mesos.OfferID{Value: offerID})).
		With(calls.RefuseSeconds(time.Second))
}

func decline(ids []mesos.OfferID, refuse time.Duration) *scheduler.Call {
	return calls.Decline(ids...).With(calls.RefuseSeconds(refuse))
}
