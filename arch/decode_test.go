package arch

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// unhex turns "48 8b 05 f0ff ffff" into bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// decodeTests are hand-assembled encodings (checked with objdump -b binary
// -m i386:x86-64) with what Decode must say about them. A "trailing"
// 90 (nop) after some of them makes sure the length is not just "all of it".
var decodeTests = []struct {
	name   string
	hex    string
	len    int
	ripOff int // DispOff, or 0 when not rip-relative
	class  Class
	flow   Flow
	reason string // substring of Reason for ClassRefuse
}{
	// Ordinary instructions.
	{"nop", "90 90", 1, 0, ClassRelocate, FlowNone, ""},
	{"push rbp", "55 90", 1, 0, ClassRelocate, FlowNone, ""},
	{"mov rsp,rbp", "48 89 e5 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"movabs imm64", "48 b8 01 02 03 04 05 06 07 08 90", 10, 0, ClassRelocate, FlowNone, ""},
	{"mov moffs64", "a1 01 02 03 04 05 06 07 08 90", 9, 0, ClassRelocate, FlowNone, ""},
	{"mov moffs32 (67)", "67 a1 01 02 03 04 90", 6, 0, ClassRelocate, FlowNone, ""},
	{"pushw imm16", "66 68 01 02 90", 4, 0, ClassRelocate, FlowNone, ""},
	{"enter", "c8 10 00 01 90", 4, 0, ClassRelocate, FlowNone, ""},
	{"mov fs:0x28,rax (not rip-relative)", "64 48 8b 04 25 28 00 00 00 90", 9, 0, ClassRelocate, FlowNone, ""},
	{"nopw cs:0(rax,rax)", "66 2e 0f 1f 84 00 00 00 00 00 90", 10, 0, ClassRelocate, FlowNone, ""},
	{"syscall", "0f 05 90", 2, 0, ClassRelocate, FlowNone, ""},
	{"ud2", "0f 0b", 2, 0, ClassRelocate, FlowNone, ""},
	{"xabort", "c6 f8 01 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"xend", "0f 01 d5 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"pcmpistri imm8", "66 0f 3a 63 ca 1a 90", 6, 0, ClassRelocate, FlowNone, ""},
	{"fwait is its own instruction", "9b d9 7c 24 fc", 1, 0, ClassRelocate, FlowNone, ""},

	// Rip-relative operands, legacy encodings.
	{"mov -0x10(rip),rax", "48 8b 05 f0 ff ff ff 90", 7, 3, ClassRelocate, FlowNone, ""},
	{"lea 0(rip),rdi", "48 8d 3d 00 00 00 00", 7, 3, ClassRelocate, FlowNone, ""},
	{"cmpl $5,0x10(rip): imm8 after disp", "83 3d 10 00 00 00 05 90", 7, 2, ClassRelocate, FlowNone, ""},
	{"testl $imm32,0x10(rip)", "f7 05 10 00 00 00 01 02 03 04 90", 10, 2, ClassRelocate, FlowNone, ""},
	{"testw $imm16,0x10(rip)", "66 f7 05 10 00 00 00 01 02 90", 9, 3, ClassRelocate, FlowNone, ""},
	{"lock cmpxchg ecx,0x10(rip)", "f0 0f b1 0d 10 00 00 00 90", 8, 4, ClassRelocate, FlowNone, ""},
	{"movdqa 0x10(rip),xmm0", "66 0f 6f 05 10 00 00 00", 8, 4, ClassRelocate, FlowNone, ""},
	{"pshufb 0x10(rip),xmm0 (0F 38)", "66 0f 38 00 05 10 00 00 00", 9, 5, ClassRelocate, FlowNone, ""},
	{"palignr $8,0x10(rip),xmm0 (0F 3A)", "66 0f 3a 0f 05 10 00 00 00 08", 10, 5, ClassRelocate, FlowNone, ""},
	{"mov fs:0x10(rip),rax", "64 48 8b 05 10 00 00 00", 8, 4, ClassRelocate, FlowNone, ""},

	// Rip-relative operands, VEX and EVEX (x86asm drops the RIP base).
	{"vmovdqa -0x10(rip),ymm0", "c5 fd 6f 05 f0 ff ff ff 90", 8, 4, ClassRelocate, FlowNone, ""},
	{"vbroadcastss -0x10(rip),ymm0 (C4)", "c4 e2 7d 18 05 f0 ff ff ff", 9, 5, ClassRelocate, FlowNone, ""},
	{"vinsertf128 $1,0x10(rip) (C4 map 3, imm)", "c4 e3 7d 18 05 10 00 00 00 01 90", 10, 5, ClassRelocate, FlowNone, ""},
	{"vmovdqu64 0x10(rip),zmm0 (EVEX)", "62 f1 fe 48 6f 05 10 00 00 00 90", 10, 6, ClassRelocate, FlowNone, ""},
	{"vpbroadcastq 0x100(rip),zmm1 (EVEX map 2)", "62 f2 fd 48 59 0d 00 01 00 00", 10, 6, ClassRelocate, FlowNone, ""},
	{"vpcmpltub 0x10(rip),zmm0,k1 (EVEX map 3, imm)", "62 f3 7d 48 3e 0d 10 00 00 00 01 90", 11, 6, ClassRelocate, FlowNone, ""},
	{"vmovdqu gs:0,xmm0 (segment before VEX)", "65 c5 fa 6f 04 25 00 00 00 00", 10, 0, ClassRelocate, FlowNone, ""},
	{"addr32 mulx (67 before VEX)", "67 c4 e2 f3 f6 c2 90", 6, 0, ClassRelocate, FlowNone, ""},

	// Encodings x86asm does not decode (Op 0, length 1, no error).
	{"endbr64", "f3 0f 1e fa 55", 4, 0, ClassRelocate, FlowNone, ""},
	{"endbr32", "f3 0f 1e fb 55", 4, 0, ClassRelocate, FlowNone, ""},
	{"rdpid rax", "f3 0f c7 f8 90", 4, 0, ClassRelocate, FlowNone, ""},
	{"rdpid r9", "f3 41 0f c7 f9 90", 5, 0, ClassRelocate, FlowNone, ""},
	{"adcx rcx,rax", "66 48 0f 38 f6 c1 90", 6, 0, ClassRelocate, FlowNone, ""},
	{"adox ecx,eax", "f3 0f 38 f6 c1 90", 5, 0, ClassRelocate, FlowNone, ""},
	{"adcx -0x10(rip),rax", "66 48 0f 38 f6 05 f0 ff ff ff 90", 10, 6, ClassRelocate, FlowNone, ""},
	{"rdpkru", "0f 01 ee 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"wrpkru", "0f 01 ef 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"rdsspq rax", "f3 48 0f 1e c8 90", 5, 0, ClassRelocate, FlowNone, ""},
	{"incsspq rax", "f3 48 0f ae e8 90", 5, 0, ClassRelocate, FlowNone, ""},
	{"rdseed eax", "0f c7 f8 90", 3, 0, ClassRelocate, FlowNone, ""},
	// x86asm gets the length wrong.
	{"vzeroupper", "c5 f8 77 90 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"vzeroall", "c5 fc 77 90 90", 3, 0, ClassRelocate, FlowNone, ""},
	{"vzeroupper (C4)", "c4 e1 78 77 90", 4, 0, ClassRelocate, FlowNone, ""},

	// Control transfers.
	{"call rel32", "e8 10 00 00 00", 5, 0, ClassRelocate, FlowCall, ""},
	{"addr32 call (relaxed GOT call)", "67 e8 10 00 00 00", 6, 0, ClassRelocate, FlowCall, ""},
	{"data16 data16 rex.W call (TLS GD)", "66 66 48 e8 10 00 00 00", 8, 0, ClassRelocate, FlowCall, ""},
	{"bnd call", "f2 e8 10 00 00 00", 6, 0, ClassRelocate, FlowCall, ""},
	{"call *rax", "ff d0 90", 2, 0, ClassEmulate, FlowCallIndirect, ""},
	{"call *r11", "41 ff d3", 3, 0, ClassEmulate, FlowCallIndirect, ""},
	{"call *0x10(rip)", "ff 15 10 00 00 00", 6, 2, ClassEmulate, FlowCallIndirect, ""},
	{"call *fs:0x10", "64 ff 14 25 10 00 00 00", 8, 0, ClassEmulate, FlowCallIndirect, ""},
	{"notrack call *rax", "3e ff d0", 3, 0, ClassEmulate, FlowCallIndirect, ""},
	{"jmp rel8", "eb 10", 2, 0, ClassRelocate, FlowJmp, ""},
	{"jmp rel32", "e9 10 00 00 00", 5, 0, ClassRelocate, FlowJmp, ""},
	{"je rel8", "74 10", 2, 0, ClassRelocate, FlowJcc, ""},
	{"jne rel32", "0f 85 10 00 00 00", 6, 0, ClassRelocate, FlowJcc, ""},
	{"ds je (branch hint)", "3e 74 10", 3, 0, ClassRelocate, FlowJcc, ""},
	{"loop", "e2 10", 2, 0, ClassRelocate, FlowLoop, ""},
	{"loope", "e1 10", 2, 0, ClassRelocate, FlowLoop, ""},
	{"loopne", "e0 10", 2, 0, ClassRelocate, FlowLoop, ""},
	{"jrcxz", "e3 10", 2, 0, ClassRelocate, FlowLoop, ""},
	{"jecxz", "67 e3 10", 3, 0, ClassRelocate, FlowLoop, ""},
	{"ret", "c3 90", 1, 0, ClassRelocate, FlowRet, ""},
	{"ret $16", "c2 10 00", 3, 0, ClassRelocate, FlowRet, ""},
	{"repz ret", "f3 c3", 2, 0, ClassRelocate, FlowRet, ""},
	{"bnd ret", "f2 c3", 2, 0, ClassRelocate, FlowRet, ""},
	{"jmp *rax", "ff e0", 2, 0, ClassRelocate, FlowJmpIndirect, ""},
	{"jmp *0x10(rip)", "ff 25 10 00 00 00", 6, 2, ClassRelocate, FlowJmpIndirect, ""},
	{"notrack jmp *(rax,rdx,8)", "3e ff 24 d0", 4, 0, ClassRelocate, FlowJmpIndirect, ""},

	// Refused.
	{"int3", "cc", 1, 0, ClassRefuse, FlowOther, "int3 cannot be probed"},
	{"int 0x80", "cd 80", 2, 0, ClassRefuse, FlowOther, "int n"},
	{"int1", "f1", 1, 0, ClassRefuse, FlowOther, "int1"},
	{"in imm8", "e4 10", 2, 0, ClassRefuse, FlowOther, "port I/O"},
	{"in dx", "ec", 1, 0, ClassRefuse, FlowOther, "port I/O"},
	{"out imm8", "e6 10", 2, 0, ClassRefuse, FlowOther, "port I/O"},
	{"out dx", "ee", 1, 0, ClassRefuse, FlowOther, "port I/O"},
	{"insb", "6c", 1, 0, ClassRefuse, FlowOther, "port I/O"},
	{"rep outsb", "f3 6e", 2, 0, ClassRefuse, FlowOther, "port I/O"},
	{"hlt", "f4", 1, 0, ClassRefuse, FlowOther, "hlt"},
	{"iret", "cf", 1, 0, ClassRefuse, FlowOther, "iret"},
	{"iretq", "48 cf", 2, 0, ClassRefuse, FlowOther, "iret"},
	{"lcall *(rax)", "ff 18", 2, 0, ClassRefuse, FlowOther, "far call"},
	{"ljmp *(rax)", "ff 28", 2, 0, ClassRefuse, FlowOther, "far jmp"},
	{"lret", "cb", 1, 0, ClassRefuse, FlowOther, "far ret"},
	{"lret $8", "ca 08 00", 3, 0, ClassRefuse, FlowOther, "far ret"},
	{"sysenter", "0f 34", 2, 0, ClassRefuse, FlowOther, "sysenter"},
	{"sysexit", "0f 35", 2, 0, ClassRefuse, FlowOther, "sysexit"},
	{"sysret", "0f 07", 2, 0, ClassRefuse, FlowOther, "sysret"},
	{"xbegin", "c7 f8 10 00 00 00", 6, 0, ClassRefuse, FlowOther, "xbegin"},
	{"jmpw rel", "66 e9 10 00 00 00", 6, 0, ClassRefuse, FlowJmp, "operand-size"},
	{"callw rel", "66 e8 10 00 00 00", 6, 0, ClassRefuse, FlowCall, "operand-size"},
	{"data16 je rel32", "66 0f 84 10 00 00 00", 7, 0, ClassRefuse, FlowJcc, "operand-size"},
	{"retw", "66 c3", 2, 0, ClassRefuse, FlowRet, "operand-size"},
	{"data16 call *rax", "66 ff d0", 3, 0, ClassRefuse, FlowCallIndirect, "operand-size"},
	{"mov 0x10(eip),eax", "67 8b 05 10 00 00 00", 7, 3, ClassRefuse, FlowNone, "address-size"},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			code := unhex(t, tt.hex)
			inst, err := Decode(code)
			if err != nil {
				t.Fatalf("Decode(% x): %v", code, err)
			}
			if inst.Len != tt.len || len(inst.Bytes) != tt.len || string(inst.Bytes) != string(code[:tt.len]) || inst.Inst.Len != tt.len {
				t.Errorf("Len %d (x86asm view %d), Bytes % x; want %d bytes", inst.Len, inst.Inst.Len, inst.Bytes, tt.len)
			}
			if inst.RIPRel != (tt.ripOff != 0) || inst.DispOff != tt.ripOff {
				t.Errorf("RIPRel %v DispOff %d, want DispOff %d", inst.RIPRel, inst.DispOff, tt.ripOff)
			}
			if inst.Class != tt.class || inst.Flow != tt.flow {
				t.Errorf("%v/%v (%s), want %v/%v", inst.Class, inst.Flow, inst.Reason, tt.class, tt.flow)
			}
			if tt.class == ClassRefuse {
				if tt.reason == "" || !strings.Contains(inst.Reason, tt.reason) {
					t.Errorf("Reason %q, want it to mention %q", inst.Reason, tt.reason)
				}
			} else if inst.Reason != "" {
				t.Errorf("Reason %q for a %v instruction", inst.Reason, inst.Class)
			}
			if s := inst.String(); s == "" || strings.HasPrefix(s, "op(0)") || strings.Contains(s, "rep") && !strings.Contains(tt.name, "rep") {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

// TestDecodeRIPOperand checks that the repaired x86asm view of rip-relative
// operands carries the RIP base and the sign-extended disp32, and that
// RIPAddr computes the absolute address.
func TestDecodeRIPOperand(t *testing.T) {
	for _, tt := range []struct {
		hex  string
		disp int64
		text string // in String()
	}{
		{"48 8b 05 f0 ff ff ff", -0x10, "-0x10(%rip)"},
		{"c5 fd 6f 05 f0 ff ff ff", -0x10, "-0x10(%rip)"},
		{"62 f1 fe 48 6f 05 10 00 00 00", 0x10, "0x10(%rip)"},
		{"ff 15 00 00 00 80", -0x80000000, "(%rip)"},
	} {
		inst, err := Decode(unhex(t, tt.hex))
		if err != nil {
			t.Fatal(err)
		}
		const pc = 0x7f0000001000
		want := uint64(pc + int64(inst.Len) + tt.disp)
		if got, ok := inst.RIPAddr(pc); !ok || got != want {
			t.Errorf("%s: RIPAddr = %#x, %v; want %#x", tt.hex, got, ok, want)
		}
		if s := inst.String(); !strings.Contains(s, tt.text) {
			t.Errorf("%s: String() = %q, want %q in it", tt.hex, s, tt.text)
		}
	}
	if _, ok := (&Inst{Bytes: []byte{0x90}, Len: 1}).RIPAddr(0); ok {
		t.Error("RIPAddr of nop succeeded")
	}
}

// TestDecodeUndecodable: bytes that are not an instruction, or one this
// package does not trust itself to relocate, give ErrUndecodable, a
// ClassRefuse Inst with a Reason, and never a length.
func TestDecodeUndecodable(t *testing.T) {
	for _, tt := range []struct{ name, hex, msg string }{
		{"empty", "", "truncated"},
		{"truncated modrm", "48 8b", "truncated"},
		{"truncated disp32", "48 8b 05 f0 ff", "truncated"},
		{"truncated VEX", "c5", "truncated"},
		{"too long", "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", "longer than 15"},
		{"15 bytes is not too long", "66 66 66 66 66 66 66 66 66 66 66 66 66 66 90 90", ""},
		{"push es (invalid in 64-bit)", "06", "invalid in 64-bit"},
		{"into (invalid in 64-bit)", "ce", "into"},
		{"3DNow!", "0f 0f c0 9e", "3DNow"},
		{"XOP", "8f e9 78 01 c0", "XOP"},
		{"EVEX map 5 (x86asm would call it vaddps)", "62 f5 7c 48 58 c0", "EVEX opcode map 5"},
		{"mov cr0,rax", "0f 20 c0", "privileged"},
		{"prefix after REX", "48 66 89 c0", "after REX"},
		{"66 before VEX", "66 c5 f8 77", "VEX/EVEX after"},
		{"FMA4 (x86asm does not know it)", "c4 e3 f1 6b c9 20", "x86asm"},
		{"extrq (SSE4a)", "66 0f 78 c0 01 02", "SSE4a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := Decode(unhex(t, tt.hex))
			if tt.msg == "" {
				if err != nil || inst.Len != MaxInstLen {
					t.Fatalf("Decode: %v, Len %d", err, inst.Len)
				}
				return
			}
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("Decode: %v, want ErrUndecodable", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if inst.Class != ClassRefuse || !strings.HasPrefix(inst.Reason, "undecodable: ") || inst.Len != 0 {
				t.Errorf("Inst %v %q Len %d", inst.Class, inst.Reason, inst.Len)
			}
		})
	}
}

func TestCheckBoundary(t *testing.T) {
	// endbr64; push %rbp; mov %rsp,%rbp; mov -0x10(%rip),%rax; call rel32; int3; ret
	fn := unhex(t, "f3 0f 1e fa  55  48 89 e5  48 8b 05 f0 ff ff ff  e8 00 00 00 00  cc  c3")
	starts := map[int]bool{0: true, 4: true, 5: true, 8: true, 15: true, 20: true, 21: true}
	for off := -1; off <= len(fn); off++ {
		err := CheckBoundary(fn, off)
		switch {
		case starts[off] && err != nil:
			t.Errorf("offset %d: %v", off, err)
		case !starts[off] && !errors.Is(err, ErrNotBoundary):
			t.Errorf("offset %d: %v, want ErrNotBoundary", off, err)
		}
	}
	if err := CheckBoundary(fn, 10); err == nil || !strings.Contains(err.Error(), "7-byte instruction") || !strings.Contains(err.Error(), "offset 0x8") {
		t.Errorf("offset 10: %v, want it to name the 7-byte instruction at 0x8", err)
	}

	// Undecodable bytes before the offset stop the walk, with their offset.
	bad := unhex(t, "55  0f 0f c0 9e  c3")
	if err := CheckBoundary(bad, 5); !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "offset 0x1") {
		t.Errorf("undecodable: %v", err)
	}
	// ... but not the offsets before them.
	if err := CheckBoundary(bad, 1); err != nil {
		t.Errorf("offset of the undecodable instruction itself: %v", err)
	}
}

// TestOpcodeTables checks the tables against x86asm on every one- and
// two-byte opcode with a few ModRM bytes: where both decode, they agree on
// the length. The libc tests do the same on real code; this covers the
// opcodes compilers rarely emit.
func TestOpcodeTables(t *testing.T) {
	tail := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	n := 0
	for _, pfx := range [][]byte{nil, {0x66}, {0x48}, {0x66, 0x48}, {0x0F}, {0x66, 0x0F}, {0xF3, 0x0F}, {0xF2, 0x0F}, {0x0F, 0x38}, {0x66, 0x0F, 0x3A}, {0x67}} {
		for op := 0; op < 256; op++ {
			for _, modrm := range []byte{0x00, 0x05, 0x04, 0x44, 0x84, 0xC0, 0xF8, 0x3D} {
				code := append(append(append([]byte{}, pfx...), byte(op), modrm), tail...)
				lay, lerr := parseLayout(code)
				x, xerr := x86Decode(code)
				if lerr != nil || xerr != nil || x.Op == 0 || matchGap(&lay, code) != nil {
					continue
				}
				n++
				if x.Len != lay.length {
					t.Errorf("% x: x86asm %v is %d bytes, tables say %d", code[:len(pfx)+2], x.Op, x.Len, lay.length)
				}
			}
		}
	}
	if n < 5000 {
		t.Errorf("only %d encodings compared", n)
	}
}
