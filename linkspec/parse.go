package linkspec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Parse reads a link spec from YAML or JSON (JSON when name ends in ".json"
// or the text starts with '{'), applies defaults and validates it. name is
// used in problem locations. It returns every problem found, errors and
// warnings, sorted by position. The spec is nil when there is any error.
func Parse(name string, data []byte) (*Spec, Problems) {
	return ParseWith(context.Background(), name, data, ParseOptions{})
}

// ParseOptions tune what ParseWith accepts beyond the format's fixed limits.
type ParseOptions struct {
	// MaxTasks bounds the sum of every service's instances: how many tasks
	// one spec may ask a scheduler to hold. 0 means DefaultMaxTasks.
	MaxTasks int
	// NoImages, when set, refuses services with an image and says why, e.g.
	// "this scheduler's executor binary is dynamically linked (…); build
	// tiltai with CGO_ENABLED=0 to run services in images".
	NoImages string
	// ImageNeedsCommand, when set, refuses a service with an image but no
	// command and says why: a scheduler that cannot learn the image's
	// ENTRYPOINT and CMD cannot run it.
	ImageNeedsCommand string
}

func (o ParseOptions) maxTasks() int {
	if o.MaxTasks <= 0 {
		return DefaultMaxTasks
	}
	return o.MaxTasks
}

// ParseWith is Parse with options. When ctx ends first it returns at once
// and reports that as an error problem (ctx.Err() tells the caller why).
func ParseWith(ctx context.Context, name string, data []byte, opt ParseOptions) (*Spec, Problems) {
	if err := ctx.Err(); err != nil {
		return nil, stoppedProblems(name, err)
	}
	if ctx.Done() == nil {
		return parseAll(ctx, name, data, opt)
	}
	// The YAML parser cannot be interrupted, so the parse runs on its own
	// goroutine and a caller whose ctx ends is answered at once. The parse
	// then stops at its next check of ctx, or ends with the parser, which
	// the pre-scan and MaxSpecBytes bound; its result is dropped.
	type result struct {
		spec  *Spec
		probs Problems
	}
	done := make(chan result, 1)
	go func() {
		spec, probs := parseAll(ctx, name, data, opt)
		done <- result{spec, probs}
	}()
	select {
	case res := <-done:
		return res.spec, res.probs
	case <-ctx.Done():
		return nil, stoppedProblems(name, ctx.Err())
	}
}

func stoppedProblems(name string, err error) Problems {
	return Problems{{File: name, Severity: Error, Msg: fmt.Sprintf("parsing stopped: %v", err), Hint: "submit the spec again"}}
}

func parseAll(ctx context.Context, name string, data []byte, opt ParseOptions) (*Spec, Problems) {
	r := &reporter{file: name, locs: map[string]Pos{}, opt: opt}
	spec, bad := parse(ctx, r, data)
	if err := ctx.Err(); err != nil {
		return nil, stoppedProblems(name, err)
	}
	if spec != nil {
		spec.locs, spec.file = r.locs, name
		validate(r, spec, bad)
	}
	r.probs.sort()
	if r.probs.Err() != nil {
		return nil, r.probs
	}
	return spec, r.probs
}

// ParseReader is Parse for a stream; it reads at most MaxSpecBytes+1 bytes.
func ParseReader(name string, rd io.Reader) (*Spec, Problems) {
	data, err := io.ReadAll(io.LimitReader(rd, MaxSpecBytes+1))
	if err != nil {
		return nil, Problems{{File: name, Severity: Error, Msg: fmt.Sprintf("cannot read the spec: %v", err), Hint: "check the file or the request body"}}
	}
	return Parse(name, data)
}

// utf8BOM marks UTF-8 text for some Windows editors; it is not part of the
// spec, and columns count from after it, as editors show them.
var utf8BOM = []byte("\ufeff")

// parse checks ctx between its phases, and the builder and the decoder
// check it as they go; a parse that stopped returns no spec.
func parse(ctx context.Context, r *reporter, data []byte) (spec *Spec, bad map[string]bool) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(data) > MaxSpecBytes {
		r.errorAt(Pos{}, "", "split the spec or remove what it does not need",
			"the spec is larger than %d bytes (%d MiB)", MaxSpecBytes, MaxSpecBytes>>20)
		return nil, nil
	}
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		r.errorAt(offsetPos(data, off), "", "save the file as UTF-8",
			"invalid UTF-8 (byte 0x%02x at offset %d)", data[off], off)
		return nil, nil
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		r.errorAt(offsetPos(data, i), "", "remove the NUL byte; a spec is text", "NUL byte in the spec")
		return nil, nil
	}
	// Before any parser: deep nesting makes the YAML parser's memory grow
	// with the square of the depth, and its tokens and block mapping keys
	// cost it hundreds of bytes each.
	if off, msg, hint := prescanSpec(data); off >= 0 {
		r.errorAt(offsetPos(data, off), "", hint, "%s", msg)
		return nil, nil
	}
	if looksJSON(r.file, data) && !checkJSON(r, data) {
		return nil, nil
	}
	// The parser is third-party code fed untrusted input (API bodies); a bug
	// there must become a refused spec, not a crashed scheduler.
	defer func() {
		if p := recover(); p != nil {
			r.errorAt(Pos{}, "", "simplify the YAML, and please report this input as a Tiltai bug",
				"the YAML parser failed on this input: %v", p)
			spec, bad = nil, nil
		}
	}()
	file, err := parseYAML(data)
	if ctx.Err() != nil {
		return nil, nil
	}
	if err != nil {
		reportYAMLError(r, err)
		return nil, nil
	}
	docs := nonEmptyDocs(file)
	if len(docs) == 0 {
		r.errorAt(Pos{Line: 1, Col: 1}, "", "start from examples/pipeline.yaml or docs/linkspec.md", "the spec is empty")
		return nil, nil
	}
	if len(docs) > 1 {
		r.errorAt(posOf(docs[1]), "", "put one spec in each file", "the file holds %d YAML documents; a spec is one document", len(docs))
		return nil, nil
	}
	b := &builder{ctx: ctx}
	root, err := b.build(docs[0], 0)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	if err != nil {
		var et *errTree
		if errors.As(err, &et) {
			hint := tooDeepHint
			if et.msg == tooManyKeyPairsMsg {
				hint = tooManyKeyPairsHint
			}
			r.errorAt(et.pos, "", hint, "%s", et.msg)
		} else {
			r.errorAt(Pos{}, "", "check the YAML", "%v", err)
		}
		return nil, nil
	}
	d := &decoder{r: r, bad: map[string]bool{}, ctx: ctx}
	spec = d.spec(root)
	bad = d.bad
	return spec, bad
}

// parseYAML is the third-party parser; a variable so that a test can stand
// in a parser that takes its time.
var parseYAML = func(data []byte) (*ast.File, error) {
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

func nonEmptyDocs(f *ast.File) []*ast.DocumentNode {
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		docs = append(docs, d)
	}
	return docs
}

func reportYAMLError(r *reporter, err error) {
	var se *yaml.SyntaxError
	if errors.As(err, &se) {
		pos := Pos{}
		if tk := se.GetToken(); tk != nil && tk.Position != nil {
			pos = Pos{Line: tk.Position.Line, Col: tk.Position.Column}
		}
		r.errorAt(pos, "", "fix the YAML syntax here (indentation, a missing ':' or quote)", "YAML syntax error: %s", se.GetMessage())
		return
	}
	r.errorAt(Pos{}, "", "fix the YAML syntax", "YAML syntax error: %s", firstLine(err.Error()))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func looksJSON(name string, data []byte) bool {
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		return true
	}
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// checkJSON reports JSON syntax errors at their line and column; the YAML
// parser accepts a superset of JSON and would report them less precisely.
func checkJSON(r *reporter, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			r.errorAt(offsetPos(data, int(se.Offset)-1), "", "fix the JSON syntax here", "JSON syntax error: %s", se.Error())
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			r.errorAt(offsetPos(data, len(data)), "", "close every { and [", "JSON ends too early")
		default:
			r.errorAt(Pos{}, "", "fix the JSON", "JSON error: %v", err)
		}
		return false
	}
	// Located at the extra data itself, not where the decoder stopped.
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		r.errorAt(offsetPos(data, len(data)-len(rest)), "", "remove what follows the object; a spec is one JSON object", "extra data after the JSON object")
		return false
	}
	return true
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		c, size := utf8.DecodeRune(data[i:])
		if c == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data) - 1
}

// offsetPos turns a byte offset into a line and a column counted in runes.
func offsetPos(data []byte, off int) Pos {
	if off < 0 {
		off = 0
	}
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	col := 1 + utf8.RuneCount(data[start:off])
	return Pos{Line: line, Col: col}
}
