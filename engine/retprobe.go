package engine

import (
	"errors"
	"fmt"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Return probes. On C code (and anything that does not move its stacks)
// the entry replaces the return address on the stack with the return
// trampoline, an int3 in the slot region, and pushes the real one on the
// thread's shadow stack; the trampoline's stop fires the probe and sends
// the thread to the real return address. On Go code, whose goroutine
// stacks move, the function's ret instructions are probed instead.

// hijackReturn replaces the return address at the top of t's stack (the
// thread is on the first instruction of the function) with the return
// trampoline and remembers the real one.
func (s *Session) hijackReturn(t *thread, st *site) error {
	as := t.proc.as
	if as.retTramp == 0 {
		return errors.New("no return trampoline")
	}
	sp := t.regs.Rsp
	ret, err := as.mem.ReadUint64(sp)
	if err != nil {
		return fmt.Errorf("return probe at 0x%x: %w", st.addr, err)
	}
	if ret != as.retTramp {
		// Frames at or below this one are dead: skipped by longjmp or
		// an exception, they will never return. (A frame at the same
		// address is alive only in a tail call, whose return address
		// is already the trampoline.)
		for len(t.shadow) > 0 && t.shadow[len(t.shadow)-1].sp <= sp {
			t.shadow = t.shadow[:len(t.shadow)-1]
		}
		if err := as.mem.WriteUint64(sp, as.retTramp); err != nil {
			return fmt.Errorf("return probe at 0x%x: %w", st.addr, err)
		}
	}
	t.shadow = append(t.shadow, retFrame{sp: sp, ret: ret, site: st, entryNS: s.now()})
	t.shadow[len(t.shadow)-1].entry.save(&t.regs)
	return nil
}

// returnHit is a function returning through the return trampoline.
func (s *Session) returnHit(t *thread) error {
	if err := s.takeReturn(t); err != nil {
		return err
	}
	return s.setRegsAndResume(t, 0)
}

// takeReturn fires the return probes of the frame t returns from and sets
// t.regs.Rip to the real return address.
func (s *Session) takeReturn(t *thread) error {
	sp := t.regs.Rsp - 8 // where the hijacked return address was
	// Frames deeper than the returning one were skipped (longjmp,
	// exception unwinding): drop them without firing.
	for len(t.shadow) > 0 && t.shadow[len(t.shadow)-1].sp < sp {
		t.shadow = t.shadow[:len(t.shadow)-1]
	}
	if len(t.shadow) == 0 || t.shadow[len(t.shadow)-1].sp != sp {
		return fmt.Errorf("thread %d returned through the return trampoline with no matching frame (sp 0x%x)", t.tid, sp)
	}
	fr := t.shadow[len(t.shadow)-1]
	t.shadow = t.shadow[:len(t.shadow)-1]
	// In a tail call fr.ret is the trampoline itself: the caller's
	// frame, at the same stack address, returns next.
	t.regs.Rip = fr.ret
	t.at = hitPoint{fr.site.addr, fr.site.fileBase}
	now := s.now()
	t.entry = &fr.entry
	for _, p := range fr.site.ret {
		s.fireReturn(t, p, fr.site.addr, fr.ret, now-fr.entryNS)
	}
	t.entry = nil
	t.at = hitPoint{}
	return nil
}

// fireReturn counts a return of p's function and runs its handler.
func (s *Session) fireReturn(t *thread, p probeRef, fn, ret, dur uint64) {
	if t.proc.unfollowed {
		return
	}
	p.hits.Add(1)
	if p.handlers.Return != nil {
		p.handlers.Return(t)
	}
	s.emit(t, p, fn, ret, dur)
}

// goFrame is the entry of a Go function with a return probe.
type goFrame struct {
	fn      uint64
	entryNS uint64
	entry   entryRegs
}

// goFrameKey identifies a frame of a goroutine, in a way that survives
// the runtime copying the goroutine's stack to grow it: the goroutine's g
// (which does not move) and the frame's depth below the stack's top
// (copystack keeps it). A goroutine runs on any thread, but its depth at
// a function's ret is the one it had at the entry. Code not in Go's
// register ABI has no g at hand: its frames are keyed by stack pointer.
type goFrameKey struct{ g, depth uint64 }

// maxGoFrames bounds the entries kept: entries whose return is never seen
// (a panic, a goroutine that exits by runtime.Goexit) would pile up.
const maxGoFrames = 1 << 16

// goFrameKeyOf is the key of the frame t is in, at the entry or a ret of
// a function of the given ABI.
func goFrameKeyOf(t *thread, abi uprobe.ABI) goFrameKey {
	sp := t.regs.Rsp
	if abi != uprobe.GoRegs {
		return goFrameKey{depth: sp}
	}
	// g.stack.hi is the second word of runtime.g, which the runtime's
	// own assembly reads at that offset.
	g := arch.GoGReg.Get(&t.regs)
	hi, err := t.proc.as.mem.ReadUint64(g + 8)
	if err != nil || hi < sp {
		return goFrameKey{depth: sp}
	}
	return goFrameKey{g: g, depth: hi - sp}
}

// goEntered records the entry of Go functions with return probes: when,
// and the argument registers.
func (s *Session) goEntered(t *thread, st *site) {
	p := t.proc
	if p.goFrames == nil || len(p.goFrames) > maxGoFrames {
		p.goFrames = make(map[goFrameKey]goFrame)
	}
	// A frame already at this key is dead: a goroutine has one frame
	// at a depth at a time (one left by a panic is replaced here).
	fr := goFrame{fn: st.addr, entryNS: s.now()}
	fr.entry.save(&t.regs)
	p.goFrames[goFrameKeyOf(t, st.loc.ABI)] = fr
}

// goReturn fires a Go return probe at one of its function's rets.
func (s *Session) goReturn(t *thread, st *site, r retAt) {
	var dur uint64
	p := t.proc
	k := goFrameKeyOf(t, r.abi)
	t.entry = nil
	if fr, ok := p.goFrames[k]; ok && fr.fn == r.fn {
		dur, t.goEntry = s.now()-fr.entryNS, fr.entry
		t.entry = &t.goEntry
		delete(p.goFrames, k)
	}
	ret, _ := p.as.mem.ReadUint64(t.regs.Rsp)
	saved := t.at
	t.at = hitPoint{r.fn, st.fileBase}
	s.fireReturn(t, r.probeRef, r.fn, ret, dur)
	t.at, t.entry = saved, nil
}

// C++ exceptions: the unwinder reads return addresses to find the frames
// to unwind, and a return trampoline has no unwind entry, so it would give
// up (std::terminate). When unwinding starts, the thread's hijacked return
// addresses are put back; when a handler catches the exception, those of
// the frames still alive are hijacked again, and the others are dropped.

// unwindStart are the functions of libgcc's unwinder that start walking the
// stack; unwindCaught is called by the handler that caught an exception.
var (
	unwindStart  = []string{"_Unwind_RaiseException", "_Unwind_ForcedUnwind", "_Unwind_Resume_or_Rethrow"}
	unwindCaught = []string{"__cxa_begin_catch"}
)

// armUnwindHooks puts the engine's breakpoints on the unwinder functions
// that mapping m's file defines.
func (s *Session) armUnwindHooks(t *thread, m elfsym.Mapping) error {
	f := s.mappedFile(t.proc.pid, m)
	if f == nil {
		return nil
	}
	hook := func(names []string, action func(*thread) error) error {
		for _, name := range names {
			if _, err := f.Lookup(name); err != nil {
				continue
			}
			loc, err := resolve.In(f, &uprobe.Spec{Text: name, Path: f.Path, Symbol: name})
			if err != nil {
				return fmt.Errorf("return probes cannot follow C++ exceptions through %s: %w", f.Path, err)
			}
			addr, ok := m.Addr(loc.Offset)
			if !ok {
				continue
			}
			if err := s.armSite(t, addr, addr-loc.Offset, &sitePlan{loc: &loc}, action); err != nil {
				return err
			}
		}
		return nil
	}
	if err := hook(unwindStart, s.unwindStarts); err != nil {
		return err
	}
	return hook(unwindCaught, s.unwindCaught)
}

// unwindStarts puts back the real return addresses of t's hijacked frames.
func (s *Session) unwindStarts(t *thread) error {
	as := t.proc.as
	for i := range t.shadow {
		fr := &t.shadow[i]
		if fr.restored || fr.ret == as.retTramp {
			continue
		}
		if err := as.mem.WriteUint64(fr.sp, fr.ret); err != nil {
			return fmt.Errorf("thread %d: restore a return address for unwinding: %w", t.tid, err)
		}
		fr.restored = true
	}
	return nil
}

// unwindCaught hijacks again the return addresses of the frames that the
// exception left alive (above the catching frame's stack pointer) and
// forgets the unwound ones.
func (s *Session) unwindCaught(t *thread) error {
	as := t.proc.as
	sp := t.regs.Rsp
	keep := t.shadow[:0]
	for _, fr := range t.shadow {
		if fr.restored {
			if fr.sp <= sp {
				continue // unwound
			}
			if err := as.mem.WriteUint64(fr.sp, as.retTramp); err != nil {
				return fmt.Errorf("thread %d: hijack a return address again after a catch: %w", t.tid, err)
			}
			fr.restored = false
		}
		keep = append(keep, fr)
	}
	t.shadow = keep
	return nil
}

// Go's stack-split prologue: a function whose frame does not fit in what
// is left of its goroutine's stack calls runtime.morestack, which copies
// the stack to a bigger one (or lets the goroutine be preempted) and then
// runs the function again from its first instruction. Its entry
// instruction runs twice for one call; the second time is not reported.

// willRestart records, at the morestack call of the Go function entered
// at fn, that the goroutine of t will enter fn again.
func (p *process) willRestart(t *thread, fn uint64) {
	if p.restarts == nil {
		p.restarts = make(map[uint64]uint64)
	}
	p.restarts[arch.GoGReg.Get(&t.regs)] = fn
}

// restarted reports whether t, at the entry fn of a Go function, enters it
// again after a morestack call rather than in a call of its own.
func (p *process) restarted(t *thread, fn uint64) bool {
	g := arch.GoGReg.Get(&t.regs)
	if f, ok := p.restarts[g]; ok && f == fn {
		delete(p.restarts, g)
		return true
	}
	return false
}
