package linkspec

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The located tree: a plain YAML value with the position of every node, built
// from goccy/go-yaml's AST. Decoding works on this tree rather than on Go
// structs so that every problem (unknown field, wrong type, duplicate key) can
// be reported with its line and column, and all of them at once.

type kind int

const (
	kNull kind = iota
	kScalar
	kMap
	kSeq
)

func (k kind) String() string {
	switch k {
	case kNull:
		return "null"
	case kScalar:
		return "scalar"
	case kMap:
		return "mapping"
	case kSeq:
		return "list"
	}
	return "?"
}

// scalar types, as YAML resolved them.
const (
	tStr   = "string"
	tInt   = "integer"
	tFloat = "number"
	tBool  = "boolean"
)

type node struct {
	kind  kind
	pos   Pos
	typ   string // scalar type (tStr, tInt, …); "" for non-scalars
	text  string // scalar value as text
	num   float64
	raw   string  // a number as written (1e12, 0x10), for messages
	keys  []*node // kMap: key nodes, in file order
	vals  []*node // kMap: values, parallel to keys
	items []*node // kSeq
	size  int     // nodes in this subtree, aliases expanded
}

func (n *node) describe() string {
	switch n.kind {
	case kScalar:
		if n.typ == tStr {
			return fmt.Sprintf("a string (%s)", strconv.Quote(abbrev(n.text)))
		}
		article := "a"
		if n.typ == tInt {
			article = "an"
		}
		return fmt.Sprintf("%s %s (%s)", article, n.typ, abbrev(n.text))
	case kNull:
		return "null"
	}
	return "a " + n.kind.String()
}

func abbrev(s string) string {
	const max = 40
	r := []rune(s)
	if len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

// Limits on the tree, so that a small file cannot make a huge value (YAML
// alias bombs) or a deep one.
const (
	maxTreeNodes = 200_000
	maxTreeDepth = 64
)

// What the builder and the pre-scan say about a spec nested too deep.
var tooDeepMsg = fmt.Sprintf("values are nested more than %d deep", maxTreeDepth)

const tooDeepHint = "write the values out instead of nesting or repeating aliases"

type errTree struct {
	pos Pos
	msg string
}

func (e *errTree) Error() string { return e.msg }

// builder converts goccy AST nodes into the located tree.
type builder struct {
	ctx     context.Context // nil: never stops
	anchors map[string]*node
	total   int
	pairs   int // pairs of keys in each block mapping (see prescanTokens)
}

// checkEvery is how many nodes the builder and the decoder handle between
// looks at their context: often enough to stop within a millisecond or so.
const checkEvery = 1024

func posOf(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return Pos{}
	}
	return Pos{Line: tk.Position.Line, Col: tk.Position.Column}
}

func (b *builder) count(pos Pos, k int) error {
	if b.ctx != nil && b.total/checkEvery != (b.total+k)/checkEvery {
		if err := b.ctx.Err(); err != nil {
			return err
		}
	}
	b.total += k
	if b.total > maxTreeNodes {
		return &errTree{pos, fmt.Sprintf("the document expands to more than %d values (YAML aliases?)", maxTreeNodes)}
	}
	return nil
}

func (b *builder) build(n ast.Node, depth int) (*node, error) {
	if depth > maxTreeDepth {
		return nil, &errTree{posOf(n), tooDeepMsg}
	}
	pos := posOf(n)
	switch v := n.(type) {
	case nil:
		return &node{kind: kNull, size: 1}, nil
	case *ast.DocumentNode:
		if v.Body == nil {
			return &node{kind: kNull, pos: pos, size: 1}, nil
		}
		return b.build(v.Body, depth)
	case *ast.CommentGroupNode, *ast.CommentNode:
		return &node{kind: kNull, pos: pos, size: 1}, nil
	case *ast.NullNode:
		return b.scalarNode(pos, kNull, "", "null", 0)
	case *ast.StringNode:
		if tk := v.GetToken(); tk != nil && tk.Type == token.StringType {
			if typ, f, ok := plainNumber(v.Value); ok {
				return b.numNode(pos, typ, v.Value, v.Value, f)
			}
		}
		return b.scalarNode(pos, kScalar, tStr, v.Value, 0)
	case *ast.LiteralNode:
		s := ""
		if v.Value != nil {
			s = v.Value.Value
		}
		return b.scalarNode(pos, kScalar, tStr, s, 0)
	case *ast.IntegerNode:
		f, text := intValue(v.Value)
		return b.numNode(pos, tInt, text, tokenText(v), f)
	case *ast.FloatNode:
		return b.numNode(pos, tFloat, strconv.FormatFloat(v.Value, 'g', -1, 64), tokenText(v), v.Value)
	case *ast.InfinityNode:
		return b.numNode(pos, tFloat, v.GetToken().Value, tokenText(v), v.Value)
	case *ast.NanNode:
		return b.numNode(pos, tFloat, "nan", tokenText(v), math.NaN())
	case *ast.BoolNode:
		return b.scalarNode(pos, kScalar, tBool, strconv.FormatBool(v.Value), 0)
	case *ast.TagNode:
		return b.tagged(v, depth)
	case *ast.AnchorNode:
		val, err := b.build(v.Value, depth+1)
		if err != nil {
			return nil, err
		}
		if b.anchors == nil {
			b.anchors = map[string]*node{}
		}
		b.anchors[anchorName(v.Name)] = val
		return val, nil
	case *ast.AliasNode:
		name := anchorName(v.Value)
		target, ok := b.anchors[name]
		if !ok {
			return nil, &errTree{pos, fmt.Sprintf("alias *%s refers to no anchor defined before it", name)}
		}
		// The tree shares the anchored subtree; count its full size so an
		// alias bomb is stopped here rather than in the decoder.
		if err := b.count(pos, target.size); err != nil {
			return nil, err
		}
		return target, nil
	case *ast.MappingNode:
		m := &node{kind: kMap, pos: pos, size: 1}
		if err := b.count(pos, 1); err != nil {
			return nil, err
		}
		for i, mv := range v.Values {
			if !v.IsFlowStyle {
				// The pre-scan's rule, held here on what goccy parsed.
				if b.pairs += i; b.pairs > maxKeyPairs {
					return nil, &errTree{posOf(mv.Key), tooManyKeyPairsMsg}
				}
			}
			if err := b.entry(m, mv, depth); err != nil {
				return nil, err
			}
		}
		return m, nil
	case *ast.MappingValueNode:
		m := &node{kind: kMap, pos: posOf(v.Key), size: 1}
		if err := b.count(pos, 1); err != nil {
			return nil, err
		}
		if err := b.entry(m, v, depth); err != nil {
			return nil, err
		}
		return m, nil
	case *ast.SequenceNode:
		s := &node{kind: kSeq, pos: pos, size: 1}
		if err := b.count(pos, 1); err != nil {
			return nil, err
		}
		for _, item := range v.Values {
			c, err := b.build(item, depth+1)
			if err != nil {
				return nil, err
			}
			s.items = append(s.items, c)
			s.size += c.size
		}
		return s, nil
	}
	return nil, &errTree{pos, fmt.Sprintf("unsupported YAML construct (%s)", n.Type())}
}

// numNode is a number scalar; raw is the number as written, for messages.
func (b *builder) numNode(pos Pos, typ, text, raw string, num float64) (*node, error) {
	n, err := b.scalarNode(pos, kScalar, typ, text, num)
	if n != nil {
		n.raw = raw
	}
	return n, err
}

func tokenText(n ast.Node) string {
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

func (b *builder) scalarNode(pos Pos, k kind, typ, text string, num float64) (*node, error) {
	if err := b.count(pos, 1); err != nil {
		return nil, err
	}
	return &node{kind: k, pos: pos, typ: typ, text: text, num: num, size: 1}, nil
}

// entry adds one key: value to m; a merge key (<<: *base) copies the entries
// of the merged mapping that m does not set itself.
func (b *builder) entry(m *node, mv *ast.MappingValueNode, depth int) error {
	val, err := b.build(mv.Value, depth+1)
	if err != nil {
		return err
	}
	if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
		merged := []*node{val}
		if val.kind == kSeq {
			merged = val.items
		}
		for _, src := range merged {
			if src.kind != kMap {
				return &errTree{posOf(mv.Key), "a merge key (<<) must refer to a mapping"}
			}
			for i, k := range src.keys {
				if m.lookup(k.text) == nil {
					m.keys = append(m.keys, k)
					m.vals = append(m.vals, src.vals[i])
					m.size += src.vals[i].size + 1
				}
			}
		}
		return nil
	}
	key, err := b.build(mv.Key, depth+1)
	if err != nil {
		return err
	}
	if key.kind == kScalar && key.typ != tStr {
		// A key is a name: keep it as written (007 stays 007, not 7).
		if tk := mv.Key.GetToken(); tk != nil {
			c := *key
			c.text = tk.Value
			key = &c
		}
	}
	if key.kind != kScalar && key.kind != kNull {
		return &errTree{key.pos, "mapping keys must be plain names, not " + key.describe()}
	}
	m.keys = append(m.keys, key)
	m.vals = append(m.vals, val)
	m.size += key.size + val.size
	return nil
}

func (b *builder) tagged(v *ast.TagNode, depth int) (*node, error) {
	inner, err := b.build(v.Value, depth+1)
	if err != nil {
		return nil, err
	}
	tag := v.Start.Value
	switch tag {
	case "!!str":
		if inner.kind == kScalar || inner.kind == kNull {
			c := *inner
			c.kind, c.typ = kScalar, tStr
			return &c, nil
		}
	case "!!map", "!!seq", "!!int", "!!float", "!!bool", "!!null":
		// The parser has already resolved these; the tag adds nothing.
		return inner, nil
	}
	return nil, &errTree{posOf(v), fmt.Sprintf("YAML tag %s is not supported in link specs", tag)}
}

func anchorName(n ast.Node) string {
	if n == nil {
		return ""
	}
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value
	}
	return n.GetToken().Value
}

func intValue(v any) (float64, string) {
	switch x := v.(type) {
	case int64:
		return float64(x), strconv.FormatInt(x, 10)
	case uint64:
		return float64(x), strconv.FormatUint(x, 10)
	case int:
		return float64(x), strconv.Itoa(x)
	}
	return 0, fmt.Sprint(v)
}

// lookup returns the value of key k in a mapping, or nil.
func (n *node) lookup(k string) *node {
	for i, key := range n.keys {
		if key.text == k {
			return n.vals[i]
		}
	}
	return nil
}
