package client

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestBusyRetryNext(t *testing.T) {
	const ms = time.Millisecond
	r := BusyRetry{Attempts: 4, MaxElapsed: time.Minute, MaxRetryAfter: 30 * time.Second, Initial: 100 * ms, Max: 300 * ms}
	tests := []struct {
		name       string
		r          BusyRetry
		attempt    int
		elapsed    time.Duration
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
		fromHeader bool
		ok         bool
	}{
		{"retry-after as asked", r, 1, 0, 2 * time.Second, 0.5, 2 * time.Second, true, true},
		{"retry-after capped", r, 1, 0, time.Hour, 0.5, 30 * time.Second, true, true},
		{"backoff, low jitter", r, 1, 0, 0, 0, 50 * ms, false, true},
		{"backoff, high jitter", r, 1, 0, 0, math.Nextafter(1, 0), 100 * ms, false, true},
		{"backoff doubles", r, 2, 0, 0, math.Nextafter(1, 0), 200 * ms, false, true},
		{"backoff capped", r, 3, 0, 0, math.Nextafter(1, 0), 300 * ms, false, true},
		{"no attempt left", r, 4, 0, time.Second, 0.5, 0, false, false},
		{"wait would end past MaxElapsed", r, 2, 59 * time.Second, 2 * time.Second, 0.5, 0, false, false},
		{"wait ends at MaxElapsed", r, 2, 58 * time.Second, 2 * time.Second, 0.5, 2 * time.Second, true, true},
		{"zero value takes the defaults", BusyRetry{}, DefaultBusyAttempts - 1, 0, time.Hour, 0, DefaultMaxRetryAfter, true, true},
		{"zero value: default attempts", BusyRetry{}, DefaultBusyAttempts, 0, time.Second, 0, 0, false, false},
		{"zero value: default backoff", BusyRetry{}, 1, 0, 0, math.Nextafter(1, 0), DefaultBusyInitial, false, true},
		{"one attempt: never retry", BusyRetry{Attempts: 1}, 1, 0, time.Second, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, fromHeader, ok := tt.r.next(tt.attempt, tt.elapsed, tt.retryAfter, tt.rnd)
			if d != tt.want || fromHeader != tt.fromHeader || ok != tt.ok {
				t.Errorf("next(%d, %s, %s, %g) = %s, %v, %v; want %s, %v, %v", tt.attempt, tt.elapsed, tt.retryAfter, tt.rnd, d, fromHeader, ok, tt.want, tt.fromHeader, tt.ok)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	most := time.Duration(math.MaxInt64/int64(time.Second)) * time.Second
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	tests := []struct {
		name        string
		value, date string
		want        time.Duration
	}{
		{"absent", "", "", 0},
		{"seconds", "3", "", 3 * time.Second},
		{"spaces", " 3 ", "", 3 * time.Second},
		{"zero", "0", "", 0},
		{"negative", "-1", "", 0},
		{"plus sign", "+3", "", 0},
		{"fraction", "1.5", "", 0},
		{"huge saturates", "99999999999999999999999", "", most},
		{"garbage", "soon", "", 0},
		{"date, against now", date(now.Add(7 * time.Second)), "", 7 * time.Second},
		{"date, against the answer's Date", date(now.Add(7 * time.Second)), date(now.Add(5 * time.Second)), 2 * time.Second},
		{"date past", date(now.Add(-time.Minute)), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("Retry-After %q (Date %q) = %s, want %s", tt.value, tt.date, got, tt.want)
			}
		})
	}
}
