package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/core"
)

// The scheduler's Go API: what the HTTP API does, for callers in the same
// process (`tiltai up`, tests). Each call runs in the loop.

// ErrStopped: the scheduler stopped (or the context ended) before the call
// could run.
var ErrStopped = errors.New("the scheduler is not running")

// InvalidSpecError lists every problem of a refused spec.
type InvalidSpecError struct {
	Problems linkspec.Problems
}

func (e *InvalidSpecError) Error() string {
	return "the spec is invalid; nothing was changed:\n" + e.Problems.Errors().Error()
}

// ConflictError: the accepted spec is not the version the caller based its
// change on.
type ConflictError struct {
	Current, Expected int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the spec is at version %d, not %d: someone else changed it; get it again and retry", e.Current, e.Expected)
}

// UnknownServiceError: the named service is not in the accepted spec.
type UnknownServiceError struct {
	Service string
	Version int
}

func (e *UnknownServiceError) Error() string {
	return fmt.Sprintf("no service %q in spec version %d", e.Service, e.Version)
}

// SubmitOptions qualify a change of the spec.
type SubmitOptions struct {
	// IfMatch is the spec version the change is based on; -1 for any.
	IfMatch int
	// DryRun computes the changes without making them.
	DryRun bool
}

// SubmitSpec validates src (YAML or JSON; name is used in problem
// locations) and makes it the accepted spec. It returns once the new spec
// is stored and being acted on.
func (s *Scheduler) SubmitSpec(ctx context.Context, name string, src []byte, opts SubmitOptions) (SubmitResult, error) {
	spec, probs := linkspec.Parse(name, src)
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
	next := v.Spec.Clone()
	next.Services[service].Instances = instances
	if probs := next.Validate(); probs.Err() != nil {
		return SubmitResult{}, &InvalidSpecError{Problems: probs}
	}
	// The stored source is the normalised spec, which parses back to it.
	src, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return SubmitResult{}, fmt.Errorf("cannot encode the scaled spec: %w", err)
	}
	spec, probs := linkspec.Parse("scaled.json", src)
	if probs.Err() != nil {
		return SubmitResult{}, fmt.Errorf("the scaled spec does not parse back (a bug): %w", probs.Err())
	}
	return s.submit(ctx, spec, src, "scaled.json", opts, nil)
}

// submit makes spec the accepted one, unless IfMatch names another version
// or this is a dry run.
func (s *Scheduler) submit(ctx context.Context, spec *linkspec.Spec, src []byte, name string, opts SubmitOptions, warnings []linkspec.Problem) (SubmitResult, error) {
	r, err := s.submitIn(ctx, core.SubmitSpec{Name: name, Source: src, Spec: spec, IfMatch: opts.IfMatch, DryRun: opts.DryRun, Warnings: warnings})
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

// Tasks lists the tasks (of one service, or all when service is "").
func (s *Scheduler) Tasks(ctx context.Context, service string) ([]TaskInfo, error) {
	select {
	case <-s.done:
		return nil, ErrStopped
	default:
	}
	return taskInfos(s.view.Load(), service), nil
}
