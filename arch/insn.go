package arch

import (
	"errors"

	"golang.org/x/arch/x86/x86asm"
)

// MaxInstLen is the architectural maximum length of one instruction.
const MaxInstLen = 15

// Class says how the engine executes a displaced instruction.
type Class int

const (
	// ClassRelocate: a copy of the instruction (rip-relative operands rebased,
	// short branches widened, call rel32 rewritten as push + jmp) runs in
	// an out-of-line slot. The tracer does no work beyond setting rip.
	ClassRelocate Class = iota
	// ClassEmulate: the tracer performs the instruction's effect on the
	// registers and memory of the stopped thread (indirect calls, and the
	// indirect control transfers whose target a post handler must see).
	ClassEmulate
	// ClassRefuse: the instruction cannot be probed (int3, int n, in/out, hlt,
	// iret, far transfers, anything the decoder does not understand).
	ClassRefuse
)

func (c Class) String() string {
	switch c {
	case ClassRelocate:
		return "relocate"
	case ClassEmulate:
		return "emulate"
	case ClassRefuse:
		return "refuse"
	}
	return "unknown"
}

// Inst is one decoded instruction with what the probe engine needs to know
// about it.
type Inst struct {
	// Inst is the decoder's view. For encodings the decoder gets wrong
	// (endbr64, rdpid, adcx/adox, vzeroupper, VEX/EVEX rip-relative
	// operands) the fields below are authoritative, not Inst.Len/Op.
	// Decode repairs what it can: Inst.Len is Len, a Mem argument's disp32
	// is sign-extended and a VEX/EVEX rip-relative one has Base RIP. Op is
	// 0 for the encodings x86asm has no name for; String names them.
	x86asm.Inst
	// Bytes is the encoding, exactly Len bytes, owned by the Inst.
	Bytes []byte
	// Len is the encoded length in bytes.
	Len int
	// RIPRel is true when the instruction has a rip-relative memory
	// operand; DispOff is then the offset of its signed disp32 in Bytes.
	RIPRel  bool
	DispOff int
	// Class and, for ClassRefuse, Reason ("int3 cannot be probed", ...).
	Class  Class
	Reason string
	// Flow says how the instruction transfers control. The engine needs it
	// beyond Class: a return probe on a Go function puts a breakpoint on
	// every FlowRet of the function, and a stop-exit trampoline cannot be
	// built for FlowRet and FlowJmpIndirect (see ErrNeedsEmulation).
	Flow Flow

	// dec is what Decode made of Bytes, kept so that Relocate and
	// Emulate (on every emulated hit) need not decode them again; nil
	// for an Inst built by hand.
	dec *decoded
}

// decoded is a pristine copy of a decoded Inst and its layout.
type decoded struct {
	inst Inst
	lay  layout
}

// Flow is the way an instruction transfers control.
type Flow uint8

const (
	// FlowNone: execution continues at the next instruction (this
	// includes syscall, whose return is the next instruction).
	FlowNone Flow = iota
	// FlowJmp: jmp rel8/rel32.
	FlowJmp
	// FlowJcc: jcc rel8/rel32.
	FlowJcc
	// FlowLoop: loop, loope, loopne, jrcxz/jecxz (rel8 only, conditional).
	FlowLoop
	// FlowCall: call rel32.
	FlowCall
	// FlowCallIndirect: call *reg or call *mem (near, 64-bit operand).
	FlowCallIndirect
	// FlowJmpIndirect: jmp *reg or jmp *mem (near, 64-bit operand).
	FlowJmpIndirect
	// FlowRet: near ret or ret imm16.
	FlowRet
	// FlowOther: a transfer this package neither relocates nor emulates
	// (int3, int n, iret, far call/jmp/ret, sysenter, xbegin, ...). Such an
	// instruction is always ClassRefuse. (A refused near branch, e.g. one
	// with a 66 prefix, keeps its own Flow.)
	FlowOther
)

var flowNames = [...]string{
	FlowNone:         "none",
	FlowJmp:          "jmp",
	FlowJcc:          "jcc",
	FlowLoop:         "loop",
	FlowCall:         "call",
	FlowCallIndirect: "call-indirect",
	FlowJmpIndirect:  "jmp-indirect",
	FlowRet:          "ret",
	FlowOther:        "other",
}

func (f Flow) String() string {
	if int(f) < len(flowNames) {
		return flowNames[f]
	}
	return "unknown"
}

// ErrUndecodable is wrapped by Decode when the bytes are not an
// instruction this package understands.
var ErrUndecodable = errors.New("undecodable instruction")

// ErrNotBoundary is wrapped by CheckBoundary when the offset falls inside
// an instruction.
var ErrNotBoundary = errors.New("not an instruction boundary")

// ErrFarData is wrapped by Relocate when a rip-relative operand cannot
// reach its data from the slot with a 32-bit displacement.
var ErrFarData = errors.New("rip-relative operand out of reach of the slot")

// ErrRefused is wrapped by Relocate and Emulate when given an instruction
// that Decode classified ClassRefuse; the error text carries the Reason.
var ErrRefused = errors.New("instruction cannot be probed")

// ErrNeedsEmulation is wrapped by Relocate when the instruction cannot run
// out of line in the requested form, so the tracer must perform it with
// Emulate at the breakpoint stop instead of moving rip to a slot:
//
//   - always for ClassEmulate (indirect calls: run from a slot they would
//     push the slot's address as the return address);
//   - with stopExits, for ret, ret imm16 and jmp *reg/*mem: their target is
//     only known once they have run, and they leave the slot directly, so
//     no int3 can follow them. (Without stopExits they are simply copied,
//     with no exit.)
//
// After Emulate, regs.Rip is the target: a post handler can run there and
// then the thread continues, with no slot and one stop per hit.
var ErrNeedsEmulation = errors.New("instruction must be emulated by the tracer")

// ErrNotEmulated is wrapped by Emulate when given an instruction it does not
// perform (anything that is not a near call, jmp, jcc, loop/jrcxz or ret).
var ErrNotEmulated = errors.New("instruction not emulated")

// MaxTrampolineLen bounds len(Trampoline.Code) for every instruction:
// call rel32 rewritten as lea+movl+movl+jmp is 5+7+8+5 bytes, a 15-byte
// loop/jrcxz with two jmp exits is 15+5+5, and an indirect call of up to
// 15 bytes after the same push (no stop exits) is 5+7+8+15.
const MaxTrampolineLen = 35

// Exit is a point where execution leaves a trampoline and the address
// where the original program continues.
type Exit struct {
	// Offset of the exit's int3 within Trampoline.Code (only for stop
	// exits; for jmp exits it is the offset of the jmp).
	Offset int
	// Resume is the address the thread continues at: the original
	// fall-through (orig+len) or the branch target.
	Resume uint64
}

// Trampoline is the out-of-line code for one probed instruction.
type Trampoline struct {
	// Code is written at the slot address given to Relocate.
	Code []byte
	// Exits lists every exit of Code. With stop exits each is an int3 at
	// Offset; otherwise each is a jmp rel32 to Resume.
	Exits []Exit
}

// Memory reads and writes the memory of a stopped thread.
type Memory interface {
	ReadMemory(addr uint64, p []byte) (int, error)
	WriteMemory(addr uint64, p []byte) (int, error)
}

// WordMemory is a Memory that also reads and writes 8-byte words. Emulate
// uses it when mem has it: a buffer passed through the Memory interface
// escapes to the heap, an allocation per return address pushed or popped,
// where a WordMemory can use a buffer of its own.
type WordMemory interface {
	Memory
	ReadUint64(addr uint64) (uint64, error)
	WriteUint64(addr, v uint64) error
}
