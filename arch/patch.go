package arch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/arch/x86/x86asm"
)

// JmpLen is the length of the jmp rel32 a patched site starts with.
const JmpLen = 5

// ErrNotPatchable is wrapped by PatchSpan when a site cannot take a jmp
// over its first instructions; the message says why.
var ErrNotPatchable = errors.New("cannot be patched with a jmp")

// Span is the instructions a jmp rel32 at a site replaces: whole
// instructions from the site, JmpLen bytes or more.
type Span struct {
	Insts []Inst
	Len   int // their bytes in all, and Pad's
	// Pad is the alignment padding after the function that the jmp
	// covers too, when the function's last instruction (a ret or jmp)
	// ends the span before JmpLen bytes: never run, kept to be put back.
	Pad []byte
}

// PatchSpan finds the instructions a jmp rel32 at offset site of a
// function would replace, and checks that the jmp can take their place
// while other threads run the function: fn holds the whole function's
// code (its first byte at offset 0). The rules (docs/DESIGN.md §8):
//   - the replaced instructions lie inside the function;
//   - each can run out of line with a plain fall-through to the next
//     (ClassRelocate); a call, ret or jmp may only be the last one, as the
//     code after it is reached by a return or not at all; an instruction
//     the relocator cannot move (ClassEmulate, ClassRefuse) stops it;
//   - no direct branch of the function lands inside the replaced bytes
//     (on the site itself is fine: that is a new hit), which is proved by
//     decoding the whole function;
//   - the function has no indirect jmp: a jump table could land anywhere.
//
// What PatchSpan cannot see is left to the caller: threads whose rip is
// inside the replaced bytes, code of other functions that jumps in,
// exception landing pads.
func PatchSpan(fn []byte, site int) (Span, error) {
	return PatchSpanPadded(fn, nil, site)
}

// PatchSpanPadded is PatchSpan for a function followed by pad, bytes that
// belong to no function (the caller knows: no symbol or unwind entry
// covers them). A function too short for the jmp, whose last instruction
// is a ret or a jmp, may take the rest of its bytes from the padding
// when they are nops or int3s: nothing runs them, and nothing jumps
// there. A 1-byte function of just ret (the dynamic linker's
// _dl_debug_state) is patchable so.
func PatchSpanPadded(fn, pad []byte, site int) (Span, error) {
	var sp Span
	if site < 0 || site >= len(fn) {
		return sp, fmt.Errorf("site +%#x outside the function (%d bytes): %w", site, len(fn), ErrNotPatchable)
	}
	for sp.Len < JmpLen {
		at := site + sp.Len
		if at >= len(fn) {
			if n := len(sp.Insts); n > 0 && (sp.Insts[n-1].Flow == FlowRet || sp.Insts[n-1].Flow == FlowJmp) {
				need := JmpLen - sp.Len
				if err := isPadding(pad, need); err != nil {
					return sp, fmt.Errorf("the function ends %d bytes after the site, %w: %w", len(fn)-site, err, ErrNotPatchable)
				}
				sp.Pad = append([]byte(nil), pad[:need]...)
				sp.Len += need
				break
			}
			return sp, fmt.Errorf("the function ends %d bytes after the site: %w", len(fn)-site, ErrNotPatchable)
		}
		inst, err := Decode(fn[at:])
		if err != nil {
			return sp, fmt.Errorf("+%#x: %w (%w)", at, ErrNotPatchable, err)
		}
		if at+inst.Len > len(fn) {
			return sp, fmt.Errorf("+%#x: the instruction runs past the function's end: %w", at, ErrNotPatchable)
		}
		if inst.Class != ClassRelocate && !indirectCallMoves(&inst) {
			return sp, fmt.Errorf("+%#x: %q cannot run out of line in a patch: %w", at, inst.String(), ErrNotPatchable)
		}
		sp.Insts = append(sp.Insts, inst)
		sp.Len += inst.Len
		if inst.Flow != FlowNone && inst.Flow != FlowJcc && inst.Flow != FlowLoop && sp.Len < JmpLen && !(at+inst.Len == len(fn) && pad != nil) {
			return sp, fmt.Errorf("+%#x: %q leaves the replaced bytes before their end: %w", at, inst.String(), ErrNotPatchable)
		}
	}
	lo, hi := site, site+sp.Len
	for pos := 0; pos < len(fn); {
		inst, err := Decode(fn[pos:])
		if err != nil {
			return sp, fmt.Errorf("function at +%#x: %w (%w)", pos, ErrNotPatchable, err)
		}
		switch inst.Flow {
		case FlowJmpIndirect:
			return sp, fmt.Errorf("the function has an indirect jmp at +%#x (a jump table could land in the replaced bytes): %w", pos, ErrNotPatchable)
		case FlowJmp, FlowJcc, FlowLoop, FlowCall:
			if to, ok := inst.Target(uint64(pos)); ok && int64(to) > int64(lo) && int64(to) < int64(hi) {
				return sp, fmt.Errorf("%q at +%#x branches into the replaced bytes (+%#x): %w", inst.String(), pos, to, ErrNotPatchable)
			}
		}
		pos += inst.Len
	}
	return sp, nil
}

// indirectCallMoves reports whether inst is an indirect call that a patch
// can run out of line (Relocate without stop exits: the push of its
// return address, then a jmp through the same operand), which the stop
// path emulates instead: -pg's "call *mcount@GOTPCREL(%rip)" in a
// function's first bytes.
func indirectCallMoves(inst *Inst) bool {
	if inst.Class != ClassEmulate || inst.Flow != FlowCallIndirect {
		return false
	}
	_, err := Relocate(inst, 0, 0, false)
	return err == nil
}

// isPadding checks that the first n bytes of pad are alignment padding:
// whole or partial nops, or int3s.
func isPadding(pad []byte, n int) error {
	if len(pad) < n {
		return fmt.Errorf("%d bytes of padding after it, %d needed", len(pad), n)
	}
	for pos := 0; pos < n; {
		if pad[pos] == 0xcc {
			pos++
			continue
		}
		inst, err := Decode(pad[pos:])
		if err != nil || inst.Op != x86asm.NOP {
			return fmt.Errorf("the bytes after it are not padding (+%d)", pos)
		}
		pos += inst.Len
	}
	return nil
}

// RelocateSpan builds the out-of-line copy of the span's instructions,
// originally at orig, to run from slot: each relocated in turn, the
// fall-through of one running into the next, branches within the span
// kept within the copy, and a jmp back to orig+Len after the last (unless
// it leaves by itself: jmp, ret, or a call whose return is at orig+Len).
// A branch to orig (the site) goes to the original code: through the
// patch again, which is a new hit.
func RelocateSpan(sp Span, orig, slot uint64) ([]byte, error) {
	code, _, err := RelocateSpanHeads(sp, orig, slot)
	return code, err
}

// RelocateSpanHeads is RelocateSpan, and also returns where each of the
// span's instructions starts in the code: heads[i] for sp.Insts[i]. A
// thread stopped (a fault) inside the copy at slot+k, heads[i] <= k <
// heads[i+1], is in instruction i, originally at orig plus the lengths
// of the ones before it.
func RelocateSpanHeads(sp Span, orig, slot uint64) ([]byte, []int, error) {
	var code []byte
	heads := make(map[uint64]int) // original address -> offset in code
	var starts []int
	type fix struct {
		at     int // offset of a rel32 to aim at a head
		target uint64
	}
	var fixes []fix
	pc := orig
	for i := range sp.Insts {
		inst := &sp.Insts[i]
		heads[pc] = len(code)
		starts = append(starts, len(code))
		t, err := Relocate(inst, pc, slot+uint64(len(code)), false)
		if err != nil {
			return nil, nil, err
		}
		last := i == len(sp.Insts)-1
		body := t.Code
		exits := t.Exits
		if !last && inst.Flow == FlowNone {
			// Drop the exit to the next instruction: it follows.
			body = body[:exits[0].Offset]
			exits = nil
		}
		for _, e := range exits {
			if e.Resume > orig && e.Resume < orig+uint64(sp.Len) {
				fixes = append(fixes, fix{at: len(code) + e.Offset + 1, target: e.Resume})
			}
		}
		code = append(code, body...)
		pc += uint64(inst.Len)
	}
	for _, f := range fixes {
		off, ok := heads[f.target]
		if !ok {
			return nil, nil, fmt.Errorf("relocate the span at %#x: a branch to %#x, inside an instruction of the span: %w", orig, f.target, ErrNotPatchable)
		}
		rel := int64(off) - int64(f.at+4)
		if rel < math.MinInt32 || rel > math.MaxInt32 {
			return nil, nil, fmt.Errorf("relocate the span at %#x: %w", orig, ErrFarData)
		}
		binary.LittleEndian.PutUint32(code[f.at:], uint32(int32(rel)))
	}
	return code, starts, nil
}

// Jmp is the encoding of jmp rel32 at from to to, and whether it reaches.
func Jmp(from, to uint64) ([]byte, bool) {
	rel := int64(to - (from + JmpLen))
	if rel < math.MinInt32 || rel > math.MaxInt32 {
		return nil, false
	}
	b := []byte{0xE9, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(rel)))
	return b, true
}
