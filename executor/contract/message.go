package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/tiltai/tiltai/gate/control"
)

// Framework message types. Scheduler → executor: links. Executor →
// scheduler: ack, nack, status.
const (
	TypeLinks  = "links"
	TypeAck    = "ack"
	TypeNack   = "nack"
	TypeStatus = "status"
)

// MaxMessageBytes bounds one framework message. A links message must fit the
// control protocol's line limit once re-encoded for the service.
const MaxMessageBytes = control.MaxLineBytes - 1024

const (
	maxTaskIDLen      = 1024
	maxErrorLen       = 4096
	maxStatusGates    = 1024
	maxStatusCounters = 1024
)

// Message is one framework message between the scheduler and an executor,
// JSON in MESSAGE data. Which fields are set depends on Type:
//
//	links  (scheduler → executor)  task_id, snapshot
//	ack    (executor → scheduler)  task_id, version: the newest link version
//	                               the service has applied
//	nack   (executor → scheduler)  task_id, version, error: a link version
//	                               the executor or the service refused
//	status (executor → scheduler)  task_id, state, version (applied), pushed,
//	                               gates, counters, executor
//
// An absent version is 0 (nothing applied yet).
type Message struct {
	Type   string `json:"type"`
	TaskID string `json:"task_id"`
	// Snapshot is the complete link table of the task (links).
	Snapshot *control.Snapshot `json:"snapshot,omitempty"`
	// Version is the version acknowledged, refused, or applied (status).
	Version uint64 `json:"version,omitempty"`
	// Error says why a version was refused (nack).
	Error string `json:"error,omitempty"`
	// State is the task's state as the executor sees it (status): starting,
	// running, killing.
	State string `json:"state,omitempty"`
	// Pushed is the newest version the executor has passed on to the service
	// (status); Version < Pushed means one is being applied.
	Pushed uint64 `json:"pushed,omitempty"`
	// Gates are the service's per-gate counters (status).
	Gates map[string]control.GateCounters `json:"gates,omitempty"`
	// Counters are the service's application counters (status).
	Counters map[string]int64 `json:"counters,omitempty"`
	// Executor holds the executor's own counters (status), e.g. how many
	// framework messages it ignored or could not send. See docs/executor.md.
	Executor map[string]uint64 `json:"executor,omitempty"`
}

// ErrUnknownMessageType is returned (wrapped) by Decode for a well-formed
// message of a type this version does not know; receivers ignore it.
var ErrUnknownMessageType = errors.New("unknown framework message type")

// Encode validates m and renders it as MESSAGE data. A snapshot's peer lists
// are sorted and deduplicated first.
func Encode(m Message) ([]byte, error) {
	m = m.normalized()
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("cannot encode framework message: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s message: %w", m.Type, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("cannot encode %s message: %d bytes exceeds the %d-byte limit", m.Type, len(b), MaxMessageBytes)
	}
	return b, nil
}

// Decode parses and validates MESSAGE data, sorting and deduplicating a
// snapshot's peer lists. Any error means the message is to be logged and
// ignored.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageBytes {
		return Message{}, fmt.Errorf("framework message is %d bytes (at most %d)", len(b), MaxMessageBytes)
	}
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		return Message{}, fmt.Errorf("framework message is not a JSON object (starts %.16q)", b)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("framework message is not valid JSON: %w", err)
	}
	m = m.normalized()
	if err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m Message) normalized() Message {
	if m.Snapshot != nil {
		n := m.Snapshot.Normalize()
		m.Snapshot = &n
	}
	return m
}

func (m Message) validate() error {
	switch m.Type {
	case TypeLinks, TypeAck, TypeNack, TypeStatus:
	case "":
		return errors.New("framework message has no type")
	default:
		return fmt.Errorf("%w %.40q", ErrUnknownMessageType, m.Type)
	}
	if m.TaskID == "" {
		return fmt.Errorf("%s message has no task_id", m.Type)
	}
	if len(m.TaskID) > maxTaskIDLen || !utf8.ValidString(m.TaskID) {
		return fmt.Errorf("%s message: task_id is not a valid task id", m.Type)
	}
	switch m.Type {
	case TypeLinks:
		if m.Snapshot == nil {
			return errors.New("links message has no snapshot")
		}
		if err := m.Snapshot.Validate(); err != nil {
			return fmt.Errorf("links message for task %q: %w", m.TaskID, err)
		}
	case TypeAck:
		if m.Version == 0 {
			return fmt.Errorf("ack message for task %q has version 0", m.TaskID)
		}
	case TypeNack:
		if m.Version == 0 {
			return fmt.Errorf("nack message for task %q has version 0", m.TaskID)
		}
		if len(m.Error) > maxErrorLen || !utf8.ValidString(m.Error) {
			return fmt.Errorf("nack message for task %q: error text is not valid UTF-8 of at most %d bytes", m.TaskID, maxErrorLen)
		}
	case TypeStatus:
		if len(m.Gates) > maxStatusGates || len(m.Counters) > maxStatusCounters || len(m.Executor) > maxStatusCounters {
			return fmt.Errorf("status message for task %q: too many gates or counters", m.TaskID)
		}
		for _, name := range slices.Sorted(maps.Keys(m.Gates)) {
			if err := control.ValidName(name); err != nil {
				return fmt.Errorf("status message for task %q: %w", m.TaskID, err)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(m.Counters)) {
			if err := control.ValidCounterName(name); err != nil {
				return fmt.Errorf("status message for task %q: %w", m.TaskID, err)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(m.Executor)) {
			if err := control.ValidCounterName(name); err != nil {
				return fmt.Errorf("status message for task %q: executor %w", m.TaskID, err)
			}
		}
		if len(m.State) > 64 {
			return fmt.Errorf("status message for task %q: state is too long", m.TaskID)
		}
	}
	return nil
}
