package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tiltai/tiltai/internal/backoff"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// Defaults of BusyRetry.
const (
	DefaultBusyAttempts   = 8
	DefaultBusyMaxElapsed = 2 * time.Minute
	DefaultMaxRetryAfter  = 30 * time.Second
	DefaultBusyInitial    = 500 * time.Millisecond
	DefaultBusyMax        = 8 * time.Second
)

// BusyRetry says how Submit and Scale retry a 503 Service Unavailable: the
// scheduler was already parsing as many specs as it does at once (or was
// stopping), and nothing was changed, so the same request (the same body,
// kept in memory) may be sent again. Other answers, and no answer at all,
// are not retried: a write that timed out may have been made. The zero
// value takes every default.
type BusyRetry struct {
	// Attempts bounds the requests made, the first included (default
	// DefaultBusyAttempts; 1: never retry).
	Attempts int
	// MaxElapsed bounds the time from the first request to the last: a
	// retry whose wait would end later is not made (default
	// DefaultBusyMaxElapsed).
	MaxElapsed time.Duration
	// MaxRetryAfter caps the wait a Retry-After header asks for (default
	// DefaultMaxRetryAfter), so that a wrong header cannot park the client.
	MaxRetryAfter time.Duration
	// Initial and Max shape the waits when the answer has no Retry-After:
	// about Initial before the first retry (half to all of it, jittered),
	// doubling per retry, at most Max (defaults DefaultBusyInitial,
	// DefaultBusyMax).
	Initial, Max time.Duration
	// Notify, when set, is told of each wait before it starts (the CLI
	// prints it).
	Notify func(BusyWait)
}

// BusyWait is one wait before a retry.
type BusyWait struct {
	// Attempt is the request the wait comes before: 2 for the first retry.
	Attempt int
	// Attempts is the most that will be made.
	Attempts int
	// Delay is how long the wait is.
	Delay time.Duration
	// RetryAfter: Delay is what the answer's Retry-After asked for (at most
	// MaxRetryAfter), not a backoff of the client's own.
	RetryAfter bool
	// Err is the refused answer.
	Err *APIError
}

// WithBusyRetry makes Submit and Scale retry 503 answers as r says. Without
// it a 503 is returned at once.
func WithBusyRetry(r BusyRetry) Option {
	r = r.withDefaults()
	return func(c *Client) { c.busy = &r }
}

func (r BusyRetry) withDefaults() BusyRetry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultBusyAttempts
	}
	if r.MaxElapsed <= 0 {
		r.MaxElapsed = DefaultBusyMaxElapsed
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if r.Initial <= 0 {
		r.Initial = DefaultBusyInitial
	}
	if r.Max <= 0 {
		r.Max = DefaultBusyMax
	}
	return r
}

// next decides the wait after attempt (1: the first request) was refused
// with an answer whose Retry-After was retryAfter (0: none), elapsed after
// the first request began; rnd in [0, 1) jitters the backoff. ok is false
// when no retry is left within the bounds. It is pure: write owns the
// clock and the timer.
func (r BusyRetry) next(attempt int, elapsed, retryAfter time.Duration, rnd float64) (d time.Duration, fromHeader, ok bool) {
	r = r.withDefaults()
	if attempt >= r.Attempts {
		return 0, false, false
	}
	if retryAfter > 0 {
		d, fromHeader = min(retryAfter, r.MaxRetryAfter), true
	} else {
		// Equal jitter: clients refused together spread out, yet none
		// comes back much sooner than planned.
		d = backoff.Policy{Initial: r.Initial, Max: r.Max, Factor: 2, Jitter: backoff.Equal}.Next(attempt-1, rnd)
	}
	if elapsed+d > r.MaxElapsed {
		return 0, false, false
	}
	return d, fromHeader, true
}

// BusyError: the scheduler answered 503 to every attempt of a write that
// BusyRetry allowed. Nothing was changed. It unwraps to the last answer,
// so it matches ErrUnavailable.
type BusyError struct {
	Attempts int
	// Elapsed is the time from the first request to the last answer.
	Elapsed time.Duration
	Last    *APIError
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("the scheduler was still busy after %d attempts in %s; nothing was changed, try again later (the last answer: %v)", e.Attempts, Elapsed(e.Elapsed), e.Last)
}

func (e *BusyError) Unwrap() error { return e.Last }

// write sends a change (PUT /v1/spec, POST …/scale) and decodes its
// result, retrying 503 answers as c.busy says. r.body is a byte slice, so
// each attempt sends it whole again.
func (c *Client) write(ctx context.Context, r request) (apitypes.SubmitResult, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		res, err := c.writeOnce(ctx, r)
		var ae *APIError
		if c.busy == nil || !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable {
			return res, err
		}
		d, fromHeader, ok := c.busy.next(attempt, time.Since(start), ae.RetryAfter, rand.Float64())
		if !ok {
			return res, &BusyError{Attempts: attempt, Elapsed: time.Since(start), Last: ae}
		}
		if c.busy.Notify != nil {
			c.busy.Notify(BusyWait{Attempt: attempt + 1, Attempts: c.busy.Attempts, Delay: d, RetryAfter: fromHeader, Err: ae})
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("%s %s: stopped retrying after %d attempts (the scheduler was busy; nothing was changed): %w", r.method, r.path, attempt, ctx.Err())
		case <-t.C:
		}
	}
}

// retryAfter reads a Retry-After header, delay-seconds or an HTTP-date
// (judged against the answer's Date, else now); 0 when it is absent,
// unreadable or past.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	const most = uint64(math.MaxInt64 / int64(time.Second))
	n, err := strconv.ParseUint(v, 10, 64)
	switch {
	case err == nil:
		return time.Duration(min(n, most)) * time.Second
	case errors.Is(err, strconv.ErrRange):
		return time.Duration(most) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return max(at.Sub(now), 0)
}
