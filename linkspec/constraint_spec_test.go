package linkspec

import (
	"slices"
	"strings"
	"testing"
)

// Constraints are a service field: parsed and validated in place, copied
// by Clone, compared by Diff, and (Marathon's choice) not part of the
// service digest: a change places new tasks and leaves running ones.
func TestConstraintsInSpec(t *testing.T) {
	const base = "version: 1\nservices:\n  enc:\n    command: ./enc\n    instances: 4\n    gates: {in: pull}\n  feed:\n    command: ./feed\n    gates: {out: push}\nlinks:\n  - {from: feed.out, to: enc.in}\n"
	old, probs := Parse("s.yaml", []byte(base))
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(base, "    instances: 4\n", "    instances: 4\n    constraints:\n      - [hostname, UNIQUE]\n      - [zone, GROUP_BY, 3]\n", 1)
	s, probs := Parse("s.yaml", []byte(src))
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	want := []Constraint{{Field: "hostname", Operator: Unique}, {Field: "zone", Operator: GroupBy, Value: "3"}}
	if got := s.Services["enc"].Constraints; !slices.Equal(got, want) {
		t.Fatalf("constraints = %v, want %v", got, want)
	}
	c := s.Clone()
	c.Services["enc"].Constraints[0].Field = "rack"
	if s.Services["enc"].Constraints[0].Field != "hostname" {
		t.Fatal("Clone shares the constraints")
	}
	if old.ServiceDigest("enc") != s.ServiceDigest("enc") {
		t.Fatal("a constraint change makes running tasks outdated")
	}
	changes := Diff(old, s)
	if len(changes) != 1 || changes[0].Replaces || !slices.Equal(changes[0].Fields, []string{"constraints"}) {
		t.Fatalf("Diff = %+v", changes)
	}
	if got, want := changes[0].String(), "~ service enc: constraints changed; running tasks stay; new tasks are placed by it"; got != want {
		t.Fatalf("Diff says %q, want %q", got, want)
	}

	bad := strings.Replace(base, "    instances: 4\n", "    instances: 4\n    constraints:\n      - [hostname, UNIQUE]\n      - [zone, GROUPBY]\n", 1)
	_, probs = Parse("s.yaml", []byte(bad))
	if err := probs.Err(); err == nil || !strings.Contains(err.Error(), `s.yaml:8:`) || !strings.Contains(err.Error(), `"GROUP_BY"`) {
		t.Fatalf("a bad operator: %v", err)
	}
}
