package linkspec

import (
	"fmt"
	"strings"
	"testing"
)

// TestCountLimits checks docs/reliability.md B1 for the limits on counts the
// validator keeps after parsing (docs/linkspec.md#limits): services,
// gates per service, links, and nesting depth in the parsed tree (anchors
// count as a level, which the pre-scan of brackets and indentation cannot
// see). At each limit the spec is accepted; one over, it is refused with
// exactly one error, located.
func TestCountLimits(t *testing.T) {
	// services: n services, no gates.
	services := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nservices:\n")
		for i := range n {
			fmt.Fprintf(&b, "  s%d: {command: x}\n", i)
		}
		return b.String()
	}
	// gates: one service with n out-gates.
	gates := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nservices:\n  a:\n    command: x\n    gates:\n")
		for i := range n {
			fmt.Fprintf(&b, "      g%d: push\n", i)
		}
		return b.String()
	}
	// links: n distinct links among 101 services, each with an out-gate and
	// an in-gate (101 × 100 possible links).
	links := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nservices:\n")
		for i := range 101 {
			fmt.Fprintf(&b, "  a%d: {command: x, gates: {o: push, i: pull}}\n", i)
		}
		b.WriteString("links:\n")
		for k := range n {
			from, to := k/100, k%100
			if to >= from {
				to++
			}
			fmt.Fprintf(&b, "  - {from: a%d.o, to: a%d.i}\n", from, to)
		}
		return b.String()
	}
	// depth: a scalar n levels deep below the root mapping, made of
	// anchors and flow sequences in turn, so that brackets alone reach only
	// half as deep.
	depth := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nservices:\n  a: {command: x}\nx-deep: ")
		open := 0
		for i := range n - 1 {
			if i%2 == 0 {
				fmt.Fprintf(&b, "&a%d ", i)
			} else {
				b.WriteString("[")
				open++
			}
		}
		b.WriteString("1" + strings.Repeat("]", open) + "\n")
		return b.String()
	}
	for _, c := range []struct {
		name    string
		spec    func(int) string
		limit   int
		refusal string
	}{
		{"services", services, MaxServices, "limits.yaml:3:5: 1001 services; at most 1000 are allowed; split the system into several specs"},
		{"gates", gates, MaxGates, "limits.yaml:6:9: 65 gates; at most 64 per service; merge gates: one gate can carry many kinds of message"},
		{"links", links, MaxLinks, "limits.yaml:105:3: 10001 links; at most 10000 are allowed; fewer, wider links (one link reaches every instance)"},
		{"depth", depth, maxTreeDepth, "limits.yaml:4:196: values are nested more than 64 deep; write the values out instead of nesting or repeating aliases"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, probs := Parse("limits.yaml", []byte(c.spec(c.limit)))
			if err := probs.Err(); err != nil || spec == nil {
				t.Fatalf("at the limit (%d): %v", c.limit, err)
			}
			spec, probs = Parse("limits.yaml", []byte(c.spec(c.limit+1)))
			errs := probs.Errors()
			if spec != nil || len(errs) != 1 || errs[0].String() != c.refusal {
				t.Fatalf("over the limit (%d):\n got %v\nwant %s", c.limit+1, errs, c.refusal)
			}
		})
	}
}
