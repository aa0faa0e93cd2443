package scripttest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestScriptParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Cmd // line, double, start and end are not compared
		err      string
	}{
		{name: "empty", in: ""},
		{name: "comments only", in: "# a\n\n# b\n"},
		{
			name: "blocks",
			in:   "# head\nplan t=1s tables=off\n----\nlaunch a\nlaunch b\n\n\nworld\n----\n",
			want: []Cmd{
				{Pos: "f.txt:2", Name: "plan", Args: []Arg{{"t", "1s"}, {"tables", "off"}}, Expected: "launch a\nlaunch b\n"},
				{Pos: "f.txt:8", Name: "world"},
			},
		},
		{
			name: "input with blank and comment lines, no final newline",
			in:   "spec\nversion: 1\n\n# yaml comment\n----\nok",
			want: []Cmd{{Pos: "f.txt:1", Name: "spec", Input: "version: 1\n\n# yaml comment\n", Expected: "ok\n"}},
		},
		{
			name: "quoted, JSON and tabs",
			in:   "launch\tenc.1 grace=2s err=\"a \\\"b\\\" c\" {\"a\": \"b=c d\"}\n----\n",
			want: []Cmd{{Pos: "f.txt:1", Name: "launch", Args: []Arg{{"", "enc.1"}, {"grace", "2s"}, {"err", `a "b" c`}, {"", `{"a": "b=c d"}`}}}},
		},
		{
			name: "quoted positional and empty value",
			in:   "say \"hello world\" k=\n----\n",
			want: []Cmd{{Pos: "f.txt:1", Name: "say", Args: []Arg{{"", "hello world"}, {"k", ""}}}},
		},
		{
			name: "framed output with blank lines and ----",
			in:   "cat\n----\n----\na\n\n----\nb\n----\n----\nnext\n----\nx\n",
			want: []Cmd{
				{Pos: "f.txt:1", Name: "cat", Expected: "a\n\n----\nb\n"},
				{Pos: "f.txt:10", Name: "next", Expected: "x\n"},
			},
		},
		{name: "no separator", in: "# c\nplan\nmore\n", err: "f.txt:2: command \"plan\" has no ---- line after it"},
		{name: "unclosed framing", in: "cat\n----\n----\na\n----\n", err: "f.txt:1: command \"cat\" has no closing ---- and ---- lines"},
		{name: "key first", in: "\nt=1s plan\n----\n", err: "f.txt:2:1: want a command name first"},
		{name: "bad quote", in: "x k=\"abc\n----\n", err: "f.txt:1:5: bad quoted value"},
		{name: "no space after quote", in: "x k=\"a\"b\n----\n", err: "f.txt:1:8: want a space after the quoted value"},
		{name: "empty key", in: "x =v\n----\n", err: "f.txt:1:3: = without a key"},
		{name: "key twice", in: "x\n----\n\ny k=1 k=2\n----\n", err: "f.txt:4:7: k= given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := parse("f.txt", []byte(tc.in))
			if !checkErr(t, err, tc.err) {
				return
			}
			var got []Cmd
			for _, c := range cmds {
				got = append(got, Cmd{Pos: c.Pos, Name: c.Name, Args: c.Args, Input: c.Input, Expected: c.Expected})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// checkErr fails t unless err matches want ("" for no error) and reports
// whether the test should go on to check the result.
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatal(err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("got error %v, want %q", err, want)
	}
	return want == ""
}

func TestScriptArgs(t *testing.T) {
	cmds, err := parse("f.txt", []byte("task a.1 running host=h1 orphan\n----\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cmds[0]
	if got := d.Positional(); !reflect.DeepEqual(got, []string{"a.1", "running", "orphan"}) {
		t.Errorf("Positional() = %q", got)
	}
	if v, ok := d.Lookup("host"); v != "h1" || !ok {
		t.Errorf("Lookup(host) = %q, %v", v, ok)
	}
	if v, ok := d.Lookup("ports"); v != "" || ok {
		t.Errorf("Lookup(ports) = %q, %v", v, ok)
	}
	if d.Value("host") != "h1" || d.Value("") != "" {
		t.Errorf("Value: %q %q", d.Value("host"), d.Value(""))
	}
}

// TestScriptRewriteOutputs replaces every output with the command's name in
// upper case (or with out, when given) and checks the rest is kept.
func TestScriptRewriteOutputs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		out      map[string]string
		want     string
		err      string
	}{
		{name: "same", in: "# c\na\n----\nA\n\n\nb x=1\nin\n----\nB", want: "# c\na\n----\nA\n\n\nb x=1\nin\n----\nB"},
		{name: "changed", in: "a\n----\nold\nold\n\nb\n----\n", want: "a\n----\nA\n\nb\n----\nB\n"},
		{name: "no final newline", in: "a\n----\nold", want: "a\n----\nA"},
		{name: "separator ends the file", in: "a\n----", want: "a\n----\nA"},
		{name: "to empty", in: "a\n----\nold\n\nb\n----\nold", out: map[string]string{"a": "", "b": ""}, want: "a\n----\n\nb\n----"},
		{name: "to empty output then blank", in: "a\n----\n\nb\n----\nB\n", out: map[string]string{"a": "x\ny\n"}, want: "a\n----\nx\ny\n\nb\n----\nB\n"},
		{name: "blank line frames", in: "a\n----\nold\n\nb\n----\nold", out: map[string]string{"a": "x\n\ny\n", "b": "\n"},
			want: "a\n----\n----\nx\n\ny\n----\n----\n\nb\n----\n----\n\n----\n----"},
		{name: "---- first frames", in: "a\n----\nold\n", out: map[string]string{"a": "----\nx\n"}, want: "a\n----\n----\n----\nx\n----\n----\n"},
		{name: "framed stays framed", in: "a\n----\n----\nold\n\n----\n----\n", want: "a\n----\n----\nA\n----\n----\n"},
		{name: "cannot frame", in: "a\n----\nold\n", out: map[string]string{"a": "x\n\n----\n----\n"}, err: "f.txt:1: the output of \"a\" holds two ---- lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := parse("f.txt", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cmds {
				o, ok := tc.out[c.Name]
				if !ok {
					o = strings.ToUpper(c.Name) + "\n"
				}
				got = append(got, o)
			}
			out, err := rewriteOutputs([]byte(tc.in), cmds, got)
			if !checkErr(t, err, tc.err) {
				return
			}
			if string(out) != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", out, tc.want)
			}
			// The rewritten file parses back to the new outputs.
			again, err := parse("f.txt", out)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range again {
				if c.Expected != got[i] {
					t.Errorf("after the rewrite %s expects %q, want %q", c.Pos, c.Expected, got[i])
				}
			}
		})
	}
}

// TestScriptRewriteFile runs a file with -rewrite, then without it: the
// second run passes and the file holds the new outputs, with its comments,
// inputs and spacing as they were.
func TestScriptRewriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.txt")
	in := "# a story\n\necho one two\n----\nstale\n\n\n# more\nsum x=1 y=2\n----\n3\n\nspec\nk: v\n----\nstale\n"
	want := "# a story\n\necho one two\n----\none\ntwo\n\n\n# more\nsum x=1 y=2\n----\n3\n\nspec\nk: v\n----\nk: v\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	handler := func(t *testing.T, d *Cmd) string {
		switch d.Name {
		case "echo":
			return strings.Join(d.Positional(), "\n")
		case "sum":
			return "3"
		case "spec":
			return d.Input
		}
		t.Fatalf("%s: unknown command %q", d.Pos, d.Name)
		return ""
	}
	defer func(old bool) { *rewrite = old }(*rewrite)
	*rewrite = true
	RunFile(t, path, handler)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("rewritten file:\n%q\nwant\n%q", got, want)
	}
	*rewrite = false
	RunFile(t, path, handler)
}

func TestScriptWalk(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.txt", "sub/b.txt", ".hidden", "sub/.c.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	Walk(t, dir, func(t *testing.T, path string) {
		rel, _ := filepath.Rel(dir, path)
		got = append(got, t.Name()+" "+rel)
	})
	want := []string{"TestScriptWalk/a a.txt", "TestScriptWalk/sub/b sub/b.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
