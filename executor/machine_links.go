package executor

import (
	"log/slog"
	"maps"

	"github.com/tiltai/tiltai/executor/contract"
)

// --- framework messages ---

func (m *machine) message(data []byte) {
	msg, err := contract.Decode(data)
	if err != nil {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring a framework message", "error", err, "bytes", len(data))
		return
	}
	if msg.Type != contract.TypeLinks {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring a framework message not meant for an executor", "type", msg.Type)
		return
	}
	t := m.task
	if t == nil || msg.TaskID != t.id {
		m.count.MessagesIgnored++
		m.log(slog.LevelWarn, "ignoring links for another task", "links_task_id", msg.TaskID)
		return
	}
	if !t.alive() {
		m.count.MessagesIgnored++
		return
	}
	snap := *msg.Snapshot
	v := snap.Version
	if v <= t.passed {
		m.count.LinksStale++
		if t.ackedVer >= v {
			// Applied already: the scheduler's resend means our ack was lost.
			m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: t.ackedVer})
		}
		return
	}
	if err := snap.CheckDeclared(t.data.GateSpecs()); err != nil {
		m.count.LinksRefused++
		m.log(slog.LevelWarn, "refusing a link snapshot", "version", v, "error", err)
		if v > t.nacked {
			t.nacked = v
		}
		m.send(contract.Message{Type: contract.TypeNack, TaskID: t.id, Version: v, Error: err.Error()})
		return
	}
	t.passed = v
	m.emit(doPush{Snapshot: snap})
	if !hasOutGates(t.data) && v > t.ackedVer {
		// Nothing to rewire: a task without out-gates runs any version as
		// it is, whether or not its service speaks the control protocol (a
		// plain program never would, and the scheduler would wait forever).
		t.ackedVer = v
		m.send(contract.Message{Type: contract.TypeAck, TaskID: t.id, Version: v})
	}
}

func hasOutGates(d contract.TaskData) bool {
	for _, g := range d.Gates {
		if !g.In() {
			return true
		}
	}
	return false
}

func (m *machine) statusMessage() contract.Message {
	t := m.task
	msg := contract.Message{Type: contract.TypeStatus, TaskID: t.id, State: t.phase.String(), Version: t.ackedVer, Pushed: t.passed}
	if s := t.svc.Status; s != nil {
		msg.Gates = maps.Clone(s.Gates)
		msg.Counters = maps.Clone(s.App)
	}
	c := m.count
	msg.Executor = map[string]uint64{
		"messages_ignored":        c.MessagesIgnored,
		"links_stale":             c.LinksStale,
		"links_refused":           c.LinksRefused,
		"messages_failed":         c.MessagesFailed,
		"updates_refused":         c.UpdatesRefused,
		"subscriptions":           c.Subscriptions,
		"events_ignored":          c.EventsIgnored,
		"control_connections":     uint64(t.svc.Connections),
		"control_protocol_errors": uint64(t.svc.ProtoErrors),
	}
	return msg
}
