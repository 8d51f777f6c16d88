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
