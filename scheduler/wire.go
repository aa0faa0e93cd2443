package scheduler

// TEMPORARY: the executor package (being written in parallel) owns these
// formats; this file mirrors the agreed JSON until it lands, then goes.

import (
	"encoding/json"
	"fmt"

	"github.com/tiltai/tiltai/gate/control"
)

type taskData struct {
	Service         string            `json:"service"`
	Command         string            `json:"command"`
	Args            []string          `json:"args,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	Gates           []taskGate        `json:"gates"`
	Health          taskHealth        `json:"health"`
	KillGracePeriod string            `json:"kill_grace_period"`
}

type taskGate struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
	Port    uint32 `json:"port,omitempty"`
}

type taskHealth struct {
	ReadyTimeout    string `json:"ready_timeout"`
	LivenessTimeout string `json:"liveness_timeout"`
}

type linksMessage struct {
	Type     string           `json:"type"`
	TaskID   string           `json:"task_id"`
	Snapshot control.Snapshot `json:"snapshot"`
}

// executorMessage is an ack or a status from an executor.
type executorMessage struct {
	Type     string                          `json:"type"`
	TaskID   string                          `json:"task_id"`
	Version  uint64                          `json:"version"`
	Gates    map[string]control.GateCounters `json:"gates,omitempty"`
	Counters map[string]int64                `json:"counters,omitempty"`
}

func decodeExecutorMessage(b []byte) (executorMessage, error) {
	var m executorMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("not an executor message: %w", err)
	}
	if m.TaskID == "" || (m.Type != "ack" && m.Type != "status") {
		return m, fmt.Errorf("not an executor message (type %q, task %q)", m.Type, m.TaskID)
	}
	return m, nil
}
