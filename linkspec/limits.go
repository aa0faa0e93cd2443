package linkspec

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The allowed range of every numeric field, in one place: the decoder checks
// what a file wrote (and quotes it as written, 1e12 stays 1e12), the
// validator checks a spec changed in code, and both say the same thing.

type numLimit struct {
	what     string
	min, max float64
	minOpen  bool // min itself is not allowed: "more than 0"
	whole    bool
	note     string // after the range in the hint
	// outMsg and outHint, when set, replace "WHAT X is out of range" and
	// "use RANGE": a version is not a range.
	outMsg, outHint string
}

var (
	versionLimit   = numLimit{what: "version", min: FormatVersion, max: FormatVersion, whole: true, outMsg: "unsupported spec version %s", outHint: fmt.Sprintf("write `version: %d`", FormatVersion)}
	instancesLimit = numLimit{what: "instances", max: MaxInstances, whole: true, note: " (0 keeps the service defined but stopped)"}
	cpusLimit      = numLimit{what: "cpus", minOpen: true, max: MaxCPUs, note: "; e.g. 0.1 for a tenth of a core"}
	memLimit       = numLimit{what: "mem", minOpen: true, max: MaxMemMiB, note: "; mem is in MiB, e.g. 64"}
	diskLimit      = numLimit{what: "disk", max: MaxDiskMiB, note: "; disk is in MiB, 0 asks for none"}
	factorLimit    = numLimit{what: "backoff factor", min: 1, max: 10, note: "; 1 keeps the delay constant, Marathon's default is 1.15"}
)

func (l numLimit) allowed() string {
	if l.minOpen {
		return "more than " + numText(l.min) + ", at most " + numText(l.max)
	}
	return numText(l.min) + " to " + numText(l.max)
}

// numText writes 1048576, not %g's 1.048576e+06.
func numText(v float64) string {
	if math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// check says what is wrong with v, written as text, or returns "" when it
// fits.
func (l numLimit) check(v float64, text string) (msg, hint string) {
	out := math.IsNaN(v) || v < l.min || v > l.max || (l.minOpen && v == l.min)
	switch {
	case out && l.outMsg != "":
		return fmt.Sprintf(l.outMsg, text), l.outHint
	case out:
		return fmt.Sprintf("%s %s is out of range", l.what, text), "use " + l.allowed() + l.note
	case l.whole && v != math.Trunc(v):
		if l.outHint != "" {
			return fmt.Sprintf("%s %s is not a whole number", l.what, text), l.outHint
		}
		return fmt.Sprintf("%s %s is not a whole number", l.what, text), "use a whole number, " + l.allowed() + l.note
	}
	return "", ""
}

// checkNum reports v at path unless the decoder already did.
func checkNum(r *reporter, bad map[string]bool, path string, l numLimit, v float64) {
	if bad[path] {
		return
	}
	if msg, hint := l.check(v, numText(v)); msg != "" {
		r.errorf(path, hint, "%s", msg)
	}
}

type durLimit struct {
	what   string
	zeroOK bool
	max    time.Duration
}

var (
	gracePeriodLimit    = durLimit{what: "kill_grace_period", zeroOK: true, max: MaxGracePeriod}
	readyTimeoutLimit   = durLimit{what: "ready_timeout", max: time.Hour}
	livenessLimit       = durLimit{what: "liveness_timeout", zeroOK: true, max: time.Hour}
	backoffInitialLimit = durLimit{what: "backoff initial", max: time.Hour}
	backoffMaxLimit     = durLimit{what: "backoff max", max: 24 * time.Hour}
)

func (l durLimit) allowed() string {
	if l.zeroOK {
		return "0s to " + shortDuration(l.max)
	}
	return "more than 0s, at most " + shortDuration(l.max)
}

func (l durLimit) check(d time.Duration, text string) (msg, hint string) {
	if d < 0 || d > l.max || (!l.zeroOK && d == 0) {
		return fmt.Sprintf("%s %s is out of range", l.what, text), "use " + l.allowed()
	}
	return "", ""
}

func checkDuration(r *reporter, bad map[string]bool, path string, l durLimit, d Duration) {
	if bad[path] {
		return
	}
	if msg, hint := l.check(d.Std(), shortDuration(d.Std())); msg != "" {
		r.errorf(path, hint, "%s", msg)
	}
}

// shortDuration writes 1h rather than Go's 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationSyntax is what time.ParseDuration reads; text of this shape that
// it refuses is too long to represent (over about 290 years).
var durationSyntax = regexp.MustCompile(`^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$`)

// YAML 1.2 numbers that goccy/go-yaml leaves as strings: an exponent without
// a dot (1e12, also JSON's form) and integers too large for 64 bits.
var (
	plainInt   = regexp.MustCompile(`^[-+]?[0-9]+$`)
	plainFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
)

// plainNumber resolves an unquoted scalar the YAML parser left as a string
// to the number YAML means by it; huge values become ±Inf.
func plainNumber(s string) (typ string, v float64, ok bool) {
	switch {
	case plainInt.MatchString(s):
		typ = tInt
	case plainFloat.MatchString(s):
		typ = tFloat
	default:
		return "", 0, false
	}
	v, _ = strconv.ParseFloat(s, 64) // ±Inf when out of range, which checks then report
	return typ, v, true
}
