package core

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

// KeyFrameworkID is the stored key of the framework ID (operators and
// tests clear it to simulate its loss).
const KeyFrameworkID = keyFrameworkID

// Keys of the stored state.
const (
	keyFrameworkID = "framework_id"
	keySpec        = "spec"
	keyMeta        = "meta"
	prefixTask     = "tasks/"
)

// specRecord is the accepted spec as submitted, and its version.
type specRecord struct {
	Version  int       `json:"version"`
	Name     string    `json:"name"`
	Source   []byte    `json:"source"`
	Accepted time.Time `json:"accepted"`
	// Commands run the services that name an image but no command: read
	// from the image when the spec was accepted, kept so that a restart
	// needs no registry.
	Commands map[string][]string `json:"commands,omitempty"`
}

// meta is the state that is not per task.
type meta struct {
	// NextSeq is the next launch serial: task IDs are SERVICE.SEQ, never
	// reused.
	NextSeq uint64 `json:"next_seq"`
	// LinkVersion is the last link-table version handed out. Versions come
	// from one counter so that a service removed and added again never
	// reuses a version its tasks' gates have seen.
	LinkVersion uint64 `json:"link_version"`
	// LinkVersionReserved is stored ahead of LinkVersion: versions up to it
	// may be handed out, and sent, before the batch that records them is
	// written, so a new table reaches its executors without waiting for a
	// disk write. A restarted scheduler continues after the reservation, so
	// versions never repeat.
	LinkVersionReserved uint64 `json:"link_version_reserved"`
	// Tables is each service's published table: its version and digest. A
	// restarted scheduler that computes the same table republishes the
	// same version.
	Tables map[string]tableVersion `json:"tables"`
	// Restarts is each service's crash history, for relaunch backoff.
	Restarts map[string]linkspec.Restart `json:"restarts"`
}

type tableVersion struct {
	Version uint64 `json:"version"`
	Digest  string `json:"digest"`
}

// taskRecord is what the scheduler keeps of a task.
type taskRecord struct {
	ID      string            `json:"id"`
	Seq     uint64            `json:"seq"`
	Service string            `json:"service"`
	Config  string            `json:"config"`
	Phase   string            `json:"phase"`
	AgentID string            `json:"agent_id,omitempty"`
	Host    string            `json:"host,omitempty"`
	Ports   map[string]uint32 `json:"ports,omitempty"`
	// What placement constraints read of its agent, kept so that a
	// restarted scheduler counts the task where it is before that agent
	// offers again.
	Attributes []mesos.Attribute `json:"attributes,omitempty"`
	Region     string            `json:"region,omitempty"`
	Zone       string            `json:"zone,omitempty"`
	Retiring   time.Time         `json:"retiring,omitzero"`
	Orphan     bool              `json:"orphan,omitempty"`
	// Mesos' view: the latest state, reason and message of a status update.
	State   string    `json:"state,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// KillSent is when the last KILL was sent (a kill is repeated until the
	// task ends).
	KillSent time.Time `json:"kill_sent,omitzero"`
}

func (t *taskRecord) executorID() string { return ExecutorID(t.ID) }

// ExecutorID is the Mesos executor id of a task's executor (one executor
// per task): where its sandbox is, under
// /frameworks/FW/executors/ID/runs/latest on the agent.
func ExecutorID(taskID string) string { return "tiltai-executor." + taskID }

func (t *taskRecord) phase() linkspec.Phase {
	p, err := linkspec.ParsePhase(t.Phase)
	if err != nil {
		return linkspec.Pending
	}
	return p
}

// state is everything the scheduler persists, owned by its loop goroutine.
// Changes mark keys dirty; flush turns them into one store batch, written
// before any Mesos call that depends on them is made.
type state struct {
	frameworkID string
	spec        *linkspec.Spec
	specRec     specRecord
	meta        meta
	tasks       map[string]*taskRecord
	dirty       map[string]bool
	// order is the tasks by launch serial, kept as tasks come and go
	// (nil: to be sorted again), so a view does not sort every task on
	// every step.
	order []*taskRecord
}

func newState() *state {
	return &state{
		spec:  &linkspec.Spec{Version: linkspec.FormatVersion, Services: map[string]*linkspec.Service{}},
		meta:  meta{NextSeq: 1, Tables: map[string]tableVersion{}, Restarts: map[string]linkspec.Restart{}},
		tasks: map[string]*taskRecord{},
		dirty: map[string]bool{},
	}
}

// loadState rebuilds the state from the store's keys.
func loadState(kv map[string][]byte) (*state, error) {
	s := newState()
	if v, ok := kv[keyFrameworkID]; ok {
		s.frameworkID = string(v)
	}
	if v, ok := kv[keyMeta]; ok {
		if err := json.Unmarshal(v, &s.meta); err != nil {
			return nil, fmt.Errorf("stored meta is corrupt: %w", err)
		}
		if s.meta.Tables == nil {
			s.meta.Tables = map[string]tableVersion{}
		}
		if s.meta.Restarts == nil {
			s.meta.Restarts = map[string]linkspec.Restart{}
		}
		// Versions up to the reservation may have been sent unrecorded.
		s.meta.LinkVersion = max(s.meta.LinkVersion, s.meta.LinkVersionReserved)
	}
	if v, ok := kv[keySpec]; ok {
		if err := json.Unmarshal(v, &s.specRec); err != nil {
			return nil, fmt.Errorf("stored spec record is corrupt: %w", err)
		}
		// No task limit here: a spec accepted under a larger --max_tasks
		// must still load (New warns about it).
		spec, probs := linkspec.ParseWith(context.Background(), s.specRec.Name, s.specRec.Source, linkspec.ParseOptions{MaxTasks: math.MaxInt})
		if err := probs.Err(); err != nil {
			// It was valid when accepted; a newer tiltai may be stricter.
			return nil, fmt.Errorf("the stored spec (version %d) no longer validates; fix it and resubmit with a tiltai that accepts it: %w", s.specRec.Version, err)
		}
		s.spec = spec
	}
	for k, v := range kv {
		if !strings.HasPrefix(k, prefixTask) {
			continue
		}
		var t taskRecord
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, fmt.Errorf("stored task %s is corrupt: %w", k, err)
		}
		s.tasks[t.ID] = &t
	}
	return s, nil
}

func (s *state) touchTask(id string) { s.dirty[prefixTask+id] = true }
func (s *state) touchMeta()          { s.dirty[keyMeta] = true }
func (s *state) deleteTask(id string) {
	if t := s.tasks[id]; t != nil && s.order != nil {
		if i, ok := slices.BinarySearchFunc(s.order, t.Seq, func(x *taskRecord, seq uint64) int { return cmp.Compare(x.Seq, seq) }); ok {
			s.order = slices.Delete(s.order, i, i+1)
		} else {
			s.order = nil
		}
	}
	delete(s.tasks, id)
	s.dirty[prefixTask+id] = true
}

// addTask adds a new task; launch serials only grow, so it goes last.
func (s *state) addTask(t *taskRecord) {
	s.tasks[t.ID] = t
	if n := len(s.order); s.order != nil && (n == 0 || s.order[n-1].Seq < t.Seq) {
		s.order = append(s.order, t)
	} else {
		s.order = nil
	}
}

// flush returns the dirty keys' values (nil for deleted) and clears them.
func (s *state) flush() (map[string][]byte, error) {
	if len(s.dirty) == 0 {
		return nil, nil
	}
	batch := make(map[string][]byte, len(s.dirty))
	for k := range s.dirty {
		var v []byte
		var err error
		switch {
		case k == keyFrameworkID:
			v = []byte(s.frameworkID)
		case k == keyMeta:
			v, err = json.Marshal(&s.meta)
		case k == keySpec:
			v, err = json.Marshal(&s.specRec)
		case strings.HasPrefix(k, prefixTask):
			if t := s.tasks[strings.TrimPrefix(k, prefixTask)]; t != nil {
				v, err = json.Marshal(t)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cannot encode %s: %w", k, err)
		}
		batch[k] = v
	}
	clear(s.dirty)
	return batch, nil
}

// sortedTasks returns the tasks by launch serial. The slice is the
// state's own: read it, do not keep or change it.
func (s *state) sortedTasks() []*taskRecord {
	if s.order == nil || len(s.order) != len(s.tasks) {
		s.order = make([]*taskRecord, 0, len(s.tasks))
		for _, t := range s.tasks {
			s.order = append(s.order, t)
		}
		sort.Slice(s.order, func(i, j int) bool { return s.order[i].Seq < s.order[j].Seq })
	}
	return s.order
}
