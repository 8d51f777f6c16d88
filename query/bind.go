package query

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Kind is the type of a value.
type Kind uint8

const (
	Invalid Kind = iota
	Int          // signed 64-bit (N holds its bits)
	Uint         // unsigned 64-bit
	Str
	Bool // N is 0 or 1
)

func (k Kind) String() string {
	switch k {
	case Int, Uint:
		return "number"
	case Str:
		return "string"
	case Bool:
		return "bool"
	}
	return "invalid"
}

// Value is the value of an expression for one event. S refers to the
// event's own strings: it is valid as long as the event is.
type Value struct {
	Kind Kind
	N    uint64
	S    string
}

// Int64 is the value as a signed number (bools 0 and 1).
func (v Value) Int64() int64 { return int64(v.N) }

// Fields are the names an expression may use besides the probe's
// fetch-arg names (a fetch-arg named like one of them is args.NAME).
var Fields = []string{"pid", "tid", "cpu", "comm", "probe", "time_ns", "retval", "duration_ns"}

// ErrNoField is wrapped by Bind's error when a name is not a field of the
// probe (a fetch-arg of another probe, or retval on an entry probe): a
// filter over several probes matches no event of that probe.
var ErrNoField = errors.New("no such field")

// field is what an opField node reads.
type field uint8

const (
	fPID field = iota
	fTID
	fCPU
	fComm
	fTime
	fDuration
	fArg // Event.Args[arg]
)

// bnode is a node of a bound program.
type bnode struct {
	op    op
	kind  Kind // the node's result type
	a, b  *bnode
	field field
	arg   int
	lit   Value
}

// Program is an expression bound to one probe. Eval and Match allocate
// nothing; a Program is not safe for concurrent use only in that events
// must not change during the call.
type Program struct {
	Expr *Expr
	Spec *uprobe.Spec
	root *bnode
}

// Kind is the type of the program's result.
func (p *Program) Kind() Kind { return p.root.kind }

// Bind binds e to spec's fields. It fails, with an *Error carrying the
// position, for a name that is no field of spec (wrapping ErrNoField)
// and for ill-typed operations ("comm > 3").
func (e *Expr) Bind(spec *uprobe.Spec) (*Program, error) {
	b := &binder{e: e, spec: spec}
	root, err := b.bind(e.root)
	if err != nil {
		return nil, err
	}
	return &Program{Expr: e, Spec: spec, root: root}, nil
}

type binder struct {
	e    *Expr
	spec *uprobe.Spec
}

// missing is an *Error that wraps ErrNoField.
func (b *binder) missing(pos int, format string, args ...any) error {
	return &Error{Text: b.e.Text, Pos: pos, Msg: fmt.Sprintf(format, args...), noField: true}
}

func (b *binder) errf(pos int, format string, args ...any) error {
	return &Error{Text: b.e.Text, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (b *binder) bind(n *node) (*bnode, error) {
	switch n.op {
	case opLit:
		return &bnode{op: opLit, kind: n.lit.Kind, lit: n.lit}, nil
	case opField:
		return b.field(n)
	}
	a, err := b.bind(n.a)
	if err != nil {
		return nil, err
	}
	out := &bnode{op: n.op, a: a}
	if n.b != nil {
		if out.b, err = b.bind(n.b); err != nil {
			return nil, err
		}
	}
	switch n.op {
	case opNot:
		out.kind = Bool
	case opNeg, opCompl:
		if !numeric(a.kind) {
			return nil, b.errf(n.pos, "%s of a %s", opName(n.op), a.kind)
		}
		out.kind = Int
		if n.op == opCompl {
			out.kind = a.kind
		}
	case opAnd, opOr:
		out.kind = Bool
	case opEq, opNe, opLt, opLe, opGt, opGe:
		if numeric(a.kind) != numeric(out.b.kind) || (a.kind == Str) != (out.b.kind == Str) {
			return nil, b.errf(n.pos, "cannot compare a %s with a %s", a.kind, out.b.kind)
		}
		out.kind = Bool
	case opContains, opStartsWith, opEndsWith:
		if a.kind != Str || out.b.kind != Str {
			return nil, b.errf(n.pos, "%s takes two strings, not a %s and a %s", opName(n.op), a.kind, out.b.kind)
		}
		out.kind = Bool
	default: // arithmetic
		if !numeric(a.kind) || !numeric(out.b.kind) {
			return nil, b.errf(n.pos, "arithmetic on a %s and a %s", a.kind, out.b.kind)
		}
		out.kind = Uint
		if a.kind == Int || out.b.kind == Int {
			out.kind = Int
		}
	}
	return out, nil
}

func numeric(k Kind) bool { return k == Int || k == Uint || k == Bool }

func opName(o op) string {
	switch o {
	case opNeg:
		return "negation"
	case opCompl:
		return "complement"
	case opContains:
		return "contains"
	case opStartsWith:
		return "startswith"
	case opEndsWith:
		return "endswith"
	}
	return "operation"
}

// field binds a name: an event field, or a fetch-arg of the spec.
func (b *binder) field(n *node) (*bnode, error) {
	name := n.name
	explicitArg := false
	if len(name) > 5 && name[:5] == "args." {
		name, explicitArg = name[5:], true
	}
	if !explicitArg {
		switch name {
		case "pid":
			return &bnode{op: opField, kind: Int, field: fPID}, nil
		case "tid":
			return &bnode{op: opField, kind: Int, field: fTID}, nil
		case "cpu":
			return &bnode{op: opField, kind: Int, field: fCPU}, nil
		case "comm":
			return &bnode{op: opField, kind: Str, field: fComm}, nil
		case "time_ns":
			return &bnode{op: opField, kind: Uint, field: fTime}, nil
		case "probe":
			// A constant of the bound program: no event field to read.
			return &bnode{op: opLit, kind: Str, lit: Value{Kind: Str, S: b.spec.Probe()}}, nil
		case "duration_ns":
			if b.spec.Kind != uprobe.Return {
				return nil, b.missing(n.pos, "duration_ns is a field of return probes, and %s is an entry probe", b.spec.Probe())
			}
			return &bnode{op: opField, kind: Uint, field: fDuration}, nil
		case "retval":
			if b.spec.Kind != uprobe.Return {
				return nil, b.missing(n.pos, "retval is a field of return probes, and %s is an entry probe", b.spec.Probe())
			}
			for i, a := range b.spec.Args {
				if a.Expr != nil && a.Expr.Op == uprobe.OpRetval {
					return argNode(i, a), nil
				}
			}
			return nil, b.missing(n.pos, "probe %s fetches no $retval (add retval=$retval:s64 to its spec)", b.spec.Probe())
		}
	}
	for i, a := range b.spec.Args {
		if a.Name == name {
			return argNode(i, a), nil
		}
	}
	return nil, b.missing(n.pos, "unknown field %q in probe %s%s", n.name, b.spec.Probe(), b.suggest(name))
}

func argNode(i int, a uprobe.FetchArg) *bnode {
	k := Uint
	switch a.Type.Kind {
	case uprobe.Signed:
		k = Int
	case uprobe.String:
		k = Str
	}
	return &bnode{op: opField, kind: k, field: fArg, arg: i}
}

// suggest is " (did you mean X?)" for the closest field or fetch-arg
// name, or the list of names when none is close.
func (b *binder) suggest(name string) string {
	names := append([]string(nil), Fields...)
	for _, a := range b.spec.Args {
		names = append(names, a.Name)
	}
	best, bestD := "", 3
	for _, c := range names {
		if d := distance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	sort.Strings(names)
	return fmt.Sprintf(" (fields: %v)", names)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
