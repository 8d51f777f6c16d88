package arch

import (
	"encoding/binary"
	"fmt"
)

// gprByNum maps the 4-bit register number of ModRM/SIB (with REX.B/X) to
// a register: the encoding order, not the order of the Reg constants.
var gprByNum = [16]Reg{RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15}

// EffectiveAddress returns the linear address of the memory operand of
// inst, originally at address orig, for the registers regs: segment base
// (fs/gs overrides; the others are 0 in 64-bit mode) + base + index*scale +
// disp, or orig+len+disp for a rip-relative operand, truncated to 32 bits
// before the segment base is added when a 67 prefix selects 32-bit
// addressing. It exists for Emulate (call *mem, jmp *mem) and for a tracer
// that wants to show what an instruction is about to touch.
//
// Only legacy encodings are handled: VEX and EVEX operands may be vector
// indexed (VSIB) or have a scaled disp8, and no transfer is encoded so.
func EffectiveAddress(inst *Inst, orig uint64, regs *Regs) (uint64, error) {
	_, lay, err := redecode(inst)
	if err != nil {
		return 0, fmt.Errorf("effective address of the instruction at %#x: %w", orig, err)
	}
	return effectiveAddress(&lay, inst.Bytes, orig, regs)
}

func effectiveAddress(lay *layout, code []byte, orig uint64, regs *Regs) (uint64, error) {
	if !lay.memOperand() {
		return 0, fmt.Errorf("effective address of the instruction at %#x: it has no ModRM memory operand", orig)
	}
	if lay.vex != 0 {
		return 0, fmt.Errorf("effective address of the instruction at %#x: VEX/EVEX operands are not supported", orig)
	}
	ea := uint64(lay.disp(code))
	switch {
	case lay.ripRel():
		ea += orig + uint64(lay.length)
	case lay.hasSIB:
		base := lay.sib&7 | lay.extB()
		index := lay.sib>>3&7 | lay.extX()
		if !(lay.mod() == 0 && base&7 == 5) {
			ea += gprByNum[base].Get(regs)
		}
		if index != 4 { // rsp cannot be an index: 100 means none (r12 can)
			ea += gprByNum[index].Get(regs) << (lay.sib >> 6)
		}
	default:
		ea += gprByNum[lay.rm()|lay.extB()].Get(regs)
	}
	if lay.addrsize {
		ea &= 0xFFFFFFFF
	}
	switch lay.seg {
	case 0x64:
		ea += regs.Fs_base
	case 0x65:
		ea += regs.Gs_base
	}
	return ea, nil
}

// Emulate performs inst, originally at address orig, on regs and mem:
// afterwards regs.Rip is where the program continues. It handles the
// instructions Decode classifies as ClassEmulate, and also ret, jmp and call
// in all their near forms (so that a caller may choose to emulate them).
//
// Precisely: call rel32, call *reg/*mem, jmp rel8/rel32, jmp *reg/*mem,
// jcc (condition from regs.Eflags), loop/loope/loopne/jrcxz/jecxz, ret and
// ret imm16. Memory operands are 64-bit and addressed as EffectiveAddress
// says; pushes and pops are 8 bytes, little-endian, at rsp. Anything else
// fails with ErrNotEmulated (ErrRefused for ClassRefuse).
//
// Calls do not push on a CET shadow stack (see Relocate).
//
// regs is changed only when Emulate succeeds: a fault reading the target
// or writing the return address leaves the thread as it was, so the tracer
// can deliver the fault at the original instruction.
func Emulate(inst *Inst, orig uint64, regs *Regs, mem Memory) error {
	d, lay, err := redecode(inst)
	if err != nil {
		return fmt.Errorf("emulate the instruction at %#x: %w", orig, err)
	}
	if d.Class == ClassRefuse {
		return fmt.Errorf("emulate %q at %#x: %w: %s", d.String(), orig, ErrRefused, d.Reason)
	}
	r := *regs
	next := orig + uint64(d.Len)
	switch d.Flow {
	case FlowCall:
		if err := push(mem, &r, next); err != nil {
			return fmt.Errorf("emulate %q at %#x: %w", d.String(), orig, err)
		}
		r.Rip = branchTarget(&d, &lay, orig)
	case FlowCallIndirect:
		// The operand is read before the push: call *(%rsp) uses the old rsp.
		target, err := indirectTarget(&lay, d.Bytes, orig, &r, mem)
		if err == nil {
			err = push(mem, &r, next)
		}
		if err != nil {
			return fmt.Errorf("emulate %q at %#x: %w", d.String(), orig, err)
		}
		r.Rip = target
	case FlowJmp:
		r.Rip = branchTarget(&d, &lay, orig)
	case FlowJmpIndirect:
		target, err := indirectTarget(&lay, d.Bytes, orig, &r, mem)
		if err != nil {
			return fmt.Errorf("emulate %q at %#x: %w", d.String(), orig, err)
		}
		r.Rip = target
	case FlowJcc:
		r.Rip = next
		if condTrue(cond(&lay), r.Eflags) {
			r.Rip = branchTarget(&d, &lay, orig)
		}
	case FlowLoop:
		taken, err := loop(&lay, &r)
		if err != nil {
			return fmt.Errorf("emulate %q at %#x: %w", d.String(), orig, err)
		}
		r.Rip = next
		if taken {
			r.Rip = branchTarget(&d, &lay, orig)
		}
	case FlowRet:
		ret, err := readWord(mem, r.Rsp)
		if err != nil {
			return fmt.Errorf("emulate %q at %#x: pop the return address: %w", d.String(), orig, err)
		}
		r.Rip = ret
		r.Rsp += 8
		if lay.op == 0xC2 {
			r.Rsp += uint64(binary.LittleEndian.Uint16(d.Bytes[lay.immOff:]))
		}
	default:
		return fmt.Errorf("emulate %q at %#x: %w", d.String(), orig, ErrNotEmulated)
	}
	*regs = r
	return nil
}

// indirectTarget reads the 64-bit operand of call/jmp *reg/*mem.
func indirectTarget(lay *layout, code []byte, orig uint64, r *Regs, mem Memory) (uint64, error) {
	if lay.mod() == 3 {
		return gprByNum[lay.rm()|lay.extB()].Get(r), nil
	}
	ea, err := effectiveAddress(lay, code, orig, r)
	if err != nil {
		return 0, err
	}
	target, err := readWord(mem, ea)
	if err != nil {
		return 0, fmt.Errorf("read the target: %w", err)
	}
	return target, nil
}

// readWord reads the little-endian 8-byte word at addr.
func readWord(mem Memory, addr uint64) (uint64, error) {
	if w, ok := mem.(WordMemory); ok {
		v, err := w.ReadUint64(addr)
		if err != nil {
			return 0, fmt.Errorf("read 8 bytes at %#x: %w", addr, err)
		}
		return v, nil
	}
	var b [8]byte
	if err := readFull(mem, addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// loop performs the counter part of loop/loope/loopne/jrcxz and says
// whether the branch is taken.
func loop(lay *layout, r *Regs) (bool, error) {
	zf := r.Eflags&flagZF != 0
	if lay.op == 0xE3 { // jrcxz, or jecxz with 67
		if lay.addrsize {
			return uint32(r.Rcx) == 0, nil
		}
		return r.Rcx == 0, nil
	}
	if lay.addrsize {
		// loop with ecx: whether the write to ecx clears the upper half
		// of rcx is not documented; nobody emits it.
		return false, fmt.Errorf("%w: loop with a 32-bit counter (0x67 prefix)", ErrNotEmulated)
	}
	r.Rcx--
	switch lay.op {
	case 0xE0: // loopne
		return r.Rcx != 0 && !zf, nil
	case 0xE1: // loope
		return r.Rcx != 0 && zf, nil
	}
	return r.Rcx != 0, nil
}

// The arithmetic flags of rflags.
const (
	flagCF = 1 << 0
	flagPF = 1 << 2
	flagZF = 1 << 6
	flagSF = 1 << 7
	flagOF = 1 << 11
)

// condTrue evaluates condition code cc (0 O, 1 NO, 2 B, ... F G) on rflags:
// even codes test a condition, odd codes its negation.
func condTrue(cc byte, rflags uint64) bool {
	f := func(m uint64) bool { return rflags&m != 0 }
	var c bool
	switch cc >> 1 {
	case 0: // o
		c = f(flagOF)
	case 1: // b
		c = f(flagCF)
	case 2: // e
		c = f(flagZF)
	case 3: // be
		c = f(flagCF) || f(flagZF)
	case 4: // s
		c = f(flagSF)
	case 5: // p
		c = f(flagPF)
	case 6: // l
		c = f(flagSF) != f(flagOF)
	case 7: // le
		c = f(flagZF) || f(flagSF) != f(flagOF)
	}
	return c != (cc&1 == 1)
}

// push writes v below rsp and moves rsp down, on r.
func push(mem Memory, r *Regs, v uint64) error {
	sp := r.Rsp - 8
	var err error
	if w, ok := mem.(WordMemory); ok {
		err = w.WriteUint64(sp, v)
	} else {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		var n int
		n, err = mem.WriteMemory(sp, b[:])
		if err == nil && n != len(b) {
			err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
		}
	}
	if err != nil {
		return fmt.Errorf("push the return address at %#x: %w", sp, err)
	}
	r.Rsp = sp
	return nil
}

func readFull(mem Memory, addr uint64, p []byte) error {
	n, err := mem.ReadMemory(addr, p)
	if err == nil && n != len(p) {
		err = fmt.Errorf("short read: %d of %d bytes", n, len(p))
	}
	if err != nil {
		return fmt.Errorf("read %d bytes at %#x: %w", len(p), addr, err)
	}
	return nil
}
