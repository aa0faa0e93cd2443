package master

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"strings"
	"testing"

	"github.com/tiltai/tiltai/localmesos/internal/res"
)

func TestValidateTask(t *testing.T) {
	avail, _ := res.Parse("cpus:1;mem:128;ports:[31000-31010]")
	scalar := func(n string, v float64) mesos.Resource {
		ty := mesos.SCALAR
		return mesos.Resource{Name: n, Type: &ty, Scalar: &mesos.Value_Scalar{Value: v}}
	}
	cmd := "true"
	base := func() mesos.TaskInfo {
		return mesos.TaskInfo{Name: "t", TaskID: mesos.TaskID{Value: "t"}, AgentID: mesos.AgentID{Value: "A"},
			Command: &mesos.CommandInfo{Value: &cmd}, Resources: []mesos.Resource{scalar("cpus", 0.5), scalar("mem", 64)}}
	}
	existing := mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e1"}, Command: &mesos.CommandInfo{Value: &cmd}}
	other := "other"
	for _, tc := range []struct {
		name   string
		mutate func(*mesos.TaskInfo)
		want   string // "" = valid
	}{
		{"valid command task", func(*mesos.TaskInfo) {}, ""},
		{"empty id", func(t *mesos.TaskInfo) { t.TaskID.Value = "" }, "ID must not be empty"},
		{"slash in id", func(t *mesos.TaskInfo) { t.TaskID.Value = "a/b" }, "not allowed"},
		{"duplicate", func(t *mesos.TaskInfo) { t.TaskID.Value = "dup" }, "Task has duplicate ID: dup"},
		{"wrong agent", func(t *mesos.TaskInfo) { t.AgentID.Value = "B" }, "Task uses invalid agent B while agent A is expected"},
		{"neither", func(t *mesos.TaskInfo) { t.Command = nil }, "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"},
		{"both", func(t *mesos.TaskInfo) { t.Executor = &existing }, "at least one (but not both)"},
		{"too much", func(t *mesos.TaskInfo) { t.Resources[0] = scalar("cpus", 2) }, "Total resources cpus(allocated: *):2; mem(allocated: *):64 required by task and its executor is more than available cpus(allocated: *):1; mem(allocated: *):128; ports(allocated: *):[31000-31010]"},
		{"health check", func(t *mesos.TaskInfo) { t.HealthCheck = &mesos.HealthCheck{} }, "health_check is not implemented by localmesos"},
		{"existing executor reused", func(t *mesos.TaskInfo) { t.Command = nil; e := existing; t.Executor = &e }, ""},
		{"incompatible executor", func(t *mesos.TaskInfo) {
			t.Command = nil
			e := existing
			e.Command = &mesos.CommandInfo{Value: &other}
			t.Executor = &e
		}, "not compatible"},
		{"executor of another framework", func(t *mesos.TaskInfo) {
			t.Command = nil
			t.Executor = &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "e2"}, FrameworkID: &mesos.FrameworkID{Value: "F2"}, Command: &mesos.CommandInfo{Value: &cmd}}
		}, "ExecutorInfo has an invalid FrameworkID (Actual: F2 vs Expected: F)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := base()
			tc.mutate(&ti)
			_, msg := validateTask(ti, launchContext{
				frameworkID: "F", agentID: "A", available: avail,
				taskExists: func(id string) bool { return id == "dup" },
				executor: func(id string) (mesos.ExecutorInfo, bool) {
					if id == "e1" {
						return existing, true
					}
					return mesos.ExecutorInfo{}, false
				},
			})
			if tc.want == "" && msg != "" || tc.want != "" && !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q, want %q", msg, tc.want)
			}
		})
	}
}
