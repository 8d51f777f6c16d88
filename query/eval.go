package query

import (
	"errors"
	"strings"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Eval evaluates the program for ev, an event of the program's probe. ok
// is false when the value is unknown: a fetch-arg that faulted, a
// division by zero.
func (p *Program) Eval(ev *uprobe.Event) (v Value, ok bool) {
	return eval(p.root, ev)
}

// Match reports whether the program's value for ev is true (a number
// not 0, a string not empty). An unknown value does not match.
func (p *Program) Match(ev *uprobe.Event) bool {
	v, ok := eval(p.root, ev)
	return ok && truth(v)
}

func truth(v Value) bool {
	if v.Kind == Str {
		return v.S != ""
	}
	return v.N != 0
}

func boolean(b bool) Value {
	if b {
		return Value{Kind: Bool, N: 1}
	}
	return Value{Kind: Bool}
}

func eval(n *bnode, ev *uprobe.Event) (Value, bool) {
	switch n.op {
	case opLit:
		return n.lit, true
	case opField:
		switch n.field {
		case fPID:
			return Value{Kind: Int, N: uint64(ev.PID)}, true
		case fTID:
			return Value{Kind: Int, N: uint64(ev.TID)}, true
		case fCPU:
			return Value{Kind: Int, N: uint64(ev.CPU)}, true
		case fComm:
			return Value{Kind: Str, S: ev.Comm}, true
		case fTime:
			return Value{Kind: Uint, N: ev.TimeNS}, true
		case fDuration:
			return Value{Kind: Uint, N: ev.DurationNS}, true
		}
		if n.arg >= len(ev.Args) {
			return Value{}, false
		}
		a := &ev.Args[n.arg]
		if a.Fault {
			return Value{}, false
		}
		if n.kind == Str {
			return Value{Kind: Str, S: a.S}, true
		}
		return Value{Kind: n.kind, N: a.U}, true
	case opAnd:
		a, ok := eval(n.a, ev)
		if !ok || !truth(a) {
			return boolean(false), true
		}
		b, ok := eval(n.b, ev)
		return boolean(ok && truth(b)), true
	case opOr:
		a, ok := eval(n.a, ev)
		if ok && truth(a) {
			return boolean(true), true
		}
		b, ok := eval(n.b, ev)
		return boolean(ok && truth(b)), true
	}
	a, ok := eval(n.a, ev)
	if !ok {
		return Value{}, false
	}
	switch n.op {
	case opNot:
		return boolean(!truth(a)), true
	case opNeg:
		return Value{Kind: Int, N: -a.N}, true
	case opCompl:
		return Value{Kind: n.kind, N: ^a.N}, true
	}
	b, ok := eval(n.b, ev)
	if !ok {
		return Value{}, false
	}
	switch n.op {
	case opEq, opNe, opLt, opLe, opGt, opGe:
		c := compare(a, b)
		switch n.op {
		case opEq:
			return boolean(c == 0), true
		case opNe:
			return boolean(c != 0), true
		case opLt:
			return boolean(c < 0), true
		case opLe:
			return boolean(c <= 0), true
		case opGt:
			return boolean(c > 0), true
		}
		return boolean(c >= 0), true
	case opContains:
		return boolean(strings.Contains(a.S, b.S)), true
	case opStartsWith:
		return boolean(strings.HasPrefix(a.S, b.S)), true
	case opEndsWith:
		return boolean(strings.HasSuffix(a.S, b.S)), true
	}
	signed := n.kind == Int
	r := Value{Kind: n.kind}
	switch n.op {
	case opAdd:
		r.N = a.N + b.N
	case opSub:
		r.N = a.N - b.N
	case opMul:
		r.N = a.N * b.N
	case opDiv, opMod:
		if b.N == 0 {
			return Value{}, false
		}
		switch {
		case signed && n.op == opDiv:
			r.N = uint64(int64(a.N) / int64(b.N))
		case signed:
			r.N = uint64(int64(a.N) % int64(b.N))
		case n.op == opDiv:
			r.N = a.N / b.N
		default:
			r.N = a.N % b.N
		}
	case opBitAnd:
		r.N = a.N & b.N
	case opBitOr:
		r.N = a.N | b.N
	case opBitXor:
		r.N = a.N ^ b.N
	case opShl:
		r.N = a.N << (b.N & 63)
	case opShr:
		if signed {
			r.N = uint64(int64(a.N) >> (b.N & 63))
		} else {
			r.N = a.N >> (b.N & 63)
		}
	}
	return r, true
}

// compare orders two values of comparable kinds: strings by bytes,
// numbers by their mathematical value (a negative Int is below every
// Uint).
func compare(a, b Value) int {
	if a.Kind == Str {
		return strings.Compare(a.S, b.S)
	}
	an := a.Kind == Int && int64(a.N) < 0
	bn := b.Kind == Int && int64(b.N) < 0
	switch {
	case an && !bn:
		return -1
	case bn && !an:
		return 1
	case a.N < b.N:
		return -1
	case a.N > b.N:
		return 1
	}
	return 0
}

// Compare orders two values as the comparison operators do.
func Compare(a, b Value) int { return compare(a, b) }

// Set is an expression bound to each of a run's probes.
type Set struct {
	Expr *Expr
	// byProbe are the bound programs by "GROUP/EVENT"; a probe that has
	// not the expression's fields is missing.
	byProbe map[probeKey]*Program
	// The last event's probe and program: events come in runs of one
	// probe, and comparing two strings that share their bytes is a
	// pointer comparison.
	lastGroup, lastName string
	last                *Program
}

type probeKey struct{ group, event string }

// BindAll binds e to every spec. A spec that has not the expression's
// fields is left out (its events never match; Skipped names them); a
// type error, or a name that is a field of no spec, is an error.
func BindAll(e *Expr, specs []*uprobe.Spec) (*Set, error) {
	s := &Set{Expr: e, byProbe: make(map[probeKey]*Program)}
	var firstMissing error
	for _, spec := range specs {
		p, err := e.Bind(spec)
		if errors.Is(err, ErrNoField) {
			if firstMissing == nil {
				firstMissing = err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		s.byProbe[probeKey{spec.Group, spec.Event}] = p
	}
	if len(s.byProbe) == 0 && firstMissing != nil {
		return nil, firstMissing
	}
	return s, nil
}

// Program is the program of ev's probe, nil when the probe has not the
// expression's fields.
func (s *Set) Program(ev *uprobe.Event) *Program {
	if s.last != nil && ev.Group == s.lastGroup && ev.Name == s.lastName {
		return s.last
	}
	p := s.byProbe[probeKey{ev.Group, ev.Name}]
	if p != nil {
		s.lastGroup, s.lastName, s.last = ev.Group, ev.Name, p
	}
	return p
}

// Match reports whether ev matches (false for a probe left out).
func (s *Set) Match(ev *uprobe.Event) bool {
	p := s.Program(ev)
	return p != nil && p.Match(ev)
}

// Skipped are the probes of specs the expression could not be bound to.
func (s *Set) Skipped(specs []*uprobe.Spec) []string {
	var out []string
	for _, spec := range specs {
		if s.byProbe[probeKey{spec.Group, spec.Event}] == nil {
			out = append(out, spec.Probe())
		}
	}
	return out
}
