package core

import (
	"container/heap"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/executor/contract"
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
	queued   bool   // in the resend heap
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
	// Acks of an old version no longer count as "in sync".
	for svc := range changed {
		for _, t := range m.idx.service[svc] {
			m.observe(t)
			m.resync(t)
		}
	}
	for svc := range m.tables {
		if _, ok := plan.Tables[svc]; !ok {
			delete(m.tables, svc)
			delete(m.st.meta.Tables, svc)
			m.st.touchMeta()
			m.resyncService(svc)
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

// sendable: the task's executor listens and its service may send: it
// runs (its in-gates are bound), or it ran and is being killed. A task
// being killed still sends while its grace period lasts: its in-gates
// drain, its application passes on what it took, and its out-gates deliver
// what they hold. So it keeps getting its service's tables; otherwise a
// sender whose peers are all going too (DRAIN_AGENT kills a printer and an
// encryptor on one agent at once) holds messages for a replacement it
// never learns of, and loses them at SIGKILL. (One killed before it ran
// has sent nothing: it gets no table.) The planner counts only running
// tasks as senders when it decides that a retired task may be killed: one
// being killed gets the same tables at the same time, and should it apply
// them later, what the retired task did not acknowledge goes back to its
// queue (rerouted), not lost.
func sendable(t *taskRecord) bool {
	if t.AgentID == "" {
		return false
	}
	switch t.Phase {
	case phaseRunning:
		return true
	case phaseKilling:
		return t.State == mesos.TASK_RUNNING.String() || t.State == mesos.TASK_KILLING.String()
	}
	return false
}

// resendLinks sends each task its service's current table if the executor
// has not acknowledged it, with exponential backoff per task. Tasks not
// yet sent the current version (or due for anti-entropy) are sent at once;
// those waiting for an acknowledgement are kept in order of when they are
// due, so a step looks only at those whose time has come.
func (m *Machine) resendLinks(now time.Time) {
	if !m.subscribed {
		return
	}
	for id, t := range m.idx.sendNow {
		delete(m.idx.sendNow, id)
		if m.needsSend(t) {
			m.sendTable(t, now)
		}
		m.resync(t)
	}
	if m.inFlight > 0 {
		// A resend waits until everything queued has gone out and the
		// backoff has passed since: resending while a burst is still
		// being sent would only make the burst longer.
		return
	}
	for m.idx.resends.Len() > 0 && !m.idx.resends[0].due.After(now) {
		e := heap.Pop(&m.idx.resends).(resendAt)
		t, l := m.waitingAck(e.id)
		if t == nil {
			continue
		}
		if due := m.resendDue(l); now.Before(due) {
			m.queueResend(e.id, l)
			continue
		}
		m.sendTable(t, now)
		m.resync(t)
	}
}

// waitingAck returns a task that was sent its current table and has not
// acknowledged it; nil (after putting it where it belongs) otherwise.
func (m *Machine) waitingAck(id string) (*taskRecord, *pubTask) {
	t, l := m.st.tasks[id], m.links[id]
	if l != nil {
		l.queued = false
	}
	if t == nil || l == nil {
		return nil, nil
	}
	if tb := m.tables[t.Service]; !sendable(t) || tb == nil || l.sent != tb.version || l.acked == tb.version || l.force {
		m.resync(t)
		return nil, nil
	}
	return t, l
}

func (m *Machine) queueResend(id string, l *pubTask) {
	if !l.queued {
		heap.Push(&m.idx.resends, resendAt{due: m.resendDue(l), id: id})
		l.queued = true
	}
}

// sendTable queues the task's current table.
func (m *Machine) sendTable(t *taskRecord, now time.Time) {
	tb := m.tables[t.Service]
	l := m.links[t.ID]
	if l == nil {
		l = &pubTask{}
		m.links[t.ID] = l
	}
	if l.sent != tb.version {
		l.attempts = 0
	} else {
		m.out.Metrics.Resends++
	}
	snap := snapshot(tb)
	data, err := contract.Encode(contract.Message{Type: contract.TypeLinks, TaskID: t.ID, Snapshot: &snap})
	if err != nil {
		m.logf(LevelError, "cannot encode a link table", "task_id", t.ID, "err", err)
		return
	}
	m.queue(calls.Message(t.AgentID, t.executorID(), data))
	m.out.Metrics.LinkMessages++
	l.sent, l.sentAt, l.force = tb.version, now, false
	l.attempts++
}

// resendAt is a task waiting for its acknowledgement until due; resends is
// a min-heap of them by due. An entry may be stale (acknowledged since,
// or due later after a flush): it is checked when it comes up.
type resendAt struct {
	due time.Time
	id  string
}

type resendHeap []resendAt

func (h resendHeap) Len() int           { return len(h) }
func (h resendHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h resendHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *resendHeap) Push(x any)        { *h = append(*h, x.(resendAt)) }
func (h *resendHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
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

// backoff is the wait after the attempts-th send: ResendMin doubling to
// ResendMax.
func (m *Machine) backoff(attempts int) time.Duration {
	return backoff.Policy{Initial: m.cfg.ResendMin, Max: m.cfg.ResendMax, Factor: 2}.Envelope(attempts - 1)
}

// nextResend is the earliest time an unacknowledged table may be due
// again (never later than it is due; an earlier wake finds it not due yet
// and looks again).
func (m *Machine) nextResend() time.Time {
	var next time.Time
	for m.idx.resends.Len() > 0 {
		e := m.idx.resends[0]
		if t, l := m.st.tasks[e.id], m.links[e.id]; t != nil && l != nil {
			if tb := m.tables[t.Service]; sendable(t) && tb != nil && l.sent == tb.version && l.acked != tb.version && !l.force {
				next = e.due
				break
			}
		}
		heap.Pop(&m.idx.resends)
		m.waitingAck(e.id)
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
		m.resync(t)
		return
	}
	if v <= l.acked {
		return // a duplicate, or overtaken by a newer ack
	}
	l.acked = v
	m.viewDirty = true
	m.resync(t)
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
	for _, t := range m.idx.service[service] {
		m.observe(t)
		m.resync(t)
	}
}

// antiEntropy re-sends every task its current table, acknowledged or not.
func (m *Machine) antiEntropy(now time.Time) {
	force := func(t *taskRecord) {
		if !sendable(t) {
			return
		}
		l := m.links[t.ID]
		if l == nil {
			l = &pubTask{}
			m.links[t.ID] = l
		}
		l.force = true
		m.resync(t)
	}
	for _, tasks := range m.idx.running {
		for _, t := range tasks {
			force(t)
		}
	}
	for _, t := range m.idx.killing {
		force(t)
	}
	m.nextAE = now.Add(m.cfg.AntiEntropy)
}
