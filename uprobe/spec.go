// Package uprobe is the shared vocabulary of ptprobe's backends: probe
// specs in the kernel's uprobe_events grammar (plus ptprobe's symbol and
// library extensions) and in its kprobe_events grammar, parsed by one
// parser into one Spec and one fetch-arg tree; fetch-arguments and their
// evaluation, the events a hit produces, and the handler types of the Go
// API (docs/DESIGN.md §1).
//
// uprobe imports arch (register names) and nothing else of this module.
package uprobe

import (
	"fmt"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
)

// DefaultGroup is the event group of specs that do not name one.
const DefaultGroup = "ptprobe"

// Kind is the kind of a probe.
type Kind int

const (
	// Entry probes fire when the probed instruction is reached.
	Entry Kind = iota
	// Return probes fire when the function entered at the probed
	// address returns ("r:" or "%return").
	Return
)

func (k Kind) String() string {
	if k == Return {
		return "return"
	}
	return "entry"
}

// Spec is a parsed probe definition. A uprobe spec (Parse) is
//
//	p[:[GRP/]EVENT] PATH:OFFSET [FETCHARGS]
//	r[:[GRP/]EVENT] PATH:OFFSET [FETCHARGS]
//	p[:[GRP/]EVENT] PATH:OFFSET%return [FETCHARGS]
//
// where PATH:OFFSET may also be PATH:SYMBOL[+OFFS] or LIB:SYMBOL[+OFFS];
// the leading "p " may be omitted ("libc:malloc %di"). A kernel probe
// spec (ParseKprobe, Kernel set) is
//
//	p[:[GRP/]EVENT] [MOD:]KSYM[+OFFS]|KADDR [FETCHARGS]
//	r[MAXACTIVE][:[GRP/]EVENT] [MOD:]KSYM[+0] [FETCHARGS]
//	p[:[GRP/]EVENT] [MOD:]KSYM[+0]%return [FETCHARGS]
type Spec struct {
	Text  string // the spec as written
	Kind  Kind
	Group string // DefaultGroup when not given
	Event string // defaulted as the kernel does, see Parse and ParseKprobe

	// Kernel reports a kernel probe (kprobe_events): its target is
	// Symbol+Offset in Module, or Addr, in the running kernel, and Path
	// is "".
	Kernel bool

	// Path is the file as written: a path (contains '/') or a library
	// name ("libc", "libz.so.1": letters, digits and "._-+" only) to be
	// found where the program's dynamic linker looks.
	Path string
	// Module is the MOD of a kernel probe's MOD:KSYM, "" for vmlinux.
	Module string
	// Symbol is the function name, "" when Offset is a file offset (or,
	// in a kernel probe, when Addr is the target).
	Symbol string
	// SrcFile and SrcLine are the source line of a PATH:FILE:LINE
	// target: every statement address the debug information gives the
	// line (resolve expands it, docs/DESIGN.md §10). Symbol and Offset
	// are then unset.
	SrcFile string
	SrcLine int
	// SrcFunc is the FUNC of a PATH:FUNC:+N target: line N of the
	// function, counted from the line it is declared on (SrcLine),
	// in that function only.
	SrcFunc string
	// Offset is the file offset (Symbol == "") or the offset from the
	// symbol's start.
	Offset uint64
	// RefCtr is the kernel's REF_CTR_OFFSET of PATH:OFFSET(REF_CTR_OFFSET):
	// the file offset of a 16-bit counter that the tracer raises by one
	// in each process while the probe is armed (a USDT semaphore), 0 for
	// none.
	RefCtr uint64
	// USDT marks a usdt:PATH|LIB:PROVIDER:NAME spec: Provider and
	// Symbol are the SDT probe's provider and name (globs allowed), and
	// $argN are the probe's own arguments. resolve.Expand turns it into
	// one PATH:OFFSET(REF_CTR_OFFSET) spec per location
	// (docs/DESIGN.md §9).
	USDT     bool
	Provider string
	// Addr is a kernel probe's KADDR, when Symbol is "".
	Addr uint64
	// MaxActive is the r[MAXACTIVE] of a kernel return probe: how many
	// instances of the function the kernel can follow at once; 0 leaves
	// the kernel's default.
	MaxActive int

	Args []FetchArg
}

// Probe is the probe's full name, "GROUP/EVENT".
func (s *Spec) Probe() string { return s.Group + "/" + s.Event }

// IsLibrary reports whether Path names a library to be found by name
// rather than a file path.
func (s *Spec) IsLibrary() bool {
	if s.Kernel {
		return false
	}
	for i := 0; i < len(s.Path); i++ {
		if s.Path[i] == '/' {
			return false
		}
	}
	return true
}

// Target is "PATH:SYMBOL+0xOFF", "PATH:SYMBOL" or "PATH:0xOFF"; for a
// kernel probe "[MOD:]KSYM+0xOFF", "[MOD:]KSYM" or "0xKADDR".
func (s *Spec) Target() string {
	if s.Kernel {
		return s.kprobeTarget()
	}
	switch {
	case s.USDT:
		return "usdt:" + s.Path + ":" + s.Provider + ":" + s.Symbol
	case s.Symbol == "" && s.RefCtr != 0:
		return fmt.Sprintf("%s:0x%x(0x%x)", s.Path, s.Offset, s.RefCtr)
	case s.SrcFile != "":
		return fmt.Sprintf("%s:%s:%d", s.Path, s.SrcFile, s.SrcLine)
	case s.SrcFunc != "":
		return fmt.Sprintf("%s:%s:+%d", s.Path, s.SrcFunc, s.SrcLine)
	case s.Symbol == "":
		return fmt.Sprintf("%s:0x%x", s.Path, s.Offset)
	case strings.ContainsAny(s.Symbol, " \t+%\"") || badSymbolByte(s.Symbol) >= 0:
		sym := `"` + s.Symbol + `"`
		if s.Offset != 0 {
			return fmt.Sprintf("%s:%s+0x%x", s.Path, sym, s.Offset)
		}
		return s.Path + ":" + sym
	case s.Offset != 0:
		return fmt.Sprintf("%s:%s+0x%x", s.Path, s.Symbol, s.Offset)
	}
	return s.Path + ":" + s.Symbol
}

// TypeKind is the representation of a fetched value.
type TypeKind int

const (
	Unsigned TypeKind = iota // u8..u64, printed in decimal
	Signed                   // s8..s64, printed in decimal
	Hex                      // x8..x64, printed as 0x%x
	String                   // string: NUL-terminated, printed quoted
	Char                     // char: one byte, printed as the kernel does, '%c'
)

// Type is a fetch type: kind and size in bytes (1, 2, 4, 8; 0 for String).
type Type struct {
	Kind TypeKind
	Size int
	// User marks a kernel probe's "ustring": a String in user memory
	// (a kernel probe's "string" is in kernel memory). A uprobe reads
	// user memory only, so uprobe specs take "ustring" as String and
	// never set User.
	User bool
	// Sym marks "symstr": a String that is the value (an address) named
	// as the function it is in, "name+0xoff/0xsize" as the kernel's
	// sprint_symbol names kernel addresses ("0x..." outside every
	// function). The kernel has it for kernel probes only (6.18 refuses
	// it on uprobes); the engine names user addresses from the ELF
	// symbols of the file mapped there (docs/DESIGN.md §9).
	Sym bool
	// BitWidth and BitOffset make an Unsigned type of Size bytes (the
	// container) the kernel's bitfield b<BitWidth>@<BitOffset>/<Size*8>:
	// BitWidth bits from bit BitOffset (0: the lowest) of the container.
	// BitWidth 0: not a bitfield. A Signed bitfield (a USDT argument
	// -1@%ah, bits 8..15 of %rax sign-extended) is ptprobe's own: the
	// kernel's bitfields are unsigned, and its backend refuses it.
	BitWidth, BitOffset int
	// Len makes the type an array of Len elements (the kernel's
	// TYPE[Len]), read from consecutive memory; 0: not an array.
	Len int
	// Enum, set by resolve for a C enum of the debug information,
	// names the type's values: a value prints as its enumerator's name,
	// or as its number when none has it. The kernel has no such type:
	// it is given the integer type (String leaves Enum out), and the
	// values both backends fetch print through Enum alike
	// (docs/DESIGN.md §10).
	Enum *Enum
}

// Enum is the enumerators of an enum type.
type Enum struct {
	Name string // the type's name ("enum color")
	Vals []Enumerator
}

// Enumerator is one name of an enum and its value.
type Enumerator struct {
	Name string
	Val  int64
}

// Lookup is the name of the enumerator of value v; false when none has
// it (the first, when several do).
func (e *Enum) Lookup(v int64) (string, bool) {
	for _, x := range e.Vals {
		if x.Val == v {
			return x.Name, true
		}
	}
	return "", false
}

// DefaultType is the kernel's default fetch type on x86-64.
var DefaultType = Type{Kind: Hex, Size: 8}

func (t Type) String() string {
	if t.Len > 0 {
		e := t
		e.Len = 0
		return fmt.Sprintf("%s[%d]", e, t.Len)
	}
	if t.BitWidth > 0 {
		return fmt.Sprintf("b%d@%d/%d", t.BitWidth, t.BitOffset, t.Size*8)
	}
	switch t.Kind {
	case Char:
		return "char"
	case Unsigned:
		return fmt.Sprintf("u%d", t.Size*8)
	case Signed:
		return fmt.Sprintf("s%d", t.Size*8)
	case Hex:
		return fmt.Sprintf("x%d", t.Size*8)
	}
	if t.User {
		return "ustring"
	}
	if t.Sym {
		return "symstr"
	}
	return "string"
}

// Op is the operation of a fetch expression node.
type Op int

const (
	OpReg        Op = iota // %REG: Reg
	OpAddr                 // @ADDR: memory at absolute address Imm
	OpFileOffset           // @+OFFSET: memory at file offset Imm of the probed file
	OpDeref                // +|-OFFS(Inner): memory at Inner's value + Imm
	OpStack                // $stack: the stack pointer
	OpStackN               // $stackN: the Nth word on the stack, N = Imm
	OpRetval               // $retval: the return value (return probes)
	OpComm                 // $comm: the thread's name (a string)
	OpArgN                 // $argN: the Nth integer argument, N = Imm; see Spec.Bind
	// OpEntryReg is register Reg as it was when the function was
	// entered, saved at the entry: a return probe's $argN once bound
	// (Spec.Bind), N = Imm.
	OpEntryReg
	// OpSymbol is @SYM[+|-OFFS] of a kernel probe: memory at the
	// address of the kernel's data symbol Sym plus Imm. It is symbolic:
	// the kernel binds it to an address when it defines the probe, and
	// ptprobe writes it back as it is (docs/DESIGN.md §2). uprobe specs
	// refuse it, as the kernel does.
	OpSymbol
	// OpImm is the constant Imm: the kernel's \IMM fetch-arg, and a USDT
	// argument "N@$imm".
	OpImm
	// OpIndexed is Inner's value (0 when Inner is nil) plus register Reg
	// times Imm: the base and index of a USDT argument's SIB operand
	// ("8@16(%rax,%rdx,8)" is +16(OpIndexed{%ax, %dx, 8})). It has no
	// text in the kernel's grammar: the ptrace backend evaluates it, the
	// kernel backend refuses it (docs/DESIGN.md §9).
	OpIndexed
	// OpImmString is the kernel's \"STR" fetch-arg: the constant string
	// Sym.
	OpImmString
	// OpName is a name of the program's debug information, Sym: a
	// variable path ("p->name", "s.len", "*p", "arr[3]") or "$params".
	// It is symbolic: resolve binds it, at the probed address, to the
	// tree of other nodes it means there, before either backend sees
	// the probe (docs/DESIGN.md §10).
	OpName
)

// Expr is a fetch expression: a node of the tree of a fetch-arg.
type Expr struct {
	Op    Op
	Reg   arch.Reg // OpReg
	Imm   int64    // address, offset or index, see Op
	Inner *Expr    // OpDeref
	Sym   string   // OpSymbol, OpName
	// User marks a kernel probe's "+u" dereference (OpDeref): the
	// memory is the user's, not the kernel's. uprobe specs read user
	// memory only, take "+u" as "+" and never set it.
	User bool
}

// FetchArg is one fetch-argument: [NAME=]FETCHARG[:TYPE].
type FetchArg struct {
	Text string // as written
	Pos  int    // byte position of Text in the spec's text (0 if built by hand)
	Name string // "argN" (1-based position) when not given, as the kernel does
	Type Type   // DefaultType when not given (String for $comm)
	Expr *Expr
	// Typed: the type was written (":u32"), so that a type from the
	// debug information does not replace it.
	Typed bool
	// Len, set by resolve for a Go string (a pointer and a length, with
	// no NUL), makes a String exactly Len's value bytes long (at most
	// MaxStringLen) instead of running to a NUL. The kernel's
	// fetch-args have no such string.
	//
	// With an array type (Type.Len > 0) it makes the fetch-arg a Go
	// slice: Len's value is its length, and the first of its elements,
	// at most Type.Len, are read from the array at Expr's address
	// (Value.Slice). Elements of a String type are Go strings, each a
	// pointer and a length.
	Len *Expr
}

// Error is a malformed spec: the whole spec, the byte position of the
// problem in it and what is wrong. Its Error method is one line; Caret
// gives the kernel error_log form with a caret under the position.
type Error struct {
	Text string
	Pos  int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at position %d of %q", e.Msg, e.Pos, e.Text)
}

// Caret renders the error as the kernel's error_log does:
//
//	error: Unknown type
//	  Command: p /bin/ls:main %di:u9
//	                              ^
func (e *Error) Caret() string {
	pad := make([]byte, 0, len("  Command: ")+e.Pos)
	for i := 0; i < len("  Command: ")+e.Pos; i++ {
		pad = append(pad, ' ')
	}
	return fmt.Sprintf("error: %s\n  Command: %s\n%s^", e.Msg, e.Text, pad)
}
