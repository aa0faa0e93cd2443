package master

import (
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mmaster "github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/tiltai/tiltai/localmesos/internal/link"
	"github.com/tiltai/tiltai/localmesos/internal/wire"
)

// Agent deactivation, draining and removal by the operator, after Mesos
// 1.11's Master::Http::drainAgent, deactivateAgent, reactivateAgent and
// markAgentGone (src/master/http.cpp) and the agent's Slave::drain.

// knownAgent is a registered agent the operator may act on.
func (m *Master) knownAgent(id string) *agentRec {
	if a := m.agents[id]; a != nil && !a.removed {
		return a
	}
	return nil
}

// deactivate stops offers from an agent and rescinds those out.
func (m *Master) deactivate(a *agentRec) {
	a.deactivated = true
	for _, o := range m.offersOn(a.id) {
		m.rescindOffer(o.id)
	}
}

func (m *Master) drainAgentCall(c *mmaster.Call_DrainAgent) *wire.Error {
	a := m.knownAgent(c.AgentID.Value)
	if a == nil {
		return wire.BadRequest("Unknown agent")
	}
	markGone := c.GetMarkGone()
	cfg := mesos.DrainConfig{MarkGone: &markGone}
	var maxGrace *time.Duration
	if g := c.MaxGracePeriod; g != nil {
		// google.protobuf.Duration {seconds, nanos} in the call, a
		// DurationInfo {nanoseconds} in drain_info.
		ns := g.Seconds*int64(time.Second) + int64(g.Nanos)
		cfg.MaxGracePeriod = &mesos.DurationInfo{Nanoseconds: ns}
		d := max(time.Duration(ns), 0)
		maxGrace = &d
	}
	m.log.Info("draining agent", "agent_id", a.id, "tasks", len(a.tasks))
	a.drain = &mesos.DrainInfo{State: mesos.DrainState_DRAINING, Config: cfg}
	a.drainStart = time.Now().Truncate(time.Second)
	m.deactivate(a)
	if a.connected {
		a.link.Post(link.DrainAgent{MaxGrace: maxGrace})
	}
	m.checkDrained(a)
	return nil
}

// checkDrained: a DRAINING agent is DRAINED once it has no task left whose
// terminal update is not acknowledged; with mark_gone it is then gone.
func (m *Master) checkDrained(a *agentRec) {
	if a.drain == nil || a.drain.State != mesos.DrainState_DRAINING || len(a.tasks) > 0 {
		return
	}
	a.drain.State = mesos.DrainState_DRAINED
	m.log.Info("agent drained", "agent_id", a.id)
	if a.drain.Config.GetMarkGone() {
		m.markGone(a)
	}
}

func (m *Master) checkDrains() {
	for _, a := range m.agents {
		if a.drain != nil && a.drain.State == mesos.DrainState_DRAINING {
			m.checkDrained(a)
		}
	}
}

func (m *Master) deactivateAgentCall(c *mmaster.Call_DeactivateAgent) *wire.Error {
	a := m.knownAgent(c.AgentID.Value)
	if a == nil {
		return wire.BadRequest("Unknown agent")
	}
	m.deactivate(a)
	return nil
}

func (m *Master) reactivateAgentCall(c *mmaster.Call_ReactivateAgent) *wire.Error {
	a := m.knownAgent(c.AgentID.Value)
	if a == nil || !a.deactivated {
		return wire.BadRequest("Agent is not deactivated")
	}
	a.deactivated, a.drain = false, nil
	if a.connected {
		a.link.Post(link.AgentReactivated{})
	}
	m.allocDirty = true
	return nil
}

func (m *Master) markAgentGoneCall(c *mmaster.Call_MarkAgentGone) *wire.Error {
	a := m.agents[c.AgentID.Value]
	if a == nil {
		return &wire.Error{Status: http.StatusNotFound, Text: "Agent '" + c.AgentID.Value + "' not found"}
	}
	if !a.gone {
		m.markGone(a)
	}
	return nil
}

// markGone removes the agent for good: partition-aware frameworks hear
// TASK_GONE_BY_OPERATOR, the others TASK_LOST; the agent shuts down and is
// refused when it comes back.
func (m *Master) markGone(a *agentRec) {
	const why = "Agent has been marked gone"
	m.log.Info("marking agent gone", "agent_id", a.id)
	if a.connected {
		a.link.Post(link.AgentShutdown{Message: why})
	}
	m.removeAgentNow(a, why, true)
}

// --- the agent's side ---
