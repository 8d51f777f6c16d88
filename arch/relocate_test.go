package arch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

const (
	testOrig = 0x7f12_3456_7000 // where the probed instruction is
	gib      = 1 << 30
)

// checkTrampoline verifies tr, built by Relocate for inst at orig placed at
// slot, by decoding it again: what the code does, not how Relocate built
// it. Branch targets of the original come from x86asm's Rel argument, not
// from this package.
func checkTrampoline(inst *Inst, orig, slot uint64, stop bool, tr Trampoline) error {
	if len(tr.Code) > MaxTrampolineLen {
		return fmt.Errorf("%d bytes of code, more than MaxTrampolineLen", len(tr.Code))
	}
	// Decode the trampoline linearly: every byte must belong to an
	// instruction, and every exit must be one.
	var insts []Inst
	starts := map[int]int{}
	stopAt := make(map[int]bool)
	for _, e := range tr.Exits {
		stopAt[e.Offset] = stop
	}
	for off := 0; off < len(tr.Code); {
		d, err := Decode(tr.Code[off:])
		if err != nil {
			return fmt.Errorf("trampoline offset %d: %w", off, err)
		}
		if stopAt[off] && off+5 <= len(tr.Code) {
			d.Len = 5 // an int3 and the room for its jmp: one exit
		}
		starts[off] = len(insts)
		insts = append(insts, d)
		off += d.Len
	}
	exitLen := 5 // a jmp rel32, or an int3 with room for one
	for i, e := range tr.Exits {
		k, ok := starts[e.Offset]
		if !ok {
			return fmt.Errorf("exit %d at offset %d is not an instruction start", i, e.Offset)
		}
		d := insts[k]
		if stop {
			if !bytes.Equal(tr.Code[e.Offset:e.Offset+5], []byte{0xCC, 0xCC, 0xCC, 0xCC, 0xCC}) {
				return fmt.Errorf("stop exit %d is % x, not an int3 and four bytes of room", i, tr.Code[e.Offset:e.Offset+5])
			}
			jmp, err := ExitJump(slot+uint64(e.Offset), e.Resume)
			if errors.Is(err, ErrFarData) {
				continue // stays an int3 after a detach
			} else if err != nil {
				return fmt.Errorf("stop exit %d: %w", i, err)
			}
			if j, err := Decode(jmp); err != nil || j.Len != 5 {
				return fmt.Errorf("stop exit %d: ExitJump made % x", i, jmp)
			} else if to, _ := j.Target(slot + uint64(e.Offset)); to != e.Resume {
				return fmt.Errorf("stop exit %d: its jmp goes to %#x, its Resume is %#x", i, to, e.Resume)
			}
			continue
		}
		if d.Bytes[0] != 0xE9 || d.Len != 5 {
			return fmt.Errorf("exit %d is % x, not jmp rel32", i, d.Bytes)
		}
		if to, _ := d.Target(slot + uint64(e.Offset)); to != e.Resume {
			return fmt.Errorf("exit %d jumps to %#x, its Resume is %#x", i, to, e.Resume)
		}
	}
	next := orig + uint64(inst.Len)
	// The original branch target, by x86asm.
	var target func() uint64
	switch inst.Flow {
	case FlowJmp, FlowJcc, FlowLoop, FlowCall:
		rel, ok := inst.Args[0].(x86asm.Rel)
		if !ok {
			return fmt.Errorf("x86asm gives %q no Rel argument", inst)
		}
		target = func() uint64 { return next + uint64(int64(rel)) }
	}
	wantExits := func(resumes ...uint64) error {
		if len(tr.Exits) != len(resumes) {
			return fmt.Errorf("%d exits, want %d", len(tr.Exits), len(resumes))
		}
		for i, r := range resumes {
			if tr.Exits[i].Resume != r {
				return fmt.Errorf("exit %d resumes at %#x, want %#x", i, tr.Exits[i].Resume, r)
			}
		}
		return nil
	}
	// sameInst checks that the first trampoline instruction is the
	// original one, reading or writing the same absolute address.
	sameInst := func() error {
		d := insts[0]
		if d.Len != inst.Len || d.Op != inst.Op || d.RIPRel != inst.RIPRel {
			return fmt.Errorf("relocated %q is not %q", d, inst)
		}
		if inst.RIPRel {
			a, _ := inst.RIPAddr(orig)
			b, _ := d.RIPAddr(slot)
			if a != b {
				return fmt.Errorf("relocated %q addresses %#x, the original %#x", d, b, a)
			}
			// Everything but the disp32 is unchanged.
			x := bytes.Clone(d.Bytes)
			copy(x[d.DispOff:], inst.Bytes[inst.DispOff:inst.DispOff+4])
			if !bytes.Equal(x, inst.Bytes) {
				return fmt.Errorf("relocated % x differs from % x beyond the disp32", d.Bytes, inst.Bytes)
			}
		} else if !bytes.Equal(d.Bytes, inst.Bytes) {
			return fmt.Errorf("relocated % x is not % x", d.Bytes, inst.Bytes)
		}
		return nil
	}

	switch inst.Flow {
	case FlowNone:
		if err := sameInst(); err != nil {
			return err
		}
		if len(insts) != 2 || len(tr.Exits) != 1 || tr.Exits[0].Offset != inst.Len {
			return fmt.Errorf("want the instruction and one exit after it, have %d instructions, exits %v", len(insts), tr.Exits)
		}
		return wantExits(next)
	case FlowRet, FlowJmpIndirect:
		if err := sameInst(); err != nil {
			return err
		}
		if len(insts) != 1 || len(tr.Exits) != 0 {
			return fmt.Errorf("want the instruction alone, have %d instructions, exits %v", len(insts), tr.Exits)
		}
		return nil
	case FlowJmp:
		if len(insts) != 1 || tr.Exits[0].Offset != 0 {
			return fmt.Errorf("want one exit, have %d instructions", len(insts))
		}
		return wantExits(target())
	case FlowJcc, FlowLoop:
		if err := wantExits(next, target()); err != nil {
			return err
		}
		d := insts[0]
		if d.Op != inst.Op {
			return fmt.Errorf("relocated %q is not %q", d, inst)
		}
		if inst.Flow == FlowLoop && !bytes.Equal(d.Bytes[:d.Len-1], inst.Bytes[:inst.Len-1]) {
			return fmt.Errorf("relocated % x changes more than the rel8 of % x", d.Bytes, inst.Bytes)
		}
		// Not taken: falls through into the first exit; taken: lands
		// on the second.
		if tr.Exits[0].Offset != d.Len || tr.Exits[1].Offset != d.Len+exitLen {
			return fmt.Errorf("exits at %d and %d after a %d-byte branch", tr.Exits[0].Offset, tr.Exits[1].Offset, d.Len)
		}
		if to, _ := d.Target(slot); to != slot+uint64(tr.Exits[1].Offset) {
			return fmt.Errorf("relocated branch goes to %#x, the taken exit is at %#x", to, slot+uint64(tr.Exits[1].Offset))
		}
		return nil
	case FlowCall:
		if err := wantExits(target()); err != nil {
			return err
		}
		return checkPushed(insts[:len(insts)-1], next)
	case FlowCallIndirect:
		// The push, then the call's operand as a jmp, no exit.
		if stop || len(tr.Exits) != 0 || len(insts) < 2 {
			return fmt.Errorf("want the push and a jmp, no exits: %d instructions, exits %v (stop %v)", len(insts), tr.Exits, stop)
		}
		j := insts[len(insts)-1]
		at := slot + uint64(len(tr.Code)-j.Len)
		if j.Flow != FlowJmpIndirect || j.Len != inst.Len || j.RIPRel != inst.RIPRel {
			return fmt.Errorf("relocated %q ends in %q, not its jmp form", inst, j)
		}
		if inst.RIPRel {
			a, _ := inst.RIPAddr(orig)
			b, _ := j.RIPAddr(at)
			if a != b {
				return fmt.Errorf("the jmp addresses %#x, the call %#x", b, a)
			}
		} else if fmt.Sprint(j.Args[0]) != fmt.Sprint(inst.Args[0]) {
			return fmt.Errorf("the jmp's operand %v is not the call's %v", j.Args[0], inst.Args[0])
		}
		return checkPushed(insts[:len(insts)-1], next)
	}
	return fmt.Errorf("unexpected flow %v", inst.Flow)
}

// TestRelocateExact pins the exact code for each flow.
func TestRelocateExact(t *testing.T) {
	orig, slot := uint64(0x400000), uint64(0x400000+gib)
	// jmp rel32 from slot+off to to.
	jmp := func(off int, to uint64) string {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(to-(slot+uint64(off)+5)))
		return fmt.Sprintf("e9 % x", b)
	}
	le32 := func(v uint64) string {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(v))
		return fmt.Sprintf("% x", b)
	}
	for _, tt := range []struct {
		name, hex string
		stop      bool
		want      string
	}{
		{"nop", "90", false, "90 " + jmp(1, orig+1)},
		{"nop stop", "90", true, "90 cc cc cc cc cc"},
		{"mov -0x10(rip),rax", "48 8b 05 f0 ff ff ff", false, "48 8b 05 " + le32(uint64(orig-slot-0x10)) + " " + jmp(7, orig+7)},
		{"jmp rel8", "eb 10", false, jmp(0, orig+2+0x10)},
		{"jmp rel8 stop", "eb 10", true, "cc cc cc cc cc"},
		{"je rel8", "74 10", false, "0f 84 05 00 00 00 " + jmp(6, orig+2) + " " + jmp(11, orig+2+0x10)},
		{"je rel8 stop", "74 10", true, "0f 84 05 00 00 00 cc cc cc cc cc cc cc cc cc cc"},
		{"jne rel32 backwards", "0f 85 f0 ff ff ff", true, "0f 85 05 00 00 00 cc cc cc cc cc cc cc cc cc cc"},
		{"loop", "e2 fe", false, "e2 05 " + jmp(2, orig+2) + " " + jmp(7, orig)},
		{"jecxz keeps 67", "67 e3 10", true, "67 e3 05 cc cc cc cc cc cc cc cc cc cc"},
		{"call rel32", "e8 10 00 00 00", false,
			"48 8d 64 24 f8 c7 04 24 " + le32(orig+5) + " c7 44 24 04 00 00 00 00 " + jmp(20, orig+5+0x10)},
		{"call rel32 stop", "e8 10 00 00 00", true, "48 8d 64 24 f8 c7 04 24 " + le32(orig+5) + " c7 44 24 04 00 00 00 00 cc cc cc cc cc"},
		{"ret", "c3", false, "c3"},
		{"ret imm16", "c2 08 00", false, "c2 08 00"},
		{"jmp *0x10(rip)", "ff 25 10 00 00 00", false, "ff 25 " + le32(uint64(orig-slot+0x10))},
		{"jmp *rax", "ff e0", false, "ff e0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := Decode(unhex(t, tt.hex))
			if err != nil {
				t.Fatal(err)
			}
			tr, err := Relocate(&inst, orig, slot, tt.stop)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("% x", tr.Code); got != tt.want {
				t.Errorf("code\n %s\nwant\n %s", got, tt.want)
			}
			if err := checkTrampoline(&inst, orig, slot, tt.stop, tr); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRelocateCall64 checks the high half of a return address above 4 GiB.
func TestRelocateCall64(t *testing.T) {
	inst, _ := Decode(unhex(t, "e8 00 00 00 00"))
	tr, err := Relocate(&inst, testOrig, testOrig-gib, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkTrampoline(&inst, testOrig, testOrig-gib, true, tr); err != nil {
		t.Error(err)
	}
}

func TestRelocateErrors(t *testing.T) {
	for _, tt := range []struct {
		name, hex  string
		orig, slot uint64
		stop       bool
		want       error
	}{
		{"int3", "cc", testOrig, testOrig + gib, false, ErrRefused},
		{"call *rax with stop exits", "ff d0", testOrig, testOrig + gib, true, ErrNeedsEmulation},
		{"call *(%rsp)", "ff 14 24", testOrig, testOrig + gib, false, ErrNeedsEmulation},
		{"call *0x10(rip) stop", "ff 15 10 00 00 00", testOrig, testOrig + gib, true, ErrNeedsEmulation},
		{"ret stop", "c3", testOrig, testOrig + gib, true, ErrNeedsEmulation},
		{"ret imm16 stop", "c2 08 00", testOrig, testOrig + gib, true, ErrNeedsEmulation},
		{"jmp *rax stop", "ff e0", testOrig, testOrig + gib, true, ErrNeedsEmulation},
		{"rip-relative data 3 GiB from the slot", "48 8b 05 00 00 00 00", testOrig, testOrig + 3*gib, false, ErrFarData},
		{"rip-relative data 3 GiB from the slot, stop", "48 8b 05 00 00 00 00", testOrig, testOrig - 3*gib, true, ErrFarData},
		{"disp32 pushed past 2 GiB", "48 8b 05 00 00 00 7f", testOrig, testOrig - 0x02000000, false, ErrFarData},
		{"exit jmp 3 GiB", "90", testOrig, testOrig + 3*gib, false, ErrFarData},
		{"call target 3 GiB", "e8 00 00 00 00", testOrig, testOrig + 3*gib, false, ErrFarData},
		{"undecodable", "0f 0f", testOrig, testOrig + gib, false, ErrUndecodable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst := Inst{Bytes: unhex(t, tt.hex)}
			inst.Len = len(inst.Bytes)
			_, err := Relocate(&inst, tt.orig, tt.slot, tt.stop)
			if !errors.Is(err, tt.want) {
				t.Errorf("Relocate: %v, want %v", err, tt.want)
			}
		})
	}
	// Far from the code, a branch still relocates with stop exits: the
	// tracer sets rip, no jmp has to reach.
	inst, _ := Decode(unhex(t, "e8 00 00 00 00"))
	if _, err := Relocate(&inst, testOrig, testOrig+3*gib, true); err != nil {
		t.Errorf("call with stop exits, far slot: %v", err)
	}
	// The rebased disp32 may reach exactly to the end of the int32 range.
	inst, _ = Decode(unhex(t, "48 8b 05 00 00 00 00"))
	if _, err := Relocate(&inst, testOrig+0x7fffffff, testOrig, false); err != nil {
		t.Errorf("disp32 0x7fffffff: %v", err)
	}
	// Bytes that hold more than one instruction are not one instruction.
	inst = Inst{Bytes: []byte{0x90, 0x90}, Len: 2}
	if _, err := Relocate(&inst, testOrig, testOrig+gib, false); !errors.Is(err, ErrUndecodable) {
		t.Errorf("two nops: %v", err)
	}
}

// TestRelocateTable relocates every relocatable instruction of the decode
// table, both ways, to a slot 1 GiB above and below.
func TestRelocateTable(t *testing.T) {
	for _, tt := range decodeTests {
		inst, err := Decode(unhex(t, tt.hex))
		if err != nil || inst.Class != ClassRelocate {
			continue
		}
		for _, slot := range []uint64{testOrig + gib, testOrig - gib} {
			for _, stop := range []bool{false, true} {
				tr, err := Relocate(&inst, testOrig, slot, stop)
				if stop && (inst.Flow == FlowRet || inst.Flow == FlowJmpIndirect) {
					if !errors.Is(err, ErrNeedsEmulation) {
						t.Errorf("%s, stop: %v, want ErrNeedsEmulation", tt.name, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", tt.name, err)
					continue
				}
				if err := checkTrampoline(&inst, testOrig, slot, stop, tr); err != nil {
					t.Errorf("%s (slot %+#x, stop %v): %v", tt.name, int64(slot-testOrig), stop, err)
				}
			}
		}
	}
}

// TestLibcRelocate relocates every relocatable instruction of libc's
// functions to a slot 1 GiB away (alternately above and below), with both
// kinds of exits, and checks each trampoline by decoding it.
func TestLibcRelocate(t *testing.T) {
	img := loadLibc(t)
	const base = 0x7f00_0000_0000 // where the library is mapped
	fns := img.funcs
	if testing.Short() && len(fns) > 300 {
		fns = fns[:300]
	}
	var n, rip, emu int
	for i, fn := range fns {
		for pc := 0; pc < len(fn.code); {
			inst, err := Decode(fn.code[pc:])
			if err != nil {
				break
			}
			orig := base + fn.addr + uint64(pc)
			slot := orig + gib
			if i%2 == 1 {
				slot = orig - gib
			}
			for _, stop := range []bool{false, true} {
				tr, err := Relocate(&inst, orig, slot, stop)
				switch {
				case inst.Class == ClassEmulate && inst.Flow == FlowCallIndirect && !stop && err == nil:
					// A no-stop patch's indirect call: checked below.
					n++
					if err := checkTrampoline(&inst, orig, slot, stop, tr); err != nil {
						t.Errorf("%s+%#x %q (stop %v): %v", fn.name, pc, inst, stop, err)
					}
				case inst.Class == ClassEmulate, stop && (inst.Flow == FlowRet || inst.Flow == FlowJmpIndirect):
					if !errors.Is(err, ErrNeedsEmulation) {
						t.Errorf("%s+%#x %q: %v, want ErrNeedsEmulation", fn.name, pc, inst, err)
					}
					emu++
				case inst.Class == ClassRefuse:
					if !errors.Is(err, ErrRefused) {
						t.Errorf("%s+%#x %q: %v, want ErrRefused", fn.name, pc, inst, err)
					}
				case err != nil:
					t.Errorf("%s+%#x %q: %v", fn.name, pc, inst, err)
				default:
					n++
					if inst.RIPRel {
						rip++
					}
					if err := checkTrampoline(&inst, orig, slot, stop, tr); err != nil {
						t.Errorf("%s+%#x %q (stop %v): %v", fn.name, pc, inst, stop, err)
					}
				}
			}
			pc += inst.Len
		}
	}
	t.Logf("%d functions: %d trampolines checked (%d rip-relative), %d need emulation", len(fns), n, rip, emu)
}

// checkPushed runs insts, a relocated call's push, on a model stack: they
// must store next at the new rsp, move rsp by -8, and touch nothing else.
func checkPushed(insts []Inst, next uint64) error {
	const rsp0 = 0x1000
	rsp := uint64(rsp0)
	stack := map[uint64]byte{}
	for _, d := range insts {
		switch d.Op {
		case x86asm.LEA:
			m, ok := d.Args[1].(x86asm.Mem)
			if d.Args[0] != x86asm.RSP || !ok || m.Base != x86asm.RSP || m.Index != 0 {
				return fmt.Errorf("unexpected %q", d)
			}
			rsp += uint64(m.Disp)
		case x86asm.MOV:
			m, ok := d.Args[0].(x86asm.Mem)
			imm, ok2 := d.Args[1].(x86asm.Imm)
			if !ok || !ok2 || m.Base != x86asm.RSP || m.Index != 0 || d.MemBytes != 4 {
				return fmt.Errorf("unexpected %q", d)
			}
			for i := range 4 {
				stack[rsp+uint64(m.Disp)+uint64(i)] = byte(uint32(imm) >> (8 * i))
			}
		default:
			return fmt.Errorf("unexpected %q in a relocated call", d)
		}
	}
	if rsp != rsp0-8 {
		return fmt.Errorf("rsp moved by %d", int64(rsp-rsp0))
	}
	var ret [8]byte
	for i := range ret {
		b, ok := stack[rsp+uint64(i)]
		if !ok {
			return fmt.Errorf("return address byte %d not written", i)
		}
		ret[i] = b
	}
	if len(stack) != 8 {
		return fmt.Errorf("%d stack bytes written", len(stack))
	}
	if got := binary.LittleEndian.Uint64(ret[:]); got != next {
		return fmt.Errorf("pushed %#x, want %#x", got, next)
	}
	return nil
}
