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

// Decode decodes the instruction at the start of code (64-bit mode) and
// classifies it. code may be longer than the instruction.
func Decode(code []byte) (Inst, error) {
	panic("arch.Decode: not implemented")
}

// CheckBoundary decodes code (the bytes of a function starting at its
// first instruction) linearly from offset 0 and reports whether off is the
// start of an instruction. When it is not it returns an error wrapping
// ErrNotBoundary that names the instruction containing off (its offset and
// length); when an instruction before off cannot be decoded it returns an
// error wrapping ErrUndecodable with that instruction's offset.
func CheckBoundary(code []byte, off int) error {
	panic("arch.CheckBoundary: not implemented")
}

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

// Relocate builds the trampoline that executes inst, originally at address
// orig, from address slot. With stopExits each way out of the instruction
// ends in an int3 (so the tracer can run a post handler and then set rip to
// the exit's Resume); without, each ends in a jmp rel32 back to the original
// code. inst.Class must be ClassRelocate. Relocate fails (ErrFarData) when a
// rebased rip-relative displacement or a branch does not fit in 32 bits.
func Relocate(inst *Inst, orig, slot uint64, stopExits bool) (Trampoline, error) {
	panic("arch.Relocate: not implemented")
}

// Memory reads and writes the memory of a stopped thread.
type Memory interface {
	ReadMemory(addr uint64, p []byte) (int, error)
	WriteMemory(addr uint64, p []byte) (int, error)
}

// Emulate performs inst, originally at address orig, on regs and mem:
// afterwards regs.Rip is where the program continues. It handles the
// instructions Decode classifies as ClassEmulate, and also ret, jmp and call
// in all their near forms (so that a caller may choose to emulate them).
func Emulate(inst *Inst, orig uint64, regs *Regs, mem Memory) error {
	panic("arch.Emulate: not implemented")
}
