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
	"github.com/goccy/go-yaml/lexer"
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
	// The token limit, counted as goccy/go-yaml's lexer counts.
	if len(lexer.Tokenize(string(data))) > maxTokens {
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
func checkPrescan(t testing.TB, name string, data []byte) { checkPrescanOn(t, name, data, true) }

// checkPrescanOn checks the pre-scan's promise on data: what it refuses,
// the parser or the builder refuses too. With count, also that it counts
// tokens from below, as goccy/go-yaml's lexer counts: held on the
// documents of the tests (shapes, the tricky constructs, the generated
// corpus, the largest spec), not asked of the fuzz target's arbitrary
// bytes, where goccy lexes some constructs its own way (a tab read into a
// tag, "?" at a line's end taken for a scalar, "{0: :::0}", "[0}") and
// fuzzing finds such quirks without end; a count a token or two high on
// such input matters only within a few tokens of the limit.
func checkPrescanOn(t testing.TB, name string, data []byte, count bool) {
	t.Helper()
	if count {
		if got, want := runPrescan(data).tokens, lexTokens(data); got > want && yamlParses(data) {
			t.Fatalf("%s: the pre-scan counts %d tokens where the lexer makes %d:\n%s", name, got, want, data)
		}
	}
	if !prescanRefuses(data) {
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
			if refused := prescanRefuses(data); refused != deep {
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

// largestSpec is the largest spec real systems need: MaxServices services
// with every field set, gates and environment, and MaxLinks links, in block
// style (the most tokens per value).
func largestSpec() []byte {
	var b bytes.Buffer
	b.WriteString("version: 1\nservices:\n")
	for i := range MaxServices {
		fmt.Fprintf(&b, `  svc-%d:
    command: /opt/svc/bin/run
    args: [--rate, 20, --name, s%d, --verbose]
    instances: 2
    cpus: 0.1
    mem: 32
    disk: 0
    kill_grace_period: 10s
    uris: [https://example.com/svc.tgz]
    health: {ready_timeout: 30s, liveness_timeout: 30s}
    backoff: {initial: 1s, factor: 1.5, max: 5m}
    env:
      LOG_LEVEL: info
      REGION: eu-1
      SHARD: "%d"
    gates:
      in: pull
      out: push
      ctl: rep
`, i, i, i)
	}
	b.WriteString("links:\n")
	for i := range MaxLinks {
		fmt.Fprintf(&b, "  - from: svc-%d.out\n    to: svc-%d.in\n", i%MaxServices, (i/MaxServices+i+1)%MaxServices)
	}
	return b.Bytes()
}

// floodShapes are flat specs of MaxSpecBytes: no nesting to refuse, but
// more tokens or block mapping keys than the limits allow.
var floodShapes = []struct {
	name string
	data []byte
}{
	{"flat-flow-seq", fill("version: 1\nx-a: [a", ",a", "]\n")},
	{"flat-block-seq", fill("version: 1\nx-a:\n", "- a\n", "")},
	{"flat-map", fill("version: 1\nx-a:\n", "  k1: v\n", "")},
	{"tab-flood", fill("version: 1\nx-a:\n", "\ta\n", "")},
	{"comment-flood", fill("version: 1\n", "#\n", "")},
	{"flat-flow-map", fill("version: 1\nx-a: {k: v", ",k: v", "}\n")},
}

// fill repeats unit between head and tail up to MaxSpecBytes.
func fill(head, unit, tail string) []byte {
	n := (MaxSpecBytes - len(head) - len(tail)) / len(unit)
	return []byte(head + strings.Repeat(unit, n) + tail)
}

func TestPrescanLargestSpec(t *testing.T) {
	data := largestSpec()
	if _, probs := Parse("largest.yaml", data); probs.Err() != nil {
		t.Fatalf("the largest spec is refused: %v", probs[:1])
	}
	s := runPrescan(data)
	t.Logf("largest spec: %d bytes, %d tokens (the lexer makes %d), %d key pairs", len(data), s.tokens, lexTokens(data), s.keyPairs)
	checkPrescan(t, "largest", data)
	// The limits leave room: half as many tokens again, and a mapping of
	// 1999 keys.
	if s.tokens*3/2 > maxTokens || s.keyPairs*3 > maxKeyPairs {
		t.Errorf("the largest spec needs %d tokens and %d key pairs: too close to the limits", s.tokens, s.keyPairs)
	}
	var env bytes.Buffer
	env.WriteString("version: 1\nservices:\n  a:\n    command: x\n    env:\n")
	for i := range 1999 {
		fmt.Fprintf(&env, "      V%d: x\n", i)
	}
	if _, probs := Parse("env.yaml", env.Bytes()); probs.Err() != nil {
		t.Errorf("1999 environment variables are refused: %v", probs[:1])
	}
}

// TestPrescanFloodMemory: a flat flood is refused, located, before goccy
// sees it, so refusing it costs little.
func TestPrescanFloodMemory(t *testing.T) {
	const limit = 20 << 20
	for _, sh := range floodShapes {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, probs := Parse("flood.yaml", sh.data)
		runtime.ReadMemStats(&after)
		if len(probs) != 1 || probs[0].Pos.Line < 2 || probs[0].Pos.Col < 1 {
			t.Errorf("%s: got %v", sh.name, probs)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > limit {
			t.Errorf("%s: refusing %d bytes allocated %d bytes; want at most %d", sh.name, len(sh.data), n, limit)
		}
	}
}

func TestPrescanFloodRefusal(t *testing.T) {
	cases := []struct{ data, want string }{
		{"a: [" + strings.Repeat("a,", maxTokens), "x.yaml:1:250002: the spec has more than 250000 YAML tokens (values, keys, punctuation, comments); split the spec; 1000 services with every field and 10000 links take about 160000"},
		{"a:\n" + strings.Repeat(" k: v\n", 2001), "x.yaml:2002:2: block mappings here hold too many keys (one of 2000 keys is the most; the limit is 2000000 key pairs); split the mapping, or write it in flow style ({a: 1, b: 2})"},
	}
	for _, c := range cases {
		_, probs := Parse("x.yaml", []byte(c.data))
		if len(probs) != 1 || probs[0].String() != c.want {
			t.Errorf("%.20q…: got %v\nwant %s", c.data, probs, c.want)
		}
	}
}

func BenchmarkPrescanFlood(b *testing.B) {
	largest := largestSpec()
	b.Run("baseline-largest", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(largest)))
		for b.Loop() {
			if _, probs := Parse("largest.yaml", largest); probs.Err() != nil {
				b.Fatal(probs)
			}
		}
	})
	for _, sh := range floodShapes {
		b.Run(sh.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(sh.data)))
			for b.Loop() {
				if _, probs := Parse("flood.yaml", sh.data); probs.Err() == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

func FuzzPrescan(f *testing.F) {
	f.Add([]byte("a: [b, c]\n# c\n\td\n--- !x\n%YAML 1.2\n"))
	f.Add([]byte("a:\n  b: 1\n  c: 2\n  d: 3\n- e\nf: |\n  # x\n\tg\n"))
	f.Add([]byte("a: x\n#c\n\ty\n  z\n"))
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
		checkPrescanOn(t, "input", data, false)
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
		if refused := prescanRefuses(data); refused != deep {
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

func prescanRefuses(data []byte) bool {
	off, _, _ := prescanSpec(data)
	return off >= 0
}

// yamlParses reports whether goccy/go-yaml parses data without an error
// (or a panic).
func yamlParses(data []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_, err := parseYAML(data)
	return err == nil
}

// lexTokens is goccy/go-yaml's token count; the lexer may panic on what the
// parser would refuse, which counts as more tokens than any.
func lexTokens(data []byte) (n int) {
	defer func() {
		if recover() != nil {
			n = 1 << 30
		}
	}()
	return len(lexer.Tokenize(string(data)))
}
