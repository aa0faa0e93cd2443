package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tiltai/tiltai/linkspec"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// Service is what the API serves: the scheduler, or an in-memory one in
// tests. Each part is a small interface of its own.
type Service interface {
	Reader
	Writer
	Events
	Files
}

// Reader gives the state that reads are answered from.
type Reader interface {
	// View returns the state as of the scheduler's last step, or
	// ErrStopped once it stopped. It must not wait for a write.
	View() (View, error)
}

// View is one immutable state: what one read request sees, consistent in
// itself. Tasks are listed in launch order; Task(i) is the i-th's key (for
// filtering and paging) and TaskInfo(i) its entry, built only for the
// tasks of the page asked for.
type View interface {
	Health() apitypes.Health
	Spec() apitypes.SpecInfo
	Status() apitypes.Status
	Agents() []apitypes.Agent
	Links() []apitypes.TaskLinks
	Tasks() int
	Task(i int) apitypes.Task
	TaskInfo(i int) apitypes.TaskInfo
}

// Writer changes the spec. Both return once the change is stored (or
// refused: *InvalidSpecError, *ConflictError, *UnknownServiceError,
// ErrBusy or a *BusyError, ErrStopped).
type Writer interface {
	SubmitSpec(ctx context.Context, name string, src []byte, opts SubmitOptions) (apitypes.SubmitResult, error)
	Scale(ctx context.Context, service string, instances int, opts SubmitOptions) (apitypes.SubmitResult, error)
}

// Events is where GET /v1/events streams from (a Bus).
type Events interface {
	Subscribe() Subscription
}

// Subscription is one client's queue of events.
type Subscription interface {
	// Notify has a value when events may be waiting; it is asked again
	// after each wake-up.
	Notify() <-chan struct{}
	// Done is closed when the stream must end.
	Done() <-chan struct{}
	// Take returns the events queued and how many were lost before them.
	Take() ([]apitypes.Event, uint64)
	// Close ends the subscription; it may be called more than once.
	Close()
}

// Files reads a task's sandbox (GET /v1/tasks/{id}/files/{name}).
type Files interface {
	// TaskFile reads a piece of file (stdout or stderr, checked by the
	// handler) of task id. A *StatusError says what to answer; any other
	// error is a 502.
	TaskFile(ctx context.Context, req FileRequest) (apitypes.TaskFile, error)
}

// FileRequest is one read of a task's sandbox file. Offset and Length are
// -1 when not given (from the start; what the agent gives at once).
type FileRequest struct {
	Task, File     string
	Offset, Length int64
}

// SubmitOptions qualify a change of the spec.
type SubmitOptions struct {
	// IfMatch is the spec version the change is based on; -1 for any.
	IfMatch int
	// DryRun computes the changes without making them.
	DryRun bool
}

// ErrStopped: the scheduler stopped (or the context ended) before the call
// could run.
var ErrStopped = errors.New("the scheduler is not running")

// ErrBusy: as many specs as the scheduler checks at once were being
// checked for longer than a caller may wait; nothing was changed, retry
// (in a second: Retry-After: 1).
var ErrBusy = errors.New("the scheduler is busy checking other specs")

// BusyError is ErrBusy with the time a client should wait before retrying.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string        { return ErrBusy.Error() }
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

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

// ScaledSpec is cur with service's instances set to instances, checked
// with opts, and the source to store for it: the normalised spec as JSON,
// which parses back to it (as "scaled.json"). cur is not changed. A
// Writer's Scale is this and a submission.
func ScaledSpec(ctx context.Context, cur *linkspec.Spec, service string, instances int, opts linkspec.ParseOptions) (*linkspec.Spec, []byte, error) {
	next := cur.Clone()
	next.Services[service].Instances = instances
	if probs := next.ValidateWith(opts); probs.Err() != nil {
		return nil, nil, &InvalidSpecError{Problems: probs}
	}
	src, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot encode the scaled spec: %w", err)
	}
	spec, probs := linkspec.ParseWith(ctx, "scaled.json", src, opts)
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
	}
	if probs.Err() != nil {
		return nil, nil, fmt.Errorf("the scaled spec does not parse back (a bug): %w", probs.Err())
	}
	return spec, src, nil
}
