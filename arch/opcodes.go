package arch

// The tables below describe the shape of every opcode in 64-bit mode: does
// a ModRM byte follow, and how large is the immediate. They are what the
// hardware needs to find the end of an instruction, and nothing more. They
// let Decode check x86asm's length on every instruction, find a ModRM byte
// (and so a rip-relative disp32) where x86asm does not report one (VEX and
// EVEX operands), and compute the length of the encodings x86asm rejects
// (endbr64, rdpid, adcx, ...). Sources: Intel SDM vol. 2, appendix A, and
// the kernel's arch/x86/lib/x86-opcode-map.txt.

// opMap is an opcode map: where the opcode byte is looked up.
type opMap uint8

const (
	mapOne  opMap = iota // one-byte opcodes
	map0F                // 0F xx (VEX/EVEX map 1)
	map0F38              // 0F 38 xx (VEX/EVEX map 2)
	map0F3A              // 0F 3A xx (VEX/EVEX map 3)
)

// immKind is the size rule of an opcode's immediate.
type immKind uint8

const (
	immNone  immKind = iota
	imm8             // ib, rel8
	imm16            // iw
	immZ             // iz: 2 bytes with 66 and no REX.W, else 4
	immV             // iv (mov r, imm): 8 with REX.W, 2 with 66, else 4
	immRel32         // near branch rel32: 4 bytes whatever the prefixes (64-bit mode ignores 66 here, as x86asm does; such branches are refused anyway)
	immMoffs         // mov moffs: 8 bytes, 4 with 67
	immEnter         // enter iw, ib
	immGrp3          // F6/F7: ib/iz only for /0 and /1 (test)
)

// opShape is what the tables say about one opcode.
type opShape struct {
	modrm bool
	imm   immKind
	// bad, when not empty, says why the opcode is not accepted: invalid in
	// 64-bit mode, or a prefix/escape byte that the parser consumes before
	// it gets here, or an encoding family this package does not handle.
	bad string
}

// Table legend, one character per opcode:
//
//	.  no ModRM, no immediate     m  ModRM
//	b  imm8 / rel8                B  ModRM + imm8
//	w  imm16                      z  imm16/32
//	Z  ModRM + imm16/32           v  imm16/32/64 (mov r, imm)
//	r  rel32                      o  moffs (8 bytes, 4 with 67)
//	e  enter (imm16 + imm8)       g  F6/F7 group 3 (ModRM, imm for /0 /1)
//	x  invalid in 64-bit mode     p  prefix or escape, consumed earlier
var (
	oneByteSpec = [16]string{
		/* 0x */ "mmmmbzxxmmmmbzxp",
		/* 1x */ "mmmmbzxxmmmmbzxx",
		/* 2x */ "mmmmbzpxmmmmbzpx",
		/* 3x */ "mmmmbzpxmmmmbzpx",
		/* 4x */ "pppppppppppppppp",
		/* 5x */ "................",
		/* 6x */ "xxpmppppzZbB....",
		/* 7x */ "bbbbbbbbbbbbbbbb",
		/* 8x */ "BZxBmmmmmmmmmmmm",
		/* 9x */ "..........x.....",
		/* Ax */ "oooo....bz......",
		/* Bx */ "bbbbbbbbvvvvvvvv",
		/* Cx */ "BBw.ppBZe.w..bx.",
		/* Dx */ "mmmmxxx.mmmmmmmm",
		/* Ex */ "bbbbbbbbrrxb....",
		/* Fx */ "p.pp..gg......mm",
	}
	twoByteSpec = [16]string{
		/* 0F 0x */ "mmmmx.....x.xm.x",
		/* 0F 1x */ "mmmmmmmmmmmmmmmm",
		/* 0F 2x */ "xxxxxxxxmmmmmmmm",
		/* 0F 3x */ "......x.pxpxxxxx",
		/* 0F 4x */ "mmmmmmmmmmmmmmmm",
		/* 0F 5x */ "mmmmmmmmmmmmmmmm",
		/* 0F 6x */ "mmmmmmmmmmmmmmmm",
		/* 0F 7x */ "BBBBmmm.mmxxmmmm",
		/* 0F 8x */ "rrrrrrrrrrrrrrrr",
		/* 0F 9x */ "mmmmmmmmmmmmmmmm",
		/* 0F Ax */ "...mBmxx...mBmmm",
		/* 0F Bx */ "mmmmmmmmmmBmmmmm",
		/* 0F Cx */ "mmBmBBBm........",
		/* 0F Dx */ "mmmmmmmmmmmmmmmm",
		/* 0F Ex */ "mmmmmmmmmmmmmmmm",
		/* 0F Fx */ "mmmmmmmmmmmmmmmm",
	}
	// VEX and EVEX map 1 (0F): every opcode has ModRM but vzeroupper and
	// vzeroall (77); the shifts, shuffles and compares have an imm8.
	vexMap1Spec = [16]string{
		/* 0x */ "mmmmmmmmmmmmmmmm",
		/* 1x */ "mmmmmmmmmmmmmmmm",
		/* 2x */ "mmmmmmmmmmmmmmmm",
		/* 3x */ "mmmmmmmmmmmmmmmm",
		/* 4x */ "mmmmmmmmmmmmmmmm",
		/* 5x */ "mmmmmmmmmmmmmmmm",
		/* 6x */ "mmmmmmmmmmmmmmmm",
		/* 7x */ "BBBBmmm.mmmmmmmm",
		/* 8x */ "mmmmmmmmmmmmmmmm",
		/* 9x */ "mmmmmmmmmmmmmmmm",
		/* Ax */ "mmmmmmmmmmmmmmmm",
		/* Bx */ "mmmmmmmmmmmmmmmm",
		/* Cx */ "mmBmBBBmmmmmmmmm",
		/* Dx */ "mmmmmmmmmmmmmmmm",
		/* Ex */ "mmmmmmmmmmmmmmmm",
		/* Fx */ "mmmmmmmmmmmmmmmm",
	}
)

// Opcodes whose 'x' deserves a more precise reason than "invalid in 64-bit
// mode".
var (
	oneByteBad = map[byte]string{
		0xCE: "into is invalid in 64-bit mode",
	}
	twoByteBad = map[byte]string{
		0x0F: "3DNow! instructions are not supported",
		0x20: "mov from a control register is privileged",
		0x21: "mov from a debug register is privileged",
		0x22: "mov to a control register is privileged",
		0x23: "mov to a debug register is privileged",
	}
)

var (
	oneByteMap, twoByteMap, vexMap1 [256]opShape
)

func init() {
	build(&oneByteMap, &oneByteSpec, oneByteBad)
	build(&twoByteMap, &twoByteSpec, twoByteBad)
	build(&vexMap1, &vexMap1Spec, nil)
}

// build expands a 16x16 character table into shapes.
func build(m *[256]opShape, spec *[16]string, bad map[byte]string) {
	for row, s := range spec {
		if len(s) != 16 {
			panic("arch: opcode table row is not 16 entries") // programming error, caught by any test
		}
		for col := 0; col < 16; col++ {
			op := byte(row<<4 | col)
			var sh opShape
			switch s[col] {
			case '.':
			case 'm':
				sh.modrm = true
			case 'b':
				sh.imm = imm8
			case 'B':
				sh.modrm, sh.imm = true, imm8
			case 'w':
				sh.imm = imm16
			case 'z':
				sh.imm = immZ
			case 'Z':
				sh.modrm, sh.imm = true, immZ
			case 'v':
				sh.imm = immV
			case 'r':
				sh.imm = immRel32
			case 'o':
				sh.imm = immMoffs
			case 'e':
				sh.imm = immEnter
			case 'g':
				sh.modrm, sh.imm = true, immGrp3
			case 'x':
				sh.bad = "opcode invalid in 64-bit mode"
			case 'p':
				sh.bad = "misplaced prefix or escape byte"
			default:
				panic("arch: bad opcode table character")
			}
			if r, ok := bad[op]; ok && r != "" {
				sh.bad = r
			}
			m[op] = sh
		}
	}
}

// shape returns the shape of opcode op in map m, for a legacy (vex=false)
// or VEX/EVEX (vex=true) encoding.
func shape(m opMap, op byte, vex bool) opShape {
	switch m {
	case mapOne:
		return oneByteMap[op]
	case map0F:
		if vex {
			return vexMap1[op]
		}
		return twoByteMap[op]
	case map0F38:
		return opShape{modrm: true}
	case map0F3A:
		return opShape{modrm: true, imm: imm8}
	}
	return opShape{bad: "unknown opcode map"}
}
