package linkspec

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a spec file; Line and Col count from 1. The zero Pos means
// "not from a file" (a spec built in code, or a field that was left out).
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Severity tells an error (the spec is refused) from a warning (accepted, but
// probably not what was meant).
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Problem is one thing wrong with a spec: where, what, and what to do.
type Problem struct {
	File     string   `json:"file,omitempty"`
	Pos      Pos      `json:"pos"`
	Path     string   `json:"path,omitempty"` // e.g. services.feeder.instances
	Severity Severity `json:"severity"`
	Msg      string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// String renders "FILE:LINE:COL: what is wrong; what to do", the format
// editors and terminals link to.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Pos.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", p.File, p.Pos.Line, p.Pos.Col)
	case p.File != "":
		fmt.Fprintf(&b, "%s: ", p.File)
	case p.Pos.Line > 0:
		fmt.Fprintf(&b, "%d:%d: ", p.Pos.Line, p.Pos.Col)
	}
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	if p.Pos.Line == 0 && p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Hint != "" {
		b.WriteString("; ")
		b.WriteString(p.Hint)
	}
	return b.String()
}

// Problems is every problem found in one spec, in file order. As an error it
// lists them one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Errors returns only the problems of severity Error.
func (ps Problems) Errors() Problems { return ps.filter(Error) }

// Warnings returns only the problems of severity Warning.
func (ps Problems) Warnings() Problems { return ps.filter(Warning) }

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Err returns the errors among ps as an error, or nil when there are none
// (warnings alone do not refuse a spec).
func (ps Problems) Err() error {
	if errs := ps.Errors(); len(errs) > 0 {
		return errs
	}
	return nil
}

// sort orders problems by position, then path, so output is stable and reads
// top to bottom like the file.
func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Pos.Line != b.Pos.Line {
			// Unlocated problems (line 0) go last.
			if a.Pos.Line == 0 || b.Pos.Line == 0 {
				return b.Pos.Line == 0 && a.Pos.Line != 0
			}
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		return a.Path < b.Path
	})
}

// reporter collects problems with their positions.
type reporter struct {
	file  string
	locs  map[string]Pos
	probs Problems
	opt   ParseOptions
}

// at records an error at a path, located from the position table.
func (r *reporter) errorf(path, hint, format string, args ...any) {
	r.add(Error, path, r.locs[path], hint, format, args...)
}

func (r *reporter) warnf(path, hint, format string, args ...any) {
	r.add(Warning, path, r.locs[path], hint, format, args...)
}

func (r *reporter) errorAt(pos Pos, path, hint, format string, args ...any) {
	r.add(Error, path, pos, hint, format, args...)
}

func (r *reporter) add(sev Severity, path string, pos Pos, hint, format string, args ...any) {
	r.probs = append(r.probs, Problem{File: r.file, Pos: pos, Path: path, Severity: sev, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// ProblemAt is an error found outside the validator (by whoever runs the
// spec: a registry that does not know a service's image, say), located
// where path ("services.encryptor.image") was written.
func (s *Spec) ProblemAt(path, hint, format string, args ...any) Problem {
	return Problem{File: s.file, Pos: s.locs[path], Path: path, Severity: Error, Msg: fmt.Sprintf(format, args...), Hint: hint}
}
