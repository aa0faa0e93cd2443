package executor

import (
	"fmt"
	"log/slog"
	"slices"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/tiltai/tiltai/executor/contract"
)

// --- status updates ---

type statusOpt func(*mesos.TaskStatus)

func withReason(r mesos.TaskStatus_Reason) statusOpt {
	return func(s *mesos.TaskStatus) { s.Reason = &r }
}

func withHealthy(h bool) statusOpt {
	return func(s *mesos.TaskStatus) { s.Healthy = &h }
}

// update queues a status update: posted now when subscribed, otherwise in
// the next SUBSCRIBE; kept until the agent acknowledges its uuid.
func (m *machine) update(taskID string, state mesos.TaskState, msg string, opts ...statusOpt) {
	src := mesos.SOURCE_EXECUTOR
	ts := float64(m.now.UnixNano()) / 1e9
	st := mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: taskID},
		State:      &state,
		Message:    &msg,
		Source:     &src,
		ExecutorID: &mesos.ExecutorID{Value: m.cfg.ExecutorID},
		Timestamp:  &ts,
		UUID:       m.cfg.NewUUID(),
	}
	for _, o := range opts {
		o(&st)
	}
	p := pendingUpdate{status: st}
	if m.conn == connUp {
		p.sent = true
		m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_UPDATE, Update: &executor.Call_Update{Status: st}})})
	}
	m.unacked = append(m.unacked, p)
	m.log(slog.LevelInfo, "status update", "task_id", taskID, "state", state.String(), "message", msg)
}

func (m *machine) acknowledged(taskID string, uuid []byte) {
	i := slices.IndexFunc(m.unacked, func(p pendingUpdate) bool { return string(p.status.UUID) == string(uuid) })
	if i < 0 {
		m.count.EventsIgnored++
		m.log(slog.LevelDebug, "acknowledgement of an unknown status update", "ack_task_id", taskID)
		return
	}
	m.unacked = slices.Delete(m.unacked, i, i+1)
	if t := m.task; t != nil && t.id == taskID {
		t.infoAcked = true
	}
}

func (m *machine) callFailed(in inCallFailed) {
	if in.UUID == nil {
		m.count.MessagesFailed++
		m.log(slog.LevelWarn, "framework message to the scheduler lost", "error", in.Err)
		return
	}
	i := slices.IndexFunc(m.unacked, func(p pendingUpdate) bool { return string(p.status.UUID) == string(in.UUID) })
	if i < 0 {
		return // acknowledged meanwhile
	}
	if in.Permanent {
		// Sending it again cannot help; keeping it would block the exit.
		m.count.UpdatesRefused++
		st := m.unacked[i].status
		m.log(slog.LevelError, "agent refused a status update; dropping it", "state", st.GetState().String(), "error", in.Err)
		m.unacked = slices.Delete(m.unacked, i, i+1)
		return
	}
	// The next SUBSCRIBE carries every unacknowledged update.
	m.reconnect(fmt.Sprintf("status update failed: %v", in.Err))
}

// send queues a framework message to the scheduler; lost if not subscribed.
func (m *machine) send(msg contract.Message) {
	if m.conn != connUp {
		m.count.MessagesFailed++
		return
	}
	b, err := contract.Encode(msg)
	if err != nil {
		m.count.MessagesFailed++
		m.log(slog.LevelError, "cannot encode a framework message", "error", err)
		return
	}
	m.emit(doCall{Call: m.call(&executor.Call{Type: executor.Call_MESSAGE, Message: &executor.Call_Message{Data: b}})})
}
