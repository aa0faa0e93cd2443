package core

import (
	"maps"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/linkspec"
)

// restorePlanner feeds the stored state to a fresh planner.
func (m *Machine) restorePlanner() {
	m.planner.SetSpec(m.st.spec)
	m.planner.SetNextSeq(m.st.meta.NextSeq)
	for svc, r := range m.st.meta.Restarts {
		m.planner.SetRestarts(svc, r)
	}
	for _, t := range m.st.tasks {
		m.reindex(t)
		m.observe(t)
	}
}

// observe tells the planner what is known of a task.
func (m *Machine) observe(t *taskRecord) {
	pt := linkspec.Task{
		ID: t.ID, Seq: t.Seq, Service: t.Service, Config: t.Config, Phase: t.phase(),
		Host: t.Host, Ports: t.Ports, Retiring: t.Retiring, Orphan: t.Orphan, Moving: m.moving(t),
	}
	if tb, ok := m.tables[t.Service]; ok && tb.table != nil {
		if l := m.links[t.ID]; l != nil && l.acked == tb.version {
			pt.Acked = tb.table
		}
	}
	if old, ok := m.planner.Task(t.ID); ok && samePlannerTask(&old, &pt) {
		// Nothing the planner sees changed (a repeated RUNNING, a
		// status report): observing would make it decide the whole
		// service again.
		return
	}
	m.planner.Observe(pt)
}

func samePlannerTask(a, b *linkspec.Task) bool {
	return a.ID == b.ID && a.Seq == b.Seq && a.Service == b.Service && a.Config == b.Config && a.Phase == b.Phase &&
		a.Host == b.Host && maps.Equal(a.Ports, b.Ports) && a.Retiring.Equal(b.Retiring) && a.Orphan == b.Orphan && a.Moving == b.Moving && a.Acked == b.Acked
}

// decide plans once and acts on it: apply the plan to the records,
// publish link tables, place pending tasks on held offers; then resend,
// revive or suppress, re-kill, reconcile. A step that decided something
// (a launch, a retirement, a kill, a placement) asks to run again at once
// (wake) rather than plan again here: what one decision enables (a
// retired task nobody sends to may be killed) is decided by the next
// step, after this one's records are stored and its calls sent. A step
// that only records updates and acknowledgements plans exactly once.
func (m *Machine) decide(now time.Time) {
	plan := m.planner.Plan(now)
	m.planWake = plan.Wake
	changed := m.applyPlan(&plan, now)
	m.publishTables(&plan, now)
	if m.placeOffers(now) {
		changed = true
	}
	m.decisions = changed
	m.resendLinks(now)
	m.maintain(now)
	m.reviveOrSuppress()
	m.rekill(now)
	m.resetRestarts(now)
	m.recon.tick(m, now)
	if now.After(m.nextAE) && m.subscribed {
		m.antiEntropy(now)
	}
}

// applyPlan records the plan's decisions; it reports whether any was made.
func (m *Machine) applyPlan(plan *linkspec.Plan, now time.Time) bool {
	changed := false
	for _, l := range plan.Launch {
		t := &taskRecord{ID: l.TaskID, Seq: l.Seq, Service: l.Service, Config: l.Config, Phase: linkspec.Pending.String(), Created: now, Updated: now}
		m.st.addTask(t)
		m.touch(t)
		m.observe(t)
		m.event("task_planned", map[string]any{"task_id": t.ID, "service": t.Service})
		changed = true
	}
	if plan.NextSeq > m.st.meta.NextSeq {
		m.st.meta.NextSeq = plan.NextSeq
		m.st.touchMeta()
	}
	for _, id := range plan.Cancel {
		if t := m.st.tasks[id]; t != nil {
			m.forget(t, "cancelled before launch")
			changed = true
		}
	}
	for _, r := range plan.Retire {
		t := m.st.tasks[r.TaskID]
		if t == nil || !t.Retiring.IsZero() {
			continue
		}
		t.Retiring = now
		m.touch(t)
		m.observe(t)
		m.out.Metrics.Retired++
		m.event("task_retiring", map[string]any{"task_id": t.ID, "reason": r.Reason})
		m.logf(LevelInfo, "draining task", "task_id", t.ID, "reason", r.Reason)
		changed = true
	}
	for _, k := range plan.Kill {
		t := m.st.tasks[k.TaskID]
		if t == nil || t.Phase == linkspec.Killing.String() {
			continue
		}
		t.Phase = linkspec.Killing.String()
		t.KillSent = now
		m.touch(t)
		m.observe(t)
		m.kill(t, k.Grace)
		m.out.Metrics.Kills++
		m.event("task_killing", map[string]any{"task_id": t.ID, "reason": k.Reason})
		m.logf(LevelInfo, "killing task", "task_id", t.ID, "reason", k.Reason)
		changed = true
	}
	for _, h := range plan.Hold {
		inc(&m.out.Metrics.Held, h.Service, 0)
		m.out.Metrics.Held[h.Service] = h.Missing
	}
	return changed
}

func (m *Machine) kill(t *taskRecord, grace time.Duration) {
	if t.AgentID == "" {
		return // never launched: nothing to kill
	}
	call := calls.Kill(t.ID, t.AgentID)
	if grace > 0 {
		call.Kill.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace.Nanoseconds()}}
	}
	m.queue(call)
}

// rekill repeats KILLs that have not ended their task.
func (m *Machine) rekill(now time.Time) {
	if !m.subscribed {
		return
	}
	for _, t := range m.idx.killing {
		if now.Sub(t.KillSent) >= m.cfg.KillRetry {
			t.KillSent = now
			m.touch(t)
			m.kill(t, m.grace(t.Service))
		}
	}
}

func (m *Machine) grace(service string) time.Duration {
	if svc := m.st.spec.Services[service]; svc != nil {
		return svc.KillGracePeriod.Std()
	}
	return linkspec.DefaultGracePeriod
}

// forget drops a task that ended (or was never launched).
func (m *Machine) forget(t *taskRecord, why string) {
	m.dropTask(t.ID)
	m.planner.Forget(t.ID)
	delete(m.links, t.ID)
	delete(m.status, t.ID)
	m.recon.done(t.ID)
	m.event("task_gone", map[string]any{"task_id": t.ID, "reason": why})
}

// resetRestarts clears a service's crash backoff once a task launched after
// its last failure has run for RestartReset.
func (m *Machine) resetRestarts(now time.Time) {
	for svc, r := range m.st.meta.Restarts {
		if r.Failures == 0 {
			continue
		}
		for _, t := range m.idx.running[svc] {
			if t.Created.After(r.Last) && now.Sub(t.Updated) >= m.cfg.RestartReset {
				delete(m.st.meta.Restarts, svc)
				m.st.touchMeta()
				m.planner.SetRestarts(svc, linkspec.Restart{})
				break
			}
		}
	}
}

// reviveOrSuppress asks for offers only while something waits for them.
func (m *Machine) reviveOrSuppress() {
	if !m.subscribed {
		return
	}
	waiting := len(m.idx.pending) > 0
	switch {
	case waiting && m.suppressed:
		m.queue(calls.Revive())
		m.suppressed = false
	case !waiting && !m.suppressed:
		m.queue(calls.Suppress())
		m.suppressed = true
	}
}

// repair makes up for a Mesos call that failed while the subscription
// stayed up (a timeout, a 5xx, a reset connection). If the subscription
// went, re-subscribing redoes everything anyway (reconciliation, revive).
func (m *Machine) repair(c *scheduler.Call, now time.Time) {
	inc(&m.out.Metrics.CallsRepaired, c.Type.String(), 1)
	switch c.Type {
	case scheduler.Call_ACCEPT:
		// The tasks may or may not have reached the master: ask about
		// them until it answers; unknown ones end and are relaunched. And
		// decline the offers, once: if the ACCEPT never arrived they would
		// hold their resources (an ACCEPT that did arrive makes this a
		// no-op for the master).
		m.redecline(c.Accept.OfferIDs, nil)
		for _, op := range c.Accept.Operations {
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				if _, ok := m.st.tasks[ti.TaskID.Value]; ok {
					m.recon.ask(ti.TaskID.Value, now)
				}
			}
		}
	case scheduler.Call_REVIVE:
		m.suppressed = true // so that the next step revives again
	case scheduler.Call_SUPPRESS:
		m.suppressed = false
	case scheduler.Call_DECLINE:
		// Declined offers the master still thinks we hold would keep
		// their resources from everyone until they are rescinded. Decline
		// them once more (not in a loop: a master that keeps failing is
		// left to the re-subscription).
		if c.Decline != nil {
			m.redecline(c.Decline.OfferIDs, c.Decline.Filters)
		}
	}
}

// redecline declines offers a second time (never a third).
func (m *Machine) redecline(offers []mesos.OfferID, filters *mesos.Filters) {
	if !m.subscribed {
		return
	}
	var ids []mesos.OfferID
	for _, id := range offers {
		if !m.redeclined[id.Value] {
			m.redeclined[id.Value] = true
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		m.queue(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{OfferIDs: ids, Filters: filters}})
	}
}

// submit makes a spec the accepted one, unless IfMatch names another
// version or this is a dry run. The spec change is stored before any call
// that follows from it is made, and before the answer says accepted.
func (m *Machine) submit(in SubmitSpec, now time.Time) {
	cur := m.st.specRec.Version
	r := Reply{ID: in.ID, Version: cur, DryRun: in.DryRun, Warnings: in.Warnings}
	if in.IfMatch >= 0 && in.IfMatch != cur {
		r.Conflict = true
		m.out.Replies = append(m.out.Replies, r)
		return
	}
	r.Changes = linkspec.Diff(m.st.spec, in.Spec)
	if r.Changes == nil {
		r.Changes = []linkspec.Change{}
	}
	if in.DryRun || (len(r.Changes) == 0 && cur > 0) {
		m.out.Replies = append(m.out.Replies, r)
		return
	}
	m.st.specRec = specRecord{Version: cur + 1, Name: in.Name, Source: in.Source, Accepted: now.UTC(), Commands: in.Commands}
	m.st.spec = in.Spec
	m.st.dirty[keySpec] = true
	m.planner.SetSpec(in.Spec)
	m.storeFirst = true
	m.viewDirty = true
	r.Version, r.Changed = cur+1, true
	m.out.Replies = append(m.out.Replies, r)
	m.event("spec_accepted", map[string]any{"version": cur + 1, "changes": len(r.Changes)})
	m.logf(LevelInfo, "spec accepted", "version", cur+1, "changes", len(r.Changes), "name", in.Name)
}
