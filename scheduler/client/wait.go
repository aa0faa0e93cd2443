package client

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// Defaults of WaitOptions.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultMaxFailures  = 3
)

// WaitOptions tunes WaitConverged. The zero value takes the defaults.
type WaitOptions struct {
	// Progress is called with every status read.
	Progress func(apitypes.Status)
	// Retry is called when a poll failed in a way worth retrying (the
	// scheduler unreachable, stopping or busy); the wait goes on.
	Retry func(error)
	// Interval between polls (default DefaultPollInterval).
	Interval time.Duration
	// MaxFailures: a service that is not converged and whose failure count
	// has risen by this many since the baseline has failed, and so has the
	// wait (default DefaultMaxFailures; negative: never). 1 fails the wait
	// at a service's first crash.
	MaxFailures int
	// Baseline is a status read before the change: failures are counted
	// from it. Default: the first status the wait reads.
	Baseline *apitypes.Status
}

// WaitConverged polls GET /v1/status until the system has converged on spec
// version (or a later one): every service has its wanted tasks running on
// their current definition, none pending, launching, retiring or outdated,
// and every running task's executor has acknowledged its current link table.
//
// It fails with a *ServiceFailedError as soon as a service that is not
// converged keeps crashing (its failures rose by MaxFailures since the
// baseline) or is held in crash backoff beyond ctx's deadline; with a
// *NotConvergedError (wrapping ctx's error) when ctx ends first; and at once
// on an error that retrying will not mend (unauthorized, not found).
// Unreachable or busy schedulers are retried until ctx ends: a scheduler
// that restarts during the wait is followed.
func (c *Client) WaitConverged(ctx context.Context, version int, o WaitOptions) (apitypes.Status, error) {
	if o.Interval <= 0 {
		o.Interval = DefaultPollInterval
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	var base map[string]int
	if o.Baseline != nil {
		base = failures(*o.Baseline)
	}
	var (
		last    apitypes.Status
		seen    bool
		lastErr error
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, &NotConvergedError{Version: version, Status: last, Seen: seen, LastErr: lastErr, Err: ctx.Err()}
		case <-timer.C:
		}
		st, now, err := c.status(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return last, &NotConvergedError{Version: version, Status: last, Seen: seen, LastErr: lastErr, Err: ctx.Err()}
		case err != nil && Retryable(err):
			lastErr = err
			if o.Retry != nil {
				o.Retry(err)
			}
			timer.Reset(o.Interval)
			continue
		case err != nil:
			return last, fmt.Errorf("cannot follow the progress of spec version %d: %w", version, err)
		}
		lastErr = nil
		last, seen = st, true
		if now.IsZero() {
			now = time.Now()
		}
		if base == nil {
			base = failures(st)
		}
		if o.Progress != nil {
			o.Progress(st)
		}
		if st.SpecVersion >= version && st.Converged {
			return st, nil
		}
		deadline, hasDeadline := ctx.Deadline()
		for _, ss := range st.Services {
			if ss.Failures < base[ss.Name] {
				// The count was reset after a stable run: rises count
				// from here.
				base[ss.Name] = ss.Failures
			}
			if ss.Converged {
				continue
			}
			rose := ss.Failures - base[ss.Name]
			if o.MaxFailures > 0 && rose >= o.MaxFailures {
				return st, &ServiceFailedError{Service: ss.Name, Failures: rose, LastFailure: ss.LastFailure, HeldUntil: ss.HeldUntil, Status: st,
					Why: fmt.Sprintf("failed %s since the change", times(rose))}
			}
			// The Date header has a resolution of a second; the hold is
			// judged against the scheduler's clock, not ours.
			if hasDeadline && ss.Failures > 0 && ss.HeldUntil.After(now.Add(time.Until(deadline)+time.Second)) {
				return st, &ServiceFailedError{Service: ss.Name, Failures: rose, LastFailure: ss.LastFailure, HeldUntil: ss.HeldUntil, Status: st,
					Why: fmt.Sprintf("is held in crash backoff until %s, past the end of this wait, after %d failures", ss.HeldUntil.Local().Format(time.TimeOnly), ss.Failures)}
			}
		}
		timer.Reset(o.Interval)
	}
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func failures(st apitypes.Status) map[string]int {
	m := map[string]int{}
	for _, ss := range st.Services {
		m[ss.Name] = ss.Failures
	}
	return m
}

// ServiceFailedError: a service keeps failing, so the system will not
// converge by itself. The change stays accepted; fix the service (or the
// spec) and submit again.
type ServiceFailedError struct {
	Service string
	// Failures since the wait's baseline.
	Failures    int
	LastFailure string
	HeldUntil   time.Time
	// Why says what was seen, e.g. "failed 3 times since the change".
	Why    string
	Status apitypes.Status
}

func (e *ServiceFailedError) Error() string {
	msg := fmt.Sprintf("service %s %s", e.Service, e.Why)
	if e.LastFailure != "" {
		msg += "; last failure: " + e.LastFailure
	}
	return msg
}

// NotConvergedError: the wait ended (ctx) before the system converged.
type NotConvergedError struct {
	Version int
	// Status is the last status read (Seen false: none could be read).
	Status apitypes.Status
	Seen   bool
	// LastErr is the error of the last poll, when it failed.
	LastErr error
	// Err is the context's error.
	Err error
}

func (e *NotConvergedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "not converged on spec version %d", e.Version)
	switch {
	case e.LastErr != nil:
		fmt.Fprintf(&b, " (%v); the last poll failed: %v", e.Err, e.LastErr)
	case !e.Seen:
		fmt.Fprintf(&b, " (%v); no status was read", e.Err)
	default:
		fmt.Fprintf(&b, " (%v): %s", e.Err, Summary(e.Status, e.Version, time.Now()))
	}
	return b.String()
}

func (e *NotConvergedError) Unwrap() error { return e.Err }
