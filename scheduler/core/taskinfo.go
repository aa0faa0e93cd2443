package core

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/executor/contract"
	"github.com/tiltai/tiltai/gate/control"
	"github.com/tiltai/tiltai/linkspec"
)

// taskInfo builds what Mesos launches: the task's resources and data, and
// an executor that is this very binary, fetched from this scheduler.
func (m *Machine) taskInfo(t *taskRecord, pl placement) (mesos.TaskInfo, error) {
	svc := m.st.spec.Services[t.Service]
	if svc == nil {
		return mesos.TaskInfo{}, fmt.Errorf("service %q is not in the spec", t.Service)
	}
	command, args := svc.Command, svc.Args
	if command == "" && svc.Image != "" {
		argv := m.st.specRec.Commands[t.Service]
		if len(argv) == 0 {
			return mesos.TaskInfo{}, fmt.Errorf("service %q names image %s but no command, and none was read from the image", t.Service, svc.Image)
		}
		command, args = argv[0], argv[1:]
	}
	data := contract.TaskData{
		Service: t.Service, Command: command, Args: args, Env: svc.Env, Image: svc.Image,
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
	container := imageContainer(svc)
	if container != nil {
		// In an image the agent starts the executor in the image's
		// working directory ("/" on Mesos), not the sandbox; without a
		// shell (the image may have none) the path is spelled out.
		value = SandboxInImage + "/" + m.cfg.ExecutorName
	}
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
			Container: container,
		},
		Data:       raw,
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}},
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: "tiltai.service", Value: strPtr(t.Service)},
			{Key: "tiltai.config", Value: strPtr(t.Config)},
		}},
	}, nil
}

// SandboxInImage is where Mesos mounts the sandbox in a container with an
// image, and MESOS_SANDBOX's value there: the agent's --sandbox_directory,
// whose default every agent is assumed to keep.
const SandboxInImage = "/mnt/mesos/sandbox"

// imageContainer is the executor's container for a service with an image:
// the Mesos containerizer with a Docker image, so the executor and the
// service it starts run in the image's file system, and the volumes
// mounted into it (nil without an image).
func imageContainer(svc *linkspec.Service) *mesos.ContainerInfo {
	if svc.Image == "" {
		return nil
	}
	cached := !svc.ForcePull
	typ := mesos.ContainerInfo_MESOS
	c := &mesos.ContainerInfo{
		Type: &typ,
		Mesos: &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{
			Type:   mesos.Image_DOCKER.Enum(),
			Docker: &mesos.Image_Docker{Name: svc.Image},
			Cached: &cached,
		}},
	}
	for _, v := range svc.Volumes {
		mode := mesos.RO
		if v.Mode == linkspec.ReadWrite {
			mode = mesos.RW
		}
		hp := v.HostPath
		c.Volumes = append(c.Volumes, mesos.Volume{Mode: &mode, ContainerPath: v.ContainerPath, HostPath: &hp})
	}
	return c
}

func strPtr(s string) *string { return &s }
