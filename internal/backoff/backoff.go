package backoff

import (
	"math"
	"time"
)

// Jitter says how a delay is spread below its envelope (the un-jittered
// exponential delay, see Policy.Envelope). Both kinds are those of Marc
// Brooker's "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015).
type Jitter int

const (
	// None waits exactly the envelope.
	None Jitter = iota
	// Full waits uniformly in [0, envelope): the most spread-out retries,
	// for many clients that would otherwise retry in lockstep, at the cost
	// of an occasional immediate retry.
	Full
	// Equal waits envelope/2 plus uniformly [0, envelope/2], i.e. half to
	// all of the envelope: spread out, yet never much sooner than planned
	// (the article's "equal jitter").
	Equal
)

// Policy is an exponential backoff. The zero Policy never waits.
type Policy struct {
	// Initial is the envelope of attempt 0.
	Initial time.Duration
	// Max caps every delay; zero means no cap.
	Max time.Duration
	// Factor multiplies the envelope per attempt: 1 is a constant delay,
	// zero means 2, and below 1 counts as 1.
	Factor float64
	// Jitter is how Next spreads a delay below its envelope.
	Jitter Jitter
}

// Envelope is the un-jittered delay before retry number attempt (0 for the
// first retry; negative counts as 0): Initial × Factor^attempt, at most Max.
func (p Policy) Envelope(attempt int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	limit := time.Duration(math.MaxInt64)
	if p.Max > 0 {
		limit = p.Max
	}
	f := p.Factor
	switch {
	case f == 0:
		f = 2
	case !(f >= 1): // so that the envelope never shrinks
		f = 1
	}
	d := float64(p.Initial) * math.Pow(f, float64(max(attempt, 0)))
	// float64(limit) may round above limit; compare before converting, so
	// the conversion never overflows.
	if !(d < float64(limit)) {
		return limit
	}
	return min(time.Duration(d), limit)
}

// Next is the delay before retry number attempt, jittered with rnd, a
// uniform random number in [0, 1) (outside it is clamped). With jitter None
// rnd is unused.
func (p Policy) Next(attempt int, rnd float64) time.Duration {
	e := p.Envelope(attempt)
	rnd = min(max(rnd, 0), math.Nextafter(1, 0))
	switch p.Jitter {
	case Full:
		x := rnd * float64(e)
		if !(x < float64(e)) { // rounding, for an envelope near MaxInt64
			return max(e-1, 0)
		}
		return min(time.Duration(x), max(e-1, 0))
	case Equal:
		// e/2 + [0, e/2], both ends included (truncated halves, so an odd
		// envelope tops out 1ns short of itself).
		h := e / 2
		return h + min(time.Duration(rnd*float64(h+1)), h)
	default:
		return e
	}
}
