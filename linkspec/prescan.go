package linkspec

import "fmt"

// prescanDepth bounds nesting before any parser sees the input: goccy/go-yaml
// allocates quadratically in nesting depth (20,000 nested '[' in 40 KB cost
// ~660 MB) and the builder's depth check only runs on its finished AST.
//
// The scan is one pass with a fixed-size stack, so it is linear in time and
// needs O(maxTreeDepth) memory. It reads just enough YAML to find where
// collections open: flow '[' and '{', block mappings and '- ' entries by
// indentation (compact "- - -" too), skipping quoted scalars, comments,
// block scalars and plain scalars continued on more indented lines.
//
// It must never refuse a spec the parser and builder accept, so where the
// text is ambiguous it counts low: every collection it counts is one the
// builder would build, at a depth at least the one counted (anchors and tags
// only add depth). A fuzz test holds it to that.

// prescanOpen is the most collections that may be open at once: the one at
// depth maxTreeDepth is the deepest the builder accepts.
const prescanOpen = maxTreeDepth + 1

type blockLevel struct {
	col  int
	seq  bool // a sequence ("- " entries), else a mapping
	keys int  // a mapping's keys so far
}

type prescan struct {
	data  []byte
	stack [prescanOpen]blockLevel
	n     int // open block collections
	// pending is the column of the collection whose last entry has no
	// value yet (`key:` or `-` at the end of a line), so a more indented
	// line opens that value; -1 is the document's root, none means none.
	pending int
	// skipCol >= -1 skips lines indented more than it: the content of a
	// block scalar or the continuation of a plain scalar.
	skipCol int
	plain   bool // skipCol was set by a plain scalar
	// merge: the line follows a plain scalar, and goccy may take it as
	// more of it, however indented; the count leaves it out, up to a flow
	// collection, which goccy does not take.
	merge   bool
	invalid bool // the line before was indented under a complete value
	tooDeep int  // offset of the first too-deep opening, or -1
	// tokens counts goccy/go-yaml's tokens from below, and keyPairs the
	// pairs of keys in one block mapping (see prescanTokens); stop is
	// where either passed its limit, or -1.
	tokens, keyPairs int
	stop             int
	stopMsg          string
	stopHint         string
}

const none = -2

// prescanSpec returns the offset of the first collection nested deeper than
// the builder accepts, or of the token or key past a size limit, with the
// problem to report there; off is -1 when there is none.
func prescanSpec(data []byte) (off int, msg, hint string) {
	s := runPrescan(data)
	if s.tooDeep >= 0 {
		return s.tooDeep, tooDeepMsg, tooDeepHint
	}
	return s.stop, s.stopMsg, s.stopHint
}

func runPrescan(data []byte) *prescan {
	s := &prescan{data: data, pending: -1, skipCol: none, tooDeep: -1, stop: -1}
	for i := 0; i < len(data) && s.tooDeep < 0 && s.stop < 0; {
		i = s.line(i)
	}
	return s
}

// prescanTokens bounds the work of goccy/go-yaml on a flat document, which
// the depth limit leaves alone: it spends some 300 bytes per token lexing
// and as much again parsing, whatever the depth, so 1 MiB of "[a,a,a,…" (a
// million tokens) cost 625 MB and seconds before the builder's value limit
// refused it, and a million invalid tokens (tab-indented lines) cost as much
// before its syntax error. Its block mappings cost more: each key copies
// the keys after it, 8 bytes a pair, so 140,000 keys in one mapping cost
// 79 GB.
//
// The scan counts, from below, the tokens goccy's lexer makes (scalars,
// keys, indicators, comments, document markers, tab-indented lines) and
// the pairs of keys in each block mapping, and stops at the one that passes
// its limit. Counting from below keeps it from refusing what the lexer
// would count within the limit; a fuzz test holds it to that.
const (
	maxTokens   = 250_000
	maxKeyPairs = 2_000_000
)

var (
	tooManyTokensMsg   = fmt.Sprintf("the spec has more than %d YAML tokens (values, keys, punctuation, comments)", maxTokens)
	tooManyKeyPairsMsg = fmt.Sprintf("block mappings here hold too many keys (one of 2000 keys is the most; the limit is %d key pairs)", maxKeyPairs)
)

const (
	tooManyTokensHint   = "split the spec; 1000 services with every field and 10000 links take about 160000"
	tooManyKeyPairsHint = "split the mapping, or write it in flow style ({a: 1, b: 2})"
)

// prop counts an anchor, alias or tag from at to end: the lexer makes no
// token of one that ends the input (blanks after it included).
func (s *prescan) prop(at, end int) {
	for k := end; k < len(s.data); k++ {
		if !isBlank(s.data[k]) && !isBreak(s.data[k]) {
			s.token(at)
			return
		}
	}
}

// quoted counts the quoted scalar from at to end if it is closed.
func (s *prescan) quoted(at, end int) {
	if end > at+1 && end <= len(s.data) && s.data[end-1] == s.data[at] {
		s.token(at)
	}
}

// token counts one token starting at offset at.
func (s *prescan) token(at int) {
	if s.merge {
		return
	}
	s.tokens++
	if s.tokens > maxTokens && s.stop < 0 {
		s.stop, s.stopMsg, s.stopHint = at, tooManyTokensMsg, tooManyTokensHint
	}
}

func (s *prescan) topCol() int {
	if s.n == 0 {
		return -1
	}
	return s.stack[s.n-1].col
}

// line scans the line starting at i and returns where the next line starts;
// a quoted scalar or a flow collection may take it over several lines.
func (s *prescan) line(i int) int {
	d := s.data
	s.merge = false
	col := 0
	for i+col < len(d) && d[i+col] == ' ' {
		col++
	}
	j := i + col
	if j >= len(d) || isBreak(d[j]) {
		return lineEnd(d, j)
	}
	if d[j] == '\t' {
		// Tabs and then nothing: a blank line, no token.
		k := j
		for k < len(d) && isBlank(d[k]) {
			k++
		}
		if k >= len(d) || isBreak(d[k]) {
			return lineEnd(d, k)
		}
	}
	if d[j] == '\t' || d[j] == '#' {
		// A comment, or indented with a tab, which YAML forbids: no
		// structure, but a token unless it is inside a block scalar or
		// a continued plain scalar.
		if s.skipCol == none || col <= s.skipCol {
			s.token(j)
		}
		return lineEnd(d, j)
	}
	if s.skipCol != none {
		if col > s.skipCol {
			return lineEnd(d, j)
		}
		s.merge = s.plain
		s.skipCol = none
	}
	if col == 0 && (hasMarker(d[j:], "---") || hasMarker(d[j:], "...")) {
		// A new document: its nodes start at the root again.
		s.token(j)
		s.n, s.pending = 0, -1
		k := skipSpaces(d, j+3)
		if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
			return lineEnd(d, k)
		}
		return s.node(k, k-i)
	}
	if col == 0 && d[j] == '%' {
		s.token(j)
		return lineEnd(d, j) // a directive
	}
	for s.n > 0 && s.stack[s.n-1].col > col {
		s.n--
	}
	if col > s.topCol() && s.pending != s.topCol() {
		// Indented under a value that is already complete: not valid
		// YAML, and nothing the parser would nest. goccy may read a
		// run of them as one plain scalar: the count takes one.
		if !s.invalid {
			s.token(j)
		}
		s.invalid = true
		return lineEnd(d, j)
	}
	s.invalid = false
	return s.node(j, col)
}

// mergedLineEnds is called where a line ends after indicators or node
// properties only ("-", "? ", ": ", a tag or anchor). If goccy may have
// taken the line into the plain scalar before it (merge), it takes the
// lines after it too: they continue that scalar, counted as none.
func (s *prescan) mergedLineEnds() {
	if s.merge {
		s.pending, s.skipCol, s.plain = none, s.topCol(), true
	}
}

// node scans a block node starting at j (column col) on its line.
func (s *prescan) node(j, col int) int {
	d := s.data
	// after "? " or ": ", or on the line after "key:"
	mapValue := s.pending != none && s.n > 0 && s.pending == s.topCol() && !s.stack[s.n-1].seq
	for {
		c := d[j]
		// goccy takes "?" at a line's end for a plain scalar, not a key.
		if (c == '-' || c == ':') && isBlankAt(d, j+1) || c == '?' && j+1 < len(d) && isBlank(d[j+1]) {
			// "- " opens a sequence entry; "? " and ": " an explicit
			// mapping key and its value.
			s.token(j)
			mapValue = c != '-'
			if !s.place(c == '-', col, j) {
				s.mergedLineEnds()
				return lineEnd(d, j)
			}
			k := skipSpaces(d, j+1)
			s.pending = col
			if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
				s.mergedLineEnds()
				return lineEnd(d, k)
			}
			col += k - j
			j = k
			continue
		}
		if c == '&' || c == '!' {
			s.prop(j, skipToken(d, j, false))
			k := skipSpaces(d, skipToken(d, j, false))
			if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
				s.pending = s.topCol()
				s.mergedLineEnds()
				return lineEnd(d, k)
			}
			col += k - j
			j = k
			continue
		}
		break
	}
	switch c := d[j]; {
	case c == '[' || c == '{':
		k, ended := s.flow(j)
		if ended && isKeyColon(d, k) {
			return s.key(j, col, skipSpaces(d, k))
		}
		s.pending = none
		return lineEnd(d, k)
	case c == '"' || c == '\'':
		k := skipQuoted(d, j)
		s.quoted(j, k)
		if !bytesBetween(d, j, k, '\n') && isKeyColon(d, k) {
			return s.key(j, col, skipSpaces(d, k))
		}
		s.pending = none
		return lineEnd(d, k)
	case c == '|' || c == '>':
		s.token(j)
		s.pending, s.skipCol, s.plain = none, s.topCol(), false
		return lineEnd(d, j)
	}
	// A plain scalar: a key when ": " follows on its line.
	for k := j; k < len(d) && !isBreak(d[k]); k++ {
		if d[k] == ':' && isBlankAt(d, k+1) {
			s.token(j)
			return s.key(j, col, k)
		}
		if d[k] == '#' && k > j && isBlank(d[k-1]) {
			break // a comment ends the scalar
		}
	}
	s.token(j)
	// goccy takes the lines after a mapping's plain value as more of it
	// (a sequence's entries are its siblings), and after a line it took.
	s.pending, s.skipCol, s.plain = none, s.topCol(), mapValue || s.merge
	return lineEnd(d, j)
}

// key handles "KEY: VALUE" where KEY starts at j (column col) and the colon
// is at k.
func (s *prescan) key(j, col, k int) int {
	d := s.data
	if !s.place(false, col, j) {
		return lineEnd(d, j)
	}
	s.token(k) // the ':'
	s.pending = none
	k = skipSpaces(d, k+1)
	for k < len(d) && (d[k] == '&' || d[k] == '!') {
		s.prop(k, skipToken(d, k, false))
		k = skipSpaces(d, skipToken(d, k, false))
	}
	if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
		s.pending = s.topCol()
		return lineEnd(d, k)
	}
	if d[k] != '[' && d[k] != '{' && d[k] != '"' && d[k] != '\'' {
		s.token(k) // the value; flow and quoted count their own
	}
	switch d[k] {
	case '[', '{':
		k, _ = s.flow(k)
	case '"', '\'':
		k0 := k
		k = skipQuoted(d, k)
		s.quoted(k0, k)
	case '|', '>', '*':
		s.skipCol, s.plain = s.topCol(), false
		if d[k] == '*' {
			s.skipCol = none
		}
	default:
		s.skipCol, s.plain = s.topCol(), true
	}
	return lineEnd(d, k)
}

// place puts an entry of a sequence or mapping at column col: a sibling of
// the collection open there, or the first entry of a new one nested in the
// pending value. It reports false when neither fits.
func (s *prescan) place(seq bool, col, at int) bool {
	if s.n > 0 && s.stack[s.n-1].col == col {
		top := s.stack[s.n-1]
		switch {
		case top.seq == seq:
			if !seq {
				s.sibling(at)
			}
			return true
		case seq && s.pending != col:
			return false
		case !seq:
			// A key after an indentless sequence: back in the mapping.
			s.n--
			if s.n > 0 && s.stack[s.n-1].col == col && !s.stack[s.n-1].seq {
				s.sibling(at)
				return true
			}
			return false
		}
	} else if s.pending != s.topCol() {
		return false
	}
	if s.n == maxTreeDepth {
		// A block collection always has an entry, one level deeper.
		s.tooDeep = at
		return false
	}
	s.stack[s.n] = blockLevel{col: col, seq: seq, keys: 1}
	s.n++
	return true
}

// sibling counts a further key, at offset at, of the block mapping on top:
// goccy copies each of the keys before it once more.
func (s *prescan) sibling(at int) {
	top := &s.stack[s.n-1]
	s.keyPairs += top.keys
	top.keys++
	if s.keyPairs > maxKeyPairs && s.stop < 0 {
		s.stop, s.stopMsg, s.stopHint = at, tooManyKeyPairsMsg, tooManyKeyPairsHint
	}
}

// flow scans a flow collection starting at '[' or '{' at j. It returns
// where the scan stopped and whether the collection was closed.
func (s *prescan) flow(j int) (int, bool) {
	d := s.data
	const (
		atStart = iota // a node may start here
		inPlain
		afterNode
	)
	depth, state, space := 0, atStart, false
	merged := s.merge
	s.merge = false
	for i := j; i < len(d); {
		c := d[i]
		if isBlank(c) || isBreak(c) {
			space = true
			i++
			continue
		}
		wasSpace := space
		space = false
		switch {
		case c == '#' && (wasSpace || state == atStart && i > j):
			// goccy also starts a comment right after '[', '{' or ','.
			s.token(i)
			i, space = lineEnd(d, i), true
			if state == inPlain {
				state = afterNode
			}
			continue
		case c == '[' || c == '{':
			if !merged || i > j {
				s.token(i)
			}
			depth++
			if s.n+depth > prescanOpen {
				s.tooDeep = i
				return len(d), false
			}
			if s.n+depth == prescanOpen {
				// At the deepest level only an empty collection fits.
				if k := skipFlowSpace(d, i+1); k < len(d) && d[k] != ']' && d[k] != '}' {
					s.tooDeep = k
					return len(d), false
				}
			}
			state = atStart
		case c == ']' || c == '}':
			s.token(i)
			depth--
			state = afterNode
			if depth == 0 {
				return i + 1, true
			}
		case c == ',':
			s.token(i)
			state = atStart
		case c == ':':
			if state != inPlain || i+1 >= len(d) || isBlank(d[i+1]) || isBreak(d[i+1]) || isFlowIndicator(d[i+1]) {
				s.token(i)
				state = atStart
			}
		case (c == '"' || c == '\'') && state != inPlain:
			k := skipQuoted(d, i)
			s.quoted(i, k)
			i = k
			state = afterNode
			continue
		case (c == '&' || c == '!' || c == '*') && state != inPlain:
			s.prop(i, skipToken(d, i, true))
			i = skipToken(d, i, true)
			if c == '*' {
				state = afterNode
			}
			continue
		case c == '?' && state != inPlain && isBlankAt(d, i+1):
			// an explicit key: a node starts after it
			s.token(i)
		case (c == '|' || c == '>') && state != inPlain:
			// goccy starts a block scalar here even in a flow
			// collection, taking the rest of the line into it: one
			// token, the rest of the line uncounted.
			s.token(i)
			i, space = lineEnd(d, i), true
			state = afterNode
			continue
		default:
			if state != inPlain {
				s.token(i)
			}
			state = inPlain
		}
		i++
	}
	return len(d), false
}

// skipQuoted returns the offset just after the quoted scalar at j ('…' with
// ” for a quote, "…" with \ escapes), or len(d) when it is not closed.
func skipQuoted(d []byte, j int) int {
	q := d[j]
	for i := j + 1; i < len(d); i++ {
		switch {
		case q == '"' && d[i] == '\\':
			i++
		case d[i] == q && q == '\'' && i+1 < len(d) && d[i+1] == '\'':
			i++
		case d[i] == q:
			return i + 1
		}
	}
	return len(d)
}

// skipToken skips an anchor, alias or tag the way goccy/go-yaml reads them:
// up to a blank, and for an anchor or alias in a flow collection up to a
// flow indicator too (a tag takes in brackets even there).
func skipToken(d []byte, j int, inFlow bool) int {
	stopAtIndicator := inFlow && d[j] != '!'
	tag := d[j] == '!'
	i := j + 1
	// goccy reads a tab into a tag (only a space or a line break ends it).
	for i < len(d) && !isBreak(d[i]) && d[i] != ' ' && (tag || d[i] != '\t') && !(stopAtIndicator && isFlowIndicator(d[i])) {
		i++
	}
	return i
}

// skipFlowSpace skips blanks, line breaks and comments inside a flow
// collection.
func skipFlowSpace(d []byte, i int) int {
	for i < len(d) {
		switch {
		case isBlank(d[i]) || isBreak(d[i]):
			i++
		case d[i] == '#' && isBlank(d[i-1]) || d[i] == '#' && isBreak(d[i-1]):
			i = lineEnd(d, i)
		default:
			return i
		}
	}
	return i
}

func skipSpaces(d []byte, i int) int {
	for i < len(d) && isBlank(d[i]) {
		i++
	}
	return i
}

// lineEnd returns the start of the line after the one holding i.
func lineEnd(d []byte, i int) int {
	for i < len(d) && d[i] != '\n' {
		i++
	}
	return i + 1
}

// isKeyColon reports whether, after a node ending at k, a ':' makes it a key.
func isKeyColon(d []byte, k int) bool {
	k = skipSpaces(d, k)
	return k < len(d) && d[k] == ':' && isBlankAt(d, k+1)
}

func bytesBetween(d []byte, from, to int, b byte) bool {
	for i := from; i < to && i < len(d); i++ {
		if d[i] == b {
			return true
		}
	}
	return false
}

func hasMarker(d []byte, m string) bool {
	return len(d) >= 3 && string(d[:3]) == m && isBlankAt(d, 3)
}

// isBlankAt reports whether d[i] is a blank, a line break or past the end.
func isBlankAt(d []byte, i int) bool {
	return i >= len(d) || isBlank(d[i]) || isBreak(d[i])
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }
func isBreak(c byte) bool { return c == '\n' || c == '\r' }
func isFlowIndicator(c byte) bool {
	return c == '[' || c == ']' || c == '{' || c == '}' || c == ','
}
