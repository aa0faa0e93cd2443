package scheduler

import (
	"context"
	"fmt"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tiltai/tiltai/internal/imageconfig"
	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/core"
)

// Services that name an image but no command run as Docker would run the
// image: its ENTRYPOINT, then the spec's args or else its CMD. Mesos
// hands a custom executor the image's ENV and working directory but never
// its ENTRYPOINT or CMD, so the scheduler reads them itself, from the
// registry its agents pull from (Config.DockerRegistry, as the agents'
// --docker_registry), when it accepts the spec; they are stored with the
// spec, so a restart needs no registry.

// imageNeedsCommand is why, without a registry to read images from, a
// service in an image must name its command.
const imageNeedsCommand = "the scheduler has no registry to read the image's ENTRYPOINT and CMD from " +
	"(start it with --docker_registry, as the agents'), and Mesos does not tell the executor"

// imageReadTimeout bounds the reading of a submission's images.
const imageReadTimeout = 30 * time.Second

// imageCommands reads what runs each of spec's services that name an
// image but no command. What the current spec (v) already read for the
// same image and args is reused: scaling needs no registry.
func (s *Scheduler) imageCommands(ctx context.Context, spec *linkspec.Spec, v *core.View) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, imageReadTimeout)
	defer cancel()
	var out map[string][]string
	var probs linkspec.Problems
	type readOut struct {
		cfg v1.Config
		err error
	}
	read := map[string]readOut{} // each image once per submission
	for _, name := range spec.ServiceNames() {
		svc := spec.Services[name]
		if svc.Image == "" || svc.Command != "" {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		if old := v.Spec.Services[name]; old != nil && old.Image == svc.Image && old.Command == "" && slices.Equal(old.Args, svc.Args) && v.Commands[name] != nil {
			out[name] = v.Commands[name]
			continue
		}
		r, ok := read[svc.Image]
		if !ok {
			r.cfg, r.err = imageconfig.Read(ctx, s.cfg.DockerRegistry, svc.Image, nil)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
			}
			read[svc.Image] = r
		}
		err := r.err
		if err == nil {
			out[name], err = imageconfig.Argv(r.cfg, "", svc.Args)
		}
		if err != nil {
			probs = append(probs, spec.ProblemAt("services."+name+".image",
				"give the service a `command:`, or make the image readable at "+s.cfg.DockerRegistry,
				"cannot read what image %s runs from %s: %v", svc.Image, s.cfg.DockerRegistry, err))
		}
	}
	if len(probs) > 0 {
		return nil, &InvalidSpecError{Problems: probs}
	}
	return out, nil
}
