package arch

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode and everything downstream of
// it. Nothing may panic; what Decode accepts must be self-consistent; and
// whatever Relocate builds from it must pass checkTrampoline, the same
// decode-the-result check the libc tests use. The seed corpus is in
// testdata/fuzz/FuzzDecode (one file per encoding of the decode tests).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, code []byte) {
		inst, err := Decode(code)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) || inst.Class != ClassRefuse || inst.Reason == "" || inst.Len != 0 {
				t.Fatalf("Decode error %v with Inst %v %q Len %d", err, inst.Class, inst.Reason, inst.Len)
			}
			_ = CheckBoundary(code, 1)
			return
		}
		if inst.Len < 1 || inst.Len > MaxInstLen || inst.Len > len(code) || !bytes.Equal(inst.Bytes, code[:inst.Len]) {
			t.Fatalf("Len %d Bytes % x from % x", inst.Len, inst.Bytes, code)
		}
		if inst.RIPRel && (inst.DispOff < 1 || inst.DispOff+4 > inst.Len) || !inst.RIPRel && inst.DispOff != 0 {
			t.Fatalf("RIPRel %v DispOff %d Len %d", inst.RIPRel, inst.DispOff, inst.Len)
		}
		if (inst.Class == ClassRefuse) != (inst.Reason != "") {
			t.Fatalf("class %v with reason %q", inst.Class, inst.Reason)
		}
		// An instruction does not depend on the bytes after it.
		again, err := Decode(inst.Bytes)
		if err != nil || again.Len != inst.Len || again.Class != inst.Class || again.Flow != inst.Flow || again.RIPRel != inst.RIPRel {
			t.Fatalf("Decode of the instruction alone: %v, %+v", err, again)
		}
		_ = inst.String()
		if err := CheckBoundary(code, 0); err != nil {
			t.Fatalf("CheckBoundary 0: %v", err)
		}
		if inst.Len < len(code) {
			if err := CheckBoundary(code, inst.Len); err != nil {
				t.Fatalf("CheckBoundary %d: %v", inst.Len, err)
			}
		}
		if inst.Len > 1 {
			if err := CheckBoundary(code, inst.Len-1); !errors.Is(err, ErrNotBoundary) {
				t.Fatalf("CheckBoundary %d: %v", inst.Len-1, err)
			}
		}

		for _, p := range [][2]uint64{
			{testOrig, testOrig + gib},
			{testOrig, testOrig - gib},
			{0x1000, 0x1000},
			{0, 1 << 63},
			{^uint64(0) - 3, 0x1000},
		} {
			for _, stop := range []bool{false, true} {
				tr, err := Relocate(&inst, p[0], p[1], stop)
				if err != nil {
					if !errors.Is(err, ErrFarData) && !errors.Is(err, ErrNeedsEmulation) && !errors.Is(err, ErrRefused) {
						t.Fatalf("Relocate(%#x, %#x, %v): unexpected error %v", p[0], p[1], stop, err)
					}
					continue
				}
				if inst.Class != ClassRelocate && !(inst.Class == ClassEmulate && inst.Flow == FlowCallIndirect && !stop) {
					t.Fatalf("Relocate accepted a %v instruction", inst.Class)
				}
				if err := checkTrampoline(&inst, p[0], p[1], stop, tr); err != nil {
					t.Fatalf("Relocate(%#x, %#x, %v) = % x: %v", p[0], p[1], stop, tr.Code, err)
				}
			}
		}

		m := memMap{}
		m.mapRange(emuStack-64, 128)
		r := Regs{Rip: testOrig, Rsp: emuStack, Rax: emuStack, Rcx: 3}
		before := r
		if err := Emulate(&inst, testOrig, &r, m); err != nil && r != before {
			t.Fatalf("failed Emulate changed the registers: %v", err)
		}
		_, _ = EffectiveAddress(&inst, testOrig, &r)
	})
}
