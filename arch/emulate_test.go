package arch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// memMap is the memory of a pretend thread: bytes that exist are in the
// map, anything else faults, like process_vm_readv on an unmapped page.
type memMap map[uint64]byte

var errFault = errors.New("bad address")

func (m memMap) ReadMemory(addr uint64, p []byte) (int, error) {
	for i := range p {
		b, ok := m[addr+uint64(i)]
		if !ok {
			return i, errFault
		}
		p[i] = b
	}
	return len(p), nil
}

func (m memMap) WriteMemory(addr uint64, p []byte) (int, error) {
	for i := range p {
		if _, ok := m[addr+uint64(i)]; !ok {
			return i, errFault
		}
		m[addr+uint64(i)] = p[i]
	}
	return len(p), nil
}

func (m memMap) put64(addr, v uint64) {
	for i := range 8 {
		m[addr+uint64(i)] = byte(v >> (8 * i))
	}
}

func (m memMap) get64(addr uint64) uint64 {
	var b [8]byte
	for i := range b {
		b[i] = m[addr+uint64(i)]
	}
	return binary.LittleEndian.Uint64(b[:])
}

// mapRange makes [addr, addr+n) exist, zeroed.
func (m memMap) mapRange(addr uint64, n int) {
	for i := range n {
		m[addr+uint64(i)] = 0
	}
}

const (
	emuOrig  = 0x5555_5555_1000
	emuStack = 0x7ffc_0000_1000 // rsp at the probe
	emuData  = 0x5555_5560_0000
	emuFS    = 0x7f00_0000_0000
)

func TestEmulate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hex   string
		setup func(r *Regs, m memMap)
		rip   uint64
		rsp   uint64
		push  bool // orig+len is at the new rsp
	}{
		{"call rel32", "e8 10 00 00 00", nil, emuOrig + 5 + 0x10, emuStack - 8, true},
		{"call rel32 backwards", "e8 f0 ff ff ff", nil, emuOrig + 5 - 0x10, emuStack - 8, true},
		{"call *rax", "ff d0", func(r *Regs, m memMap) { r.Rax = 0x1234 }, 0x1234, emuStack - 8, true},
		{"call *r11", "41 ff d3", func(r *Regs, m memMap) { r.R11 = 0x4321 }, 0x4321, emuStack - 8, true},
		{"call *rsp uses rsp before the push", "ff d4", nil, emuStack, emuStack - 8, true},
		{"call *-0x10(rip)", "ff 15 f0 ff ff ff", func(r *Regs, m memMap) {
			m.put64(emuOrig+6-0x10, 0xabcdef)
		}, 0xabcdef, emuStack - 8, true},
		{"call *0x18(rax,rbx,8)", "ff 54 d8 18", func(r *Regs, m memMap) {
			r.Rax, r.Rbx = emuData, 3
			m.put64(emuData+3*8+0x18, 0x777)
		}, 0x777, emuStack - 8, true},
		{"call *(r12,r13,2): REX.B and REX.X", "43 ff 14 6c", func(r *Regs, m memMap) {
			r.R12, r.R13 = emuData, 0x10
			m.put64(emuData+0x20, 0x888)
		}, 0x888, emuStack - 8, true},
		{"call *0x10(r13): mod=01 base 101 is r13, not rip", "41 ff 55 10", func(r *Regs, m memMap) {
			r.R13 = emuData
			m.put64(emuData+0x10, 0x999)
		}, 0x999, emuStack - 8, true},
		{"call *disp32(,rcx,8): no base", "ff 14 cd 00 00 60 55", func(r *Regs, m memMap) {
			r.Rcx = 2
			m.put64(0x55600000+16, 0xaaa)
		}, 0xaaa, emuStack - 8, true},
		{"call *-0x100000(rdi): negative disp32", "ff 97 00 00 f0 ff", func(r *Regs, m memMap) {
			r.Rdi = emuData + 0x100000
			m.put64(emuData, 0xbbb)
		}, 0xbbb, emuStack - 8, true},
		{"call *8(rsp)", "ff 54 24 08", func(r *Regs, m memMap) {
			m.put64(emuStack+8, 0xccc)
		}, 0xccc, emuStack - 8, true},
		{"call *fs:0x10", "64 ff 14 25 10 00 00 00", func(r *Regs, m memMap) {
			r.Fs_base = emuFS
			m.put64(emuFS+0x10, 0xddd)
		}, 0xddd, emuStack - 8, true},
		{"call *gs:(rax)", "65 ff 10", func(r *Regs, m memMap) {
			r.Gs_base, r.Rax = emuFS, 0x40
			m.put64(emuFS+0x40, 0xeee)
		}, 0xeee, emuStack - 8, true},
		{"addr32 call *(eax): 32-bit address", "67 ff 10", func(r *Regs, m memMap) {
			r.Rax = 0xffffffff_00001000
			m.put64(0x1000, 0xfff)
		}, 0xfff, emuStack - 8, true},
		{"notrack call *rax", "3e ff d0", func(r *Regs, m memMap) { r.Rax = 0x1111 }, 0x1111, emuStack - 8, true},
		{"jmp rel8", "eb fe", nil, emuOrig, emuStack, false},
		{"jmp rel32", "e9 00 01 00 00", nil, emuOrig + 5 + 0x100, emuStack, false},
		{"jmp *rax", "ff e0", func(r *Regs, m memMap) { r.Rax = 0x2222 }, 0x2222, emuStack, false},
		{"jmp *0x10(rip)", "ff 25 10 00 00 00", func(r *Regs, m memMap) {
			m.put64(emuOrig+6+0x10, 0x3333)
		}, 0x3333, emuStack, false},
		{"ret", "c3", func(r *Regs, m memMap) { m.put64(emuStack, 0x4444) }, 0x4444, emuStack + 8, false},
		{"ret $16", "c2 10 00", func(r *Regs, m memMap) { m.put64(emuStack, 0x5555) }, 0x5555, emuStack + 8 + 16, false},
		{"repz ret", "f3 c3", func(r *Regs, m memMap) { m.put64(emuStack, 0x6666) }, 0x6666, emuStack + 8, false},
		{"jrcxz taken", "e3 10", nil, emuOrig + 2 + 0x10, emuStack, false},
		{"jrcxz not taken", "e3 10", func(r *Regs, m memMap) { r.Rcx = 1 << 32 }, emuOrig + 2, emuStack, false},
		{"jecxz looks at ecx", "67 e3 10", func(r *Regs, m memMap) { r.Rcx = 1 << 32 }, emuOrig + 3 + 0x10, emuStack, false},
		{"loop taken", "e2 f0", func(r *Regs, m memMap) { r.Rcx = 2 }, emuOrig + 2 - 0x10, emuStack, false},
		{"loop not taken", "e2 f0", func(r *Regs, m memMap) { r.Rcx = 1 }, emuOrig + 2, emuStack, false},
		{"loope taken", "e1 f0", func(r *Regs, m memMap) { r.Rcx, r.Eflags = 2, flagZF }, emuOrig + 2 - 0x10, emuStack, false},
		{"loope not taken", "e1 f0", func(r *Regs, m memMap) { r.Rcx = 2 }, emuOrig + 2, emuStack, false},
		{"loopne taken", "e0 f0", func(r *Regs, m memMap) { r.Rcx = 2 }, emuOrig + 2 - 0x10, emuStack, false},
		{"loopne not taken", "e0 f0", func(r *Regs, m memMap) { r.Rcx, r.Eflags = 2, flagZF }, emuOrig + 2, emuStack, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := Decode(unhex(t, tt.hex))
			if err != nil {
				t.Fatal(err)
			}
			m := memMap{}
			m.mapRange(emuStack-64, 128)
			r := Regs{Rip: emuOrig, Rsp: emuStack, Rbx: 0x42}
			if tt.setup != nil {
				tt.setup(&r, m)
			}
			before := r
			if err := Emulate(&inst, emuOrig, &r, m); err != nil {
				t.Fatal(err)
			}
			if r.Rip != tt.rip || r.Rsp != tt.rsp {
				t.Errorf("rip %#x rsp %#x, want rip %#x rsp %#x", r.Rip, r.Rsp, tt.rip, tt.rsp)
			}
			if tt.push {
				if got := m.get64(r.Rsp); got != emuOrig+uint64(inst.Len) {
					t.Errorf("pushed %#x, want %#x", got, emuOrig+uint64(inst.Len))
				}
			}
			// Nothing else changes (loop's rcx aside).
			after := r
			after.Rip, after.Rsp, after.Rcx = before.Rip, before.Rsp, before.Rcx
			if after != before {
				t.Errorf("registers other than rip/rsp changed: %+v", after)
			}
		})
	}
}

// TestEmulateJcc evaluates all 16 conditions on flag combinations, against
// their definitions in the SDM.
func TestEmulateJcc(t *testing.T) {
	type fl struct{ cf, pf, zf, sf, of bool }
	def := [16]func(f fl) bool{
		func(f fl) bool { return f.of },                  // jo
		func(f fl) bool { return !f.of },                 // jno
		func(f fl) bool { return f.cf },                  // jb
		func(f fl) bool { return !f.cf },                 // jae
		func(f fl) bool { return f.zf },                  // je
		func(f fl) bool { return !f.zf },                 // jne
		func(f fl) bool { return f.cf || f.zf },          // jbe
		func(f fl) bool { return !f.cf && !f.zf },        // ja
		func(f fl) bool { return f.sf },                  // js
		func(f fl) bool { return !f.sf },                 // jns
		func(f fl) bool { return f.pf },                  // jp
		func(f fl) bool { return !f.pf },                 // jnp
		func(f fl) bool { return f.sf != f.of },          // jl
		func(f fl) bool { return f.sf == f.of },          // jge
		func(f fl) bool { return f.zf || f.sf != f.of },  // jle
		func(f fl) bool { return !f.zf && f.sf == f.of }, // jg
	}
	for cc := range 16 {
		for bits := range 32 {
			f := fl{bits&1 != 0, bits&2 != 0, bits&4 != 0, bits&8 != 0, bits&16 != 0}
			var eflags uint64 = 0x202 // IF and the reserved bit, as the kernel shows them
			for i, m := range []uint64{flagCF, flagPF, flagZF, flagSF, flagOF} {
				if bits&(1<<i) != 0 {
					eflags |= m
				}
			}
			for _, enc := range []string{fmt.Sprintf("%02x 10", 0x70+cc), fmt.Sprintf("0f %02x 10 00 00 00", 0x80+cc)} {
				inst, err := Decode(unhex(t, enc))
				if err != nil {
					t.Fatal(err)
				}
				r := Regs{Rip: emuOrig, Rsp: emuStack, Eflags: eflags}
				if err := Emulate(&inst, emuOrig, &r, memMap{}); err != nil {
					t.Fatal(err)
				}
				want := emuOrig + uint64(inst.Len)
				if def[cc](f) {
					want += 0x10
				}
				if r.Rip != want {
					t.Errorf("%s (%v) with %+v: rip %#x, want %#x", enc, inst, f, r.Rip, want)
				}
			}
		}
	}
}

func TestEmulateErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hex   string
		setup func(r *Regs, m memMap)
		want  error
	}{
		{"push faults", "e8 00 00 00 00", func(r *Regs, m memMap) { r.Rsp = 0x1000 }, errFault},
		{"target read faults", "ff 15 00 00 00 00", nil, errFault},
		{"ret pop faults", "c3", func(r *Regs, m memMap) { r.Rsp = 0x1000 }, errFault},
		{"not a transfer", "90", nil, ErrNotEmulated},
		{"syscall", "0f 05", nil, ErrNotEmulated},
		{"loop with ecx", "67 e2 10", nil, ErrNotEmulated},
		{"int3", "cc", nil, ErrRefused},
		{"far jmp", "ff 28", nil, ErrRefused},
		{"retw", "66 c3", nil, ErrRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := Decode(unhex(t, tt.hex))
			if err != nil {
				t.Fatal(err)
			}
			m := memMap{}
			m.mapRange(emuStack-64, 128)
			r := Regs{Rip: emuOrig, Rsp: emuStack}
			if tt.setup != nil {
				tt.setup(&r, m)
			}
			before := r
			err = Emulate(&inst, emuOrig, &r, m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Emulate: %v, want %v", err, tt.want)
			}
			if r != before {
				t.Errorf("registers changed by a failed Emulate")
			}
		})
	}
	if err := Emulate(&Inst{}, emuOrig, &Regs{}, memMap{}); !errors.Is(err, ErrUndecodable) {
		t.Errorf("empty Inst: %v", err)
	}
}

func TestEffectiveAddress(t *testing.T) {
	r := Regs{Rax: 0x1000, Rbx: 0x10, R12: 0x2000, Rsp: 0x7000, Fs_base: 0x9000_0000}
	for _, tt := range []struct {
		hex  string
		want uint64
	}{
		{"48 8b 00", 0x1000},                               // mov (%rax),%rax
		{"48 8b 44 98 f0", 0x1000 + 0x40 - 0x10},           // mov -0x10(%rax,%rbx,4),%rax
		{"49 8b 04 24", 0x2000},                            // mov (%r12),%rax: SIB needed for r12
		{"4a 8b 04 20", 0x1000 + 0x2000},                   // mov (%rax,%r12),%rax: r12 as index
		{"48 8b 05 f0 ff ff ff", emuOrig + 7 - 0x10},       // mov -0x10(%rip),%rax
		{"64 48 8b 04 25 28 00 00 00", 0x9000_0000 + 0x28}, // mov %fs:0x28,%rax
		{"48 8d 44 24 08", 0x7008},                         // lea 8(%rsp),%rax
	} {
		inst, err := Decode(unhex(t, tt.hex))
		if err != nil {
			t.Fatal(err)
		}
		got, err := EffectiveAddress(&inst, emuOrig, &r)
		if err != nil || got != tt.want {
			t.Errorf("%s (%v): %#x, %v; want %#x", tt.hex, inst, got, err, tt.want)
		}
	}
	for _, h := range []string{"48 89 c0", "c5 fd 6f 05 f0 ff ff ff"} {
		inst, _ := Decode(unhex(t, h))
		if _, err := EffectiveAddress(&inst, emuOrig, &r); err == nil {
			t.Errorf("%s: no error", h)
		}
	}
}

// TestEmulateAgreesWithRelocate: for the direct branches, the exit that a
// relocated trampoline takes (Resume) is what Emulate computes.
func TestEmulateAgreesWithRelocate(t *testing.T) {
	for _, tt := range decodeTests {
		inst, err := Decode(unhex(t, tt.hex))
		if err != nil || inst.Class != ClassRelocate || inst.Flow != FlowJmp && inst.Flow != FlowCall && inst.Flow != FlowJcc {
			continue
		}
		tr, err := Relocate(&inst, emuOrig, emuOrig+gib, true)
		if err != nil {
			t.Fatal(err)
		}
		m := memMap{}
		m.mapRange(emuStack-64, 128)
		for _, eflags := range []uint64{0, flagZF | flagCF | flagSF | flagOF | flagPF} {
			r := Regs{Rip: emuOrig, Rsp: emuStack, Eflags: eflags}
			if err := Emulate(&inst, emuOrig, &r, m); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range tr.Exits {
				found = found || e.Resume == r.Rip
			}
			if !found {
				t.Errorf("%s: Emulate goes to %#x, not to any exit of %+v", tt.name, r.Rip, tr.Exits)
			}
		}
	}
}
