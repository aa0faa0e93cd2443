package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/containerizer"

	"github.com/tiltai/tiltai/internal/uuid"
)

// Running executors in Docker images, as the Mesos containerizer does with
// --image_providers=docker --isolation=filesystem/linux,docker/runtime. The
// store, pullers, copy backend and namespace launcher are in
// internal/containerizer; this file decides, per executor, what to run
// where.

// containerLaunch is what an executor in an image needs beyond its spec.
type containerLaunch struct {
	rootfs  string
	image   containerizer.Image
	volumes []containerizer.Volume
}

func launchFailed(msg string) error { return errors.New("Failed to launch container: " + msg) }

// provision pulls the image, makes the container's rootfs and adjusts the
// executor's environment as the filesystem/linux and docker/runtime
// isolators do. It runs in the launch goroutine.
func (a *Agent) provision(ctx context.Context, c *mesos.ContainerInfo, command bool, spec *ExecutorSpec) error {
	im := c.GetMesos().GetImage()
	if im == nil {
		return launchFailed("localmesos runs host_path volumes only in a container image")
	}
	if im.GetType() != mesos.Image_DOCKER || a.images == nil {
		return launchFailed(fmt.Sprintf("Unsupported container image type: %d", im.GetType()))
	}
	img, pulled, err := a.images.Get(ctx, im.GetDocker().GetName())
	if err != nil {
		return launchFailed(err.Error())
	}
	if pulled {
		a.log.Info("pulled image", "image", img.Name, "layers", len(img.Layers))
	}
	rootfs := filepath.Join(a.provisionerDir(spec.ContainerID), "backends", "copy", "rootfses", uuid.New().String())
	if err := a.images.Provision(img, rootfs); err != nil {
		return launchFailed(fmt.Sprintf("Failed to provision image '%s': %v", img.Name, err))
	}
	cl := &containerLaunch{rootfs: rootfs, image: img}
	for _, v := range c.Volumes {
		cl.volumes = append(cl.volumes, containerizer.Volume{HostPath: v.GetHostPath(), ContainerPath: v.ContainerPath, ReadOnly: v.GetMode() == mesos.RO})
	}
	spec.container = cl
	// MESOS_SANDBOX is where the sandbox is in the container. A custom
	// executor also gets the image's ENV, then its CommandInfo's again
	// (they win); the command executor hands the image's ENV to its task.
	env := setEnv(spec.Env, "MESOS_SANDBOX="+containerizer.SandboxPath)
	if !command {
		env = setEnv(env, containerizer.ImageEnv(img.Config)...)
		if ce := spec.Command.Environment; ce != nil {
			for _, v := range ce.Variables {
				env = setEnv(env, v.Name+"="+v.GetValue())
			}
		}
	}
	spec.Env = env
	return nil
}

func (a *Agent) provisionerDir(containerID string) string {
	return filepath.Join(a.workDir, "provisioner", "containers", containerID)
}

// destroyContainer removes a container's rootfs once its executor is gone.
func (a *Agent) destroyContainer(e *agentExecutor) {
	if a.images == nil {
		return
	}
	dir := a.provisionerDir(e.containerID)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = os.RemoveAll(dir)
	}()
}

// setEnv sets "NAME=value" lines, replacing earlier ones of the same name.
func setEnv(env []string, lines ...string) []string {
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		out := env[:0:0]
		for _, e := range env {
			if n, _, _ := strings.Cut(e, "="); n != name {
				out = append(out, e)
			}
		}
		env = append(out, l)
	}
	return env
}

// containerCommand is the executor's command in its image: the CommandInfo
// merged with the image's ENTRYPOINT and CMD, in its namespaces.
func containerCommand(cl *containerLaunch, sandbox string, c mesos.CommandInfo, env []string) (*exec.Cmd, error) {
	path, argv, err := containerizer.LaunchCommand(cl.image.Config, c.Shell == nil || *c.Shell, c.GetValue(), c.Value != nil, c.Arguments)
	if err != nil {
		return nil, launchFailed("Failed to determine the launch command: " + err.Error())
	}
	dir := cl.image.Config.WorkingDir
	if dir == "" {
		dir = containerizer.SandboxPath
	}
	return containerizer.Command(containerizer.Spec{Rootfs: cl.rootfs, Sandbox: sandbox, Volumes: cl.volumes,
		Path: path, Args: argv, Env: setEnv(env, "PWD="+dir), Dir: dir})
}
