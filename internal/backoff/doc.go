// Package backoff is the one retry policy of Tiltai: exponential delays
// from Initial, multiplied by Factor per attempt, capped at Max, with an
// optional jitter. It is pure: the caller counts attempts and passes the
// random number, so deterministic code (the executor's machine under its
// script tests) can pass a fixed one, and the caller owns timers, resets and
// logging.
package backoff
