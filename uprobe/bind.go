package uprobe

import (
	"fmt"

	"github.com/ptprobe/ptprobe/arch"
)

// ABI is the calling convention of a probed function: where its integer
// arguments are.
type ABI int

const (
	// SysV is the System V AMD64 ABI of C and most compiled code: the
	// first six integer arguments in RDI, RSI, RDX, RCX, R8 and R9, the
	// others on the stack above the return address.
	SysV ABI = iota
	// GoRegs is Go's register ABI (ABIInternal, Go 1.17 and later): up
	// to nine integer argument words in RAX, RBX, RCX, RDI, RSI, R8, R9,
	// R10 and R11 (a string takes two, a slice three).
	GoRegs
)

func (a ABI) String() string {
	if a == GoRegs {
		return "Go register ABI"
	}
	return "SysV ABI"
}

// ArgRegs are the ABI's integer argument registers, in order.
func (a ABI) ArgRegs() []arch.Reg {
	if a == GoRegs {
		return arch.GoArgRegs[:]
	}
	return arch.ArgRegs[:]
}

// Bind returns the spec's fetch-args for a function of the given ABI,
// with every $argN made concrete:
//   - in an entry probe, the Nth argument register of the ABI; a SysV
//     argument past the sixth is the stack word above the return address
//     ($stack(N-6): what it is at the function's first instruction);
//   - in a return probe, the argument register's value at the entry
//     (OpEntryReg), saved when the function was entered, as the kernel's
//     function-exit events do: $retval is the only value of the return.
//
// Errors are *Error at the $argN's argument: an argument the ABI passes
// on the stack in a return probe (only registers are saved), or a Go
// argument past the ninth register. Args without $argN are shared with
// the spec, not copied.
func (s *Spec) Bind(abi ABI) ([]FetchArg, error) {
	var out []FetchArg
	for i := range s.Args {
		a := &s.Args[i]
		e, err := s.bind(a, a.Expr, abi)
		if err != nil {
			return nil, err
		}
		if e == a.Expr && out == nil {
			continue
		}
		if out == nil {
			out = append(make([]FetchArg, 0, len(s.Args)), s.Args[:i]...)
		}
		b := *a
		b.Expr = e
		out = append(out, b)
	}
	if out == nil {
		return s.Args, nil
	}
	return out, nil
}

// bind returns e with its $argN bound, a copy of the nodes it changes.
func (s *Spec) bind(a *FetchArg, e *Expr, abi ABI) (*Expr, error) {
	if e == nil {
		return nil, nil
	}
	if e.Op == OpName {
		return nil, &Error{Text: s.Text, Pos: a.Pos, Msg: fmt.Sprintf("%s is a name of the debug information: resolve binds it (resolve.Resolver.Expand) before the probe is armed", e.Sym)}
	}
	if e.Op != OpArgN {
		inner, err := s.bind(a, e.Inner, abi)
		if err != nil || inner == e.Inner {
			return e, err
		}
		c := *e
		c.Inner = inner
		return &c, nil
	}
	regs := abi.ArgRegs()
	n := int(e.Imm)
	switch {
	case n >= 1 && n <= len(regs) && s.Kind == Return:
		return &Expr{Op: OpEntryReg, Reg: regs[n-1], Imm: e.Imm}, nil
	case n >= 1 && n <= len(regs):
		return &Expr{Op: OpReg, Reg: regs[n-1]}, nil
	case abi == GoRegs:
		return nil, s.argErr(a, fmt.Sprintf("a Go function takes at most %d argument words in registers: $arg%d is not one", len(regs), n))
	case s.Kind == Return:
		return nil, s.argErr(a, fmt.Sprintf("$arg%d is passed on the stack: a return probe saves only the register arguments ($arg1..$arg%d) at the entry", n, len(regs)))
	}
	return &Expr{Op: OpStackN, Imm: int64(n - len(regs))}, nil
}

// CheckArgNAtEntry returns an *Error at the first $argN of the spec's
// fetch-args when the probe is not at its function's first instruction
// (entry false), where the argument registers may hold anything: the
// kernel refuses $argN there ("$arg* can be used only on function entry
// or exit"), and so does ptprobe, on both backends, with the kernel's
// message, where the probe is (at), and what to fetch instead.
func (s *Spec) CheckArgNAtEntry(entry bool, at string) error {
	if entry {
		return nil
	}
	for i := range s.Args {
		a := &s.Args[i]
		for e := a.Expr; e != nil; e = e.Inner {
			if e.Op == OpArgN {
				return s.argErr(a, fmt.Sprintf("%s: $arg%d at %s, past the function's first instruction, would be what the register holds there, not the argument; fetch the register itself (as %%di) if that is what is meant", errNoFentryArgs, e.Imm, at))
			}
		}
	}
	return nil
}

// argErr is an error at the $arg of fetch-arg a.
func (s *Spec) argErr(a *FetchArg, msg string) *Error {
	pos := a.Pos
	for i := 0; i+4 <= len(a.Text); i++ {
		if a.Text[i:i+4] == "$arg" {
			pos += i
			break
		}
	}
	return &Error{Text: s.Text, Pos: pos, Msg: msg}
}
