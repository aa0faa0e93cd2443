package linkspec

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/parser"
)

// decodeConstraints runs the decoder and validator on a `constraints:`
// value, as the service decoder will once the field is wired in.
func decodeConstraints(t *testing.T, yml string) ([]Constraint, Problems) {
	t.Helper()
	f, err := parser.ParseBytes([]byte("constraints: "+yml+"\n"), 0)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	b := &builder{}
	root, err := b.build(f.Docs[0], 0)
	if err != nil {
		t.Fatalf("tree: %v", err)
	}
	r := &reporter{file: "s.yaml", locs: map[string]Pos{}}
	d := &decoder{r: r, bad: map[string]bool{}}
	var cs []Constraint
	d.fields("", "a service", root, []field{{"constraints", func(p string, v *node) { cs = d.constraints(p, v) }}})
	validateConstraints(r, "constraints", cs, d.bad)
	r.probs.sort()
	return cs, r.probs
}

func TestConstraintsDecode(t *testing.T) {
	cs, probs := decodeConstraints(t, `[[hostname, UNIQUE], [zone, GROUP_BY, 3], [rack, LIKE, "rack-[1-3]"], [ssd, IS, true], [cores, MAX_PER, 2]]`)
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	want := []Constraint{
		{Field: "hostname", Operator: Unique},
		{Field: "zone", Operator: GroupBy, Value: "3"},
		{Field: "rack", Operator: Like, Value: "rack-[1-3]"},
		{Field: "ssd", Operator: Is, Value: "true"},
		{Field: "cores", Operator: MaxPer, Value: "2"},
	}
	if len(cs) != len(want) {
		t.Fatalf("got %v", cs)
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("[%d] = %#v, want %#v", i, cs[i], want[i])
		}
	}
}

func TestConstraintsProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		want      []string // substrings of the problems, in order
	}{
		{"unknown operator, lower case", `[[hostname, unique]]`, []string{`s.yaml:1:26: unknown constraint operator "unique"; did you mean "UNIQUE"? operators are upper-case`}},
		{"unknown operator, typo", `[[rack, GROUPBY]]`, []string{`unknown constraint operator "GROUPBY"; did you mean "GROUP_BY"?`}},
		{"unknown operator, far", `[[rack, NEAR]]`, []string{`use one of UNIQUE, CLUSTER, GROUP_BY, MAX_PER, LIKE, UNLIKE, IS, IN`}},
		{"bad regexp", `[[rack, LIKE, "rack-(1"]]`, []string{`s.yaml:1:28: LIKE value "rack-(1" is not a regular expression: missing closing ); use RE2`}},
		{"java look-ahead", `[[rack, UNLIKE, "(?!a)b"]]`, []string{`is not a regular expression`, `RE2 syntax`}},
		{"LIKE without value", `[[rack, LIKE]]`, []string{`LIKE needs a regular expression`}},
		{"one part", `[[hostname]]`, []string{`s.yaml:1:15: a constraint has 1 part; it needs 2 or 3`}},
		{"four parts", `[[a, IS, b, c]]`, []string{`has 4 parts`}},
		{"not a list", `[hostname]`, []string{`a constraint must be a list, not a string`}},
		{"UNIQUE with value", `[[hostname, UNIQUE, x]]`, []string{`UNIQUE takes no value, but "x" was given`}},
		{"GROUP_BY zero", `[[zone, GROUP_BY, 0]]`, []string{`GROUP_BY count "0" is not a positive whole number`}},
		{"GROUP_BY text", `[[zone, GROUP_BY, three]]`, []string{`GROUP_BY count "three"`}},
		{"MAX_PER none", `[[zone, MAX_PER]]`, []string{`MAX_PER needs a count`}},
		{"MAX_PER negative", `[[zone, MAX_PER, -2]]`, []string{`MAX_PER count "-2" is not a positive whole number`}},
		{"MAX_PER float", `[[zone, MAX_PER, 1.5]]`, []string{`MAX_PER count "1.5"`}},
		{"IS without value", `[[zone, IS]]`, []string{`IS needs a value`}},
		{"field syntax", `[["rack id", UNIQUE]]`, []string{`constraint field "rack id" is not an attribute name`}},
		{"unknown @field", `[["@zon", UNIQUE]]`, []string{`unknown constraint field "@zon"; did you mean "@zone"?`}},
		{"empty field", `[["", UNIQUE]]`, []string{`a constraint has an empty field`}},
		{"operator not a string", `[[zone, 3]]`, []string{`a constraint's operator must be a string, not an integer (3)`}},
		{"duplicate", `[[zone, UNIQUE], [zone, UNIQUE]]`, []string{`s.yaml:1:31: warning: duplicate constraint zone:UNIQUE; remove it (the first is constraints[0])`}},
		{"several at once", `[[zone, unique], [rack, MAX_PER, x], [h]]`, []string{`unknown constraint operator`, `MAX_PER count "x"`, `has 1 part;`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, probs := decodeConstraints(t, tc.yml)
			if len(probs) != len(tc.want) && !strings.Contains(tc.name, "java") {
				t.Fatalf("got %d problems, want %d:\n%v", len(probs), len(tc.want), probs)
			}
			all := probs.Error()
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestValidateConstraintsInCode(t *testing.T) {
	probs := ValidateConstraints("services.web.constraints", []Constraint{
		{Field: "hostname", Operator: Unique},
		{Field: "rack", Operator: "CLUSTERED"},
		{Field: "zone", Operator: GroupBy, Value: "x"},
	})
	got := probs.Error()
	for _, w := range []string{
		`services.web.constraints[1].operator: unknown constraint operator "CLUSTERED"; did you mean "CLUSTER"?`,
		`services.web.constraints[2].value: GROUP_BY count "x"`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("lacks %q:\n%s", w, got)
		}
	}
	if len(probs) != 2 {
		t.Errorf("got %d problems:\n%s", len(probs), got)
	}
	many := make([]Constraint, MaxConstraints+1)
	for i := range many {
		many[i] = Constraint{Field: "a" + strings.Repeat("x", i), Operator: Unique}
	}
	if p := ValidateConstraints("c", many); len(p) != 1 || !strings.Contains(p[0].Msg, "at most 32") {
		t.Errorf("too many: %v", p)
	}
}

func TestConstraintJSON(t *testing.T) {
	cs := []Constraint{{Field: "hostname", Operator: Unique}, {Field: "zone", Operator: GroupBy, Value: "3"}}
	b, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[["hostname","UNIQUE"],["zone","GROUP_BY","3"]]` {
		t.Errorf("marshal: %s", b)
	}
	var back []Constraint
	if err := json.Unmarshal([]byte(`[["hostname","UNIQUE"],["zone","GROUP_BY",3]]`), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0] != cs[0] || back[1] != cs[1] {
		t.Errorf("unmarshal: %#v", back)
	}
	for _, bad := range []string{`["a"]`, `["a","B","c","d"]`, `[1,"UNIQUE"]`, `["a",2]`, `["a","IS",{}]`, `{}`} {
		var c Constraint
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestAnchoredAndIn(t *testing.T) {
	re := regexp.MustCompile(Anchored("rack-1|rack-2"))
	for s, want := range map[string]bool{"rack-1": true, "rack-2": true, "rack-10": false, "xrack-1": false} {
		if re.MatchString(s) != want {
			t.Errorf("%q: %v", s, !want)
		}
	}
	if got := InValues("a, b ,c"); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("InValues = %q", got)
	}
	if (Constraint{Field: "h", Operator: GroupBy}).Count() != 0 || (Constraint{Field: "h", Operator: MaxPer, Value: "4"}).Count() != 4 {
		t.Error("Count")
	}
}
