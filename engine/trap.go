package engine

import (
	"errors"
	"fmt"

	"github.com/ptprobe/ptprobe/arch"
)

// int3 is the breakpoint instruction.
const int3 = 0xcc

// trapStrategy takes a site's hits with one ptrace stop each: an int3
// over the first byte of the probed instruction; at the stop the handlers
// run and the thread continues in a trampoline in a slot region, the
// displaced instruction relocated and a jmp back (docs/DESIGN.md §3). With
// post handlers the trampoline ends in an int3 instead: a second stop. An
// instruction that cannot run out of line (indirect call, ret or indirect
// jmp under a post handler) is emulated by the tracer instead.
type trapStrategy struct {
	// emulate: the tracer performs the instruction (no trampoline).
	emulate bool
	// post: the trampoline stops at its exits (post handlers).
	post bool
	// tramp is the trampoline's address, 0 when emulated, and exits its
	// exits (jmp or int3) with where each resumes.
	tramp uint64
	exits []exitStop
}

// exitStop is an exit of a trampoline: the jmp back, or with post handlers
// the int3 where the post handlers run.
type exitStop struct {
	site   *site
	addr   uint64 // of the exit's int3 or jmp
	resume uint64
}

func (ts *trapStrategy) original(st *site) []byte { return st.loc.Inst.Bytes }
func (ts *trapStrategy) lacksPost() bool          { return !ts.post && !ts.emulate }

func (ts *trapStrategy) arm(s *Tracer, t *thread, st *site) error {
	ts.post = st.post
	if st.loc.Inst.Class == arch.ClassEmulate {
		ts.emulate = true
	} else if err := ts.writeTrampoline(s, t, st); err != nil {
		if !errors.Is(err, arch.ErrNeedsEmulation) {
			return err
		}
		ts.emulate = true
	}
	// The trampoline is in place before the int3 that leads to it.
	_, err := t.proc.as.mem.WriteMemory(st.addr, []byte{int3})
	return err
}

// writeTrampoline relocates the site's instruction into a slot region.
func (ts *trapStrategy) writeTrampoline(s *Tracer, t *thread, st *site) error {
	as := t.proc.as
	// The trampoline's length does not depend on where it goes, so
	// relocate once to learn it, then for real at its address.
	probe, err := arch.Relocate(&st.loc.Inst, st.addr, st.addr, ts.post)
	if err != nil {
		return err
	}
	r, err := s.regionFor(t, st.addr, len(probe.Code))
	if err != nil {
		return err
	}
	tr, err := arch.Relocate(&st.loc.Inst, st.addr, r.next, ts.post)
	if err != nil {
		return err
	}
	if _, err := as.mem.WriteMemory(r.next, tr.Code); err != nil {
		return err
	}
	ts.tramp = r.next
	r.tramps = append(r.tramps, trampRef{start: r.next, end: r.next + uint64(len(tr.Code)), site: st})
	r.next += uint64(len(tr.Code))
	for _, e := range tr.Exits {
		ex := exitStop{site: st, addr: ts.tramp + uint64(e.Offset), resume: e.Resume}
		ts.exits = append(ts.exits, ex)
		if ts.post {
			as.exits[ex.addr] = ex
		}
	}
	return nil
}

func (ts *trapStrategy) disarm(mem *memory, st *site) error {
	_, err := mem.WriteMemory(st.addr, st.loc.Inst.Bytes[:1])
	return err
}

func (ts *trapStrategy) evacuate(st *site, regs *arch.Regs) bool {
	switch {
	case ts.tramp == 0:
		return false
	case regs.Rip == ts.tramp:
		regs.Rip = st.addr // about to run the displaced instruction
		return true
	}
	for _, ex := range ts.exits {
		if regs.Rip == ex.addr {
			regs.Rip = ex.resume // it ran; about to jump back
			return true
		}
	}
	// Elsewhere in it (in a system call made in the slot, or in a
	// rewritten call) the thread finishes there: the slot region stays
	// mapped and jumps back by itself.
	return false
}

// releaseExits makes every stop exit of the trampolines of as a jmp to
// where it resumes (arch.ExitJump), for when no tracer handles their int3s
// any more: a thread can still reach one, interrupted by a signal in a
// trampoline and returning there from its handler, or a fork child let go
// with its copy of a trampoline it forked from.
func (as *addrSpace) releaseExits(warn func(error)) {
	for addr, ex := range as.exits {
		jmp, err := arch.ExitJump(addr, ex.resume)
		if err == nil {
			_, err = as.mem.WriteMemory(addr, jmp)
		}
		if err != nil {
			warn(fmt.Errorf("trampoline exit at %#x: %w", addr, err))
		}
	}
}

// trampolineOf returns the trap strategy of st, nil for another strategy.
func trampolineOf(st *site) *trapStrategy {
	ts, _ := st.strategy.(*trapStrategy)
	return ts
}
