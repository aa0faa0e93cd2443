package apitypes

import (
	"time"

	"github.com/tiltai/tiltai/linkspec"
)

// Health is GET /health.
type Health struct {
	Status      string `json:"status"`
	Subscribed  bool   `json:"subscribed"`
	FrameworkID string `json:"framework_id,omitempty"`
	Master      string `json:"master,omitempty"`
	SpecVersion int    `json:"spec_version"`
}

// SpecInfo is GET /v1/spec.
type SpecInfo struct {
	Version  int            `json:"version"`
	Name     string         `json:"name,omitempty"`
	Accepted time.Time      `json:"accepted,omitzero"`
	Spec     *linkspec.Spec `json:"spec"`
	Source   string         `json:"source,omitempty"`
}

// SubmitResult answers PUT /v1/spec and POST …/scale.
type SubmitResult struct {
	Version  int                `json:"version"`
	Changed  bool               `json:"changed"`
	DryRun   bool               `json:"dry_run,omitempty"`
	Changes  []linkspec.Change  `json:"changes"`
	Warnings []linkspec.Problem `json:"warnings,omitempty"`
}

// Error is the JSON body of every error answer.
type Error struct {
	Error    string             `json:"error"`
	Problems []linkspec.Problem `json:"problems,omitempty"`
	Version  *int               `json:"current_version,omitempty"`
}

// TaskInfo is one entry of GET /v1/tasks.
type TaskInfo struct {
	ID       string                        `json:"id"`
	Service  string                        `json:"service"`
	Phase    string                        `json:"phase"`
	State    string                        `json:"state,omitempty"`
	Reason   string                        `json:"reason,omitempty"`
	Message  string                        `json:"message,omitempty"`
	AgentID  string                        `json:"agent_id,omitempty"`
	Host     string                        `json:"host,omitempty"`
	Ports    map[string]uint32             `json:"ports,omitempty"`
	Outdated bool                          `json:"outdated,omitempty"`
	Retiring bool                          `json:"retiring,omitempty"`
	Orphan   bool                          `json:"orphan,omitempty"`
	Created  time.Time                     `json:"created"`
	Updated  time.Time                     `json:"updated"`
	Links    LinkState                     `json:"links"`
	Gates    map[string]GateCountersReport `json:"gates,omitempty"`
	Counters map[string]int64              `json:"counters,omitempty"`
	StatusAt time.Time                     `json:"status_at,omitzero"`
}

// LinkState is where a task is with its link table.
type LinkState struct {
	Version uint64 `json:"version"` // its service's current table version
	Sent    uint64 `json:"sent"`
	Acked   uint64 `json:"acked"`
}

// GateCountersReport is a gate's counters as the executor last reported.
type GateCountersReport struct {
	Pattern    string `json:"pattern"`
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Dropped    uint64 `json:"dropped"`
	Rerouted   uint64 `json:"rerouted"`
	QueueDepth int    `json:"queue_depth"`
	Peers      int    `json:"peers"`
}

// TaskLinks is one entry of GET /v1/links.
type TaskLinks struct {
	TaskID  string          `json:"task_id"`
	Service string          `json:"service"`
	Version uint64          `json:"version"`
	Acked   uint64          `json:"acked"`
	Table   *linkspec.Table `json:"table"`
}

// Status is GET /v1/status: how far the running system is from the spec.
type Status struct {
	SpecVersion int             `json:"spec_version"`
	Subscribed  bool            `json:"subscribed"`
	Converged   bool            `json:"converged"`
	Services    []ServiceStatus `json:"services"`
}

// ServiceStatus is one service's progress towards its spec.
type ServiceStatus struct {
	Name        string    `json:"name"`
	Wanted      int       `json:"wanted"`
	Running     int       `json:"running"` // running, current definition, not retiring
	Pending     int       `json:"pending"`
	Launching   int       `json:"launching"`
	Retiring    int       `json:"retiring"`
	Outdated    int       `json:"outdated"`
	Unacked     int       `json:"unacked"` // running tasks whose executor has not acked the current table
	Failures    int       `json:"failures"`
	HeldUntil   time.Time `json:"held_until,omitzero"`
	LastFailure string    `json:"last_failure,omitempty"`
	Converged   bool      `json:"converged"`
	// Gates sums each gate's counters over the service's tasks as their
	// executors last reported (the console's edge rates come from it).
	Gates map[string]GateCountersReport `json:"gates,omitempty"`
}

// TaskFile is a piece of a task's sandbox file, as Mesos' /files/read
// answers: Data from Offset. Without an offset the answer is the file's
// size as Offset and no data, where a tail starts.
type TaskFile struct {
	TaskID string `json:"task_id"`
	File   string `json:"file"`
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
}

// SandboxFiles are the files of a task's sandbox the API reads.
var SandboxFiles = []string{"stdout", "stderr"}

// MaxFileRead bounds one read of a task's file (?length=).
const MaxFileRead = 1 << 20
