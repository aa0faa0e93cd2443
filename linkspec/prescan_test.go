package linkspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// deepShapes builds a spec whose x-deep value nests depth collections, in
// each of the ways the pre-scan must count.
var deepShapes = []struct {
	name string
	file string
	make func(depth int) []byte
}{
	{"flow-seq", "deep.yaml", func(n int) []byte {
		return []byte("version: 1\nx-deep: " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n")
	}},
	{"flow-map", "deep.yaml", func(n int) []byte {
		return []byte("version: 1\nx-deep: " + strings.Repeat("{a: ", n) + "1" + strings.Repeat("}", n) + "\n")
	}},
	{"block-map", "deep.yaml", func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("version: 1\nx-deep:\n")
		for i := 1; i < n; i++ {
			b.WriteString(strings.Repeat(" ", i) + "a:\n")
		}
		b.WriteString(strings.Repeat(" ", n) + "a: 1\n")
		return b.Bytes()
	}},
	{"block-seq", "deep.yaml", func(n int) []byte {
		return []byte("version: 1\nx-deep:\n  " + strings.Repeat("- ", n) + "x\n")
	}},
	{"json-seq", "deep.json", func(n int) []byte {
		return []byte(`{"version": 1, "x-deep": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}")
	}},
}

// adversarial makes the shape as deep as fits in MaxSpecBytes.
func adversarial(make func(int) []byte) []byte {
	// Grow first: a block shape's size is quadratic in its depth.
	lo, hi := 1, 2
	for len(make(hi)) <= MaxSpecBytes {
		lo, hi = hi, hi*2
	}
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(make(mid)) <= MaxSpecBytes {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return make(lo)
}

// treeErr parses and builds data the way parse does, without the pre-scan:
// depth is a builder depth error, invalid any other refusal of the text.
func treeErr(data []byte) (depth, invalid bool) {
	defer func() {
		if recover() != nil {
			invalid = true
		}
	}()
	if looksJSON("", data) && !checkJSON(&reporter{}, data) {
		return false, true
	}
	file, err := parseYAML(data)
	if err != nil {
		return false, true
	}
	for _, doc := range nonEmptyDocs(file) {
		if _, err := (&builder{}).build(doc, 0); err != nil {
			var et *errTree
			return errors.As(err, &et) && et.msg == tooDeepMsg, true
		}
	}
	return false, false
}

// checkPrescan holds the pre-scan to its promise: what it refuses, the
// parser or the builder refuses too.
func checkPrescan(t testing.TB, name string, data []byte) {
	t.Helper()
	if prescanDepth(data) < 0 {
		return
	}
	if _, invalid := treeErr(data); !invalid {
		t.Fatalf("%s: the pre-scan refuses what the parser and builder accept:\n%s", name, data)
	}
}

func TestPrescanShapes(t *testing.T) {
	for _, sh := range deepShapes {
		for depth := 1; depth <= maxTreeDepth+4; depth++ {
			data := sh.make(depth)
			name := fmt.Sprintf("%s/%d", sh.name, depth)
			checkPrescan(t, name, data)
			// These shapes hold nothing else, so the scan is exact on
			// them: it refuses exactly when the builder finds them too deep.
			deep, _ := treeErr(data)
			if refused := prescanDepth(data) >= 0; refused != deep {
				t.Errorf("%s: pre-scan refuses: %v, builder finds it too deep: %v", name, refused, deep)
			}
		}
	}
}

// Constructs the pre-scan must read past without counting.
var prescanTricky = []string{
	"a: 'it''s [[[[' \nb: \"\\\"{{{{\"\n",
	"a: x\n  - - - - [[[[\n  {{{{\n",
	"- a\n  - - - b\n",
	"a: |\n  [[[[\n  - - - -\n    a:\n     b:\nb: >-\n  {{{{\n",
	"a: [b, 'c]]]' , \"d]]\"] # [[[[\nb: c # - - - [\n",
	"[a#b, [c]]\n",
	"a:\n- b:\n  - c:\n    - d\n",
	"? a\n: b\n",
	"- &x\n  - *x\n",
	"--- \n- [a]\n...\n--- {a: b}\n",
	"a: !!str [x\n",
	"\"k[[\": v\n'k{{': [v]\n",
	"a:\n  b: 1\n c: 2\n",
	"a: [\n  [1],\n  {b: [2]}\n]\nc: d\n",
	"- - a\n  - b\n- c\n",
	"a: \"multi\n  line [[[\n  ends\" \nb: 1\n",
	"[\"a\":[1]]\n",
	"{\"a\": [\"[[\", {\"b\": \"}}\"}]}",
	// goccy/go-yaml reads a tag up to a blank, brackets and all.
	"a: !b[[[[[[ x\n", "a: &b[c] x\n", "[!!str a, !t[x] b]\n", "[&a[b], *a]\n",
}

func TestPrescanNeverRefusesAccepted(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*")
	more, _ := filepath.Glob("../examples/*.yaml")
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil || strings.HasSuffix(f, ".out") {
			continue
		}
		checkPrescan(t, f, data)
	}
	for i, s := range prescanTricky {
		checkPrescan(t, fmt.Sprint("tricky ", i), []byte(s))
		// Nested under a key, the same text is one level deeper.
		checkPrescan(t, fmt.Sprint("nested tricky ", i), []byte("x:\n"+indent(s, "  ")))
	}
	// Each tricky construct at the bottom of a stack just shallow enough.
	for _, sh := range deepShapes[2:4] {
		base := string(sh.make(maxTreeDepth - 3))
		for i, s := range prescanTricky {
			checkPrescan(t, fmt.Sprintf("%s+tricky %d", sh.name, i), []byte(base+indent(s, strings.Repeat(" ", maxTreeDepth+2))))
		}
	}
}

func indent(s, pre string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "")
}

// TestPrescanRefusal checks the problem reported: located at the first
// opening too deep, with the builder's words.
func TestPrescanRefusal(t *testing.T) {
	cases := []struct {
		name string
		data string
		want string
	}{
		{"x.yaml", "a: " + strings.Repeat("[", 70), "x.yaml:1:68: values are nested more than 64 deep; write the values out instead of nesting or repeating aliases"},
		{"x.json", "{\"a\":\n" + strings.Repeat("[", 70), "x.json:2:65: values are nested more than 64 deep; write the values out instead of nesting or repeating aliases"},
		{"x.yaml", "x:\n  " + strings.Repeat("- ", 70), "x.yaml:2:129: values are nested more than 64 deep; write the values out instead of nesting or repeating aliases"},
		{"x.yaml", "é: " + strings.Repeat("{a: ", 70), "x.yaml:1:257: values are nested more than 64 deep; write the values out instead of nesting or repeating aliases"},
	}
	for _, c := range cases {
		_, probs := Parse(c.name, []byte(c.data))
		if len(probs) != 1 || probs[0].String() != c.want {
			t.Errorf("%s %.20q…: got %v\nwant %s", c.name, c.data, probs, c.want)
		}
	}
}

// The pre-scan keeps the cost of refusing the deepest spec that fits small;
// memory is deterministic enough to assert (the time is in the benchmark).
func TestPrescanAdversarialMemory(t *testing.T) {
	const limit = 20 << 20
	for _, sh := range deepShapes {
		data := adversarial(sh.make)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, probs := Parse(sh.file, data)
		runtime.ReadMemStats(&after)
		if len(probs) != 1 || probs[0].Msg != tooDeepMsg {
			t.Errorf("%s: got %v", sh.name, probs)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > limit {
			t.Errorf("%s: refusing %d bytes allocated %d bytes; want at most %d", sh.name, len(data), n, limit)
		}
	}
}

func BenchmarkPrescanAdversarial(b *testing.B) {
	pipeline, err := os.ReadFile("../examples/pipeline.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline-pipeline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, probs := Parse("pipeline.yaml", pipeline); probs.Err() != nil {
				b.Fatal(probs)
			}
		}
	})
	for _, sh := range deepShapes {
		data := adversarial(sh.make)
		b.Run(sh.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, probs := Parse(sh.file, data); probs.Err() == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

func FuzzPrescan(f *testing.F) {
	for _, s := range prescanTricky {
		f.Add([]byte(s))
	}
	for _, sh := range deepShapes {
		f.Add(sh.make(maxTreeDepth + 1))
		f.Add(sh.make(3))
	}
	files, _ := filepath.Glob("testdata/validate/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPrescan(t, "input", data)
	})
}

// A generated corpus: random values nested around the limit, written by
// goccy/go-yaml's own encoder in its block and flow styles, indentations
// and quoting, and by encoding/json. On these plain documents the pre-scan
// must be exact: it refuses when, and only when, the builder finds them too
// deep.
func TestPrescanGeneratedCorpus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// The multi-line one last: the encoder writes it as a literal block
	// scalar even inside a flow collection, which its parser refuses, so
	// flow documents go without it.
	all := []any{"a", "[[x", "{y: [", "it's ]", `say "}"`, "- - -", "# not a comment", "k: v", "", 7, 2.5, true, nil, "two\nlines [["}
	scalars := all
	var gen func(depth, target int) any
	gen = func(depth, target int) any {
		if depth == target {
			switch rng.IntN(4) {
			case 0:
				return yaml.MapSlice{}
			case 1:
				return []any{}
			}
			return scalars[rng.IntN(len(scalars))]
		}
		n := 1 + rng.IntN(3)
		chain := rng.IntN(n)
		child := func(i int) any {
			if i == chain {
				return gen(depth+1, target)
			}
			if rng.IntN(3) == 0 {
				return gen(depth+1, min(target, depth+1+rng.IntN(3)))
			}
			return scalars[rng.IntN(len(scalars))]
		}
		if rng.IntN(2) == 0 {
			var m yaml.MapSlice
			for i := range n {
				m = append(m, yaml.MapItem{Key: fmt.Sprintf("k%d", i), Value: child(i)})
			}
			return m
		}
		s := make([]any, n)
		for i := range s {
			s[i] = child(i)
		}
		return s
	}
	checked, tooDeep := 0, 0
	for range 600 {
		target := maxTreeDepth - 4 + rng.IntN(9)
		flow, asJSON := rng.IntN(4) == 0, rng.IntN(5) == 0
		scalars = all
		if flow {
			scalars = all[:len(all)-1]
		}
		v := yaml.MapSlice{{Key: "version", Value: 1}, {Key: "x-deep", Value: gen(1, target)}}
		var data []byte
		var err error
		if asJSON {
			data, err = json.Marshal(toJSON(v))
		} else {
			data, err = yaml.MarshalWithOptions(v,
				yaml.Indent(1+rng.IntN(4)), yaml.IndentSequence(rng.IntN(2) == 0), yaml.Flow(flow),
				yaml.UseSingleQuote(rng.IntN(2) == 0), yaml.UseLiteralStyleIfMultiline(rng.IntN(2) == 0))
			// Text starting with '{' is read as JSON, which flow YAML
			// is not.
			data = append([]byte("# YAML\n"), data...)
		}
		if err != nil {
			t.Fatal(err)
		}
		deep, invalid := treeErr(data)
		if invalid && !deep {
			continue // the encoder wrote what its parser refuses; not this test's business
		}
		checked++
		if deep {
			tooDeep++
		}
		if refused := prescanDepth(data) >= 0; refused != deep {
			t.Fatalf("pre-scan refuses: %v, builder finds it too deep: %v:\n%s", refused, deep, data)
		}
	}
	if checked < 580 || tooDeep < checked/4 || tooDeep > checked*3/4 {
		t.Fatalf("of 600 generated documents %d parsed, %d of them too deep: not the mix this test needs", checked, tooDeep)
	}
}

// toJSON turns MapSlices into maps for encoding/json (keys are unique).
func toJSON(v any) any {
	switch x := v.(type) {
	case yaml.MapSlice:
		m := make(map[string]any, len(x))
		for _, it := range x {
			m[it.Key.(string)] = toJSON(it.Value)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = toJSON(it)
		}
		return out
	}
	return v
}
