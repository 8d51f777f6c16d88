package arch

import (
	"encoding/binary"
	"fmt"
)

// layout is the structure of one encoding as the processor parses it: where
// the prefixes, opcode, ModRM, SIB, displacement and immediate are. It is
// computed from the opcode tables alone, without knowing what the
// instruction does, which is exactly what relocation needs (the length and
// the place of a rip-relative disp32) and what x86asm gets wrong for a few
// encodings.
type layout struct {
	length int

	nPrefix  int  // legacy prefix bytes before REX/VEX/opcode
	opsize   bool // 66
	addrsize bool // 67
	lock     bool // F0
	rep      byte // last of F2/F3, 0 if none
	seg      byte // last segment override (26 2E 36 3E 64 65), 0 if none
	mand     byte // mandatory prefix of an SSE opcode: last F2/F3, else 66, else 0

	rex byte // REX byte, 0 if none

	vex    byte // C4, C5 or 62 (EVEX); 0 for a legacy encoding
	vexOff int
	vexR   bool // extension bits, already un-inverted
	vexX   bool
	vexB   bool
	vexW   bool
	vexL   uint8
	vexPP  uint8 // implied prefix: 0 none, 1 66, 2 F3, 3 F2
	vvvv   uint8 // un-inverted

	opmap opMap
	opOff int
	op    byte

	hasModRM bool
	modrmOff int
	modrm    byte
	hasSIB   bool
	sib      byte
	dispOff  int
	dispLen  int
	immOff   int
	immLen   int
}

func (l *layout) mod() byte { return l.modrm >> 6 }
func (l *layout) reg() byte { return l.modrm >> 3 & 7 }
func (l *layout) rm() byte  { return l.modrm & 7 }

// memOperand reports whether ModRM encodes a memory operand.
func (l *layout) memOperand() bool { return l.hasModRM && l.mod() != 3 }

// ripRel reports whether the memory operand is rip-relative: mod=00 rm=101
// without SIB is [rip+disp32] in 64-bit mode, for legacy, VEX and EVEX
// encodings alike.
func (l *layout) ripRel() bool { return l.hasModRM && l.mod() == 0 && l.rm() == 5 }

// disp returns the sign-extended displacement (0 when there is none).
func (l *layout) disp(code []byte) int64 {
	switch l.dispLen {
	case 1:
		return int64(int8(code[l.dispOff]))
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(code[l.dispOff:])))
	}
	return 0
}

// rexW reports whether the operand size is forced to 64 bits.
func (l *layout) rexW() bool {
	if l.vex != 0 {
		return l.vexW
	}
	return l.rex&8 != 0
}

// extB and extX are the high bits of ModRM.rm/SIB.base and SIB.index.
func (l *layout) extB() byte {
	if l.vex != 0 {
		return b2u(l.vexB) << 3
	}
	return (l.rex & 1) << 3
}

func (l *layout) extX() byte {
	if l.vex != 0 {
		return b2u(l.vexX) << 3
	}
	return (l.rex & 2) << 2
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// layoutError describes where in the bytes the parse failed.
type layoutError struct {
	off int
	msg string
}

func (e *layoutError) Error() string { return fmt.Sprintf("byte %d: %s", e.off, e.msg) }

func isLegacyPrefix(b byte) bool {
	switch b {
	case 0xF0, 0xF2, 0xF3, 0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65:
		return true
	}
	return false
}

// parseLayout parses the instruction at the start of code.
func parseLayout(code []byte) (l layout, err error) {
	if len(code) > MaxInstLen {
		code = code[:MaxInstLen]
	}
	pos := 0
	fail := func(off int, format string, args ...any) (layout, error) {
		return layout{}, &layoutError{off, fmt.Sprintf(format, args...)}
	}
	// short fails the parse for want of byte off: past 15 bytes the
	// instruction is too long, otherwise code is truncated.
	short := func(off int) (layout, error) {
		if off >= MaxInstLen {
			return fail(off, "instruction longer than %d bytes", MaxInstLen)
		}
		return fail(off, "truncated instruction")
	}

	for pos < len(code) && isLegacyPrefix(code[pos]) {
		switch b := code[pos]; b {
		case 0xF0:
			l.lock = true
		case 0xF2, 0xF3:
			l.rep = b
		case 0x66:
			l.opsize = true
		case 0x67:
			l.addrsize = true
		default:
			l.seg = b
		}
		pos++
	}
	l.nPrefix = pos
	switch {
	case l.rep != 0:
		l.mand = l.rep
	case l.opsize:
		l.mand = 0x66
	}
	if pos >= len(code) {
		return short(pos)
	}

	switch b := code[pos]; {
	case b >= 0x40 && b <= 0x4F:
		l.rex = b
		pos++
		if pos >= len(code) {
			return short(pos)
		}
		if c := code[pos]; isLegacyPrefix(c) || c >= 0x40 && c <= 0x4F {
			// The processor ignores a REX that is not last; x86asm
			// rejects it. Nobody emits it: refuse rather than guess.
			return fail(pos, "prefix %#02x after REX", c)
		}
	case b == 0xC4 || b == 0xC5 || b == 0x62:
		if l.lock || l.rep != 0 || l.opsize {
			return fail(pos, "VEX/EVEX after a 66, F0, F2 or F3 prefix")
		}
		l.vex, l.vexOff = b, pos
		n := 3 // payload bytes
		switch b {
		case 0xC5:
			n = 1
		case 0xC4:
			n = 2
		}
		if pos+n >= len(code) {
			return short(pos + n + 1)
		}
		p := code[pos+1 : pos+1+n]
		switch b {
		case 0xC5:
			l.vexR = p[0]&0x80 == 0
			l.vvvv = ^p[0] >> 3 & 0xF
			l.vexL = p[0] >> 2 & 1
			l.vexPP = p[0] & 3
			l.opmap = map0F
		case 0xC4:
			l.vexR = p[0]&0x80 == 0
			l.vexX = p[0]&0x40 == 0
			l.vexB = p[0]&0x20 == 0
			switch m := p[0] & 0x1F; m {
			case 1, 2, 3:
				l.opmap = opMap(m)
			default:
				return fail(pos+1, "VEX opcode map %d not supported", m)
			}
			l.vexW = p[1]&0x80 != 0
			l.vvvv = ^p[1] >> 3 & 0xF
			l.vexL = p[1] >> 2 & 1
			l.vexPP = p[1] & 3
		case 0x62:
			l.vexR = p[0]&0x80 == 0
			l.vexX = p[0]&0x40 == 0
			l.vexB = p[0]&0x20 == 0
			// Maps 5 and 6 (AVX512-FP16) and 4 (APX) exist, but x86asm
			// reads only the low two bits and would decode them as map 1
			// to 3: refuse them here.
			switch m := p[0] & 0x0F; m {
			case 1, 2, 3:
				l.opmap = opMap(m)
			default:
				return fail(pos+1, "EVEX opcode map %d not supported", m)
			}
			if p[1]&0x04 == 0 {
				return fail(pos+2, "EVEX payload bit 10 is 0 (APX encoding not supported)")
			}
			l.vexW = p[1]&0x80 != 0
			l.vvvv = ^p[1] >> 3 & 0xF
			l.vexPP = p[1] & 3
			l.vexL = p[2] >> 5 & 3
		}
		pos += 1 + n
	}

	if l.vex == 0 {
		if code[pos] == 0x0F {
			pos++
			if pos >= len(code) {
				return short(pos)
			}
			switch code[pos] {
			case 0x38:
				l.opmap = map0F38
				pos++
			case 0x3A:
				l.opmap = map0F3A
				pos++
			default:
				l.opmap = map0F
			}
			if pos >= len(code) {
				return short(pos)
			}
		} else {
			l.opmap = mapOne
		}
	}
	if pos >= len(code) {
		return short(pos)
	}
	l.opOff, l.op = pos, code[pos]
	pos++
	sh := shape(l.opmap, l.op, l.vex != 0)
	if sh.bad != "" {
		return fail(l.opOff, "%s", sh.bad)
	}
	if l.vex == 0 && l.opmap == map0F && (l.op == 0x78 || l.op == 0x79) && (l.mand == 0x66 || l.mand == 0xF2) {
		return fail(l.opOff, "SSE4a extrq/insertq are not supported")
	}

	if sh.modrm {
		if pos >= len(code) {
			return short(pos)
		}
		l.hasModRM, l.modrmOff, l.modrm = true, pos, code[pos]
		pos++
		if l.vex == 0 && l.opmap == mapOne && l.op == 0x8F && l.reg() != 0 {
			return fail(l.opOff, "XOP encoding not supported")
		}
		if l.mod() != 3 && l.rm() == 4 {
			if pos >= len(code) {
				return short(pos)
			}
			l.hasSIB, l.sib = true, code[pos]
			pos++
		}
		switch {
		case l.mod() == 1:
			l.dispLen = 1
		case l.mod() == 2,
			l.mod() == 0 && l.rm() == 5,
			l.mod() == 0 && l.hasSIB && l.sib&7 == 5:
			l.dispLen = 4
		}
		if l.dispLen > 0 {
			l.dispOff = pos
			pos += l.dispLen
		}
	}

	switch sh.imm {
	case imm8:
		l.immLen = 1
	case imm16:
		l.immLen = 2
	case immZ:
		l.immLen = 4
		if l.opsize && !l.rexW() {
			l.immLen = 2
		}
	case immV:
		switch {
		case l.rexW():
			l.immLen = 8
		case l.opsize:
			l.immLen = 2
		default:
			l.immLen = 4
		}
	case immRel32:
		l.immLen = 4
	case immMoffs:
		l.immLen = 8
		if l.addrsize {
			l.immLen = 4
		}
	case immEnter:
		l.immLen = 3
	case immGrp3:
		if l.reg() < 2 {
			l.immLen = 1
			if l.op == 0xF7 {
				l.immLen = 4
				if l.opsize && !l.rexW() {
					l.immLen = 2
				}
			}
		}
	}
	if l.immLen > 0 {
		l.immOff = pos
		pos += l.immLen
	}
	if pos > MaxInstLen {
		return fail(MaxInstLen, "instruction longer than %d bytes", MaxInstLen)
	}
	if pos > len(code) {
		return short(len(code))
	}
	l.length = pos
	return l, nil
}
