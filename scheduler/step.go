package scheduler

import (
	"fmt"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/linkspec"
)

// restorePlanner feeds the stored state to a fresh planner.
func (s *Scheduler) restorePlanner() {
	s.planner.SetSpec(s.st.spec)
	s.planner.SetNextSeq(s.st.meta.NextSeq)
	for svc, r := range s.st.meta.Restarts {
		s.planner.SetRestarts(svc, r)
	}
	for _, t := range s.st.tasks {
		s.observe(t)
	}
}

// observe tells the planner what is known of a task.
func (s *Scheduler) observe(t *taskRecord) {
	pt := linkspec.Task{
		ID: t.ID, Seq: t.Seq, Service: t.Service, Config: t.Config, Phase: t.phase(),
		Host: t.Host, Ports: t.Ports, Retiring: t.Retiring, Orphan: t.Orphan,
	}
	if tb, ok := s.tables[t.Service]; ok && tb.table != nil {
		if l := s.links[t.ID]; l != nil && l.acked == tb.version {
			pt.Acked = tb.table
		}
	}
	s.planner.Observe(pt)
}

// step plans and acts until there is nothing more to do now: apply the
// plan to the records, place pending tasks on held offers, publish link
// tables, then persist everything changed and queue the Mesos calls.
func (s *Scheduler) step() error {
	now := s.cfg.Now()
	for i := 0; i < 4; i++ {
		plan := s.planner.Plan(now)
		changed := s.apply(&plan, now)
		s.publishTables(&plan, now)
		if s.placeOffers(now) {
			changed = true
		}
		if !changed {
			break
		}
	}
	s.resendLinks(now)
	s.reviveOrSuppress()
	s.rekill(now)
	s.resetRestarts(now)
	s.recon.tick(s, now)
	if now.After(s.nextAE) && s.subscribed {
		s.antiEntropy(now)
	}
	return s.commit()
}

// commit persists what changed, then queues the calls that depend on it.
// Link-table MESSAGEs that follow from what tasks did (one ran, one
// ended) depend on nothing stored but the version reservation: they go
// out first and the table change does not wait for the disk. If the write
// then fails, the scheduler stops, and a restarted one that meets an
// executor on an unrecorded version republishes under a fresh one
// (onAck). Tables that follow from a spec change, or need a new
// reservation, wait for the write, as do ACCEPTs, KILLs and ACKNOWLEDGEs.
func (s *Scheduler) commit() error {
	if s.crashed.Load() {
		return errTestCrash
	}
	var early, late []*scheduler.Call
	if s.storeFirst {
		late = s.calls
	} else {
		for _, c := range s.calls {
			if c.Type == scheduler.Call_MESSAGE {
				early = append(early, c)
			} else {
				late = append(late, c)
			}
		}
	}
	s.calls = nil
	if len(early) > 0 {
		s.inFlight++
		s.outbox <- early
	}
	batch, err := s.st.flush()
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		if err := s.store.Apply(ctxBackground(), batch); err != nil {
			// Write-ahead: what was not stored must not be acted on. Stop;
			// a restarted scheduler resumes from what is stored and
			// reconciles the rest.
			return fmt.Errorf("cannot persist the scheduler state, stopping before acting on it: %w", err)
		}
		s.metrics.storeWrites.Inc()
	}
	s.storeFirst = false
	if len(late) == 0 {
		return nil
	}
	if h := s.cfg.hooks.afterPersist; h != nil && h(late) {
		return errTestCrash
	}
	s.inFlight++
	s.outbox <- late
	return nil
}

var errTestCrash = fmt.Errorf("test crash")

// apply records the plan's decisions; it reports whether any was made.
func (s *Scheduler) apply(plan *linkspec.Plan, now time.Time) bool {
	changed := false
	for _, l := range plan.Launch {
		t := &taskRecord{ID: l.TaskID, Seq: l.Seq, Service: l.Service, Config: l.Config, Phase: linkspec.Pending.String(), Created: now, Updated: now}
		s.st.tasks[t.ID] = t
		s.st.touchTask(t.ID)
		s.observe(t)
		s.event("task_planned", map[string]any{"task_id": t.ID, "service": t.Service})
		changed = true
	}
	if plan.NextSeq > s.st.meta.NextSeq {
		s.st.meta.NextSeq = plan.NextSeq
		s.st.touchMeta()
	}
	for _, id := range plan.Cancel {
		if t := s.st.tasks[id]; t != nil {
			s.forget(t, "cancelled before launch")
			changed = true
		}
	}
	for _, r := range plan.Retire {
		t := s.st.tasks[r.TaskID]
		if t == nil || !t.Retiring.IsZero() {
			continue
		}
		t.Retiring = now
		s.st.touchTask(t.ID)
		s.observe(t)
		s.metrics.retired.Inc()
		s.event("task_retiring", map[string]any{"task_id": t.ID, "reason": r.Reason})
		s.log.Info("draining task", "task_id", t.ID, "reason", r.Reason)
		changed = true
	}
	for _, k := range plan.Kill {
		t := s.st.tasks[k.TaskID]
		if t == nil || t.Phase == linkspec.Killing.String() {
			continue
		}
		t.Phase = linkspec.Killing.String()
		t.KillSent = now
		s.st.touchTask(t.ID)
		s.observe(t)
		s.kill(t, k.Grace)
		s.metrics.kills.Inc()
		s.event("task_killing", map[string]any{"task_id": t.ID, "reason": k.Reason})
		s.log.Info("killing task", "task_id", t.ID, "reason", k.Reason)
		changed = true
	}
	for _, h := range plan.Hold {
		s.metrics.held.WithLabelValues(h.Service).Set(float64(h.Missing))
	}
	return changed
}

func (s *Scheduler) kill(t *taskRecord, grace time.Duration) {
	if t.AgentID == "" {
		return // never launched: nothing to kill
	}
	call := calls.Kill(t.ID, t.AgentID)
	if grace > 0 {
		call.Kill.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace.Nanoseconds()}}
	}
	s.queue(call)
}

// rekill repeats KILLs that have not ended their task.
func (s *Scheduler) rekill(now time.Time) {
	if !s.subscribed {
		return
	}
	for _, t := range s.st.tasks {
		if t.Phase == linkspec.Killing.String() && now.Sub(t.KillSent) >= s.cfg.KillRetry {
			t.KillSent = now
			s.st.touchTask(t.ID)
			s.kill(t, s.grace(t.Service))
		}
	}
}

func (s *Scheduler) grace(service string) time.Duration {
	if svc := s.st.spec.Services[service]; svc != nil {
		return svc.KillGracePeriod.Std()
	}
	return linkspec.DefaultGracePeriod
}

// forget drops a task that ended (or was never launched).
func (s *Scheduler) forget(t *taskRecord, why string) {
	s.st.deleteTask(t.ID)
	s.planner.Forget(t.ID)
	delete(s.links, t.ID)
	delete(s.status, t.ID)
	s.recon.done(t.ID)
	s.event("task_gone", map[string]any{"task_id": t.ID, "reason": why})
}

func (s *Scheduler) queue(c *scheduler.Call) { s.calls = append(s.calls, c) }

// resetRestarts clears a service's crash backoff once a task launched after
// its last failure has run for RestartReset.
func (s *Scheduler) resetRestarts(now time.Time) {
	for svc, r := range s.st.meta.Restarts {
		if r.Failures == 0 {
			continue
		}
		for _, t := range s.st.tasks {
			if t.Service == svc && t.Phase == linkspec.Running.String() && t.Created.After(r.Last) && now.Sub(t.Updated) >= s.cfg.RestartReset {
				delete(s.st.meta.Restarts, svc)
				s.st.touchMeta()
				s.planner.SetRestarts(svc, linkspec.Restart{})
				break
			}
		}
	}
}

// nextWake is when the loop must run again with no input.
func (s *Scheduler) nextWake() time.Duration {
	now := s.cfg.Now()
	wake := now.Add(time.Second) // resends, kills, reconciliation retries
	if p := s.planner.Plan(now); !p.Wake.IsZero() && p.Wake.Before(wake) {
		wake = p.Wake
	}
	if w := s.nextResend(); !w.IsZero() && w.Before(wake) {
		wake = w
	}
	d := wake.Sub(now)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

// placeOffers puts pending tasks on the offers held, accepts the offers
// used and declines the rest.
func (s *Scheduler) placeOffers(now time.Time) bool {
	if len(s.offers) == 0 {
		return false
	}
	var pending []*taskRecord
	for _, t := range s.st.tasks {
		if t.Phase == linkspec.Pending.String() && s.st.spec.Services[t.Service] != nil {
			pending = append(pending, t)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Seq < pending[j].Seq })
	needs := make([]need, 0, len(pending))
	for _, t := range pending {
		svc := s.st.spec.Services[t.Service]
		needs = append(needs, need{TaskID: t.ID, Service: t.Service, CPUs: svc.CPUs, Mem: svc.Mem, Disk: svc.Disk, Ports: len(s.st.spec.InGates(t.Service))})
	}
	// Spread each service over agents: count what already runs where.
	spread := map[string]map[string]int{}
	for _, t := range s.st.tasks {
		if t.AgentID != "" {
			if spread[t.AgentID] == nil {
				spread[t.AgentID] = map[string]int{}
			}
			spread[t.AgentID][t.Service]++
		}
	}
	placed, unused := place(s.offers, needs, need{CPUs: s.cfg.ExecutorCPUs, Mem: s.cfg.ExecutorMem}, spread)
	s.offers = nil

	byOffer := map[string][]mesos.TaskInfo{}
	var offerOrder []string
	for _, pl := range placed {
		t := s.st.tasks[pl.TaskID]
		gates := s.st.spec.InGates(t.Service)
		t.Phase = linkspec.Launched.String()
		t.AgentID, t.Host = pl.AgentID, pl.Host
		t.Ports = make(map[string]uint32, len(gates))
		for i, g := range gates {
			t.Ports[g] = pl.Ports[i]
		}
		t.State = "TASK_STAGING"
		t.Updated = now
		s.st.touchTask(t.ID)
		s.observe(t)
		ti, err := s.taskInfo(t, pl)
		if err != nil {
			// Cannot happen for a valid spec; never launch half a task.
			s.log.Error("cannot build the task", "task_id", t.ID, "err", err)
			s.forget(t, err.Error())
			continue
		}
		if _, ok := byOffer[pl.OfferID]; !ok {
			offerOrder = append(offerOrder, pl.OfferID)
		}
		byOffer[pl.OfferID] = append(byOffer[pl.OfferID], ti)
		s.metrics.launches.Inc()
		s.event("task_launching", map[string]any{"task_id": t.ID, "agent_id": t.AgentID, "host": t.Host, "ports": t.Ports})
	}
	for _, oid := range offerOrder {
		s.queue(calls.Accept(calls.OfferOperations{calls.OpLaunch(byOffer[oid]...)}.WithOffers(mesos.OfferID{Value: oid})).
			With(calls.RefuseSeconds(time.Second)))
	}
	if len(unused) > 0 {
		refuse := s.cfg.Refuse
		if len(placed) < len(needs) {
			// Something waits but did not fit: look again soon.
			refuse = time.Second
		}
		ids := make([]mesos.OfferID, len(unused))
		for i, o := range unused {
			ids[i] = o.ID
		}
		s.queue(calls.Decline(ids...).With(calls.RefuseSeconds(refuse)))
		s.metrics.declined.Add(float64(len(ids)))
	}
	return len(placed) > 0
}

// reviveOrSuppress asks for offers only while something waits for them.
func (s *Scheduler) reviveOrSuppress() {
	if !s.subscribed {
		return
	}
	waiting := false
	for _, t := range s.st.tasks {
		if t.Phase == linkspec.Pending.String() {
			waiting = true
			break
		}
	}
	switch {
	case waiting && s.suppressed:
		s.queue(calls.Revive())
		s.suppressed = false
	case !waiting && !s.suppressed:
		s.queue(calls.Suppress())
		s.suppressed = true
	}
}

// repair makes up for a Mesos call that failed while the subscription
// stayed up (a timeout, a 5xx, a reset connection). If the subscription
// went, re-subscribing redoes everything anyway (reconciliation, revive).
func (s *Scheduler) repair(c *scheduler.Call) {
	s.metrics.callsFailed.WithLabelValues(c.Type.String()).Inc()
	switch c.Type {
	case scheduler.Call_ACCEPT:
		// The tasks may or may not have reached the master: ask about
		// them until it answers; unknown ones end and are relaunched. And
		// decline the offers, once: if the ACCEPT never arrived they would
		// hold their resources (an ACCEPT that did arrive makes this a
		// no-op for the master).
		s.redecline(c.Accept.OfferIDs, nil)
		for _, op := range c.Accept.Operations {
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				if _, ok := s.st.tasks[ti.TaskID.Value]; ok {
					s.recon.ask(ti.TaskID.Value, s.cfg.Now())
				}
			}
		}
	case scheduler.Call_REVIVE:
		s.suppressed = true // so that the next step revives again
	case scheduler.Call_SUPPRESS:
		s.suppressed = false
	case scheduler.Call_DECLINE:
		// Declined offers the master still thinks we hold would keep
		// their resources from everyone until they are rescinded. Decline
		// them once more (not in a loop: a master that keeps failing is
		// left to the re-subscription).
		if c.Decline != nil {
			s.redecline(c.Decline.OfferIDs, c.Decline.Filters)
		}
	}
}

// redecline declines offers a second time (never a third).
func (s *Scheduler) redecline(offers []mesos.OfferID, filters *mesos.Filters) {
	if !s.subscribed {
		return
	}
	var ids []mesos.OfferID
	for _, id := range offers {
		if !s.redeclined[id.Value] {
			s.redeclined[id.Value] = true
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		s.queue(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{OfferIDs: ids, Filters: filters}})
	}
}
