package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tiltai/tiltai/linkspec"
)

// Kinds of failure, for errors.Is. An *APIError matches the one its HTTP
// status stands for; an *UnreachableError matches ErrUnreachable.
var (
	// ErrInvalidSpec: the scheduler refused a spec or a scale (422); the
	// *APIError lists the located problems. Nothing was changed.
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrConflict: If-Match named a version that is no longer current
	// (409); the *APIError carries the current version.
	ErrConflict = errors.New("spec version conflict")
	// ErrUnauthorized: the scheduler needs a token, or another one (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: no such service (404), or no such endpoint.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: the spec is over the scheduler's size limit (413).
	ErrTooLarge = errors.New("spec too large")
	// ErrUnavailable: the scheduler is stopping or busy (503); retry.
	ErrUnavailable = errors.New("scheduler unavailable")
	// ErrUnreachable: no HTTP answer at all (connection refused, DNS,
	// timeout, TLS).
	ErrUnreachable = errors.New("scheduler unreachable")
)

// APIError is an error answer from the scheduler.
type APIError struct {
	// Method and Path are the request's, e.g. "PUT", "/v1/spec".
	Method, Path string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the scheduler's "error" text (or, when the answer was not
	// the scheduler's JSON, a description of what came back).
	Message string
	// Problems are the located problems of an invalid spec (422).
	Problems linkspec.Problems
	// CurrentVersion is the spec version that is current (409), else -1.
	CurrentVersion int
	// RetryAfter is how long the answer's Retry-After header asked to wait
	// (503; zero when it had none).
	RetryAfter time.Duration
	// Unexpected: the body was not the scheduler's JSON error (a proxy,
	// another server, a route this scheduler does not have).
	Unexpected bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	fmt.Fprintf(&b, " (HTTP %d from %s %s)", e.StatusCode, e.Method, e.Path)
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is matches the kind of failure the HTTP status stands for.
func (e *APIError) Is(target error) bool {
	switch e.StatusCode {
	case http.StatusUnprocessableEntity:
		return target == ErrInvalidSpec
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusUnauthorized, http.StatusForbidden:
		return target == ErrUnauthorized
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusRequestEntityTooLarge:
		return target == ErrTooLarge
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return target == ErrUnavailable
	}
	return false
}

// UnreachableError: the request got no HTTP answer.
type UnreachableError struct {
	URL string // the scheduler's base URL
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the scheduler at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// Retryable tells errors worth another try as they are (the scheduler was
// unreachable, stopping or busy) from answers that will not change by
// themselves (invalid, conflict, unauthorized, not found).
func Retryable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrUnavailable)
}
