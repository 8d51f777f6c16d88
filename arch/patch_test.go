package arch

import (
	"bytes"
	"errors"
	"testing"
)

func TestPatchSpan(t *testing.T) {
	var (
		push    = []byte{0x55}                         // push %rbp
		movRbp  = []byte{0x48, 0x89, 0xe5}             // mov %rsp,%rbp
		movEax  = []byte{0xb8, 1, 0, 0, 0}             // mov $1,%eax
		leaRip  = []byte{0x48, 0x8d, 0x05, 0, 0, 0, 0} // lea 0(%rip),%rax
		ret     = []byte{0xc3}
		jmpBack = []byte{0xeb, 0xfe}             // jmp . (to itself)
		jmpAt1  = []byte{0xeb, 0x00}             // jmp +0: to the next instruction
		jmpTab  = []byte{0xff, 0xe0}             // jmp *%rax
		nop5    = []byte{0x0f, 0x1f, 0x44, 0, 0} // nopl 0(%rax,%rax,1)
		pad15   = []byte{0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0x0f, 0x1f, 0x40, 0}
	)
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name      string
		fn, pad   []byte
		site      int
		wantLen   int
		wantInsts int
		wantPad   int
	}{
		{name: "push mov mov", fn: cat(push, movRbp, movEax, ret), wantLen: 9, wantInsts: 3},
		{name: "five bytes at once", fn: cat(movEax, ret), wantLen: 5, wantInsts: 1},
		{name: "rip-relative", fn: cat(leaRip, ret), wantLen: 7, wantInsts: 1},
		{name: "mid-function", fn: cat(push, movEax, movEax, ret), site: 1, wantLen: 5, wantInsts: 1},
		{name: "ret last, the function's end", fn: cat(push, movRbp, ret), pad: pad15, wantLen: 5, wantInsts: 3, wantPad: 0},
		{name: "a lone ret and the padding after it", fn: ret, pad: pad15, wantLen: 5, wantInsts: 1, wantPad: 4},
		{name: "a lone ret and int3 padding", fn: ret, pad: []byte{0xcc, 0xcc, 0xcc, 0xcc}, wantLen: 5, wantInsts: 1, wantPad: 4},
		{name: "a nop5 site", fn: cat(nop5, ret), wantLen: 5, wantInsts: 1},
		{name: "-pg: push mov call *mcount(%rip)", fn: cat(push, movRbp, []byte{0xff, 0x15, 0x10, 0, 0, 0}, ret), wantLen: 10, wantInsts: 3},
		// Refused.
		{name: "too short, no padding", fn: ret},
		{name: "too short, padding too short", fn: ret, pad: []byte{0x90, 0x90}},
		{name: "too short, code after it", fn: ret, pad: cat(movEax)},
		{name: "ret before the end", fn: cat(push, ret, movEax, ret), pad: pad15},
		{name: "a branch into the bytes", fn: cat(push, movRbp, movEax, []byte{0x74, 0xf6}, ret)},
		{name: "a jmp in the middle of the bytes", fn: cat(push, jmpAt1, movEax, ret)},
		{name: "an indirect jmp", fn: cat(movEax, movEax, jmpTab)},
		{name: "a site out of the function", fn: cat(movEax, ret), site: 9},
		{name: "a loop to itself inside the bytes", fn: cat(push, push, jmpBack, movEax, ret)},
		{name: "an indirect call through the stack", fn: cat(push, []byte{0xff, 0x54, 0x24, 0x08}, ret)},
		{name: "an indirect call not last", fn: cat([]byte{0xff, 0xd0}, movEax, ret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := PatchSpanPadded(tc.fn, tc.pad, tc.site)
			if tc.wantLen == 0 {
				if !errors.Is(err, ErrNotPatchable) {
					t.Fatalf("PatchSpanPadded = %d bytes, %v; want ErrNotPatchable", sp.Len, err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sp.Len != tc.wantLen || len(sp.Insts) != tc.wantInsts || len(sp.Pad) != tc.wantPad {
				t.Fatalf("span of %d bytes, %d instructions, %d of padding; want %d, %d, %d", sp.Len, len(sp.Insts), len(sp.Pad), tc.wantLen, tc.wantInsts, tc.wantPad)
			}
			n := len(sp.Pad)
			for _, in := range sp.Insts {
				n += in.Len
			}
			if n != sp.Len {
				t.Fatalf("instructions and padding make %d bytes, Len %d", n, sp.Len)
			}
		})
	}
}

// TestRelocateSpanRet: a span that ends with ret needs no jmp back, and
// its padding is not copied.
func TestRelocateSpanRet(t *testing.T) {
	sp, err := PatchSpanPadded([]byte{0xc3}, []byte{0x90, 0x90, 0x90, 0x90}, 0)
	if err != nil {
		t.Fatal(err)
	}
	code, err := RelocateSpan(sp, 0x401000, 0x402000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(code, []byte{0xc3}) {
		t.Fatalf("relocated % x, want c3", code)
	}
}

// TestRelocateIndirectCall: without stop exits an indirect call becomes
// the push of its return address and a jmp through the same operand, the
// rip-relative displacement rebased past the push; an operand that uses
// %rsp, which the push moves, is refused, and so are stop exits.
func TestRelocateIndirectCall(t *testing.T) {
	const orig, slot = 0x401000, 0x402000
	push := func(next uint64) []byte {
		return []byte{0x48, 0x8d, 0x64, 0x24, 0xf8, 0xc7, 0x04, 0x24, byte(next), byte(next >> 8), byte(next >> 16), byte(next >> 24),
			0xc7, 0x44, 0x24, 0x04, byte(next >> 32), byte(next >> 40), byte(next >> 48), byte(next >> 56)}
	}
	for _, tc := range []struct {
		name     string
		in, want []byte // want: the jmp after the push, nil for refused
	}{
		{"call *%rax", []byte{0xff, 0xd0}, []byte{0xff, 0xe0}},
		{"call *%r11", []byte{0x41, 0xff, 0xd3}, []byte{0x41, 0xff, 0xe3}},
		{"call *(%r12)", []byte{0x41, 0xff, 0x14, 0x24}, []byte{0x41, 0xff, 0x24, 0x24}},
		{"notrack call *%rax", []byte{0x3e, 0xff, 0xd0}, []byte{0x3e, 0xff, 0xe0}},
		{"call *%fs:0x10", []byte{0x64, 0xff, 0x14, 0x25, 0x10, 0, 0, 0}, []byte{0x64, 0xff, 0x24, 0x25, 0x10, 0, 0, 0}},
		// rip-relative: the target 0x401000+6+0x10 seen from the jmp at
		// slot+20, 6 bytes long.
		{"call *0x10(%rip)", []byte{0xff, 0x15, 0x10, 0, 0, 0}, func() []byte {
			rel := int64(orig+6+0x10) - int64(slot+20+6)
			d := uint32(int32(rel))
			return []byte{0xff, 0x25, byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)}
		}()},
		{"call *%rsp", []byte{0xff, 0xd4}, nil},
		{"call *(%rsp)", []byte{0xff, 0x14, 0x24}, nil},
		{"call *8(%rsp,%rax,1)", []byte{0xff, 0x54, 0x04, 0x08}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := Decode(tc.in)
			if err != nil || inst.Flow != FlowCallIndirect {
				t.Fatalf("decode: %v, flow %v", err, inst.Flow)
			}
			tr, err := Relocate(&inst, orig, slot, false)
			if tc.want == nil {
				if !errors.Is(err, ErrNeedsEmulation) {
					t.Fatalf("relocated % x, %v; want ErrNeedsEmulation", tr.Code, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := append(push(orig+uint64(len(tc.in))), tc.want...); !bytes.Equal(tr.Code, want) || len(tr.Exits) != 0 {
				t.Fatalf("relocated % x (%d exits), want % x", tr.Code, len(tr.Exits), want)
			}
			if _, err := Relocate(&inst, orig, slot, true); !errors.Is(err, ErrNeedsEmulation) {
				t.Fatalf("with stop exits: %v, want ErrNeedsEmulation", err)
			}
		})
	}
}
