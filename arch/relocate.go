package arch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Relocate builds the trampoline that executes inst, originally at address
// orig, from address slot. With stopExits each way out of the instruction
// ends in an int3 (so the tracer can run a post handler and then set rip to
// the exit's Resume); without, each ends in a jmp rel32 back to the original
// code. inst.Class must be ClassRelocate. Relocate fails (ErrFarData) when a
// rebased rip-relative displacement or a branch does not fit in 32 bits.
//
// The code, by Flow:
//
//	FlowNone           the instruction (rip-relative disp32 rebased), exit to orig+len
//	FlowJmp            exit to the target
//	FlowJcc            jcc rel32 to the taken exit; fall-through exit (orig+len); taken exit (target)
//	FlowLoop           the instruction with rel8 over the fall-through exit; fall-through exit; taken exit
//	FlowCall           lea -8(%rsp),%rsp; movl $lo32(orig+len),(%rsp); movl $hi32,4(%rsp); exit to the target
//	FlowCallIndirect   without stopExits only: the push of FlowCall, then the
//	                   instruction as a jmp (ModRM /2 made /4, rip-relative
//	                   disp32 rebased), no exit; refused when its operand
//	                   uses rsp, which the push moves
//	FlowRet            the instruction, no exit (without stopExits)
//	FlowJmpIndirect    the instruction (rip-relative disp32 rebased), no exit (without stopExits)
//
// The relocated call pushes the original return address without touching
// flags or other registers, so the callee returns to the original code and
// a backtrace through it is the same as without the probe. It does not push
// on a CET shadow stack: in a thread with user shadow stacks enabled the
// callee's ret would fault (#CP), as it would after Emulate.
//
// The int3 of a stop exit e traps with rip == slot+e.Offset+1: that is how
// the tracer knows which exit was taken before it sets rip = e.Resume. A
// thread stopped inside the relocated instruction of a FlowNone trampoline
// (a fault; a signal or a restarted system call around a relocated
// syscall) at slot+k is at orig+k of the original code.
//
// len(Code) and the exits' offsets do not depend on orig or slot, so a
// caller may relocate once (say to slot = orig) to size the slot, then
// again at the slot's address.
//
// Relocate works from inst.Bytes, decoded again: a hand-made or modified
// Inst cannot make it emit code for another instruction. Errors: ErrRefused
// for ClassRefuse; ErrNeedsEmulation for ClassEmulate, and for FlowRet and
// FlowJmpIndirect with stopExits; ErrFarData; ErrUndecodable.
func Relocate(inst *Inst, orig, slot uint64, stopExits bool) (Trampoline, error) {
	d, lay, err := redecode(inst)
	if err != nil {
		return Trampoline{}, fmt.Errorf("relocate instruction at %#x: %w", orig, err)
	}
	switch d.Class {
	case ClassRefuse:
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w: %s", d.String(), orig, ErrRefused, d.Reason)
	case ClassEmulate:
		if d.Flow == FlowCallIndirect && !stopExits {
			return relocateIndirectCall(&d, &lay, orig, slot)
		}
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w", d.String(), orig, ErrNeedsEmulation)
	}
	t := tramp{slot: slot, stop: stopExits}
	next := orig + uint64(d.Len)
	switch d.Flow {
	case FlowNone:
		if err := t.copyInst(&d, orig); err != nil {
			return Trampoline{}, err
		}
		t.exit(next)
	case FlowJmp:
		t.exit(branchTarget(&d, &lay, orig))
	case FlowJcc:
		// 0F 8x rel32 jumps over the fall-through exit to the taken one.
		t.code = append(t.code, 0x0F, 0x80|cond(&lay))
		t.code = binary.LittleEndian.AppendUint32(t.code, uint32(t.exitLen()))
		t.exit(next)
		t.exit(branchTarget(&d, &lay, orig))
	case FlowLoop:
		// loop/jrcxz only exist with rel8: keep the instruction and its
		// prefixes (67 selects ecx), aim it at the taken exit.
		t.code = append(t.code, d.Bytes...)
		t.code[len(t.code)-1] = byte(t.exitLen())
		t.exit(next)
		t.exit(branchTarget(&d, &lay, orig))
	case FlowCall:
		t.code = append(t.code, 0x48, 0x8D, 0x64, 0x24, 0xF8) // lea -0x8(%rsp),%rsp
		t.code = append(t.code, 0xC7, 0x04, 0x24)             // movl $imm32,(%rsp)
		t.code = binary.LittleEndian.AppendUint32(t.code, uint32(next))
		t.code = append(t.code, 0xC7, 0x44, 0x24, 0x04) // movl $imm32,0x4(%rsp)
		t.code = binary.LittleEndian.AppendUint32(t.code, uint32(next>>32))
		t.exit(branchTarget(&d, &lay, orig))
	case FlowRet, FlowJmpIndirect:
		if stopExits {
			return Trampoline{}, fmt.Errorf("relocate %q at %#x with stop exits: %w (it leaves the slot with no way to stop after it)",
				d.String(), orig, ErrNeedsEmulation)
		}
		if err := t.copyInst(&d, orig); err != nil {
			return Trampoline{}, err
		}
	default:
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w: unexpected flow %v", d.String(), orig, ErrRefused, d.Flow)
	}
	if t.err != nil {
		return Trampoline{}, fmt.Errorf("relocate %q at %#x to slot %#x: %w", d.String(), orig, slot, t.err)
	}
	return Trampoline{Code: t.code, Exits: t.exits}, nil
}

// relocateIndirectCall is Relocate of a call *reg or call *mem (d, laid
// out as lay) for a trampoline without stop exits (a no-stop patch): the
// original return address pushed as FlowCall does, then the same operand
// as a jmp: FF /2 and FF /4 differ only in ModRM's reg field, so the
// prefixes, SIB, displacement and segment stay as they are. The stop path
// emulates such calls instead (Emulate), where the tracer knows the
// registers.
func relocateIndirectCall(d *Inst, lay *layout, orig, slot uint64) (Trampoline, error) {
	if !lay.hasModRM || lay.opmap != mapOne || lay.op != 0xFF || lay.reg() != 2 {
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w: not an FF /2 call", d.String(), orig, ErrNeedsEmulation)
	}
	// rsp can only be the register operand or a SIB base (an index of
	// 100 is none, or r12 with REX.X); with REX.B they are r12.
	rexB := lay.rex&1 != 0
	usesRSP := !lay.memOperand() && lay.rm() == 4 && !rexB
	if lay.memOperand() && lay.hasSIB && lay.sib&7 == 4 && !rexB {
		usesRSP = true
	}
	if usesRSP {
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w: its operand uses %%rsp, which the pushed return address moves", d.String(), orig, ErrNeedsEmulation)
	}
	asJmp := bytes.Clone(d.Bytes)
	asJmp[lay.modrmOff] = asJmp[lay.modrmOff]&^0x38 | 4<<3
	j, err := Decode(asJmp)
	if err != nil || j.Flow != FlowJmpIndirect || j.Len != d.Len || j.RIPRel != d.RIPRel {
		return Trampoline{}, fmt.Errorf("relocate %q at %#x: %w: its jmp form does not decode alike (%v)", d.String(), orig, ErrNeedsEmulation, err)
	}
	next := orig + uint64(d.Len)
	var push []byte
	push = append(push, 0x48, 0x8D, 0x64, 0x24, 0xF8) // lea -0x8(%rsp),%rsp
	push = append(push, 0xC7, 0x04, 0x24)             // movl $imm32,(%rsp)
	push = binary.LittleEndian.AppendUint32(push, uint32(next))
	push = append(push, 0xC7, 0x44, 0x24, 0x04) // movl $imm32,0x4(%rsp)
	push = binary.LittleEndian.AppendUint32(push, uint32(next>>32))
	// The jmp's rip-relative displacement is rebased for where it runs:
	// after the push.
	t := tramp{slot: slot + uint64(len(push))}
	if err := t.copyInst(&j, orig); err != nil {
		return Trampoline{}, err
	}
	return Trampoline{Code: append(push, t.code...)}, nil
}

// tramp accumulates trampoline code placed at slot.
type tramp struct {
	slot  uint64
	stop  bool
	code  []byte
	exits []Exit
	err   error // first exit that could not reach its target
}

// Every exit is 5 bytes: a jmp rel32, or a stop exit's int3 followed by
// four more (int3s, never run), room for the jmp that ExitJump makes of it
// once no tracer handles the int3: a thread that reaches the exit after a
// detach (back from a signal handler that interrupted it in the
// trampoline) then jumps back by itself instead of taking a SIGTRAP.
func (t *tramp) exitLen() int { return 5 }

// exit appends a way back to the original program at resume.
func (t *tramp) exit(resume uint64) {
	off := len(t.code)
	t.exits = append(t.exits, Exit{Offset: off, Resume: resume})
	if t.stop {
		t.code = append(t.code, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)
		return
	}
	jmp, err := ExitJump(t.slot+uint64(off), resume)
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("%w (slot offset %d)", err, off)
	}
	t.code = append(t.code, jmp...)
}

// ExitJump is the jmp rel32 at address at to resume: an exit of a
// trampoline, and what a stop exit becomes when its int3 is no longer
// handled. It fails (ErrFarData) when resume is out of its reach.
func ExitJump(at, resume uint64) ([]byte, error) {
	// Wrapping arithmetic is the processor's: rip+rel32 is computed mod 2^64.
	rel := int64(resume - (at + 5))
	var err error
	if rel < math.MinInt32 || rel > math.MaxInt32 {
		err = fmt.Errorf("%w: jmp at %#x cannot reach %#x (%+#x bytes away)", ErrFarData, at, resume, rel)
	}
	return binary.LittleEndian.AppendUint32([]byte{0xE9}, uint32(int32(rel))), err
}

// copyInst appends the instruction, its rip-relative disp32 (if any)
// rebased so that it addresses from the slot the same absolute address as
// from orig. The instruction must be the first thing in the trampoline:
// both rip values are then start+len.
func (t *tramp) copyInst(d *Inst, orig uint64) error {
	if len(t.code) != 0 {
		return fmt.Errorf("relocate at %#x: internal error: instruction not at the start of the trampoline", orig)
	}
	t.code = bytes.Clone(d.Bytes)
	if !d.RIPRel {
		return nil
	}
	n := uint64(d.Len)
	disp := int64(int32(binary.LittleEndian.Uint32(d.Bytes[d.DispOff:])))
	abs := orig + n + uint64(disp)
	nd := int64(abs - (t.slot + n))
	if nd < math.MinInt32 || nd > math.MaxInt32 {
		return fmt.Errorf("relocate %q at %#x to slot %#x: %w: it addresses %#x, %+#x bytes from the slot",
			d.String(), orig, t.slot, ErrFarData, abs, nd)
	}
	binary.LittleEndian.PutUint32(t.code[d.DispOff:], uint32(int32(nd)))
	return nil
}

// branchRel returns the signed displacement of a direct branch: its last
// 1 or 4 bytes (an immediate never follows it).
func branchRel(d *Inst, lay *layout) int64 {
	switch lay.immLen {
	case 1:
		return int64(int8(d.Bytes[lay.immOff]))
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(d.Bytes[lay.immOff:])))
	}
	return 0
}

// branchTarget is the target of the direct branch d at address pc.
func branchTarget(d *Inst, lay *layout, pc uint64) uint64 {
	return pc + uint64(d.Len) + uint64(branchRel(d, lay))
}

// cond returns the condition code (the low nibble of the opcode) of a jcc.
func cond(lay *layout) byte { return lay.op & 0xF }

// Target returns the target of a direct branch (FlowJmp, FlowJcc,
// FlowLoop, FlowCall) when the instruction is at address pc.
func (i *Inst) Target(pc uint64) (uint64, bool) {
	d, lay, err := redecode(i)
	if err != nil {
		return 0, false
	}
	switch d.Flow {
	case FlowJmp, FlowJcc, FlowLoop, FlowCall:
		return branchTarget(&d, &lay, pc), true
	}
	return 0, false
}

// RIPAddr returns the absolute address of the rip-relative memory operand
// when the instruction is at address pc (pc+len+disp32, modulo 2^64).
func (i *Inst) RIPAddr(pc uint64) (uint64, bool) {
	if !i.RIPRel || i.DispOff < 0 || i.DispOff+4 > len(i.Bytes) {
		return 0, false
	}
	disp := int64(int32(binary.LittleEndian.Uint32(i.Bytes[i.DispOff:])))
	return pc + uint64(len(i.Bytes)) + uint64(disp), true
}
