package linkspec

import (
	"fmt"
	"maps"
	"sort"
	"time"
)

// Phase is where a task is in its life, as the driver observed it.
type Phase int

// Phases. Terminal tasks are not observed: the driver forgets them.
const (
	// Pending: the intent to launch is recorded; no offer has been used yet.
	Pending Phase = iota + 1
	// Launched: sent to Mesos with its agent and ports, not yet running
	// (STAGING, STARTING).
	Launched
	// Running: its in-gates are bound (the executor reports RUNNING only then).
	Running
	// Killing: a kill was sent; it is neither counted nor advertised.
	Killing
	// Unreachable: its agent is lost or partitioned. A replacement is started;
	// it is never advertised again.
	Unreachable
)

var phaseNames = map[Phase]string{Pending: "pending", Launched: "launched", Running: "running", Killing: "killing", Unreachable: "unreachable"}

func (p Phase) String() string {
	if s, ok := phaseNames[p]; ok {
		return s
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// ParsePhase reads a phase name.
func ParsePhase(s string) (Phase, error) {
	for p, n := range phaseNames {
		if n == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown phase %q", s)
}

// Task is what the planner knows of one task.
type Task struct {
	ID      string
	Seq     uint64 // launch serial; orders tasks by age
	Service string
	Config  string // Spec.ServiceDigest of the definition it was launched with
	Phase   Phase
	Host    string            // agent hostname, once launched
	Ports   map[string]uint32 // in-gate → bound port, once launched
	// Retiring is when the planner asked for the task to be drained (zero if
	// not): from then on it is in no link table, and once every upstream
	// task has acknowledged a table without it (or DrainTimeout passes) the
	// planner asks for the kill.
	Retiring time.Time
	// Orphan marks a task that came back after being written off (agent
	// lost, TASK_LOST): it is killed and never advertised.
	Orphan bool
	// Moving marks a task whose agent is going away (a maintenance window,
	// announced by inverse offers): it is replaced like an outdated one, a
	// new task placed elsewhere first, then this one retired drain-first.
	Moving bool
	// Acked is the table content the task's executor acknowledged, provided
	// it acknowledged the latest version published to it; nil otherwise
	// (nothing acknowledged yet, or a newer version is still in flight). A
	// retiring task is killed only when no running task's acknowledged
	// table can still send to it.
	Acked *Table
}

// Restart is a service's recent crash history, for relaunch backoff.
type Restart struct {
	Failures int       // consecutive failures
	Last     time.Time // when the last one happened
}

// Launch asks the driver to start a task. The driver records the intent
// (the task, Pending) before using any offer.
type Launch struct {
	TaskID  string
	Seq     uint64
	Service string
	Config  string
	InGates []string // each needs one port from the offer
	CPUs    float64
	Mem     float64
	Disk    float64
}

// Kill asks the driver to kill a task with the service's grace period.
type Kill struct {
	TaskID string
	Reason string
	Grace  time.Duration
}

// Retire asks the driver to start draining a running task: record
// Task.Retiring = now, so that it leaves every link table.
type Retire struct {
	TaskID string
	Reason string
}

// Hold reports a service whose launches wait for their backoff.
type Hold struct {
	Service string
	Until   time.Time
	Missing int
}

// Plan is what should happen now. Acting on it and observing the results
// makes the next plan empty of actions (tables aside) unless the world moved.
type Plan struct {
	Launch []Launch
	Cancel []string // pending tasks no longer wanted: drop the intent
	Retire []Retire
	Kill   []Kill
	Hold   []Hold
	// Tables holds every service's link table; tasks of a service share it.
	Tables map[string]*Table
	// NextSeq is the launch serial after these launches; the driver records
	// it with the intents.
	NextSeq uint64
	// Wake is when to plan again although nothing was observed (a backoff or
	// a drain deadline ends); zero if never.
	Wake time.Time
}

// Empty reports whether the plan asks for no action.
func (p *Plan) Empty() bool {
	return len(p.Launch) == 0 && len(p.Cancel) == 0 && len(p.Retire) == 0 && len(p.Kill) == 0
}

// Options tune the planner.
type Options struct {
	// DrainTimeout bounds the wait for upstream acknowledgements before a
	// retiring task is killed anyway.
	DrainTimeout time.Duration
}

// DefaultDrainTimeout is used when Options.DrainTimeout is zero.
const DefaultDrainTimeout = 30 * time.Second

// TaskID is the ID of the seq-th task launched for a service.
func TaskID(service string, seq uint64) string { return fmt.Sprintf("%s.%d", service, seq) }

// Planner keeps the observed tasks indexed by service and caches each
// service's decisions and table, recomputing only what an observation
// touched. It is not safe for concurrent use: one goroutine (the
// scheduler's) owns it. Plan is a query: it changes nothing observable, and
// planning twice without observing anything yields the same plan.
type Planner struct {
	opts     Options
	spec     *Spec
	names    []string            // services in spec, sorted
	digest   map[string]string   // service → ServiceDigest
	upstream map[string][]string // service → services linking into it, sorted
	tasks    map[string]*Task
	svcs     map[string]*svcState
	restarts map[string]Restart
	nextSeq  uint64
}

type svcState struct {
	tasks      map[string]*Task
	table      *Table
	tableDirty bool
	actDirty   bool
	act        svcActions
}

// svcActions are one service's decisions, without task IDs (those are
// assigned when the plan is assembled, in service order).
type svcActions struct {
	launches int
	hold     *Hold
	cancel   []string
	retire   []Retire
	kill     []Kill
	wake     time.Time
	// timed: the decisions depend on the clock (backoff, drain deadline) or
	// on other services' acknowledgements (a drain in progress), so they are
	// recomputed on every plan.
	timed bool
}

// NewPlanner returns a planner with no spec (nothing is wanted) and no tasks.
func NewPlanner(opts Options) *Planner {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	return &Planner{
		opts:     opts,
		spec:     &Spec{Version: FormatVersion, Services: map[string]*Service{}},
		tasks:    map[string]*Task{},
		svcs:     map[string]*svcState{},
		restarts: map[string]Restart{},
		nextSeq:  1,
	}
}

// SetSpec makes spec the desired state. The planner keeps a reference; the
// caller must not change the spec afterwards (Clone it first).
func (p *Planner) SetSpec(spec *Spec) {
	p.spec = spec
	p.names = spec.ServiceNames()
	p.digest = make(map[string]string, len(p.names))
	for _, n := range p.names {
		p.digest[n] = spec.ServiceDigest(n)
	}
	up := map[string]map[string]bool{}
	for _, l := range spec.Links {
		addSet(up, l.To.Service, l.From.Service)
	}
	p.upstream = setsToSorted(up)
	for _, st := range p.svcs {
		st.tableDirty, st.actDirty = true, true
	}
	for _, n := range p.names {
		p.state(n)
	}
}

// Spec returns the desired state.
func (p *Planner) Spec() *Spec { return p.spec }

// Digest returns the service's current definition digest (what Launch.Config
// carries), or "" for a service not in the spec.
func (p *Planner) Digest(service string) string { return p.digest[service] }

// SetNextSeq sets the next launch serial (from the driver's records).
func (p *Planner) SetNextSeq(n uint64) {
	if n > p.nextSeq {
		p.nextSeq = n
	}
}

// SetRestarts records a service's crash history.
func (p *Planner) SetRestarts(service string, r Restart) {
	if p.restarts[service] == r {
		return
	}
	p.restarts[service] = r
	p.state(service).actDirty = true
}

// Observe records what is known of a task (insert or replace). The planner
// keeps its own copy.
func (p *Planner) Observe(t Task) {
	c := t
	old := p.tasks[t.ID]
	if old != nil && old.Service != t.Service {
		p.Forget(t.ID)
		old = nil
	}
	p.tasks[t.ID] = &c
	st := p.state(t.Service)
	st.tasks[t.ID] = &c
	// An acknowledgement alone changes no decision of the task's service
	// that is not made again anyway: a service draining tasks decides on
	// every Plan until they go (its actions are timed), and whether a
	// removed task must drain first is read when the removal is decided.
	// Not re-deciding the service keeps an ack from costing a pass over
	// all its tasks.
	if old == nil || !sameButAcked(old, &c) {
		st.actDirty = true
	}
	if old == nil || advertised(old) != advertised(&c) || (advertised(&c) && !samePlace(old, &c)) {
		p.endpointsChanged(t.Service)
	}
	if t.Seq >= p.nextSeq {
		p.nextSeq = t.Seq + 1
	}
}

func sameButAcked(a, b *Task) bool {
	return a.ID == b.ID && a.Seq == b.Seq && a.Service == b.Service && a.Config == b.Config && a.Phase == b.Phase &&
		a.Host == b.Host && maps.Equal(a.Ports, b.Ports) && a.Retiring.Equal(b.Retiring) && a.Orphan == b.Orphan && a.Moving == b.Moving
}

// Forget drops a task (it ended).
func (p *Planner) Forget(id string) {
	t := p.tasks[id]
	if t == nil {
		return
	}
	delete(p.tasks, id)
	st := p.state(t.Service)
	delete(st.tasks, id)
	st.actDirty = true
	if advertised(t) {
		p.endpointsChanged(t.Service)
	}
}

// Task returns the planner's copy of a task.
func (p *Planner) Task(id string) (Task, bool) {
	t := p.tasks[id]
	if t == nil {
		return Task{}, false
	}
	return *t, true
}

func (p *Planner) state(service string) *svcState {
	st := p.svcs[service]
	if st == nil {
		st = &svcState{tasks: map[string]*Task{}, tableDirty: true, actDirty: true}
		p.svcs[service] = st
	}
	return st
}

// endpointsChanged marks the tables that list the service's tasks as peers,
// and the decisions of services that drain into it.
func (p *Planner) endpointsChanged(service string) {
	for _, u := range p.upstream[service] {
		p.state(u).tableDirty = true
	}
	p.state(service).actDirty = true
}

// advertised: the task's in-gates are peers in link tables.
func advertised(t *Task) bool {
	return t.Phase == Running && t.Retiring.IsZero() && !t.Orphan
}

func samePlace(a, b *Task) bool {
	if a.Host != b.Host || len(a.Ports) != len(b.Ports) {
		return false
	}
	for g, port := range a.Ports {
		if b.Ports[g] != port {
			return false
		}
	}
	return true
}

// Plan decides what should happen at time now.
func (p *Planner) Plan(now time.Time) Plan {
	plan := Plan{Tables: make(map[string]*Table, len(p.names)), NextSeq: p.nextSeq}
	for _, n := range p.names {
		plan.Tables[n] = p.table(n)
	}
	// Services with tasks but no longer in the spec are wound down too.
	for _, n := range p.serviceNamesWithTasks() {
		st := p.svcs[n]
		if st.actDirty || st.act.timed {
			st.act = p.decide(n, st, now)
			st.actDirty = false
		}
		a := &st.act
		for i := 0; i < a.launches; i++ {
			plan.Launch = append(plan.Launch, p.launch(n, plan.NextSeq))
			plan.NextSeq++
		}
		if a.hold != nil {
			plan.Hold = append(plan.Hold, *a.hold)
		}
		plan.Cancel = append(plan.Cancel, a.cancel...)
		plan.Retire = append(plan.Retire, a.retire...)
		plan.Kill = append(plan.Kill, a.kill...)
		if !a.wake.IsZero() && (plan.Wake.IsZero() || a.wake.Before(plan.Wake)) {
			plan.Wake = a.wake
		}
	}
	return plan
}

// serviceNamesWithTasks: every service in the spec, then every other service
// that still has tasks, sorted.
func (p *Planner) serviceNamesWithTasks() []string {
	names := p.names
	var extra []string
	for n, st := range p.svcs {
		if _, ok := p.spec.Services[n]; !ok && (len(st.tasks) > 0 || st.act.timed) {
			extra = append(extra, n)
		}
	}
	if len(extra) == 0 {
		return names
	}
	sort.Strings(extra)
	return append(append([]string(nil), names...), extra...)
}

func (p *Planner) launch(service string, seq uint64) Launch {
	svc := p.spec.Services[service]
	return Launch{
		TaskID:  TaskID(service, seq),
		Seq:     seq,
		Service: service,
		Config:  p.digest[service],
		InGates: p.spec.InGates(service),
		CPUs:    svc.CPUs,
		Mem:     svc.Mem,
		Disk:    svc.Disk,
	}
}

// buildTable lists, for each out-gate of the service, the endpoints of every
// advertised task of every service it links to.
func (p *Planner) buildTable(service string) *Table {
	svc := p.spec.Services[service]
	t := &Table{Out: map[string]OutGate{}}
	if svc == nil {
		return t
	}
	for _, g := range p.spec.OutGates(service) {
		t.Out[g] = OutGate{Pattern: svc.Gates[g], Peers: []string{}}
	}
	for _, l := range p.spec.Links {
		if l.From.Service != service {
			continue
		}
		og := t.Out[l.From.Gate]
		for _, task := range p.state(l.To.Service).tasks {
			if !advertised(task) || task.Host == "" {
				continue
			}
			if port, ok := task.Ports[l.To.Gate]; ok && port > 0 {
				og.Peers = append(og.Peers, Endpoint(task.Host, port))
			}
		}
		t.Out[l.From.Gate] = og
	}
	for g, og := range t.Out {
		sort.Strings(og.Peers)
		og.Peers = dedupSorted(og.Peers)
		t.Out[g] = og
	}
	t.Digest()
	return t
}

func dedupSorted(s []string) []string {
	if len(s) < 2 {
		return s
	}
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// decide makes one service's decisions.
func (p *Planner) decide(service string, st *svcState, now time.Time) svcActions {
	var a svcActions
	svc := p.spec.Services[service]
	want, digest, grace := 0, p.digest[service], DefaultGracePeriod
	if svc != nil {
		want, grace = svc.Instances, svc.KillGracePeriod.Std()
	}
	removed := svc == nil

	var current, outdated, draining []*Task
	for _, t := range sortedTasks(st.tasks) {
		switch {
		case t.Phase == Killing || t.Phase == Unreachable:
			// Not counted: an unreachable task is replaced, a killed one
			// is going. Neither is advertised.
		case t.Orphan:
			if t.Phase == Pending {
				a.cancel = append(a.cancel, t.ID)
			} else {
				a.kill = append(a.kill, Kill{t.ID, "came back after being written off", grace})
			}
		case !t.Retiring.IsZero():
			if t.Phase == Running {
				draining = append(draining, t)
			} else if t.Phase == Pending {
				a.cancel = append(a.cancel, t.ID)
			} else {
				a.kill = append(a.kill, Kill{t.ID, "retired before it ran", grace})
			}
		case !removed && t.Config == digest && !t.Moving:
			current = append(current, t)
		default:
			outdated = append(outdated, t)
		}
	}

	reason := "scaled down"
	if removed {
		reason = "service removed from the spec"
	}
	// Too many current tasks: remove the least advanced first (pending,
	// then launched, then running), newest first within each.
	if extra := len(current) - want; extra > 0 {
		byCost := append([]*Task(nil), current...)
		sort.SliceStable(byCost, func(i, j int) bool {
			if byCost[i].Phase != byCost[j].Phase {
				return byCost[i].Phase < byCost[j].Phase
			}
			return byCost[i].Seq > byCost[j].Seq
		})
		for _, t := range byCost[:extra] {
			p.remove(&a, t, reason, grace)
		}
		current = byCost[extra:]
	}
	running := 0
	for _, t := range current {
		if t.Phase == Running {
			running++
		}
	}
	// Outdated tasks: those not running go at once; running ones are
	// retired, oldest first, only as far as running tasks stay at least
	// `want` (a rolling replacement never dips below the wanted count).
	if !removed {
		reason = "replaced: the service definition changed"
	}
	why := func(t *Task) string {
		if !removed && t.Config == digest {
			return "moved: its agent goes into maintenance"
		}
		return reason
	}
	var outRunning []*Task
	for _, t := range outdated {
		if t.Phase == Running {
			outRunning = append(outRunning, t)
		} else {
			p.remove(&a, t, why(t), grace)
		}
	}
	keep := max(0, want-running)
	sort.SliceStable(outRunning, func(i, j int) bool { return outRunning[i].Seq < outRunning[j].Seq })
	for i, t := range outRunning {
		if i >= len(outRunning)-keep {
			break
		}
		p.remove(&a, t, why(t), grace)
	}

	// Launch what is missing, after the crash backoff.
	if missing := want - len(current); missing > 0 {
		r := p.restarts[service]
		until := r.Last.Add(svc.Backoff.Delay(r.Failures))
		if r.Failures > 0 && now.Before(until) {
			a.hold = &Hold{Service: service, Until: until, Missing: missing}
			a.wake, a.timed = until, true
		} else {
			a.launches = missing
		}
	}

	// Draining tasks are killed once every running upstream task has
	// acknowledged its current table (which no longer lists them), or when
	// the drain deadline passes.
	synced := len(draining) > 0 && p.upstreamSynced(service, draining)
	for _, t := range draining {
		deadline := t.Retiring.Add(p.opts.DrainTimeout)
		switch {
		case synced:
			a.kill = append(a.kill, Kill{t.ID, "drained: upstream peers no longer send to it", grace})
		case !now.Before(deadline):
			a.kill = append(a.kill, Kill{t.ID, "drain timed out waiting for upstream acknowledgements", grace})
		default:
			a.timed = true
			if a.wake.IsZero() || deadline.Before(a.wake) {
				a.wake = deadline
			}
		}
	}
	return a
}

// remove takes a task out of service the cheapest safe way: a pending task
// is dropped, one that is not running (so in no table) is killed, and a
// running one is retired (drained) unless nothing can be sending to it.
func (p *Planner) remove(a *svcActions, t *Task, reason string, grace time.Duration) {
	switch {
	case t.Phase == Pending:
		a.cancel = append(a.cancel, t.ID)
	case t.Phase == Running && p.mightReceive(t):
		a.retire = append(a.retire, Retire{t.ID, reason})
	default:
		a.kill = append(a.kill, Kill{t.ID, reason, grace})
	}
}

// mightReceive reports whether some running task could be sending to t: its
// service links into t's, or its acknowledged table lists t.
func (p *Planner) mightReceive(t *Task) bool {
	for _, u := range p.upstream[t.Service] {
		for _, ut := range p.state(u).tasks {
			if ut.Phase == Running && !ut.Orphan {
				return true
			}
		}
	}
	eps := map[string]bool{}
	for _, port := range t.Ports {
		eps[Endpoint(t.Host, port)] = true
	}
	if len(eps) == 0 {
		return false
	}
	for _, st := range p.svcs {
		for _, ut := range st.tasks {
			if ut.Phase == Running && !ut.Orphan && tableLists(ut.Acked, eps) {
				return true
			}
		}
	}
	return false
}

// upstreamSynced reports whether nothing can still send to the draining
// tasks: every running task of a service that links into this one has
// acknowledged its current table (which no longer lists them), and so has
// every other running task whose acknowledged table still lists one of them
// (its service stopped linking here in a spec change).
func (p *Planner) upstreamSynced(service string, draining []*Task) bool {
	eps := map[string]bool{}
	for _, d := range draining {
		for _, port := range d.Ports {
			eps[Endpoint(d.Host, port)] = true
		}
	}
	isUp := map[string]bool{}
	for _, u := range p.upstream[service] {
		isUp[u] = true
	}
	lists := map[*Table]bool{} // memo: does an acknowledged table list a draining task?
	for name, st := range p.svcs {
		cur := p.table(name)
		for _, u := range st.tasks {
			if u.Phase != Running || u.Orphan || u.Acked.Equal(cur) {
				continue
			}
			if isUp[name] {
				return false
			}
			l, ok := lists[u.Acked]
			if !ok {
				l = tableLists(u.Acked, eps)
				lists[u.Acked] = l
			}
			if l {
				return false
			}
		}
	}
	return true
}

func (p *Planner) table(service string) *Table {
	st := p.state(service)
	if st.tableDirty || st.table == nil {
		st.table = p.buildTable(service)
		st.tableDirty = false
	}
	return st.table
}

func tableLists(t *Table, eps map[string]bool) bool {
	if t == nil {
		return false
	}
	for _, og := range t.Out {
		for _, peer := range og.Peers {
			if eps[peer] {
				return true
			}
		}
	}
	return false
}

func sortedTasks(m map[string]*Task) []*Task {
	ts := make([]*Task, 0, len(m))
	for _, t := range m {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Seq != ts[j].Seq {
			return ts[i].Seq < ts[j].Seq
		}
		return ts[i].ID < ts[j].ID
	})
	return ts
}

func addSet(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

func setsToSorted(m map[string]map[string]bool) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, set := range m {
		out[k] = sortedKeys(set)
	}
	return out
}

// PlanOnce plans from scratch: the pure function of (spec, tasks, restarts,
// next serial, now) that the incremental Planner must always agree with.
func PlanOnce(spec *Spec, tasks []Task, restarts map[string]Restart, nextSeq uint64, now time.Time, opts Options) Plan {
	p := NewPlanner(opts)
	p.SetSpec(spec)
	p.SetNextSeq(nextSeq)
	for _, t := range tasks {
		p.Observe(t)
	}
	for s, r := range restarts {
		p.SetRestarts(s, r)
	}
	return p.Plan(now)
}
