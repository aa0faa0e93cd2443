package linkspec

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
	col int
	seq bool // a sequence ("- " entries), else a mapping
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
	tooDeep int // offset of the first too-deep opening, or -1
}

const none = -2

// prescanDepth returns the offset of the first collection nested deeper than
// the builder accepts, or -1 when there is none.
func prescanDepth(data []byte) int {
	s := &prescan{data: data, pending: -1, skipCol: none, tooDeep: -1}
	for i := 0; i < len(data) && s.tooDeep < 0; {
		i = s.line(i)
	}
	return s.tooDeep
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
	col := 0
	for i+col < len(d) && d[i+col] == ' ' {
		col++
	}
	j := i + col
	if j >= len(d) || isBreak(d[j]) || d[j] == '\t' || d[j] == '#' {
		// Blank, a comment, or indented with a tab, which YAML forbids:
		// no structure the scan needs to count.
		return lineEnd(d, j)
	}
	if s.skipCol != none {
		if col > s.skipCol {
			return lineEnd(d, j)
		}
		s.skipCol = none
	}
	if col == 0 && (hasMarker(d[j:], "---") || hasMarker(d[j:], "...")) {
		// A new document: its nodes start at the root again.
		s.n, s.pending = 0, -1
		k := skipSpaces(d, j+3)
		if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
			return lineEnd(d, k)
		}
		return s.node(k, k-i)
	}
	if col == 0 && d[j] == '%' {
		return lineEnd(d, j) // a directive
	}
	for s.n > 0 && s.stack[s.n-1].col > col {
		s.n--
	}
	if col > s.topCol() && s.pending != s.topCol() {
		// Indented under a value that is already complete: not valid
		// YAML, and nothing the parser would nest.
		return lineEnd(d, j)
	}
	return s.node(j, col)
}

// node scans a block node starting at j (column col) on its line.
func (s *prescan) node(j, col int) int {
	d := s.data
	for {
		c := d[j]
		if (c == '-' || c == '?' || c == ':') && isBlankAt(d, j+1) {
			// "- " opens a sequence entry; "? " and ": " an explicit
			// mapping key and its value.
			if !s.place(c == '-', col, j) {
				return lineEnd(d, j)
			}
			k := skipSpaces(d, j+1)
			s.pending = col
			if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
				return lineEnd(d, k)
			}
			col += k - j
			j = k
			continue
		}
		if c == '&' || c == '!' {
			k := skipSpaces(d, skipToken(d, j, false))
			if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
				s.pending = s.topCol()
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
		if !bytesBetween(d, j, k, '\n') && isKeyColon(d, k) {
			return s.key(j, col, skipSpaces(d, k))
		}
		s.pending = none
		return lineEnd(d, k)
	case c == '|' || c == '>':
		s.pending, s.skipCol = none, s.topCol()
		return lineEnd(d, j)
	}
	// A plain scalar: a key when ": " follows on its line.
	for k := j; k < len(d) && !isBreak(d[k]); k++ {
		if d[k] == ':' && isBlankAt(d, k+1) {
			return s.key(j, col, k)
		}
		if d[k] == '#' && k > j && isBlank(d[k-1]) {
			break // a comment ends the scalar
		}
	}
	s.pending, s.skipCol = none, s.topCol()
	return lineEnd(d, j)
}

// key handles "KEY: VALUE" where KEY starts at j (column col) and the colon
// is at k.
func (s *prescan) key(j, col, k int) int {
	d := s.data
	if !s.place(false, col, j) {
		return lineEnd(d, j)
	}
	s.pending = none
	k = skipSpaces(d, k+1)
	for k < len(d) && (d[k] == '&' || d[k] == '!') {
		k = skipSpaces(d, skipToken(d, k, false))
	}
	if k >= len(d) || isBreak(d[k]) || d[k] == '#' {
		s.pending = s.topCol()
		return lineEnd(d, k)
	}
	switch d[k] {
	case '[', '{':
		k, _ = s.flow(k)
	case '"', '\'':
		k = skipQuoted(d, k)
	case '|', '>', '*':
		s.skipCol = s.topCol()
		if d[k] == '*' {
			s.skipCol = none
		}
	default:
		s.skipCol = s.topCol()
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
			return true
		case seq && s.pending != col:
			return false
		case !seq:
			// A key after an indentless sequence: back in the mapping.
			s.n--
			return s.n > 0 && s.stack[s.n-1].col == col && !s.stack[s.n-1].seq
		}
	} else if s.pending != s.topCol() {
		return false
	}
	if s.n == maxTreeDepth {
		// A block collection always has an entry, one level deeper.
		s.tooDeep = at
		return false
	}
	s.stack[s.n] = blockLevel{col: col, seq: seq}
	s.n++
	return true
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
		case c == '#' && wasSpace:
			i, space = lineEnd(d, i), true
			if state == inPlain {
				state = afterNode
			}
			continue
		case c == '[' || c == '{':
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
			depth--
			state = afterNode
			if depth == 0 {
				return i + 1, true
			}
		case c == ',':
			state = atStart
		case c == ':':
			if state != inPlain || i+1 >= len(d) || isBlank(d[i+1]) || isBreak(d[i+1]) || isFlowIndicator(d[i+1]) {
				state = atStart
			}
		case (c == '"' || c == '\'') && state != inPlain:
			i = skipQuoted(d, i)
			state = afterNode
			continue
		case (c == '&' || c == '!' || c == '*') && state != inPlain:
			i = skipToken(d, i, true)
			if c == '*' {
				state = afterNode
			}
			continue
		case c == '?' && state != inPlain && isBlankAt(d, i+1):
			// an explicit key: a node starts after it
		default:
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
	i := j + 1
	for i < len(d) && !isBlank(d[i]) && !isBreak(d[i]) && !(stopAtIndicator && isFlowIndicator(d[i])) {
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
