// Package query is ptprobe's small expression language over the fields of
// an event: the --filter predicate and the keys and values of the
// aggregations (docs/DESIGN.md §11).
//
//	size > 4096 && comm == "sqlite3"
//	probe == "ptprobe/work" || (retval < 0 && duration_ns >= 1000000)
//	startswith(name, "tmp") && !(pid == 42)
//
// An expression is parsed once (Parse), then bound to each probe's spec
// (Expr.Bind): names become fetch-arg indices and constants, types are
// checked, and the bound Program evaluates an event with no allocation.
//
// query imports uprobe and nothing else of this module.
package query

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is a malformed or ill-typed expression: the expression, the byte
// position of the problem and what is wrong. Caret shows it as the
// kernel's error_log shows a bad probe spec.
type Error struct {
	Text string
	Pos  int
	Msg  string
	// noField: a name that is not a field of the probe (ErrNoField).
	noField bool
}

// Unwrap is ErrNoField for a name that is not a field of the probe.
func (e *Error) Unwrap() error {
	if e.noField {
		return ErrNoField
	}
	return nil
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at position %d of %q", e.Msg, e.Pos, e.Text)
}

// Caret renders the error with a caret under its position:
//
//	error: unknown field "sz" (did you mean size?)
//	  Expression: sz > 10
//	              ^
func (e *Error) Caret() string {
	return fmt.Sprintf("error: %s\n  Expression: %s\n%s^", e.Msg, e.Text, strings.Repeat(" ", len("  Expression: ")+e.Pos))
}

// op is the operation of a node.
type op uint8

const (
	opLit   op = iota // lit
	opField           // a field of the event, see field
	opNot             // !a
	opNeg             // -a
	opCompl           // ~a
	opAnd             // a && b
	opOr              // a || b
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opBitAnd
	opBitOr
	opBitXor
	opShl
	opShr
	opContains   // contains(a, b)
	opStartsWith // startswith(a, b)
	opEndsWith   // endswith(a, b)
)

var binaryOps = []struct {
	text string
	op   op
	prec int
}{
	// Longest first, so that "<=" is not read as "<".
	{"||", opOr, 1}, {"&&", opAnd, 2},
	{"==", opEq, 3}, {"!=", opNe, 3}, {"<=", opLe, 4}, {">=", opGe, 4},
	{"<<", opShl, 6}, {">>", opShr, 6},
	{"<", opLt, 4}, {">", opGt, 4},
	{"|", opBitOr, 5}, {"^", opBitXor, 5}, {"&", opBitAnd, 5},
	{"+", opAdd, 7}, {"-", opSub, 7},
	{"*", opMul, 8}, {"/", opDiv, 8}, {"%", opMod, 8},
}

var funcs = map[string]op{"contains": opContains, "startswith": opStartsWith, "endswith": opEndsWith}

// node is a node of a parsed expression.
type node struct {
	op   op
	pos  int
	a, b *node
	name string // opField: the name as written
	lit  Value  // opLit
	// paren: written in parentheses (a comparison in them may be
	// compared again).
	paren bool
}

// Expr is a parsed expression, not yet bound to a probe.
type Expr struct {
	Text string
	root *node
}

// String is the expression as written.
func (e *Expr) String() string { return e.Text }

// Names are the field names the expression uses, in order of first use.
func (e *Expr) Names() []string {
	var names []string
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		if n.op == opField {
			for _, x := range names {
				if x == n.name {
					return
				}
			}
			names = append(names, n.name)
		}
		walk(n.a)
		walk(n.b)
	}
	walk(e.root)
	return names
}

// Parse parses an expression. Its grammar, loosest first:
//
//	a || b    a && b    == != < <= > >=    | ^ &    << >>    + -    * / %
//	!a  -a  ~a  (a)  NAME  contains(a, b)  startswith(a, b)  endswith(a, b)
//	123  0x7b  0173  "string"  true  false
//
// Comparisons do not chain (a < b < c is an error).
func Parse(text string) (*Expr, error) {
	p := &parser{text: text}
	p.skip()
	if p.pos == len(text) {
		return nil, p.errf(0, "empty expression")
	}
	n, err := p.binary(1)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos < len(text) {
		return nil, p.errf(p.pos, "unexpected %q", text[p.pos:p.pos+1])
	}
	return &Expr{Text: text, root: n}, nil
}

type parser struct {
	text string
	pos  int
}

func (p *parser) errf(pos int, format string, args ...any) *Error {
	return &Error{Text: p.text, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skip() {
	for p.pos < len(p.text) && (p.text[p.pos] == ' ' || p.text[p.pos] == '\t' || p.text[p.pos] == '\n') {
		p.pos++
	}
}

// binary parses operators of precedence prec and above (precedence
// climbing).
func (p *parser) binary(prec int) (*node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		p.skip()
		var found bool
		for _, o := range binaryOps {
			if o.prec < prec || !strings.HasPrefix(p.text[p.pos:], o.text) {
				continue
			}
			// "|" is not the start of "||", nor "&" of "&&": those
			// come first in binaryOps and match when allowed.
			if (o.op == opBitOr || o.op == opBitAnd) && p.pos+1 < len(p.text) && p.text[p.pos+1] == o.text[0] {
				break
			}
			pos := p.pos
			p.pos += len(o.text)
			right, err := p.binary(o.prec + 1)
			if err != nil {
				return nil, err
			}
			if o.prec == 3 || o.prec == 4 {
				if isComparison(left.op) && !left.paren {
					return nil, p.errf(pos, "comparisons do not chain: use && between them")
				}
			}
			left = &node{op: o.op, pos: pos, a: left, b: right}
			found = true
			break
		}
		if !found {
			return left, nil
		}
	}
}

func isComparison(o op) bool { return o >= opEq && o <= opGe }

func (p *parser) unary() (*node, error) {
	p.skip()
	if p.pos == len(p.text) {
		return nil, p.errf(p.pos, "expression ends where a value is expected")
	}
	pos := p.pos
	switch c := p.text[p.pos]; {
	case c == '!' && !strings.HasPrefix(p.text[p.pos:], "!="):
		p.pos++
		a, err := p.unary()
		return &node{op: opNot, pos: pos, a: a}, err
	case c == '-':
		p.pos++
		a, err := p.unary()
		return &node{op: opNeg, pos: pos, a: a}, err
	case c == '~':
		p.pos++
		a, err := p.unary()
		return &node{op: opCompl, pos: pos, a: a}, err
	case c == '(':
		p.pos++
		n, err := p.binary(1)
		if err != nil {
			return nil, err
		}
		p.skip()
		if p.pos == len(p.text) || p.text[p.pos] != ')' {
			return nil, p.errf(pos, "parenthesis is not closed")
		}
		p.pos++
		n.paren = true
		return n, nil
	case c == '"':
		return p.stringLit()
	case c >= '0' && c <= '9':
		end := p.pos
		for end < len(p.text) && isIdent(p.text[end]) {
			end++
		}
		u, err := strconv.ParseUint(p.text[p.pos:end], 0, 64)
		if err != nil {
			return nil, p.errf(pos, "bad number %q", p.text[p.pos:end])
		}
		p.pos = end
		return &node{op: opLit, pos: pos, lit: Value{Kind: Uint, N: u}}, nil
	case isIdentStart(c):
		end := p.pos
		for end < len(p.text) && (isIdent(p.text[end]) || p.text[end] == '.') {
			end++
		}
		name := p.text[p.pos:end]
		p.pos = end
		switch name {
		case "true":
			return &node{op: opLit, pos: pos, lit: Value{Kind: Bool, N: 1}}, nil
		case "false":
			return &node{op: opLit, pos: pos, lit: Value{Kind: Bool}}, nil
		}
		if fo, ok := funcs[name]; ok {
			return p.call(fo, name, pos)
		}
		return &node{op: opField, pos: pos, name: name}, nil
	}
	return nil, p.errf(pos, "unexpected %q", p.text[pos:pos+1])
}

// call parses the arguments of a two-argument function.
func (p *parser) call(fo op, name string, pos int) (*node, error) {
	p.skip()
	if p.pos == len(p.text) || p.text[p.pos] != '(' {
		return nil, p.errf(pos, "%s is a function: %s(a, b)", name, name)
	}
	p.pos++
	a, err := p.binary(1)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos == len(p.text) || p.text[p.pos] != ',' {
		return nil, p.errf(p.pos, "%s takes two arguments", name)
	}
	p.pos++
	b, err := p.binary(1)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos == len(p.text) || p.text[p.pos] != ')' {
		return nil, p.errf(pos, "%s takes two arguments: the parenthesis is not closed", name)
	}
	p.pos++
	return &node{op: fo, pos: pos, a: a, b: b}, nil
}

func (p *parser) stringLit() (*node, error) {
	pos := p.pos
	end := p.pos + 1
	for end < len(p.text) && p.text[end] != '"' {
		if p.text[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(p.text) {
		return nil, p.errf(pos, "string is not closed")
	}
	s, err := strconv.Unquote(p.text[pos : end+1])
	if err != nil {
		return nil, p.errf(pos, "bad string %s", p.text[pos:end+1])
	}
	p.pos = end + 1
	return &node{op: opLit, pos: pos, lit: Value{Kind: Str, S: s}}, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
