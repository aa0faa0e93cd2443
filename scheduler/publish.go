package scheduler

import (
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/linkspec"
)

// Link publication. Each service has one current table and version; every
// task of the service gets it as a framework MESSAGE, which Mesos may drop.
// The executor acknowledges the version its service applied; what is not
// acknowledged is re-sent with backoff, everything is re-sent periodically
// (anti-entropy) and after every subscription.

type pubTable struct {
	version   uint64
	table     *linkspec.Table
	published time.Time
}

type pubTask struct {
	sent     uint64 // version last sent
	sentAt   time.Time
	attempts int
	acked    uint64 // version acknowledged
	force    bool   // re-send even if acknowledged (anti-entropy)
}

// taskStatus is an executor's latest report.
type taskStatus struct {
	at       time.Time
	version  uint64
	gates    map[string]control.GateCounters
	counters map[string]int64
}

// publishTables gives a new version to every service whose table changed.
func (s *Scheduler) publishTables(plan *linkspec.Plan, now time.Time) {
	changed := map[string]bool{}
	for svc, tb := range plan.Tables {
		cur := s.tables[svc]
		if cur != nil && cur.table == tb {
			continue
		}
		stored, ok := s.st.meta.Tables[svc]
		if ok && stored.Digest == tb.Digest() {
			// Same content as last published (e.g. after a restart): same
			// version, so gates see nothing new.
			s.tables[svc] = &pubTable{version: stored.Version, table: tb, published: now}
		} else {
			v := s.nextLinkVersion()
			s.st.meta.Tables[svc] = tableVersion{Version: v, Digest: tb.Digest()}
			s.st.touchMeta()
			s.tables[svc] = &pubTable{version: v, table: tb, published: now}
			s.metrics.tableVersions.Inc()
			s.event("links_published", map[string]any{"service": svc, "version": v, "out": tb.Out})
		}
		if cur == nil || cur.version != s.tables[svc].version {
			changed[svc] = true
		}
	}
	if len(changed) > 0 {
		// Acks of an old version no longer count as "in sync".
		for _, t := range s.st.tasks {
			if changed[t.Service] {
				s.observe(t)
			}
		}
	}
	for svc := range s.tables {
		if _, ok := plan.Tables[svc]; !ok {
			delete(s.tables, svc)
			delete(s.st.meta.Tables, svc)
			s.st.touchMeta()
		}
	}
}

// linkVersionBlock is how many versions one stored reservation covers.
const linkVersionBlock = 1024

// nextLinkVersion hands out the next version; when the reservation runs
// out it reserves the next block, and the batch must then be stored
// before any table goes out.
func (s *Scheduler) nextLinkVersion() uint64 {
	m := &s.st.meta
	m.LinkVersion++
	if m.LinkVersion > m.LinkVersionReserved {
		m.LinkVersionReserved = m.LinkVersion + linkVersionBlock - 1
		s.storeFirst = true
	}
	s.st.touchMeta()
	return m.LinkVersion
}

// sendable: the task runs (its in-gates are bound), so its executor
// listens and its service may send. Tables go to running tasks only: the
// planner counts exactly those as possible senders when it decides that a
// retired task may be killed.
func sendable(t *taskRecord) bool {
	return t.AgentID != "" && t.Phase == linkspec.Running.String()
}

// resendLinks sends each task its service's current table if the executor
// has not acknowledged it, with exponential backoff per task.
func (s *Scheduler) resendLinks(now time.Time) {
	if !s.subscribed {
		return
	}
	for _, t := range s.st.tasks {
		if !sendable(t) {
			continue
		}
		tb := s.tables[t.Service]
		if tb == nil {
			continue
		}
		l := s.links[t.ID]
		if l == nil {
			l = &pubTask{}
			s.links[t.ID] = l
		}
		if l.acked == tb.version && !l.force {
			continue
		}
		if l.sent == tb.version && !l.force && (s.inFlight > 0 || now.Before(s.resendDue(l))) {
			// A resend waits until everything queued has gone out and the
			// backoff has passed since: resending while a burst is still
			// being sent would only make the burst longer.
			continue
		}
		if l.sent != tb.version {
			l.attempts = 0
		} else {
			s.metrics.resends.Inc()
		}
		snap := snapshot(tb)
		data, err := executor.Encode(executor.Message{Type: executor.TypeLinks, TaskID: t.ID, Snapshot: &snap})
		if err != nil {
			s.log.Error("cannot encode a link table", "task_id", t.ID, "err", err)
			continue
		}
		s.queue(calls.Message(t.AgentID, t.executorID(), data))
		s.metrics.linkMessages.Inc()
		l.sent, l.sentAt, l.force = tb.version, now, false
		l.attempts++
	}
}

// resendDue is when an unacknowledged table may be sent again: the backoff
// after it (or the last outbox batch) went out.
func (s *Scheduler) resendDue(l *pubTask) time.Time {
	from := l.sentAt
	if s.lastFlush.After(from) {
		from = s.lastFlush
	}
	return from.Add(s.backoff(l.attempts))
}

// backoff is the wait after the attempts-th send: ResendMin doubling to
// ResendMax.
func (s *Scheduler) backoff(attempts int) time.Duration {
	return backoff.Policy{Initial: s.cfg.ResendMin, Max: s.cfg.ResendMax, Factor: 2}.Envelope(attempts - 1)
}

// nextResend is the earliest time an unacknowledged table is due again.
func (s *Scheduler) nextResend() time.Time {
	var next time.Time
	for id, l := range s.links {
		t := s.st.tasks[id]
		if t == nil || !sendable(t) {
			continue
		}
		if tb := s.tables[t.Service]; tb != nil && l.acked != tb.version {
			due := s.resendDue(l)
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	if !s.nextAE.IsZero() && (next.IsZero() || s.nextAE.Before(next)) {
		next = s.nextAE
	}
	return next
}

func snapshot(tb *pubTable) control.Snapshot {
	snap := control.Snapshot{Version: tb.version, Out: make(map[string]control.OutLink, len(tb.table.Out))}
	for g, og := range tb.table.Out {
		snap.Out[g] = control.OutLink{Pattern: control.Pattern(og.Pattern), Peers: og.Peers}
	}
	return snap
}

// onAck records that a task's service applied version v.
func (s *Scheduler) onAck(t *taskRecord, v uint64, now time.Time) {
	l := s.links[t.ID]
	if l == nil {
		l = &pubTask{}
		s.links[t.ID] = l
	}
	tb := s.tables[t.Service]
	if tb != nil && v > tb.version {
		// The executor runs a version this scheduler never recorded: one
		// sent before a write that then failed, or by a deposed leader. Its
		// content is unknown here, so publish the current table under a
		// fresh version (beyond any reservation), which it will apply.
		s.log.Warn("an executor runs an unrecorded link version; republishing", "task_id", t.ID, "version", v, "current", tb.version)
		s.metrics.divergent.Inc()
		s.republish(t.Service, now)
		l.acked = v
		return
	}
	if v <= l.acked {
		return // a duplicate, or overtaken by a newer ack
	}
	l.acked = v
	if tb != nil && v == tb.version {
		s.metrics.linkAckLatency.Observe(now.Sub(tb.published).Seconds())
		s.event("links_acked", map[string]any{"task_id": t.ID, "version": v})
		s.observe(t)
	}
}

// republish gives a service's current table a fresh version, so every task
// of it is sent the table again and must acknowledge the new version.
func (s *Scheduler) republish(service string, now time.Time) {
	tb := s.tables[service]
	if tb == nil {
		return
	}
	v := s.nextLinkVersion()
	s.st.meta.Tables[service] = tableVersion{Version: v, Digest: tb.table.Digest()}
	s.tables[service] = &pubTable{version: v, table: tb.table, published: now}
	for _, t := range s.st.tasks {
		if t.Service == service {
			s.observe(t)
		}
	}
}

// antiEntropy re-sends every task its current table, acknowledged or not.
func (s *Scheduler) antiEntropy(now time.Time) {
	for _, t := range s.st.tasks {
		if !sendable(t) {
			continue
		}
		l := s.links[t.ID]
		if l == nil {
			l = &pubTask{}
			s.links[t.ID] = l
		}
		l.force = true
	}
	s.nextAE = now.Add(s.cfg.AntiEntropy)
}
