package placement

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/tiltai/tiltai/linkspec"
)

// Offer is one Mesos offer as placement sees it.
type Offer struct {
	ID       string
	AgentID  string
	Hostname string
	// Region and Zone are the agent's fault domain ("" when it has none),
	// the @region and @zone constraint fields.
	Region, Zone string
	Attributes   []mesos.Attribute
	// Resources as offered; what a placement takes is carved out of them
	// with their role and reservation kept, as Accept must echo them.
	Resources []mesos.Resource
	// Unavailability is the agent's scheduled maintenance, if any.
	Unavailability *Window
	// Draining is set when the agent is being drained (Mesos agent
	// draining, or an operator's request): nothing new goes there.
	Draining bool
}

// Window is a span of time; a zero Duration means open-ended.
type Window struct {
	Start    time.Time
	Duration time.Duration
}

// overlaps reports whether the window meets [from, from+life); life 0 is
// open-ended, as Tiltai's tasks run until told otherwise.
func (w Window) overlaps(from time.Time, life time.Duration) bool {
	if life > 0 && !w.Start.Before(from.Add(life)) {
		return false
	}
	return w.Duration <= 0 || from.Before(w.Start.Add(w.Duration))
}

// FromMesos converts an offer. draining comes from the driver (agent
// state or operator), not from the offer.
func FromMesos(o *mesos.Offer, draining bool) Offer {
	out := Offer{
		ID: o.ID.Value, AgentID: o.AgentID.Value, Hostname: o.Hostname,
		Attributes: o.Attributes, Resources: o.Resources, Draining: draining,
	}
	if d := o.Domain; d != nil && d.FaultDomain != nil {
		out.Region, out.Zone = d.FaultDomain.Region.Name, d.FaultDomain.Zone.Name
	}
	if u := o.Unavailability; u != nil {
		w := &Window{Start: time.Unix(0, u.Start.Nanoseconds)}
		if u.Duration != nil {
			w.Duration = time.Duration(u.Duration.Nanoseconds)
		}
		out.Unavailability = w
	}
	return out
}

// Placed is a task already on an agent (launched or running), with what
// constraints read of that agent.
type Placed struct {
	TaskID, Service string
	AgentID         string
	Hostname        string
	Region, Zone    string
	Attributes      []mesos.Attribute
}

// fieldValue reads a constraint field of an agent as Marathon does: the
// hostname, the fault domain, or the first attribute of that name,
// formatted as text. ok is false when the agent has no such value.
func fieldValue(field, host, region, zone string, attrs []mesos.Attribute) (string, bool) {
	switch field {
	case linkspec.FieldHostname, linkspec.FieldAtHostname:
		return host, true
	case linkspec.FieldRegion:
		return region, region != ""
	case linkspec.FieldZone:
		return zone, zone != ""
	}
	for i := range attrs {
		if attrs[i].Name == field {
			return ValueString(attrs[i])
		}
	}
	return "", false
}

// ValueString formats an attribute's value the way Marathon compares it:
// text as is; a scalar as Java's NumberFormat does in the US locale (at
// most three decimals, rounded half-even, thousands grouped with commas:
// 1234.5 is "1,234.5"); ranges as "[100-200,300-400]" sorted by start;
// sets as "{a,b,c}" sorted. ok is false for a malformed attribute.
func ValueString(a mesos.Attribute) (string, bool) {
	switch a.Type {
	case mesos.TEXT:
		if a.Text == nil {
			return "", false
		}
		return a.Text.Value, true
	case mesos.SCALAR:
		if a.Scalar == nil {
			return "", false
		}
		return formatScalar(a.Scalar.Value), true
	case mesos.RANGES:
		if a.Ranges == nil {
			return "", false
		}
		rs := append([]mesos.Value_Range(nil), a.Ranges.Range...)
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = strconv.FormatUint(r.Begin, 10) + "-" + strconv.FormatUint(r.End, 10)
		}
		return "[" + strings.Join(parts, ",") + "]", true
	case mesos.SET:
		if a.Set == nil {
			return "", false
		}
		items := append([]string(nil), a.Set.Item...)
		sort.Strings(items)
		return "{" + strings.Join(items, ",") + "}", true
	}
	return "", false
}

// formatScalar is java.text.NumberFormat.getInstance(Locale.US).format(v).
// strconv rounds the exact binary value half-even, as Java 8+ does.
func formatScalar(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "∞"
	case math.IsInf(v, -1):
		return "-∞"
	}
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
