package core

import (
	"sort"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/executor"
	"github.com/tiltai/tiltai/gate/control"
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

// TaskStatus is an executor's latest report. It is never changed once
// made: views share it.
type TaskStatus struct {
	At       time.Time
	Version  uint64
	Gates    map[string]control.GateCounters
	Counters map[string]int64
}

// publishTables gives a new version to every service whose table changed.
func (m *Machine) publishTables(plan *linkspec.Plan, now time.Time) {
	changed := map[string]bool{}
	var svcs []string
	for svc, tb := range plan.Tables {
		if cur := m.tables[svc]; cur == nil || cur.table != tb {
			svcs = append(svcs, svc)
		}
	}
	// In name order, so versions are handed out the same way every time.
	sort.Strings(svcs)
	for _, svc := range svcs {
		tb, cur := plan.Tables[svc], m.tables[svc]
		stored, ok := m.st.meta.Tables[svc]
		if ok && stored.Digest == tb.Digest() {
			// Same content as last published (e.g. after a restart): same
			// version, so gates see nothing new.
			m.tables[svc] = &pubTable{version: stored.Version, table: tb, published: now}
		} else {
			v := m.nextLinkVersion()
			m.st.meta.Tables[svc] = tableVersion{Version: v, Digest: tb.Digest()}
			m.st.touchMeta()
			m.tables[svc] = &pubTable{version: v, table: tb, published: now}
			m.out.Metrics.TableVersions++
			m.event("links_published", map[string]any{"service": svc, "version": v, "out": tb.Out})
		}
		if cur == nil || cur.version != m.tables[svc].version {
			changed[svc] = true
		}
	}
	if len(changed) > 0 {
		// Acks of an old version no longer count as "in sync".
		for _, t := range m.st.tasks {
			if changed[t.Service] {
				m.observe(t)
			}
		}
	}
	for svc := range m.tables {
		if _, ok := plan.Tables[svc]; !ok {
			delete(m.tables, svc)
			delete(m.st.meta.Tables, svc)
			m.st.touchMeta()
		}
	}
}

// linkVersionBlock is how many versions one stored reservation covers.
const linkVersionBlock = 1024

// nextLinkVersion hands out the next version; when the reservation runs
// out it reserves the next block, and the batch must then be stored
// before any table goes out.
func (m *Machine) nextLinkVersion() uint64 {
	meta := &m.st.meta
	meta.LinkVersion++
	if meta.LinkVersion > meta.LinkVersionReserved {
		meta.LinkVersionReserved = meta.LinkVersion + linkVersionBlock - 1
		m.storeFirst = true
	}
	m.st.touchMeta()
	return meta.LinkVersion
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
func (m *Machine) resendLinks(now time.Time) {
	if !m.subscribed {
		return
	}
	for _, t := range m.st.tasks {
		if !sendable(t) {
			continue
		}
		tb := m.tables[t.Service]
		if tb == nil {
			continue
		}
		l := m.links[t.ID]
		if l == nil {
			l = &pubTask{}
			m.links[t.ID] = l
		}
		if l.acked == tb.version && !l.force {
			continue
		}
		if l.sent == tb.version && !l.force && (m.inFlight > 0 || now.Before(m.resendDue(l))) {
			// A resend waits until everything queued has gone out and the
			// backoff has passed since: resending while a burst is still
			// being sent would only make the burst longer.
			continue
		}
		if l.sent != tb.version {
			l.attempts = 0
		} else {
			m.out.Metrics.Resends++
		}
		snap := snapshot(tb)
		data, err := executor.Encode(executor.Message{Type: executor.TypeLinks, TaskID: t.ID, Snapshot: &snap})
		if err != nil {
			m.logf(LevelError, "cannot encode a link table", "task_id", t.ID, "err", err)
			continue
		}
		m.queue(calls.Message(t.AgentID, t.executorID(), data))
		m.out.Metrics.LinkMessages++
		l.sent, l.sentAt, l.force = tb.version, now, false
		l.attempts++
	}
}

// resendDue is when an unacknowledged table may be sent again: the backoff
// after it (or the last outbox batch) went out.
func (m *Machine) resendDue(l *pubTask) time.Time {
	from := l.sentAt
	if m.lastFlush.After(from) {
		from = m.lastFlush
	}
	return from.Add(m.backoff(l.attempts))
}

func (m *Machine) backoff(attempts int) time.Duration {
	d := m.cfg.ResendMin
	for i := 1; i < attempts && d < m.cfg.ResendMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.ResendMax)
}

// nextResend is the earliest time an unacknowledged table is due again.
func (m *Machine) nextResend() time.Time {
	var next time.Time
	for id, l := range m.links {
		t := m.st.tasks[id]
		if t == nil || !sendable(t) {
			continue
		}
		if tb := m.tables[t.Service]; tb != nil && l.acked != tb.version {
			due := m.resendDue(l)
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	if !m.nextAE.IsZero() && (next.IsZero() || m.nextAE.Before(next)) {
		next = m.nextAE
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
func (m *Machine) onAck(t *taskRecord, v uint64, now time.Time) {
	l := m.links[t.ID]
	if l == nil {
		l = &pubTask{}
		m.links[t.ID] = l
	}
	tb := m.tables[t.Service]
	if tb != nil && v > tb.version {
		// The executor runs a version this scheduler never recorded: one
		// sent before a write that then failed, or by a deposed leader. Its
		// content is unknown here, so publish the current table under a
		// fresh version (beyond any reservation), which it will apply.
		m.logf(LevelWarn, "an executor runs an unrecorded link version; republishing", "task_id", t.ID, "version", v, "current", tb.version)
		m.out.Metrics.Divergent++
		m.republish(t.Service, now)
		l.acked = v
		return
	}
	if v <= l.acked {
		return // a duplicate, or overtaken by a newer ack
	}
	l.acked = v
	m.viewDirty = true
	if tb != nil && v == tb.version {
		m.out.Metrics.AckLatency = append(m.out.Metrics.AckLatency, now.Sub(tb.published))
		m.event("links_acked", map[string]any{"task_id": t.ID, "version": v})
		m.observe(t)
	}
}

// republish gives a service's current table a fresh version, so every task
// of it is sent the table again and must acknowledge the new version.
func (m *Machine) republish(service string, now time.Time) {
	tb := m.tables[service]
	if tb == nil {
		return
	}
	v := m.nextLinkVersion()
	m.st.meta.Tables[service] = tableVersion{Version: v, Digest: tb.table.Digest()}
	m.tables[service] = &pubTable{version: v, table: tb.table, published: now}
	for _, t := range m.st.tasks {
		if t.Service == service {
			m.observe(t)
		}
	}
}

// antiEntropy re-sends every task its current table, acknowledged or not.
func (m *Machine) antiEntropy(now time.Time) {
	for _, t := range m.st.tasks {
		if !sendable(t) {
			continue
		}
		l := m.links[t.ID]
		if l == nil {
			l = &pubTask{}
			m.links[t.ID] = l
		}
		l.force = true
	}
	m.nextAE = now.Add(m.cfg.AntiEntropy)
}
