package core

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
)

// taskInfo builds what Mesos launches: the task's resources and data, and
// an executor that is this very binary, fetched from this scheduler.
func (m *Machine) taskInfo(t *taskRecord, pl placement) (mesos.TaskInfo, error) {
	svc := m.st.spec.Services[t.Service]
	if svc == nil {
		return mesos.TaskInfo{}, fmt.Errorf("service %q is not in the spec", t.Service)
	}
	data := contract.TaskData{
		Service: t.Service, Command: svc.Command, Args: svc.Args, Env: svc.Env,
		Health: contract.Health{
			ReadyTimeout:    contract.D(svc.Health.ReadyTimeout.Std()),
			LivenessTimeout: contract.D(svc.Health.LivenessTimeout.Std()),
		},
		KillGracePeriod: contract.D(svc.KillGracePeriod.Std()),
	}
	for _, g := range m.st.spec.InGates(t.Service) {
		data.Gates = append(data.Gates, contract.Gate{Name: g, Pattern: control.Pattern(svc.Gates[g]), Port: int(t.Ports[g])})
	}
	for _, g := range m.st.spec.OutGates(t.Service) {
		data.Gates = append(data.Gates, contract.Gate{Name: g, Pattern: control.Pattern(svc.Gates[g])})
	}
	raw, err := contract.EncodeTaskData(data)
	if err != nil {
		return mesos.TaskInfo{}, err
	}
	var uris []mesos.CommandInfo_URI
	for _, u := range svc.URIs {
		u := u
		uri := mesos.CommandInfo_URI{Value: u.Value, Executable: &u.Executable, Extract: &u.Extract}
		if u.OutputFile != "" {
			uri.OutputFile = &u.OutputFile
		}
		uris = append(uris, uri)
	}
	// The name carries the content hash, so a fetcher cache can keep it.
	exe, extract, shell, cache := true, false, false, true
	value := "./" + m.cfg.ExecutorName
	uris = append(uris, mesos.CommandInfo_URI{Value: m.cfg.ExecutorURL, Executable: &exe, Extract: &extract, Cache: &cache})
	fwID := mesos.FrameworkID{Value: m.st.frameworkID}
	grace := svc.KillGracePeriod.Std().Nanoseconds()
	return mesos.TaskInfo{
		Name:      t.ID,
		TaskID:    mesos.TaskID{Value: t.ID},
		AgentID:   mesos.AgentID{Value: t.AgentID},
		Resources: pl.Task,
		Executor: &mesos.ExecutorInfo{
			Type:        mesos.ExecutorInfo_CUSTOM,
			ExecutorID:  mesos.ExecutorID{Value: t.executorID()},
			FrameworkID: &fwID,
			Name:        strPtr("tiltai executor for " + t.ID),
			Source:      strPtr("tiltai"),
			Command: &mesos.CommandInfo{
				URIs:      uris,
				Shell:     &shell,
				Value:     &value,
				Arguments: []string{m.cfg.ExecutorName, "executor"},
			},
			Resources: pl.Executor,
		},
		Data:       raw,
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}},
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: "tiltai.service", Value: strPtr(t.Service)},
			{Key: "tiltai.config", Value: strPtr(t.Config)},
		}},
	}, nil
}

func strPtr(s string) *string { return &s }
