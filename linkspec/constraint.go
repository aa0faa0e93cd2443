package linkspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// Placement constraints, as Marathon writes them: [field, OPERATOR] or
// [field, OPERATOR, value]. The field is the agent's hostname ("hostname" or
// "@hostname"), its fault domain ("@region", "@zone") or the name of a Mesos
// agent attribute. This file is the vocabulary and its validation; the
// scheduler's placement package gives the operators their meaning.

// Operator is a constraint's operator.
type Operator string

// Marathon's operators.
const (
	// Unique: at most one task per value of the field.
	Unique Operator = "UNIQUE"
	// Cluster: every task on one value, the one given or else the value of
	// the first task placed.
	Cluster Operator = "CLUSTER"
	// GroupBy: spread evenly over the values seen; an optional count is the
	// number of values to wait for before any value gets a second task.
	GroupBy Operator = "GROUP_BY"
	// Like: only where the value matches the regular expression, whole.
	Like Operator = "LIKE"
	// Unlike: only where the value does not match (or the agent lacks the
	// attribute).
	Unlike Operator = "UNLIKE"
	// MaxPer: at most count tasks per value.
	MaxPer Operator = "MAX_PER"
	// Is: only where the value equals the one given.
	Is Operator = "IS"
	// In: only where the value is one of a comma-separated list.
	In Operator = "IN"
)

// Operators lists the operators in documentation order.
var Operators = []Operator{Unique, Cluster, GroupBy, MaxPer, Like, Unlike, Is, In}

// Fields with a meaning of their own; any other field names an attribute.
const (
	FieldHostname   = "hostname"
	FieldAtHostname = "@hostname"
	FieldRegion     = "@region"
	FieldZone       = "@zone"
)

// MaxConstraints bounds the constraints of one service.
const MaxConstraints = 32

// Constraint restricts where a service's tasks may run.
type Constraint struct {
	Field    string
	Operator Operator
	Value    string // "" when not given
}

// String is Marathon's text form, "field:OPERATOR" or "field:OPERATOR:value";
// placement uses it to name the constraint an offer failed.
func (c Constraint) String() string {
	if c.Value == "" {
		return c.Field + ":" + string(c.Operator)
	}
	return c.Field + ":" + string(c.Operator) + ":" + c.Value
}

// MarshalJSON writes the constraint as Marathon does: ["zone","GROUP_BY","3"].
func (c Constraint) MarshalJSON() ([]byte, error) {
	a := []string{c.Field, string(c.Operator)}
	if c.Value != "" {
		a = append(a, c.Value)
	}
	return json.Marshal(a)
}

// UnmarshalJSON reads ["field","OPERATOR"] or ["field","OPERATOR",value],
// where value may be a string or a number (Marathon takes "3"; we also take
// 3), so a spec served as JSON decodes back.
func (c *Constraint) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil || len(a) < 2 || len(a) > 3 {
		return fmt.Errorf("a constraint is [field, OPERATOR] or [field, OPERATOR, value], not %s", b)
	}
	var out Constraint
	var op string
	if err := json.Unmarshal(a[0], &out.Field); err != nil {
		return fmt.Errorf("a constraint's field must be a string, not %s", a[0])
	}
	if err := json.Unmarshal(a[1], &op); err != nil {
		return fmt.Errorf("a constraint's operator must be a string, not %s", a[1])
	}
	out.Operator = Operator(op)
	if len(a) == 3 {
		if err := json.Unmarshal(a[2], &out.Value); err != nil {
			var n json.Number
			if err := json.Unmarshal(a[2], &n); err != nil {
				return fmt.Errorf("a constraint's value must be a string or a number, not %s", a[2])
			}
			out.Value = n.String()
		}
	}
	*c = out
	return nil
}

// Valid reports whether op is a known operator.
func (op Operator) Valid() bool {
	for _, o := range Operators {
		if o == op {
			return true
		}
	}
	return false
}

// Anchored returns the regular expression a LIKE or UNLIKE value stands for:
// Marathon matches the whole value (Java's String.matches), so "rack-1"
// does not match "rack-10".
func Anchored(value string) string { return `^(?:` + value + `)$` }

// InValues splits an IN constraint's value the way Marathon does: on commas,
// with the spaces around them ignored.
func InValues(value string) []string {
	parts := strings.Split(value, ",")
	for i, p := range parts {
		parts[i] = strings.Trim(p, " ")
	}
	return parts
}

// Count returns the count of a GROUP_BY or MAX_PER constraint: 0 when a
// GROUP_BY has none, -1 when the value is not a positive whole number.
func (c Constraint) Count() int {
	if c.Value == "" && c.Operator == GroupBy {
		return 0
	}
	n, err := strconv.Atoi(c.Value)
	if err != nil || n <= 0 {
		return -1
	}
	return n
}

// attrName: what an agent's --attributes flag can name and a spec can spell
// without quoting surprises.
var attrName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$`)

const maxFieldLen = 128

// ValidateConstraints checks constraints built in code (or read from JSON);
// each problem's Path is path[i] or path[i].part. Problems carry no
// position; a spec's own constraints are checked (located) by Validate.
func ValidateConstraints(path string, cs []Constraint) Problems {
	r := &reporter{locs: map[string]Pos{}}
	validateConstraints(r, path, cs, nil)
	r.probs.sort()
	return r.probs
}

// validateConstraints reports every problem of a service's constraints. bad
// marks entries the decoder already reported (wrong shape).
func validateConstraints(r *reporter, path string, cs []Constraint, bad map[string]bool) {
	if len(cs) > MaxConstraints {
		r.errorf(path, "merge them; a few constraints say most things", "%d constraints; at most %d per service", len(cs), MaxConstraints)
	}
	seen := map[Constraint]int{}
	for i, c := range cs {
		cp := fmt.Sprintf("%s[%d]", path, i)
		if bad[cp] {
			continue
		}
		if first, dup := seen[c]; dup {
			r.warnf(cp, fmt.Sprintf("remove it (the first is %s[%d])", path, first), "duplicate constraint %s", c)
			continue
		}
		seen[c] = i
		validateField(r, cp+".field", c.Field)
		op := cp + ".operator"
		if !c.Operator.Valid() {
			r.errorf(op, suggestOperator(string(c.Operator)), "unknown constraint operator %q", c.Operator)
			continue
		}
		validateValue(r, cp, c)
	}
}

func validateField(r *reporter, p, f string) {
	switch {
	case f == FieldHostname || f == FieldAtHostname || f == FieldRegion || f == FieldZone:
	case f == "":
		r.errorf(p, "name `hostname` or an agent attribute such as `rack`", "a constraint has an empty field")
	case strings.HasPrefix(f, "@"):
		r.errorf(p, suggestOr(f, []string{FieldAtHostname, FieldRegion, FieldZone}, "use @hostname, @region, @zone or an attribute name without '@'"),
			"unknown constraint field %q", f)
	case len(f) > maxFieldLen || !attrName.MatchString(f):
		r.errorf(p, fmt.Sprintf("an attribute name is letters, digits, '_', '-', '.' and '/', at most %d characters", maxFieldLen),
			"constraint field %q is not an attribute name", f)
	}
}

func validateValue(r *reporter, cp string, c Constraint) {
	vp := cp + ".value"
	switch c.Operator {
	case Unique:
		if c.Value != "" {
			r.errorf(vp, fmt.Sprintf("write [%s, UNIQUE]", c.Field), "UNIQUE takes no value, but %q was given", c.Value)
		}
	case Cluster:
		// The value is optional: without one, the first task placed picks it.
	case GroupBy:
		if c.Value != "" && c.Count() < 0 {
			r.errorf(vp, fmt.Sprintf("give the number of %s values to spread over, e.g. [%s, GROUP_BY, 3], or none", c.Field, c.Field),
				"GROUP_BY count %q is not a positive whole number", c.Value)
		}
	case MaxPer:
		switch {
		case c.Value == "":
			r.errorf(cp, fmt.Sprintf("write e.g. [%s, MAX_PER, 2]", c.Field), "MAX_PER needs a count")
		case c.Count() < 0:
			r.errorf(vp, "give the most tasks per value, e.g. 2", "MAX_PER count %q is not a positive whole number", c.Value)
		}
	case Like, Unlike:
		if c.Value == "" {
			r.errorf(cp, fmt.Sprintf("write e.g. [%s, %s, \"rack-[1-3]\"]; .* matches any value", c.Field, c.Operator), "%s needs a regular expression", c.Operator)
			return
		}
		if _, err := regexp.Compile(Anchored(c.Value)); err != nil {
			hint := "use RE2 syntax (no look-around or back-references); the expression must match the whole value"
			r.errorf(vp, hint, "%s value %q is not a regular expression: %s", c.Operator, c.Value, regexpReason(err))
		}
	case Is, In:
		if c.Value == "" {
			r.errorf(cp, fmt.Sprintf("write e.g. [%s, %s, rack-1]", c.Field, c.Operator), "%s needs a value", c.Operator)
		}
	}
}

// regexpReason is what is wrong, without the expression (which the
// problem quotes, unanchored, as the user wrote it).
func regexpReason(err error) string {
	var e *syntax.Error
	if errors.As(err, &e) {
		return string(e.Code)
	}
	return err.Error()
}

// suggestOperator names the closest operator: "unique" is UNIQUE, "GROUPBY"
// is GROUP_BY; otherwise it lists them.
func suggestOperator(got string) string {
	norm := strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(got))
	best, bestD := "", 3
	for _, op := range Operators {
		if norm == string(op) {
			return fmt.Sprintf("did you mean %q? operators are upper-case", op)
		}
		if d := editDistance(norm, string(op)); d < bestD {
			best, bestD = string(op), d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	names := make([]string, len(Operators))
	for i, op := range Operators {
		names[i] = string(op)
	}
	return "use one of " + strings.Join(names, ", ")
}

// constraints decodes `constraints: [[hostname, UNIQUE], [zone, GROUP_BY, 3]]`.
// Each entry is a list of two or three scalars; the value may be written as
// a number. Entries of the wrong shape are reported here and left out, and
// their path marked bad so validation does not report them again.
func (d *decoder) constraints(path string, n *node) []Constraint {
	items, ok := d.list(path, n, "constraints")
	if !ok {
		return nil
	}
	const hint = "write each constraint as [field, OPERATOR] or [field, OPERATOR, value], e.g. [hostname, UNIQUE]"
	var out []Constraint
	for i, it := range items {
		cp := fmt.Sprintf("%s[%d]", path, i)
		d.r.locs[cp] = it.pos
		if it.kind != kSeq {
			d.typeError(cp, it, "a constraint must be a list", hint)
			out = append(out, Constraint{}) // keep indexes aligned with the file
			continue
		}
		if len(it.items) < 2 || len(it.items) > 3 {
			d.bad[cp] = true
			d.r.errorAt(it.pos, cp, hint, "a constraint has %s; it needs 2 or 3", plural(len(it.items), "part"))
			out = append(out, Constraint{})
			continue
		}
		var c Constraint
		okAll := true
		for j, part := range it.items {
			pp := cp + "." + [...]string{"field", "operator", "value"}[j]
			d.r.locs[pp] = part.pos
			var s string
			var ok bool
			if j == 2 {
				s, ok = d.text(pp, part, "a constraint's value")
			} else {
				s, ok = d.str(pp, part, "a constraint's "+[...]string{"field", "operator"}[j])
			}
			okAll = okAll && ok
			switch j {
			case 0:
				c.Field = s
			case 1:
				c.Operator = Operator(s)
			case 2:
				c.Value = s
			}
		}
		if !okAll {
			d.bad[cp] = true
		}
		out = append(out, c)
	}
	return out
}
