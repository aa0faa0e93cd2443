package master

import (
	"fmt"
	"strings"
	"unicode"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/api"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// launchContext is what task validation needs to know of the master's
// state; validateTask itself is pure.
type launchContext struct {
	frameworkID string
	agentID     string
	available   res.Resources
	taskExists  func(id string) bool
	// executor returns the executor with that id already on the agent (or
	// launched earlier in the same ACCEPT) for this framework.
	executor func(id string) (mesos.ExecutorInfo, bool)
}

// launchPlan is a validated task: what it takes from the offer and the
// executor it runs on (nil for a command task).
type launchPlan struct {
	task        mesos.TaskInfo
	needed      res.Resources // task plus a new executor's resources
	taskRes     res.Resources
	executorRes res.Resources
	newExecutor bool
}

// validateID applies Mesos' rules for task and executor ids and returns
// Mesos' message for a bad one ("" when valid).
func validateID(id string) string {
	switch {
	case id == "":
		return "ID must not be empty"
	case len(id) > 255:
		return "ID must not be greater than 255 characters"
	case id == "." || id == "..":
		return "'.' and '..' are reserved"
	case strings.ContainsAny(id, "/\\"):
		return "'/' and '\\' are not allowed"
	}
	for _, r := range id {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return "Whitespace and non-printable characters are not allowed"
		}
	}
	return ""
}

// validateTask checks one task of a LAUNCH the way the Mesos master does, in
// the same order, returning the TASK_ERROR message on failure. Features
// localmesos does not implement are refused here, by name.
func validateTask(t mesos.TaskInfo, lc launchContext) (launchPlan, string) {
	if msg := validateID(t.TaskID.Value); msg != "" {
		return launchPlan{}, msg
	}
	if lc.taskExists(t.TaskID.Value) {
		return launchPlan{}, "Task has duplicate ID: " + t.TaskID.Value
	}
	if t.AgentID.Value != lc.agentID {
		return launchPlan{}, fmt.Sprintf("Task uses invalid agent %s while agent %s is expected", t.AgentID.Value, lc.agentID)
	}
	if kp := t.KillPolicy; kp != nil && kp.GracePeriod != nil && kp.GracePeriod.Nanoseconds < 0 {
		return launchPlan{}, "Task's 'kill_policy.grace_period' must be non-negative"
	}
	if len(t.Resources) == 0 {
		return launchPlan{}, "Task uses no resources"
	}
	if msg := validateResources(t.Resources); msg != "" {
		return launchPlan{}, "Task uses invalid resources: Invalid resources: " + msg
	}
	taskRes, err := res.FromProto(t.Resources)
	if err != nil {
		return launchPlan{}, "Task uses invalid resources: " + err.Error()
	}
	if (t.Command == nil) == (t.Executor == nil) {
		return launchPlan{}, "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
	}
	if msg := unsupportedTask(t); msg != "" {
		return launchPlan{}, msg
	}
	plan := launchPlan{task: t, taskRes: taskRes}
	if e := t.Executor; e != nil {
		if msg := validateID(e.ExecutorID.Value); msg != "" {
			return launchPlan{}, "Executor ID is invalid: " + msg
		}
		if e.FrameworkID != nil && e.FrameworkID.Value != lc.frameworkID {
			return launchPlan{}, fmt.Sprintf("ExecutorInfo has an invalid FrameworkID (Actual: %s vs Expected: %s)", e.FrameworkID.Value, lc.frameworkID)
		}
		if g := e.ShutdownGracePeriod; g != nil && g.Nanoseconds < 0 {
			return launchPlan{}, "ExecutorInfo's 'shutdown_grace_period' must be non-negative"
		}
		if e.GetType() == mesos.ExecutorInfo_DEFAULT {
			return launchPlan{}, "The DEFAULT executor (task groups) is not implemented by localmesos"
		}
		if e.Command == nil {
			return launchPlan{}, "Executor " + e.ExecutorID.Value + " has no CommandInfo"
		}
		if msg := api.UnsupportedContainer(e.Container); msg != "" {
			return launchPlan{}, msg
		}
		if msg := validateResources(e.Resources); msg != "" {
			return launchPlan{}, "Executor uses invalid resources: Invalid resources: " + msg
		}
		execRes, err := res.FromProto(e.Resources)
		if err != nil {
			return launchPlan{}, "Executor uses invalid resources: " + err.Error()
		}
		// Mesos' detectOverlappingSetAndRangeResources: a port may not be
		// given to both the task and its executor.
		for _, name := range []string{"ports"} {
			if overlap(taskRes.Ranges(name), execRes.Ranges(name)) {
				return launchPlan{}, fmt.Sprintf("There are overlapping resources in the task resources %s and executor resources %s", taskRes, execRes)
			}
		}
		if existing, ok := lc.executor(e.ExecutorID.Value); ok {
			if !compatibleExecutor(existing, *e) {
				return launchPlan{}, "ExecutorInfo is not compatible with the existing executor " + e.ExecutorID.Value + " (same ExecutorID, different command or resources)"
			}
		} else {
			plan.newExecutor = true
			plan.executorRes = execRes
		}
	}
	plan.needed = taskRes.Add(plan.executorRes)
	if !lc.available.Contains(plan.needed) {
		return launchPlan{}, fmt.Sprintf("Total resources %s required by task and its executor is more than available %s", plan.needed, lc.available)
	}
	return plan, ""
}

// validateResources is Mesos' Resources::validate (src/common/resources.cpp)
// for the resource types localmesos knows, with its texts. It is stricter
// than res.FromProto, which would merge overlapping ranges.
func validateResources(rs []mesos.Resource) string {
	for _, r := range rs {
		if r.Name == "" {
			return "Empty resource name"
		}
		switch r.GetType() {
		case mesos.SCALAR:
			if r.Scalar == nil || r.Ranges != nil || r.Set != nil {
				return "Invalid scalar resource"
			}
			if r.Scalar.Value < 0 {
				return "Invalid scalar resource: value < 0"
			}
		case mesos.RANGES:
			if r.Scalar != nil || r.Ranges == nil || r.Set != nil {
				return "Invalid ranges resource"
			}
			rg := r.Ranges.Range
			for i := range rg {
				if rg[i].Begin > rg[i].End {
					return "Invalid ranges resource: begin > end"
				}
				// Mesos' own test, which only looks at later ranges'
				// beginnings; kept as is to refuse exactly what it refuses.
				for j := i + 1; j < len(rg); j++ {
					if rg[i].Begin <= rg[j].Begin && rg[j].Begin <= rg[i].End {
						return "Invalid ranges resource: overlapping ranges"
					}
				}
			}
		}
	}
	return ""
}

// overlap reports whether two lists of normalized ranges share a value.
func overlap(a, b []res.Range) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Begin <= y.End && y.Begin <= x.End {
				return true
			}
		}
	}
	return false
}

func unsupportedTask(t mesos.TaskInfo) string {
	switch {
	case api.UnsupportedContainer(t.Container) != "":
		return api.UnsupportedContainer(t.Container)
	case t.HealthCheck != nil:
		return "TaskInfo.health_check is not implemented by localmesos"
	case t.Check != nil:
		return "TaskInfo.check is not implemented by localmesos"
	case t.MaxCompletionTime != nil:
		return "TaskInfo.max_completion_time is not implemented by localmesos"
	case len(t.Limits) > 0:
		return "TaskInfo.limits is not implemented by localmesos"
	case t.Command != nil && t.Command.User != nil:
		return "CommandInfo.user (switching users) is not implemented by localmesos"
	case t.Executor != nil && t.Executor.Command != nil && t.Executor.Command.User != nil:
		return "CommandInfo.user (switching users) is not implemented by localmesos"
	}
	return ""
}

// compatibleExecutor compares the parts of two ExecutorInfos a framework
// sets; the master's own injections (framework id, allocation info) aside.
func compatibleExecutor(a, b mesos.ExecutorInfo) bool {
	if a.ExecutorID.Value != b.ExecutorID.Value || a.GetType() != b.GetType() {
		return false
	}
	if (a.Command == nil) != (b.Command == nil) {
		return false
	}
	if a.Command != nil && (a.Command.GetValue() != b.Command.GetValue() || len(a.Command.URIs) != len(b.Command.URIs)) {
		return false
	}
	ra, err1 := res.FromProto(api.StripAllocation(a.Resources))
	rb, err2 := res.FromProto(api.StripAllocation(b.Resources))
	return err1 == nil && err2 == nil && ra.Contains(rb) && rb.Contains(ra)
}

// allocated injects allocation_info {role "*"} into every resource, as the
// Master does before a task reaches the agent.
func allocated(rs []mesos.Resource) []mesos.Resource {
	star := "*"
	out := make([]mesos.Resource, len(rs))
	for i, r := range rs {
		if r.AllocationInfo == nil {
			r.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &star}
		}
		r.Role = nil
		out[i] = r
	}
	return out
}
