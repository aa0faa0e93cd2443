package core

import (
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/linkspec"
)

// reconciler runs Mesos' reconciliation: after every subscription, ask
// explicitly about every task we know (with its agent), repeating with
// backoff for those the master has not answered; then ask implicitly (the
// master reports every task it has for us, so unknown ones surface and
// are killed); and repeat the implicit ask periodically.
// reconcileRetry spaces out the explicit asks: 1s doubling to a minute.
var reconcileRetry = backoff.Policy{Initial: time.Second, Max: time.Minute, Factor: 2}

type reconciler struct {
	waiting     map[string]bool // tasks asked about, not yet answered
	next        time.Time       // next explicit retry
	attempts    int
	implicit    time.Time // next periodic implicit reconciliation
	unreachable time.Time // next explicit ask about unreachable tasks
}

func (r *reconciler) start(m *Machine, now time.Time) {
	r.waiting = map[string]bool{}
	for id, t := range m.st.tasks {
		if t.Phase != linkspec.Pending.String() && t.AgentID != "" {
			r.waiting[id] = true
		}
	}
	r.attempts = 0
	r.explicit(m)
	m.queue(calls.Reconcile(calls.ReconcileTasks(nil)))
	r.next = now.Add(reconcileRetry.Envelope(r.attempts))
	r.implicit = now.Add(m.cfg.ReconcileInterval)
	m.out.Metrics.Reconciliations++
}

func (r *reconciler) explicit(m *Machine) {
	if len(r.waiting) == 0 {
		return
	}
	tasks := make(map[string]string, len(r.waiting))
	for id := range r.waiting {
		if t := m.st.tasks[id]; t != nil {
			tasks[id] = t.AgentID
		}
	}
	m.queue(calls.Reconcile(calls.ReconcileTasks(tasks)))
}

func (r *reconciler) done(id string) { delete(r.waiting, id) }

// ask adds a task to those asked about explicitly, soon.
func (r *reconciler) ask(id string, now time.Time) {
	if r.waiting == nil {
		r.waiting = map[string]bool{}
	}
	r.waiting[id] = true
	if r.next.IsZero() || r.next.After(now.Add(time.Second)) {
		r.next = now
		r.attempts = 0
	}
}

func (r *reconciler) tick(m *Machine, now time.Time) {
	if !m.subscribed {
		return
	}
	if len(r.waiting) > 0 && !now.Before(r.next) {
		r.explicit(m)
		r.attempts++
		r.next = now.Add(reconcileRetry.Envelope(r.attempts))
	}
	// A task still staging long after its ACCEPT may never have reached
	// the master (a lost call): ask about it.
	for id, t := range m.idx.launched {
		if t.State == "TASK_STAGING" && now.Sub(t.Updated) > m.cfg.StagingReconcile && !r.waiting[id] {
			r.ask(id, now)
			t.Updated = now // ask again only after another StagingReconcile
		}
	}
	if !now.Before(r.unreachable) {
		// Tasks written off as unreachable: has their agent come back? A
		// RUNNING answer marks them orphans, which are killed.
		tasks := map[string]string{}
		for id, t := range m.idx.unreachable {
			if t.AgentID != "" {
				tasks[id] = t.AgentID
			}
		}
		if len(tasks) > 0 {
			m.queue(calls.Reconcile(calls.ReconcileTasks(tasks)))
		}
		r.unreachable = now.Add(m.cfg.UnreachableReconcile)
	}
	if !r.implicit.IsZero() && !now.Before(r.implicit) {
		m.queue(calls.Reconcile(calls.ReconcileTasks(nil)))
		r.implicit = now.Add(m.cfg.ReconcileInterval)
		m.out.Metrics.Reconciliations++
	}
}
