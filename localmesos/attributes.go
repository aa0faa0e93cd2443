package localmesos

import (
	"fmt"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// ParseAttributes reads agent attributes in Mesos' --attributes syntax
// (src/common/attributes.cpp): "name:value;name:value", where a value is
// a scalar (a number), ranges ("[31000-32000,33000-33010]") or text. Mesos
// refuses set values ("{a,b}") for attributes, and so does this.
func ParseAttributes(s string) ([]mesos.Attribute, error) {
	var out []mesos.Attribute
	for _, tok := range strings.Split(s, ";") {
		if strings.TrimSpace(tok) == "" {
			continue
		}
		name, value, ok := strings.Cut(tok, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" || strings.Contains(value, ":") {
			return nil, fmt.Errorf("invalid attribute key:value pair %q", tok)
		}
		a := mesos.Attribute{Name: name}
		switch {
		case strings.HasPrefix(value, "["):
			r, err := parseRanges(value)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", name, err)
			}
			a.Type, a.Ranges = mesos.RANGES, r
		case strings.HasPrefix(value, "{"):
			return nil, fmt.Errorf("attribute %q: set values are not allowed for attributes (Mesos: bad type for attribute)", name)
		case strings.ContainsAny(value, "[]{}"):
			return nil, fmt.Errorf("attribute %q: unexpected bracket in %q", name, value)
		default:
			if f, err := strconv.ParseFloat(value, 64); err == nil {
				a.Type, a.Scalar = mesos.SCALAR, &mesos.Value_Scalar{Value: f}
			} else {
				a.Type, a.Text = mesos.TEXT, &mesos.Value_Text{Value: value}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func parseRanges(s string) (*mesos.Value_Ranges, error) {
	if !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("ranges %q must end with ']'", s)
	}
	out := &mesos.Value_Ranges{}
	for _, part := range strings.Split(s[1:len(s)-1], ",") {
		lo, hi, ok := strings.Cut(strings.TrimSpace(part), "-")
		b, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		e, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
		if !ok || err1 != nil || err2 != nil || b > e {
			return nil, fmt.Errorf("invalid range %q in %q", part, s)
		}
		out.Range = append(out.Range, mesos.Value_Range{Begin: b, End: e})
	}
	return out, nil
}
