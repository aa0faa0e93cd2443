package linkspec

import (
	"fmt"
	"io"
	"strings"
)

// WriteDOT draws the spec as a Graphviz digraph: one node per service with
// its in-gates on the left and out-gates on the right, one edge per link.
// Render it with `dot -Tsvg`.
func WriteDOT(w io.Writer, s *Spec) error {
	var b strings.Builder
	b.WriteString("digraph tiltai {\n")
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=record, fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9];\n")
	for _, name := range s.ServiceNames() {
		svc := s.Services[name]
		var ins, outs []string
		for _, g := range s.InGates(name) {
			ins = append(ins, fmt.Sprintf("<in_%s> %s\\n(%s)", dotID(g), recordEscape(g), svc.Gates[g]))
		}
		for _, g := range s.OutGates(name) {
			outs = append(outs, fmt.Sprintf("<out_%s> %s\\n(%s)", dotID(g), recordEscape(g), svc.Gates[g]))
		}
		center := fmt.Sprintf("%s\\n×%d", recordEscape(name), svc.Instances)
		parts := []string{}
		if len(ins) > 0 {
			parts = append(parts, "{"+strings.Join(ins, "|")+"}")
		}
		parts = append(parts, center)
		if len(outs) > 0 {
			parts = append(parts, "{"+strings.Join(outs, "|")+"}")
		}
		fmt.Fprintf(&b, "  %q [label=\"{%s}\"];\n", name, strings.Join(parts, "|"))
	}
	for _, l := range s.Links {
		from := s.Services[l.From.Service].Gates[l.From.Gate]
		to := s.Services[l.To.Service].Gates[l.To.Gate]
		fmt.Fprintf(&b, "  %q:\"out_%s\":e -> %q:\"in_%s\":w [label=\"%s→%s\"];\n",
			l.From.Service, dotID(l.From.Gate), l.To.Service, dotID(l.To.Gate), from, to)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteText draws the spec as a tree for a terminal: each service, its gates,
// and where each link goes or comes from.
func WriteText(w io.Writer, s *Spec) error {
	var b strings.Builder
	for _, name := range s.ServiceNames() {
		svc := s.Services[name]
		fmt.Fprintf(&b, "%s ×%d\n", name, svc.Instances)
		gates := append(s.InGates(name), s.OutGates(name)...)
		for i, g := range gates {
			branch := "├─"
			if i == len(gates)-1 {
				branch = "└─"
			}
			ref := GateRef{name, g}
			var peers []string
			for _, l := range s.Links {
				switch ref {
				case l.From:
					peers = append(peers, fmt.Sprintf("──► %s (%s ×%d)", l.To, s.Services[l.To.Service].Gates[l.To.Gate], s.Services[l.To.Service].Instances))
				case l.To:
					peers = append(peers, fmt.Sprintf("◄── %s (%s ×%d)", l.From, s.Services[l.From.Service].Gates[l.From.Gate], s.Services[l.From.Service].Instances))
				}
			}
			if len(peers) == 0 {
				peers = []string{"(not linked)"}
			}
			fmt.Fprintf(&b, "  %s %s (%s) %s\n", branch, g, svc.Gates[g], strings.Join(peers, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// dotID keeps a port name to characters Graphviz accepts unquoted.
func dotID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func recordEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "{", `\{`, "}", `\}`, "|", `\|`, "<", `\<`, ">", `\>`)
	return r.Replace(s)
}
