package client

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tiltai/tiltai/internal/termsafe"
	"github.com/tiltai/tiltai/scheduler/apitypes"
)

// FormatService renders one service's progress on one line, e.g.
// "3/5 running, 2 launching, links 3/3 acked". now decides whether a crash
// backoff is still on.
func FormatService(ss apitypes.ServiceStatus, now time.Time) string {
	parts := []string{fmt.Sprintf("%d/%d running", ss.Running, ss.Wanted)}
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(ss.Pending, "pending")
	add(ss.Launching, "launching")
	add(ss.Outdated, "to replace")
	add(ss.Retiring, "retiring")
	if ss.Running > 0 {
		parts = append(parts, fmt.Sprintf("links %d/%d acked", ss.Running-ss.Unacked, ss.Running))
	}
	if ss.Failures > 0 {
		f := plural(ss.Failures, "failure")
		if ss.HeldUntil.After(now) {
			f += ", crash backoff until " + ss.HeldUntil.Local().Format(time.TimeOnly)
		}
		parts = append(parts, f)
	}
	if ss.Converged {
		parts = append(parts, "converged")
	}
	line := strings.Join(parts, ", ")
	if ss.LastFailure != "" && ss.Failures > 0 {
		line += "; last failure: " + termsafe.String(ss.LastFailure)
	}
	return line
}

// Summary says in one line what keeps st from being converged on version,
// or that it is.
func Summary(st apitypes.Status, version int, now time.Time) string {
	var waiting []string
	if st.SpecVersion < version {
		waiting = append(waiting, fmt.Sprintf("the scheduler is at spec version %d", st.SpecVersion))
	}
	if !st.Subscribed {
		waiting = append(waiting, "the scheduler is not subscribed to a Mesos master")
	}
	for _, ss := range st.Services {
		if !ss.Converged {
			waiting = append(waiting, ss.Name+" "+FormatService(ss, now))
		}
	}
	if len(waiting) == 0 {
		tasks := 0
		for _, ss := range st.Services {
			tasks += ss.Running
		}
		return fmt.Sprintf("converged: %s, %s running", plural(len(st.Services), "service"), plural(tasks, "task"))
	}
	return strings.Join(waiting, "; ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// DefaultHeartbeat is how long Progress stays silent before saying it is
// still waiting.
const DefaultHeartbeat = 10 * time.Second

// Progress writes a wait's progress for a person: a line for each service
// whenever its state changes (and for the scheduler's subscription and spec
// version), each with the time since the start, and a heartbeat line when
// nothing has changed for a while. Nothing is overwritten, so it reads the
// same on a terminal, in a CI log or piped to a file. Use Update as
// WaitOptions.Progress and Retry as WaitOptions.Retry.
type Progress struct {
	// W receives the lines.
	W io.Writer
	// Version is the spec version waited for.
	Version int
	// Heartbeat is the longest silence (default DefaultHeartbeat).
	Heartbeat time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Start is when the wait began (default: the first Update or Retry).
	Start time.Time

	last      map[string]string
	order     []string
	lastPrint time.Time
	width     int
	lastRetry string
}

func (p *Progress) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Progress) begin() time.Time {
	now := p.now()
	if p.Start.IsZero() {
		p.Start = now
	}
	if p.last == nil {
		p.last = map[string]string{}
		p.lastPrint = now
	}
	return now
}

// Update takes a status read during the wait.
func (p *Progress) Update(st apitypes.Status) {
	now := p.begin()
	p.lastRetry = ""
	lines := map[string]string{}
	var order []string
	set := func(key, text string) {
		lines[key] = text
		order = append(order, key)
	}
	switch {
	case !st.Subscribed:
		set("", "the scheduler is not subscribed to a Mesos master yet")
	case st.SpecVersion < p.Version:
		set("", fmt.Sprintf("the scheduler is at spec version %d, not yet %d", st.SpecVersion, p.Version))
	case st.SpecVersion > p.Version && p.Version > 0:
		set("", fmt.Sprintf("spec version %d is current: someone submitted after version %d", st.SpecVersion, p.Version))
	default:
		set("", "")
	}
	for _, ss := range st.Services {
		p.width = max(p.width, len(ss.Name))
		set(ss.Name, FormatService(ss, now))
	}
	printed := false
	for _, key := range p.order {
		if _, ok := lines[key]; !ok && key != "" {
			p.printf(now, "%-*s  removed", p.width, key)
			printed = true
		}
	}
	for _, key := range order {
		text := lines[key]
		if prev, ok := p.last[key]; (ok && prev == text) || (!ok && text == "") {
			continue
		}
		switch {
		case key != "":
			p.printf(now, "%-*s  %s", p.width, key, text)
		case text != "":
			p.printf(now, "%s", text)
		default:
			continue // the scheduler is fine again: the service lines say the rest
		}
		printed = true
	}
	p.last, p.order = lines, order
	if !printed && now.Sub(p.lastPrint) >= p.heartbeat() {
		var waiting []string
		for _, ss := range st.Services {
			if !ss.Converged {
				waiting = append(waiting, ss.Name)
			}
		}
		what := "the scheduler"
		if len(waiting) > 0 {
			what = fmt.Sprintf("%d of %s: %s", len(waiting), plural(len(st.Services), "service"), strings.Join(waiting, ", "))
		}
		p.printf(now, "still waiting for %s", what)
	}
}

// Retry takes a failed poll that the wait will retry; the same error is
// told once.
func (p *Progress) Retry(err error) {
	now := p.begin()
	if msg := err.Error(); msg != p.lastRetry {
		p.lastRetry = msg
		p.printf(now, "%s; retrying", msg)
		return
	}
	if now.Sub(p.lastPrint) >= p.heartbeat() {
		p.printf(now, "still retrying")
	}
}

func (p *Progress) heartbeat() time.Duration {
	if p.Heartbeat > 0 {
		return p.Heartbeat
	}
	return DefaultHeartbeat
}

func (p *Progress) printf(now time.Time, format string, args ...any) {
	p.lastPrint = now
	// The line holds the scheduler's words (service names, failures,
	// errors): shown, never acted on by the terminal.
	fmt.Fprintf(p.W, "[%7s] %s\n", Elapsed(now.Sub(p.Start)), termsafe.String(fmt.Sprintf(format, args...)))
}

// Elapsed renders a duration for a person: "4.2s", "3m05s", "1h02m".
func Elapsed(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
