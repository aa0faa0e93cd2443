package api

import (
	"fmt"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/localmesos/internal/ojson"
	"github.com/tiltai/tiltai/localmesos/internal/res"
)

// AttributesJSON is the /state form of attributes (Mesos' model):
// {"rack": "r1", "level": 2.0, "ports": "[1-2]"}.
func AttributesJSON(attrs []mesos.Attribute) ojson.Object {
	out := ojson.Object{}
	for _, a := range attrs {
		var v any
		switch a.Type {
		case mesos.SCALAR:
			v = ojson.Double(a.Scalar.Value)
		case mesos.RANGES:
			var parts []string
			for _, r := range a.Ranges.Range {
				parts = append(parts, fmt.Sprintf("%d-%d", r.Begin, r.End))
			}
			v = "[" + strings.Join(parts, ", ") + "]"
		default:
			v = a.GetText().GetValue()
		}
		out = append(out, ojson.KV{K: a.Name, V: v})
	}
	return out
}

// Secs is t in seconds since the epoch, as /state shows times.
func Secs(t time.Time) ojson.Double {
	if t.IsZero() {
		return 0
	}
	return ojson.Double(float64(t.UnixNano()) / 1e9)
}

// ResourcesJSON renders resources like /master/state: disk, mem, gpus, cpus,
// then other scalars and ranges.
func ResourcesJSON(r res.Resources) ojson.Object {
	m := r.StateMap()
	out := ojson.Object{}
	for _, k := range []string{"disk", "mem", "gpus", "cpus"} {
		out = append(out, ojson.KV{K: k, V: ojson.Double(m[k].(float64))})
		delete(m, k)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if f, ok := m[k].(float64); ok {
			out = append(out, ojson.KV{K: k, V: ojson.Double(f)})
		} else {
			out = append(out, ojson.KV{K: k, V: m[k]})
		}
	}
	return out
}

// NonNil makes an empty list render as [] rather than null.
func NonNil(v []ojson.Object) []ojson.Object {
	if v == nil {
		return []ojson.Object{}
	}
	return v
}

// MesosDuration formats a duration the way Mesos prints flags and the
// executor environment: "5secs", "15mins", "2secs", "100ms", "1.5mins".
func MesosDuration(d time.Duration) string {
	type unit struct {
		size time.Duration
		name string
	}
	units := []unit{
		{7 * 24 * time.Hour, "weeks"}, {24 * time.Hour, "days"}, {time.Hour, "hrs"},
		{time.Minute, "mins"}, {time.Second, "secs"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"},
	}
	for _, u := range units {
		if d >= u.size {
			v := float64(d) / float64(u.size)
			return trimFloat(v) + u.name
		}
	}
	return fmt.Sprintf("%dns", int64(d))
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.6f", v)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
