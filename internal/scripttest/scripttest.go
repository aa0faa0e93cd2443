package scripttest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of script tests and golden files in place")

// Rewrite reports whether the test binary runs with -rewrite, for golden
// files that are not scripts.
func Rewrite() bool { return *rewrite }

// A Cmd is one block of a script.
type Cmd struct {
	Pos      string // file:line of the command
	Line     string // the command line as written, for scripts that read it themselves
	Name     string // the command's first word
	Args     []Arg  // the rest of the command line, in order
	Input    string // the lines between the command and ----, each ending in \n
	Expected string // the lines after ----, each ending in \n

	line   string // the command line as written, for messages
	double bool   // the output is framed by ----/---- on both sides
	start  int    // byte offsets of the expected output in the file
	end    int
}

// An Arg is a word of the command line: positional (Key "") or key=value.
type Arg struct {
	Key string
	Val string
}

// Positional returns the values of the arguments without a key.
func (c *Cmd) Positional() []string {
	var p []string
	for _, a := range c.Args {
		if a.Key == "" {
			p = append(p, a.Val)
		}
	}
	return p
}

// Lookup returns the value of key=value and whether it was given.
func (c *Cmd) Lookup(key string) (string, bool) {
	for _, a := range c.Args {
		if a.Key == key && key != "" {
			return a.Val, true
		}
	}
	return "", false
}

// Value returns the value of key=value, or "" when it was not given.
func (c *Cmd) Value(key string) string {
	v, _ := c.Lookup(key)
	return v
}

// Walk runs f as a subtest, named by the base name without .txt, for each
// file in dir (and, as nested subtests, in its folders). Files and folders
// whose names start with "." are skipped. It fails if dir holds no file.
func Walk(t *testing.T, dir string, f func(t *testing.T, path string)) {
	t.Helper()
	if walk(t, dir, f) == 0 {
		t.Fatalf("no script files in %s", dir)
	}
}

func walk(t *testing.T, dir string, f func(t *testing.T, path string)) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("cannot list the scripts: %v", err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if e.IsDir() {
			t.Run(e.Name(), func(t *testing.T) { n += walk(t, path, f) })
			continue
		}
		n++
		t.Run(strings.TrimSuffix(e.Name(), ".txt"), func(t *testing.T) { f(t, path) })
	}
	return n
}

// RunFile runs each command of the script at path through f and compares
// what f returns with the expected output; a missing final newline is
// added. Every command runs even after a mismatch. With -rewrite, the
// outputs that differ are written back into the file instead.
func RunFile(t *testing.T, path string, f func(t *testing.T, d *Cmd) string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(cmds))
	failed := false
	for i, d := range cmds {
		got[i] = f(t, d)
		if got[i] != "" && !strings.HasSuffix(got[i], "\n") {
			got[i] += "\n"
		}
		if got[i] != d.Expected && !*rewrite {
			failed = true
			t.Errorf("%s: %s\n--- got\n%s--- want\n%s", d.Pos, d.line, got[i], d.Expected)
		}
	}
	if failed {
		t.Log("run go test with -rewrite to accept the new output after checking it")
	}
	if !*rewrite {
		return
	}
	out, err := rewriteOutputs(data, cmds, got)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if string(out) == string(data) {
		return
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// parse splits a script into its commands. Errors name the file and line.
func parse(path string, data []byte) ([]*Cmd, error) {
	type line struct {
		text  string
		start int // offset of the line; the next starts at start+len(text)+1
	}
	var lines []line
	for off := 0; off < len(data); {
		n := strings.IndexByte(string(data[off:]), '\n')
		if n < 0 {
			n = len(data) - off
		}
		lines = append(lines, line{string(data[off : off+n]), off})
		off += n + 1
	}
	next := func(i int) int { // offset of line i, or the end of the file
		if i < len(lines) {
			return lines[i].start
		}
		return len(data)
	}
	var cmds []*Cmd
	for i := 0; i < len(lines); {
		l := lines[i]
		if strings.TrimSpace(l.text) == "" || strings.HasPrefix(l.text, "#") {
			i++
			continue
		}
		pos := fmt.Sprintf("%s:%d", path, i+1)
		name, args, err := parseArgs(l.text)
		if err != nil {
			return nil, fmt.Errorf("%s:%v", pos, err)
		}
		d := &Cmd{Pos: pos, Line: l.text, Name: name, Args: args, line: l.text}
		var b strings.Builder
		for i++; i < len(lines) && lines[i].text != "----"; i++ {
			b.WriteString(lines[i].text + "\n")
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s: command %q has no ---- line after it", pos, name)
		}
		d.Input = b.String()
		i++
		b.Reset()
		if i < len(lines) && lines[i].text == "----" {
			// ----/---- framing: the output ends at the next pair of ----.
			d.double = true
			i++
			d.start = next(i)
			for ; i+1 < len(lines) && (lines[i].text != "----" || lines[i+1].text != "----"); i++ {
				b.WriteString(lines[i].text + "\n")
			}
			if i+1 >= len(lines) {
				return nil, fmt.Errorf("%s: command %q has no closing ---- and ---- lines after its output", pos, name)
			}
			d.end = lines[i].start
			i += 2
		} else {
			d.start = next(i)
			for ; i < len(lines) && lines[i].text != ""; i++ {
				b.WriteString(lines[i].text + "\n")
			}
			d.end = min(next(i), len(data))
		}
		d.Expected = b.String()
		cmds = append(cmds, d)
	}
	return cmds, nil
}

// parseArgs splits a command line into its name and arguments: words,
// key=value, key="Go-quoted value", "Go-quoted word", and a word starting
// with { (JSON) that runs to the end of the line. Errors start with the
// column.
func parseArgs(s string) (string, []Arg, error) {
	var args []Arg
	seen := map[string]bool{}
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		col := i + 1
		if s[i] == '{' {
			args = append(args, Arg{Val: s[i:]})
			break
		}
		var key string
		if s[i] != '"' {
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '=' {
				j++
			}
			if j == len(s) || s[j] != '=' {
				args = append(args, Arg{Val: s[i:j]})
				i = j
				continue
			}
			key, i = s[i:j], j+1
			if key == "" {
				return "", nil, fmt.Errorf("%d: = without a key before it", col)
			}
			if seen[key] {
				return "", nil, fmt.Errorf("%d: %s= given twice", col, key)
			}
			seen[key] = true
		}
		if i < len(s) && s[i] == '"' {
			q, err := strconv.QuotedPrefix(s[i:])
			if err != nil {
				return "", nil, fmt.Errorf("%d: bad quoted value: %v", i+1, err)
			}
			v, _ := strconv.Unquote(q)
			args = append(args, Arg{Key: key, Val: v})
			i += len(q)
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return "", nil, fmt.Errorf("%d: want a space after the quoted value", i+1)
			}
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		args = append(args, Arg{Key: key, Val: s[i:j]})
		i = j
	}
	if len(args) == 0 || args[0].Key != "" || strings.HasPrefix(args[0].Val, "{") {
		return "", nil, fmt.Errorf("1: want a command name first")
	}
	if len(args) == 1 {
		return args[0].Val, nil, nil
	}
	return args[0].Val, args[1:], nil
}

// rewriteOutputs returns data with each command's expected output replaced
// by got (each empty or ending in \n). Everything else is kept byte for
// byte, including a missing newline at the end of the file. An output with
// a blank line, or starting with ----, is framed by ----/---- lines.
func rewriteOutputs(data []byte, cmds []*Cmd, got []string) ([]byte, error) {
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	noFinalNewline := len(data) > 0 && data[len(data)-1] != '\n'
	for i, d := range cmds {
		g := got[i]
		if g == d.Expected {
			continue
		}
		framed := strings.HasPrefix(g, "\n") || strings.Contains(g, "\n\n") || strings.HasPrefix(g, "----\n")
		if d.double {
			if strings.HasPrefix(g, "----\n----\n") || strings.Contains(g, "\n----\n----\n") {
				return nil, fmt.Errorf("%s: the output of %q holds two ---- lines in a row and cannot be written", d.Pos, d.line)
			}
			edits = append(edits, edit{d.start, d.end, g})
			continue
		}
		if framed {
			if strings.HasPrefix(g, "----\n----\n") || strings.Contains(g, "\n----\n----\n") {
				return nil, fmt.Errorf("%s: the output of %q holds two ---- lines in a row and cannot be written", d.Pos, d.line)
			}
			g = "----\n" + g + "----\n----\n"
		}
		e := edit{d.start, d.end, g}
		if noFinalNewline && e.end == len(data) {
			e.text = strings.TrimSuffix(e.text, "\n")
			switch {
			case e.text == "" && e.start > 0 && e.start < e.end:
				e.start-- // drop the newline of the ---- line too
			case e.text != "" && e.start == len(data):
				e.text = "\n" + e.text // the ---- line ends the file
			}
		}
		edits = append(edits, e)
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := string(data)
	for _, e := range edits {
		out = out[:e.start] + e.text + out[e.end:]
	}
	return []byte(out), nil
}
