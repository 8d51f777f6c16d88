package arch

import (
	"bytes"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Decode decodes the instruction at the start of code (64-bit mode) and
// classifies it. code may be longer than the instruction.
//
// Two decoders look at every instruction: x86asm says what it is, and the
// opcode tables of this package (parseLayout) say where its parts are.
// An instruction is accepted only when both agree on its length and, for
// legacy encodings, on whether it has a rip-relative operand, because a
// wrong length or a missed disp32 would make the probed program run
// garbage. The exceptions are the encodings x86asm is known to get wrong
// (see gaps), which are recognized exactly and decoded from the tables.
//
// A refused instruction (int3, hlt, far jmp, ...) is returned with
// Class == ClassRefuse, a Reason and a nil error: its length is known, so
// a linear decode can go on past it. Bytes that cannot be decoded give an
// Inst with Class == ClassRefuse and Reason set, Len == 0, and an error
// wrapping ErrUndecodable.
func Decode(code []byte) (Inst, error) {
	inst, lay, err := decode(code)
	if err == nil {
		inst.dec = &decoded{inst: inst, lay: lay}
		inst.dec.inst.Bytes = bytes.Clone(inst.Bytes)
	}
	return inst, err
}

// redecode decodes inst.Bytes again. Relocate and Emulate work from the
// bytes alone, so that an Inst built or modified by hand cannot make them
// emit code that does not match the instruction.
func redecode(inst *Inst) (Inst, layout, error) {
	if inst == nil || len(inst.Bytes) == 0 {
		return Inst{}, layout{}, fmt.Errorf("%w: no instruction bytes", ErrUndecodable)
	}
	if inst.dec != nil && bytes.Equal(inst.Bytes, inst.dec.inst.Bytes) {
		return inst.dec.inst, inst.dec.lay, nil
	}
	d, lay, err := decode(inst.Bytes)
	if err != nil {
		return d, lay, err
	}
	if d.Len != len(inst.Bytes) {
		return d, lay, fmt.Errorf("%w: Bytes holds %d bytes, but its instruction is %d bytes", ErrUndecodable, len(inst.Bytes), d.Len)
	}
	return d, lay, nil
}

// decode is Decode, also returning the layout (zero on error).
func decode(code []byte) (Inst, layout, error) {
	lay, lerr := parseLayout(code)
	if lerr == nil {
		if g := matchGap(&lay, code); g != nil {
			inst := Inst{
				Inst:  x86asm.Inst{Op: g.op86, Mode: 64, Len: lay.length},
				Bytes: bytes.Clone(code[:lay.length]),
				Len:   lay.length,
			}
			finish(&inst, &lay)
			return inst, lay, nil
		}
	}

	xcode := code
	if lerr == nil {
		if lay.vex != 0 && lay.opmap == map0F && lay.op == 0x77 {
			// Only the exact forms in gaps exist; x86asm would read a
			// ModRM byte for the others, when there is one.
			return undecodable(code, "VEX 0F 77 with VEX.vvvv, pp or W not those of vzeroupper/vzeroall")
		}
		// Let x86asm see only the bytes the tables say are the
		// instruction, so that its answer cannot depend on what
		// follows: if the two disagree on the length, it fails.
		xcode = code[:lay.length]
		if lay.vex != 0 && lay.nPrefix > 0 {
			// x86asm sees VEX/EVEX only in the first byte, but segment
			// and address-size prefixes may precede it (OpenSSL pads
			// its mulx with 67): decode without them, then put them
			// back.
			xcode = xcode[lay.nPrefix:]
		}
	}
	x, xerr := x86Decode(xcode)
	if xerr == nil && x.Op != 0 && lerr == nil {
		x.Len += lay.length - len(xcode)
	}
	switch {
	case lerr != nil && (xerr != nil || x.Op == 0):
		return undecodable(code, "%v", lerr)
	case xerr != nil:
		return undecodable(code, "x86asm: %v (given the %d bytes of the opcode tables' length)", xerr, lay.length)
	case x.Op == 0:
		// x86asm's way of saying "I do not know" or "I need more
		// bytes": Op 0, Len 1, no error.
		return undecodable(code, "x86asm does not know this instruction as %d bytes (the opcode tables' length)", lay.length)
	case lerr != nil:
		return undecodable(code, "x86asm decodes %v but the opcode tables do not: %v", x.Op, lerr)
	case x.Len != lay.length:
		return undecodable(code, "x86asm says %v is %d bytes, the opcode tables say %d", x.Op, x.Len, lay.length)
	}
	if lay.vex == 0 {
		// For legacy encodings x86asm reports rip-relative operands
		// itself: it must agree with the tables.
		xmem, xrip := false, false
		for _, a := range x.Args {
			if m, ok := a.(x86asm.Mem); ok {
				xmem = true
				xrip = xrip || m.Base == x86asm.RIP || m.Base == x86asm.EIP
			}
		}
		if xrip && !lay.ripRel() || xmem && !xrip && lay.ripRel() {
			return undecodable(code, "x86asm and the opcode tables disagree on the rip-relative operand of %v", x.Op)
		}
	}

	inst := Inst{Inst: x, Bytes: bytes.Clone(code[:lay.length]), Len: lay.length}
	finish(&inst, &lay)
	return inst, lay, nil
}

// finish fills in what Decode derives from the layout: the rip-relative
// operand, x86asm's view repaired where it is known to be wrong, and the
// classification.
func finish(inst *Inst, lay *layout) {
	inst.Inst.Len = inst.Len
	if lay.ripRel() {
		inst.RIPRel = true
		inst.DispOff = lay.dispOff
	}
	// x86asm zero-extends disp32 in legacy encodings, drops the RIP base
	// in VEX/EVEX ones and does not see prefixes before VEX/EVEX: give its
	// Mem operand the real values so that its formatting and Args can be
	// trusted.
	for i, a := range inst.Args {
		m, ok := a.(x86asm.Mem)
		if !ok || !lay.memOperand() {
			continue
		}
		if lay.dispLen == 4 {
			m.Disp = lay.disp(inst.Bytes)
		}
		if inst.RIPRel && m.Base == 0 && m.Index == 0 {
			m.Base = x86asm.RIP
			if lay.addrsize {
				m.Base = x86asm.EIP
			}
			inst.PCRel, inst.PCRelOff = 4, lay.dispOff
		}
		if lay.vex != 0 {
			switch lay.seg {
			case 0x64:
				m.Segment = x86asm.FS
			case 0x65:
				m.Segment = x86asm.GS
			}
			if lay.addrsize {
				m.Base, m.Index = reg32(m.Base), reg32(m.Index)
			}
		}
		inst.Args[i] = m
	}
	classify(inst, lay)
}

// reg32 is the 32-bit register of a 64-bit general register.
func reg32(r x86asm.Reg) x86asm.Reg {
	if r >= x86asm.RAX && r <= x86asm.R15 {
		return r - x86asm.RAX + x86asm.EAX
	}
	return r
}

// x86Decode is x86asm.Decode in 64-bit mode, turning a panic on hostile
// input (none is known, but Decode must not panic) into an error.
func x86Decode(code []byte) (inst x86asm.Inst, err error) {
	defer func() {
		if r := recover(); r != nil {
			inst, err = x86asm.Inst{}, fmt.Errorf("x86asm panicked: %v", r)
		}
	}()
	return x86asm.Decode(code, 64)
}

func undecodable(code []byte, format string, args ...any) (Inst, layout, error) {
	if len(code) > MaxInstLen {
		code = code[:MaxInstLen]
	}
	detail := fmt.Sprintf(format, args...)
	return Inst{Class: ClassRefuse, Reason: "undecodable: " + detail}, layout{},
		fmt.Errorf("%w [% x]: %s", ErrUndecodable, code, detail)
}

// gap is an encoding that x86asm v0.32.0 does not decode (it returns Op 0
// and length 1, or an error, or a wrong length) but that compilers emit and
// that runs unchanged out of line. Each is matched exactly on its opcode,
// mandatory prefix and ModRM, and its length comes from the opcode tables.
type gap struct {
	name    string
	vex     bool  // VEX (C4/C5) encoding with vvvv=1111, pp=00
	mand    byte  // mandatory legacy prefix (0, 0x66, 0xF3)
	m       opMap // opcode map
	op      byte
	modrm   int       // exact ModRM byte, or -1
	reg     int       // ModRM.reg, or -1
	regOnly bool      // ModRM must name a register (mod=11)
	vexL    int       // VEX.L, or -1
	op86    x86asm.Op // x86asm's Op for it, 0 when x86asm has none
}

var gaps = []gap{
	// CET: the landing pads at the start of nearly every function of a
	// -fcf-protection build, and the shadow-stack reads of longjmp.
	{name: "endbr64", mand: 0xF3, m: map0F, op: 0x1E, modrm: 0xFA, reg: -1, vexL: -1},
	{name: "endbr32", mand: 0xF3, m: map0F, op: 0x1E, modrm: 0xFB, reg: -1, vexL: -1},
	{name: "rdssp", mand: 0xF3, m: map0F, op: 0x1E, modrm: -1, reg: 1, regOnly: true, vexL: -1},
	{name: "incssp", mand: 0xF3, m: map0F, op: 0xAE, modrm: -1, reg: 5, regOnly: true, vexL: -1}, // x86asm: lfence
	{name: "rdpid", mand: 0xF3, m: map0F, op: 0xC7, modrm: -1, reg: 7, regOnly: true, vexL: -1},
	{name: "rdseed", m: map0F, op: 0xC7, modrm: -1, reg: 7, regOnly: true, vexL: -1},
	{name: "rdseed", mand: 0x66, m: map0F, op: 0xC7, modrm: -1, reg: 7, regOnly: true, vexL: -1},
	{name: "rdpkru", m: map0F, op: 0x01, modrm: 0xEE, reg: -1, vexL: -1},
	{name: "wrpkru", m: map0F, op: 0x01, modrm: 0xEF, reg: -1, vexL: -1},
	{name: "adcx", mand: 0x66, m: map0F38, op: 0xF6, modrm: -1, reg: -1, vexL: -1},
	{name: "adox", mand: 0xF3, m: map0F38, op: 0xF6, modrm: -1, reg: -1, vexL: -1},
	// x86asm reads a ModRM byte that is not there.
	{name: "vzeroupper", vex: true, m: map0F, op: 0x77, modrm: -1, reg: -1, vexL: 0, op86: x86asm.VZEROUPPER},
	{name: "vzeroall", vex: true, m: map0F, op: 0x77, modrm: -1, reg: -1, vexL: 1, op86: x86asm.VZEROALL},
}

// matchGap returns the gap entry lay is an instance of, or nil.
func matchGap(lay *layout, code []byte) *gap {
	for i := range gaps {
		g := &gaps[i]
		if g.m != lay.opmap || g.op != lay.op {
			continue
		}
		if g.vex {
			if lay.vex != 0xC4 && lay.vex != 0xC5 || lay.vexPP != 0 || lay.vvvv != 0 ||
				int(lay.vexL) != g.vexL || lay.nPrefix != 0 {
				continue
			}
			return g
		}
		if lay.vex != 0 || lay.lock || lay.mand != g.mand {
			continue
		}
		// Exactly the mandatory prefix, plus segment and address-size
		// overrides where there is a memory operand for them to apply to.
		ok := true
		for _, p := range code[:lay.nPrefix] {
			switch {
			case p == g.mand:
			case (p == 0x67 || p == 0x26 || p == 0x2E || p == 0x36 || p == 0x3E || p == 0x64 || p == 0x65) && lay.memOperand():
			default:
				ok = false
			}
		}
		if !ok || !lay.hasModRM ||
			g.modrm >= 0 && int(lay.modrm) != g.modrm ||
			g.reg >= 0 && int(lay.reg()) != g.reg ||
			g.regOnly && lay.mod() != 3 {
			continue
		}
		return g
	}
	return nil
}

// String formats the instruction in GNU syntax, naming the encodings that
// x86asm does not know.
func (i Inst) String() string {
	if i.Len == 0 {
		return "(bad)"
	}
	if i.Op == 0 {
		if lay, err := parseLayout(i.Bytes); err == nil {
			if g := matchGap(&lay, i.Bytes); g != nil {
				return g.name
			}
		}
	}
	return x86asm.GNUSyntax(i.Inst, 0, nil)
}

// CheckBoundary decodes code (the bytes of a function starting at its
// first instruction) linearly from offset 0 and reports whether off is the
// start of an instruction. When it is not it returns an error wrapping
// ErrNotBoundary that names the instruction containing off (its offset and
// length); when an instruction before off cannot be decoded it returns an
// error wrapping ErrUndecodable with that instruction's offset.
//
// Refused instructions (int3, hlt, ...) have a known length and do not
// stop the walk; only undecodable bytes do.
func CheckBoundary(code []byte, off int) error {
	if off < 0 || off >= len(code) {
		return fmt.Errorf("%w: offset %#x is outside the %d-byte function", ErrNotBoundary, off, len(code))
	}
	for pc := 0; ; {
		if pc == off {
			return nil
		}
		inst, err := Decode(code[pc:])
		if err != nil {
			return fmt.Errorf("instruction at offset %#x: %w", pc, err)
		}
		if off < pc+inst.Len {
			return fmt.Errorf("%w: offset %#x is inside the %d-byte instruction %q at offset %#x",
				ErrNotBoundary, off, inst.Len, inst.String(), pc)
		}
		pc += inst.Len
	}
}
