package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/core"
	"github.com/tiltai/tiltai/scheduler/httpapi"
)

// The scheduler's Go API: what the HTTP API does, for callers in the same
// process (`tiltai up`, tests). Each call runs in the loop.

// The Go API's errors and options are the HTTP API's (package httpapi),
// which answers each with its status.
var (
	// ErrStopped: the scheduler stopped (or the context ended) before the
	// call could run.
	ErrStopped = httpapi.ErrStopped
	// ErrBusy: as many specs as the scheduler checks at once were being
	// checked for longer than a caller may wait; nothing was changed, retry.
	ErrBusy = httpapi.ErrBusy
)

type (
	// InvalidSpecError lists every problem of a refused spec.
	InvalidSpecError = httpapi.InvalidSpecError
	// ConflictError: the accepted spec is not the version the caller based
	// its change on.
	ConflictError = httpapi.ConflictError
	// UnknownServiceError: the named service is not in the accepted spec.
	UnknownServiceError = httpapi.UnknownServiceError
	// SubmitOptions qualify a change of the spec.
	SubmitOptions = httpapi.SubmitOptions
)

// parsing takes one of the few parse slots, waiting at most
// cfg.parseWait (and no longer than ctx): parsing a large spec takes
// memory and CPU, and a burst of submissions must not take them all.
func (s *Scheduler) parsing(ctx context.Context) (release func(), err error) {
	select {
	case s.parseSlots <- struct{}{}:
		return func() { <-s.parseSlots }, nil
	default:
	}
	t := time.NewTimer(s.cfg.parseWait)
	defer t.Stop()
	select {
	case s.parseSlots <- struct{}{}:
		return func() { <-s.parseSlots }, nil
	case <-t.C:
		s.metrics.parseRefused.Inc()
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
	}
}

func (s *Scheduler) parseOptions() linkspec.ParseOptions {
	opt := linkspec.ParseOptions{MaxTasks: s.cfg.MaxTasks, NoImages: s.art.NoImages()}
	if s.cfg.DockerRegistry == "" {
		opt.ImageNeedsCommand = imageNeedsCommand
	}
	return opt
}

// SubmitSpec validates src (YAML or JSON; name is used in problem
// locations) and makes it the accepted spec. It returns once the new spec
// is stored and being acted on.
func (s *Scheduler) SubmitSpec(ctx context.Context, name string, src []byte, opts SubmitOptions) (SubmitResult, error) {
	release, err := s.parsing(ctx)
	if err != nil {
		return SubmitResult{}, err
	}
	spec, probs := linkspec.ParseWith(ctx, name, src, s.parseOptions())
	release()
	if ctx.Err() != nil {
		return SubmitResult{}, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
	}
	if probs.Err() != nil {
		return SubmitResult{}, &InvalidSpecError{Problems: probs}
	}
	return s.submit(ctx, spec, src, name, opts, probs.Warnings())
}

// Scale sets a service's instance count: a new spec version.
func (s *Scheduler) Scale(ctx context.Context, service string, instances int, opts SubmitOptions) (SubmitResult, error) {
	select {
	case <-s.done:
		return SubmitResult{}, ErrStopped
	default:
	}
	// The spec as of the last step: if it changes before this one is
	// submitted, the submission's IfMatch makes it a conflict.
	v := s.view.Load()
	if v.Spec.Services[service] == nil {
		return SubmitResult{}, &UnknownServiceError{Service: service, Version: v.SpecVersion}
	}
	if opts.IfMatch < 0 {
		opts.IfMatch = v.SpecVersion
	}
	release, err := s.parsing(ctx)
	if err != nil {
		return SubmitResult{}, err
	}
	defer release()
	spec, src, err := httpapi.ScaledSpec(ctx, v.Spec, service, instances, s.parseOptions())
	if err != nil {
		return SubmitResult{}, err
	}
	return s.submit(ctx, spec, src, "scaled.json", opts, nil)
}

// submit makes spec the accepted one, unless IfMatch names another version
// or this is a dry run.
func (s *Scheduler) submit(ctx context.Context, spec *linkspec.Spec, src []byte, name string, opts SubmitOptions, warnings []linkspec.Problem) (SubmitResult, error) {
	commands, err := s.imageCommands(ctx, spec, s.view.Load())
	if err != nil {
		return SubmitResult{}, err
	}
	r, err := s.submitIn(ctx, core.SubmitSpec{Name: name, Source: src, Spec: spec, IfMatch: opts.IfMatch, DryRun: opts.DryRun, Warnings: warnings, Commands: commands})
	switch {
	case err != nil:
		return SubmitResult{}, err
	case r.Err != nil:
		// A store that refuses stops the scheduler; the caller hears it
		// did not take (503), not "accepted".
		return SubmitResult{}, fmt.Errorf("%w: the spec could not be stored: %w", ErrStopped, r.Err)
	case r.Conflict:
		return SubmitResult{}, &ConflictError{Current: r.Version, Expected: opts.IfMatch}
	}
	return SubmitResult{Version: r.Version, Changed: r.Changed, DryRun: r.DryRun, Changes: r.Changes, Warnings: r.Warnings}, nil
}

// Status reports how far the running system is from the accepted spec.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	select {
	case <-s.done:
		return Status{}, ErrStopped
	default:
	}
	return statusView(s.view.Load()), nil
}

// Tasks lists the tasks (of one service, or all when service is ""), in
// launch order.
func (s *Scheduler) Tasks(ctx context.Context, service string) ([]TaskInfo, error) {
	select {
	case <-s.done:
		return nil, ErrStopped
	default:
	}
	v := s.view.Load()
	ts := []TaskInfo{}
	for i := range v.Tasks {
		if service == "" || v.Tasks[i].Service == service {
			ts = append(ts, taskView(&v.Tasks[i]))
		}
	}
	return ts, nil
}

// specTasks is how many tasks spec asks for in all.
func specTasks(spec *linkspec.Spec) int {
	n := 0
	for _, svc := range spec.Services {
		n += svc.Instances
	}
	return n
}
