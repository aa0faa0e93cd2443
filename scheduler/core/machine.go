package core

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/tiltai/tiltai/linkspec"
)

// Config is the machine's fixed configuration. Zero durations are not
// defaulted here: the driver passes its defaults.
type Config struct {
	// ExecutorCPUs and ExecutorMem are what each task's executor takes on
	// top of the task.
	ExecutorCPUs float64
	ExecutorMem  float64
	// ExecutorName is the executor binary's file name, ExecutorURL where
	// agents fetch it.
	ExecutorName string
	ExecutorURL  string

	DrainTimeout         time.Duration
	ResendMin, ResendMax time.Duration
	AntiEntropy          time.Duration
	ReconcileInterval    time.Duration
	UnreachableReconcile time.Duration
	StagingReconcile     time.Duration
	KillRetry            time.Duration
	RestartReset         time.Duration
	Refuse               time.Duration
}

// Machine is the scheduler's state and decisions. One goroutine owns it.
type Machine struct {
	cfg     Config
	st      *state
	planner *linkspec.Planner

	offers     []*mesos.Offer
	agents     map[string]*agentInfo // by agent ID
	waiting    map[string]*Waiting   // by service: why its pending tasks wait
	tables     map[string]*pubTable
	links      map[string]*pubTask
	status     map[string]*TaskStatus
	lastFail   map[string]string // service → why its last task failed
	redeclined map[string]bool   // offers declined a second time after a failed DECLINE
	subscribed bool
	suppressed bool
	leader     string
	recon      reconciler
	nextAE     time.Time // next anti-entropy round
	inFlight   int       // batches handed to the driver and not yet flushed
	lastFlush  time.Time // when the outbox last finished a batch
	// storeFirst: this step's link tables must wait for the write too (a
	// new block of versions was reserved, or the spec changed: tables that
	// follow from an operator's change go out only once it is stored).
	storeFirst bool

	idx index

	// What the current step produces.
	out        Ready
	calls      []*scheduler.Call
	viewDirty  bool
	newFwID    bool
	decisions  bool // the plan of this step changed something: plan again at once
	planWake   time.Time
	stopReason error
}

// New rebuilds the machine from the stored keys (nil or empty: a fresh
// scheduler).
func New(cfg Config, kv map[string][]byte) (*Machine, error) {
	st, err := loadState(kv)
	if err != nil {
		return nil, err
	}
	m := &Machine{
		cfg:        cfg,
		st:         st,
		planner:    linkspec.NewPlanner(linkspec.Options{DrainTimeout: cfg.DrainTimeout}),
		tables:     map[string]*pubTable{},
		links:      map[string]*pubTask{},
		status:     map[string]*TaskStatus{},
		lastFail:   map[string]string{},
		redeclined: map[string]bool{},
		agents:     map[string]*agentInfo{},
		waiting:    map[string]*Waiting{},
		idx:        newIndex(),
		viewDirty:  true,
	}
	m.restorePlanner()
	return m, nil
}

// SetExecutor says which executor binary tasks run and where agents fetch
// it; it is set once, before the first Step.
func (m *Machine) SetExecutor(name, url string) {
	m.cfg.ExecutorName, m.cfg.ExecutorURL = name, url
}

// FrameworkID is the stored framework ID ("" before the first subscription).
func (m *Machine) FrameworkID() string { return m.st.frameworkID }

// Tasks is how many task records there are.
func (m *Machine) Tasks() int { return len(m.st.tasks) }

// SpecVersion is the accepted spec's version (0: none yet).
func (m *Machine) SpecVersion() int { return m.st.specRec.Version }

// Spec is the accepted spec; it is never changed in place.
func (m *Machine) Spec() *linkspec.Spec { return m.st.spec }

// RestoreFrameworkID sets the framework ID of an empty store (the
// operator's recovery); it returns the records to store.
func (m *Machine) RestoreFrameworkID(id string) (map[string][]byte, error) {
	m.st.frameworkID = id
	m.st.dirty[keyFrameworkID] = true
	m.viewDirty = true
	return m.st.flush()
}

// --- inputs ---

// Input is what the machine reacts to. The set is closed: only this
// package's types implement it.
type Input interface{ isInput() }

type (
	// Subscribed: the master accepted our SUBSCRIBE.
	Subscribed struct {
		FrameworkID string
		Master      string
	}
	// Offers arrived.
	Offers struct{ Offers []mesos.Offer }
	// Rescind: the master took an offer back.
	Rescind struct{ OfferID string }
	// InverseOffers: the master asks for agents back (a maintenance
	// window is coming).
	InverseOffers struct{ Offers []mesos.InverseOffer }
	// RescindInverse: the master withdrew an inverse offer.
	RescindInverse struct{ OfferID string }
	// Update is a task status update.
	Update struct{ Status mesos.TaskStatus }
	// Message is a framework message from an executor.
	Message struct {
		AgentID, ExecutorID string
		Data                []byte
	}
	// Failure: an executor exited, or an agent was lost.
	Failure struct {
		AgentID, ExecutorID string // ExecutorID "" for an agent failure
		Status              int32
	}
	// Heartbeat from the master: nothing to do but proves the stream lives.
	Heartbeat struct{}
	// Error from the master: the subscription ends (a Disconnected follows).
	Error struct{ Message string }
	// Disconnected: the subscription ended.
	Disconnected struct{ Err string }
	// CallFailed: the outbox could not make a call (the subscription may
	// have stayed).
	CallFailed struct{ Call *scheduler.Call }
	// Flushed: the outbox finished one batch (Early or Late of a Ready).
	Flushed struct{ At time.Time }
	// Tick: time passed; nothing else happened.
	Tick struct{}
	// SubmitSpec makes Spec the accepted spec, unless IfMatch (≥ 0) names
	// another version or it is a dry run. The Reply with the same ID says
	// how it went; the driver gives it after storing the step's Records.
	// Scaling is a SubmitSpec of the scaled spec: the driver prepares it
	// off the loop (parsing a large spec must not stall every other input).
	SubmitSpec struct {
		ID       uint64
		Name     string
		Source   []byte
		Spec     *linkspec.Spec
		IfMatch  int
		DryRun   bool
		Warnings []linkspec.Problem
		// Commands are what runs a service that names an image but no
		// command, by service: the image's ENTRYPOINT and CMD (or the
		// spec's args) as the driver read them from the registry.
		Commands map[string][]string
	}
)

func (Subscribed) isInput()     {}
func (Offers) isInput()         {}
func (Rescind) isInput()        {}
func (InverseOffers) isInput()  {}
func (RescindInverse) isInput() {}
func (Update) isInput()         {}
func (Message) isInput()        {}
func (Failure) isInput()        {}
func (Heartbeat) isInput()      {}
func (Error) isInput()          {}
func (Disconnected) isInput()   {}
func (CallFailed) isInput()     {}
func (Flushed) isInput()        {}
func (Tick) isInput()           {}
func (SubmitSpec) isInput()     {}

// FromEvent turns an event of the master's stream into an input (nil for
// an event the machine has no use for).
func FromEvent(ev *scheduler.Event, master string) Input {
	switch ev.Type {
	case scheduler.Event_SUBSCRIBED:
		return Subscribed{FrameworkID: ev.Subscribed.FrameworkID.Value, Master: master}
	case scheduler.Event_OFFERS:
		return Offers{Offers: ev.Offers.Offers}
	case scheduler.Event_RESCIND:
		return Rescind{OfferID: ev.Rescind.OfferID.Value}
	case scheduler.Event_INVERSE_OFFERS:
		return InverseOffers{Offers: ev.InverseOffers.InverseOffers}
	case scheduler.Event_RESCIND_INVERSE_OFFER:
		return RescindInverse{OfferID: ev.RescindInverseOffer.InverseOfferID.Value}
	case scheduler.Event_UPDATE:
		return Update{Status: ev.Update.Status}
	case scheduler.Event_MESSAGE:
		return Message{AgentID: ev.Message.AgentID.Value, ExecutorID: ev.Message.ExecutorID.Value, Data: ev.Message.Data}
	case scheduler.Event_FAILURE:
		f := ev.Failure
		return Failure{AgentID: f.GetAgentID().GetValue(), ExecutorID: f.GetExecutorID().GetValue(), Status: f.GetStatus()}
	case scheduler.Event_HEARTBEAT:
		return Heartbeat{}
	case scheduler.Event_ERROR:
		return Error{Message: ev.GetError().GetMessage()}
	}
	return nil
}

// --- output ---

// Ready is what one step decided, for the driver to carry out in order.
type Ready struct {
	// Early calls depend on nothing stored but what an earlier step
	// stored: they may be made before Records are written (link tables
	// that follow from what tasks did; see decide.go).
	Early []*scheduler.Call
	// Records are the keys to store (a nil value deletes), in one batch,
	// before any Late call is made.
	Records map[string][]byte
	Late    []*scheduler.Call
	Events  []Event
	Logs    []Log
	Metrics Metrics
	Replies []Reply
	// FrameworkID is set when a new framework ID was learnt: the driver
	// subscribes with it once Records are stored.
	FrameworkID string
	// Wake is when the next Step is due if no input comes first.
	Wake time.Time
	// ViewChanged: a View built now differs from the last one.
	ViewChanged bool
	// Err stops the scheduler: acting on would be unsafe.
	Err error
}

// Event is one thing the scheduler did or saw, for GET /v1/events.
type Event struct {
	Type string
	Data map[string]any
}

// Level is a log level; the values are log/slog's.
type Level int

const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// Log is a fact worth a log line: the driver logs it. Attrs alternate
// constant keys and values.
type Log struct {
	Level Level
	Msg   string
	Attrs []any
}

// Metrics are the step's contributions to the scheduler's metrics.
type Metrics struct {
	Subscribed      *bool // the gauge's new value, if it changed
	Subscriptions   int
	Offers          int
	Declined        int
	Launches        int
	Running         int
	Kills           int
	Retired         int
	Acked           int
	NoUUID          int
	UnknownKilled   int
	LinkMessages    int
	Resends         int
	TableVersions   int
	BadMessages     int
	Nacks           int
	Divergent       int
	Reconciliations int
	Failures        map[string]int // by service
	Updates         map[string]int // by task state
	CallsRepaired   map[string]int // by call type
	Held            map[string]int // gauge: by service
	// Unplaced counts offers turned down for a waiting task, by
	// "service\x00reason".
	Unplaced        map[string]int
	InverseAccepted int
	AckLatency      []time.Duration
	// GateDropped counts what the gates of tasks that ended dropped, from
	// each task's final counters, by "service\x00gate".
	GateDropped map[string]int
}

func inc(m *map[string]int, k string, n int) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[k] += n
}

// Reply answers a SubmitSpec.
type Reply struct {
	ID uint64
	// Version is the accepted spec's version after the submission.
	Version  int
	Changed  bool
	DryRun   bool
	Changes  []linkspec.Change
	Warnings []linkspec.Problem
	// Conflict: IfMatch named another version (Version is the current one).
	Conflict bool
	// Err: the spec could not be stored (the scheduler stops).
	Err error
}

// --- the step ---

// Step applies the inputs (in order), then decides once: plan, apply the
// plan, publish link tables, place pending tasks on the offers held,
// resend, revive or suppress, re-kill, reconcile. The Ready is only valid
// until the next Step.
func (m *Machine) Step(now time.Time, ins ...Input) Ready {
	m.out = Ready{}
	m.calls = m.calls[:0]
	for _, in := range ins {
		m.apply(in, now)
		if m.stopReason != nil {
			break
		}
	}
	if m.stopReason == nil {
		m.decide(now)
	}
	m.commit(now)
	return m.out
}

func (m *Machine) apply(in Input, now time.Time) {
	switch e := in.(type) {
	case nil, Heartbeat, Tick:
	case Subscribed:
		m.stopReason = m.onSubscribed(e, now)
	case Offers:
		for i := range e.Offers {
			m.offers = append(m.offers, &e.Offers[i])
			m.learnOffer(&e.Offers[i])
		}
		m.out.Metrics.Offers += len(e.Offers)
	case Rescind:
		for i, o := range m.offers {
			if o.ID.Value == e.OfferID {
				m.offers = append(m.offers[:i], m.offers[i+1:]...)
				break
			}
		}
	case InverseOffers:
		for i := range e.Offers {
			m.onInverseOffer(&e.Offers[i], now)
		}
	case RescindInverse:
		m.onRescindInverse(e.OfferID)
	case Update:
		m.onUpdate(e.Status, now)
	case Message:
		m.onExecutorMessage(e, now)
	case Failure:
		m.onFailure(e)
	case Error:
		m.logf(LevelWarn, "mesos master sent ERROR", "err", e.Message)
	case Disconnected:
		if m.subscribed {
			m.event("disconnected", map[string]any{"error": e.Err})
			m.viewDirty = true
		}
		m.subscribed = false
		m.offers = nil
		m.forgetInverse()
		f := false
		m.out.Metrics.Subscribed = &f
	case Flushed:
		m.inFlight--
		m.lastFlush = e.At
	case CallFailed:
		m.repair(e.Call, now)
	case SubmitSpec:
		m.submit(e, now)
	default:
		panic(fmt.Sprintf("core: unknown input %T", in))
	}
}

// commit turns the step's state changes into records and splits its calls
// into those that may go before the write and those that must wait.
//
// Link-table MESSAGEs that follow from what tasks did (one ran, one ended)
// depend on nothing stored but the version reservation: they go out first
// and the table change does not wait for the disk. If the write then
// fails, the scheduler stops, and a restarted one that meets an executor
// on an unrecorded version republishes under a fresh one (onAck). Tables
// that follow from a spec change, or need a new reservation, wait for the
// write, as do ACCEPTs, KILLs and ACKNOWLEDGEs.
func (m *Machine) commit(now time.Time) {
	if m.stopReason != nil {
		m.out.Err = m.stopReason
		return
	}
	var early, late []*scheduler.Call
	if m.storeFirst {
		late = append(late, m.calls...)
	} else {
		for _, c := range m.calls {
			if c.Type == scheduler.Call_MESSAGE {
				early = append(early, c)
			} else {
				late = append(late, c)
			}
		}
	}
	m.out.Early, m.out.Late = early, late
	if len(early) > 0 {
		m.inFlight++
	}
	if len(late) > 0 {
		m.inFlight++
	}
	batch, err := m.st.flush()
	if err != nil {
		m.out.Err = err
		return
	}
	m.out.Records = batch
	if len(batch) > 0 || len(m.calls) > 0 {
		m.viewDirty = true // a record changed, or a table was sent
	}
	m.storeFirst = false
	if m.newFwID {
		m.out.FrameworkID = m.st.frameworkID
		m.newFwID = false
	}
	m.out.ViewChanged = m.viewDirty
	m.out.Wake = m.wake(now)
}

// wake is when the next step is due with no input: at once if this
// step's plan decided something (a decision can enable another: a retired
// task nobody sends to may be killed), else the earliest of the planner's
// wake-up, a resend, anti-entropy, and a second for kills and
// reconciliation retries.
func (m *Machine) wake(now time.Time) time.Time {
	if m.decisions {
		return now
	}
	wake := now.Add(time.Second)
	if w := m.planWake; !w.IsZero() && w.Before(wake) {
		wake = w
	}
	if m.inFlight > 0 {
		// Resends wait for the outbox, whose Flushed wakes the step.
		if w := m.nextAE; !w.IsZero() && w.Before(wake) {
			wake = w
		}
		return wake
	}
	if w := m.nextResend(); !w.IsZero() && w.Before(wake) {
		wake = w
	}
	return wake
}

func (m *Machine) queue(c *scheduler.Call) { m.calls = append(m.calls, c) }

func (m *Machine) event(typ string, data map[string]any) {
	m.out.Events = append(m.out.Events, Event{Type: typ, Data: data})
}

func (m *Machine) logf(level Level, msg string, attrs ...any) {
	m.out.Logs = append(m.out.Logs, Log{Level: level, Msg: msg, Attrs: attrs})
}
