package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tiltai/tiltai/linkspec"
)

// The scheduler's Go API: what the HTTP API does, for callers in the same
// process (`tiltai up`, tests). Each call runs in the loop.

// ErrStopped: the scheduler stopped (or the context ended) before the call
// could run.
var ErrStopped = errors.New("the scheduler is not running")

// ErrBusy: as many specs as the scheduler checks at once were being
// checked for longer than a caller may wait; nothing was changed, retry.
var ErrBusy = errors.New("the scheduler is busy checking other specs")

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
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
	}
}

func (s *Scheduler) parseOptions() linkspec.ParseOptions {
	// Images are refused until the scheduler puts them on the executor's
	// ContainerInfo: accepted and ignored, a service would run on the
	// agent's own filesystem instead of in its image.
	return linkspec.ParseOptions{MaxTasks: s.cfg.MaxTasks, NoImages: "this scheduler does not run services in images yet"}
}

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
	var (
		next *linkspec.Spec
		err  error
	)
	if !s.do(ctx, func() {
		if s.st.spec.Services[service] == nil {
			err = &UnknownServiceError{Service: service, Version: s.st.specRec.Version}
			return
		}
		if opts.IfMatch < 0 {
			opts.IfMatch = s.st.specRec.Version
		}
		next = s.st.spec.Clone()
		next.Services[service].Instances = instances
	}) {
		return SubmitResult{}, ErrStopped
	}
	if err != nil {
		return SubmitResult{}, err
	}
	release, err := s.parsing(ctx)
	if err != nil {
		return SubmitResult{}, err
	}
	defer release()
	if probs := next.ValidateWith(s.parseOptions()); probs.Err() != nil {
		return SubmitResult{}, &InvalidSpecError{Problems: probs}
	}
	// The stored source is the normalised spec, which parses back to it.
	src, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return SubmitResult{}, fmt.Errorf("cannot encode the scaled spec: %w", err)
	}
	spec, probs := linkspec.ParseWith(ctx, "scaled.json", src, s.parseOptions())
	if ctx.Err() != nil {
		return SubmitResult{}, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
	}
	if probs.Err() != nil {
		return SubmitResult{}, fmt.Errorf("the scaled spec does not parse back (a bug): %w", probs.Err())
	}
	return s.submit(ctx, spec, src, "scaled.json", opts, nil)
}

// submit makes spec the accepted one, unless IfMatch names another version
// or this is a dry run.
func (s *Scheduler) submit(ctx context.Context, spec *linkspec.Spec, src []byte, name string, opts SubmitOptions, warnings []linkspec.Problem) (SubmitResult, error) {
	var (
		res     SubmitResult
		callErr error
	)
	if !s.doErr(ctx, func() error {
		cur := s.st.specRec.Version
		if opts.IfMatch >= 0 && opts.IfMatch != cur {
			callErr = &ConflictError{Current: cur, Expected: opts.IfMatch}
			return nil
		}
		res = SubmitResult{Version: cur, DryRun: opts.DryRun, Changes: linkspec.Diff(s.st.spec, spec), Warnings: warnings}
		if res.Changes == nil {
			res.Changes = []linkspec.Change{}
		}
		if opts.DryRun || (len(res.Changes) == 0 && cur > 0) {
			return nil
		}
		s.st.specRec = specRecord{Version: cur + 1, Name: name, Source: src, Accepted: s.cfg.Now().UTC()}
		s.st.spec = spec
		s.st.dirty[keySpec] = true
		s.planner.SetSpec(spec)
		s.storeFirst = true
		// Stored (and acted on) before the answer says accepted. A store
		// that refuses stops the scheduler; the caller hears it did not
		// take (503), not "accepted".
		if err := s.step(); err != nil {
			callErr = fmt.Errorf("%w: the spec could not be stored: %w", ErrStopped, err)
			return err
		}
		res.Version, res.Changed = cur+1, true
		s.event("spec_accepted", map[string]any{"version": cur + 1, "changes": len(res.Changes)})
		s.log.Info("spec accepted", "version", cur+1, "changes", len(res.Changes), "name", name)
		return nil
	}) {
		return SubmitResult{}, ErrStopped
	}
	return res, callErr
}

// Status reports how far the running system is from the accepted spec.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	var st Status
	if !s.do(ctx, func() { st = s.statusView() }) {
		return st, ErrStopped
	}
	return st, nil
}

// Tasks lists the tasks (of one service, or all when service is ""), in
// launch order.
func (s *Scheduler) Tasks(ctx context.Context, service string) ([]TaskInfo, error) {
	ts := []TaskInfo{}
	if !s.do(ctx, func() {
		for _, t := range s.st.sortedTasks() {
			if service == "" || t.Service == service {
				ts = append(ts, s.taskView(t))
			}
		}
	}) {
		return nil, ErrStopped
	}
	return ts, nil
}
