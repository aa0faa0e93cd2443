package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	const ms = time.Millisecond
	double := Policy{Initial: 100 * ms, Max: time.Second, Factor: 2}
	tests := []struct {
		name    string
		p       Policy
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"zero policy", Policy{}, 3, 0.5, 0},
		{"first", double, 0, 0.9, 100 * ms},
		{"negative attempt is the first", double, -4, 0, 100 * ms},
		{"doubles", double, 2, 0, 400 * ms},
		{"capped", double, 4, 0, time.Second},
		{"capped far out", double, 1 << 40, 0, time.Second},
		{"factor zero doubles", Policy{Initial: ms, Max: time.Second}, 3, 0, 8 * ms},
		{"factor one is constant", Policy{Initial: 3 * ms, Max: time.Second, Factor: 1}, 50, 0, 3 * ms},
		{"factor below one is constant", Policy{Initial: 3 * ms, Max: time.Second, Factor: 0.5}, 5, 0, 3 * ms},
		{"fractional factor", Policy{Initial: time.Second, Max: time.Hour, Factor: 1.5}, 2, 0, 2250 * ms},
		{"no max", Policy{Initial: 2 * ms}, 9, 0, 1024 * ms},
		{"no max, overflow saturates", Policy{Initial: time.Second}, 1000, 0, math.MaxInt64},
		{"max below initial", Policy{Initial: time.Second, Max: 10 * ms}, 0, 0, 10 * ms},
		{"full jitter low", Policy{Initial: 100 * ms, Jitter: Full}, 1, 0, 0},
		{"full jitter middle", Policy{Initial: 100 * ms, Jitter: Full}, 1, 0.25, 50 * ms},
		{"full jitter high stays below", Policy{Initial: 100 * ms, Jitter: Full}, 1, 1, 200*ms - 1},
		{"full jitter capped", Policy{Initial: 100 * ms, Max: 150 * ms, Jitter: Full}, 3, 0.5, 75 * ms},
		{"equal jitter low", Policy{Initial: 100 * ms, Jitter: Equal}, 0, 0, 50 * ms},
		// h + (h+1)/2, what the executor's script tests have always used.
		{"equal jitter middle", Policy{Initial: 100 * ms, Jitter: Equal}, 0, 0.5, 75 * ms},
		{"equal jitter high", Policy{Initial: 100 * ms, Jitter: Equal}, 0, math.Nextafter(1, 0), 100 * ms},
		{"rnd above 1 clamped", Policy{Initial: 100 * ms, Jitter: Equal}, 0, 7, 100 * ms},
		{"rnd below 0 clamped", Policy{Initial: 100 * ms, Jitter: Full}, 0, -1, 0},
		{"equal jitter odd envelope", Policy{Initial: 3, Jitter: Equal}, 0, 0.99, 2},
		{"no jitter ignores rnd", Policy{Initial: 100 * ms}, 0, 0.1, 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Next(tt.attempt, tt.rnd); got != tt.want {
				t.Errorf("%+v.Next(%d, %g) = %v, want %v", tt.p, tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
}

// TestProperties checks random policies: a delay is never negative, never
// above Max nor its envelope, jittered ones never below their floor, and the
// envelope never shrinks from one attempt to the next.
func TestProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	durs := []time.Duration{0, 1, 3, time.Millisecond, time.Second, time.Hour, math.MaxInt64 / 3, math.MaxInt64}
	dur := func() time.Duration {
		if r.IntN(2) == 0 {
			return durs[r.IntN(len(durs))]
		}
		return time.Duration(r.Int64N(int64(time.Minute)))
	}
	for i := range 20000 {
		p := Policy{Initial: dur(), Max: dur(), Factor: []float64{0, 0.5, 1, 1.15, 2, 10}[r.IntN(6)], Jitter: Jitter(r.IntN(3))}
		attempt := r.IntN(200) - 5
		if i%10 == 0 {
			attempt = r.Int()
		}
		rnd := r.Float64()
		e, next := p.Envelope(attempt), p.Envelope(attempt+1)
		got := p.Next(attempt, rnd)
		switch {
		case got < 0:
			t.Fatalf("%+v.Next(%d, %g) = %v < 0", p, attempt, rnd, got)
		case p.Max > 0 && got > p.Max:
			t.Fatalf("%+v.Next(%d, %g) = %v above max", p, attempt, rnd, got)
		case got > e:
			t.Fatalf("%+v.Next(%d, %g) = %v above the envelope %v", p, attempt, rnd, got, e)
		case p.Jitter == Equal && got < e/2:
			t.Fatalf("%+v.Next(%d, %g) = %v below half the envelope %v", p, attempt, rnd, got, e)
		case p.Jitter == None && got != e:
			t.Fatalf("%+v.Next(%d, %g) = %v, not the envelope %v", p, attempt, rnd, got, e)
		case attempt < math.MaxInt && next < e:
			t.Fatalf("%+v: envelope shrinks from %v to %v after attempt %d", p, e, next, attempt)
		}
	}
}
