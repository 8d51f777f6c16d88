package engine

import (
	"errors"
	"fmt"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Return probes (docs/DESIGN.md §5). On C code (and anything that does not
// move its stacks) the entry replaces the return address on the stack with
// the return trampoline, an int3 in the first slot region, and pushes the
// real one on the thread's shadow stack; the trampoline's stop fires the
// probes and sends the thread to the real return address. On Go code,
// whose goroutine stacks move, the function's ret instructions are probed
// instead, and entries are paired with rets by goroutine and depth. Each
// frame keeps the argument registers of the entry, for $argN at the
// return, and what the probes' Entry handlers returned.

// threadReturns is a thread's part of the return probes.
type threadReturns struct {
	// shadow is the shadow stack: the return addresses the engine
	// replaced, innermost last.
	shadow []retFrame
	// While the probes of a return run: the entry's argument registers
	// (nil when the entry was not seen) and the Entry handler's data.
	entry *entryRegs
	data  uint64
	// goEntry holds the entry registers of a Go return while its probes
	// run (its frame is gone from the books by then).
	goEntry entryRegs
}

// processReturns is a process's part of the return probes of Go code.
type processReturns struct {
	// goFrames are the entries of Go functions with return probes (see
	// goFrameKey).
	goFrames map[goFrameKey]goFrame
	// restarts are, by goroutine (its g), the Go function entry that
	// goroutine will run again once runtime.morestack returns.
	restarts map[uint64]uint64
	// sweepAt is the number of goFrames at which dead ones are swept.
	sweepAt int
}

// retFrame is one hijacked return address.
type retFrame struct {
	sp      uint64 // where the return address sits on the stack
	ret     uint64 // the real return address
	fn      uint64 // the function's entry
	base    uint64 // address of offset 0 of its file
	entryNS uint64 // when the function was entered
	entry   entryRegs
	probes  frameProbes
	// restored: the real return address is back on the stack while an
	// exception unwinds (see unwindStarts).
	restored bool
}

// frameProbes are the return probes a frame fires at its return, with the
// data of their Entry handlers. Most frames have one or two: they are kept
// inline, without an allocation per entry.
type frameProbes struct {
	n      int
	inline [2]frameProbe
	more   []frameProbe
}

type frameProbe struct {
	probeRef
	data uint64
}

func (fp *frameProbes) add(p frameProbe) {
	if fp.n < len(fp.inline) {
		fp.inline[fp.n] = p
	} else {
		fp.more = append(fp.more, p)
	}
	fp.n++
}

func (fp *frameProbes) at(i int) *frameProbe {
	if i < len(fp.inline) {
		return &fp.inline[i]
	}
	return &fp.more[i-len(fp.inline)]
}

// find returns the entry of probe p, nil if p did not track this call.
func (fp *frameProbes) find(p *Probe) *frameProbe {
	for i := 0; i < fp.n; i++ {
		if f := fp.at(i); f.Probe == p {
			return f
		}
	}
	return nil
}

// entryRegs are the argument registers of both ABIs (uprobe.SysV and
// uprobe.GoRegs) as a function had them at its entry: what a return
// probe's $argN reads (uprobe.OpEntryReg).
type entryRegs [len(entryRegList)]uint64

var entryRegList = [...]arch.Reg{arch.RAX, arch.RBX, arch.RCX, arch.RDX, arch.RSI, arch.RDI, arch.R8, arch.R9, arch.R10, arch.R11}

// save records the argument registers of regs.
func (e *entryRegs) save(regs *arch.Regs) {
	for i, r := range entryRegList {
		e[i] = r.Get(regs)
	}
}

// entryReg is r as the function being returned from had it at its entry.
func (tr *threadReturns) entryReg(r arch.Reg) (uint64, bool) {
	if tr.entry == nil {
		return 0, false
	}
	for i, er := range entryRegList {
		if er == r {
			return tr.entry[i], true
		}
	}
	return 0, false
}

// entered runs the Entry handlers of the return breaklets of kind k of st
// and returns the probes that track this call.
func (s *Tracer) entered(t *thread, st *site, k breakletKind) frameProbes {
	var fp frameProbes
	for _, b := range st.breaklets {
		if b.kind != k || !b.active() {
			continue
		}
		f := frameProbe{probeRef: b.probeRef}
		if b.handlers.Entry != nil {
			var track bool
			if f.data, track = b.handlers.Entry(t); !track {
				continue
			}
		}
		fp.add(f)
	}
	return fp
}

// hijackReturn replaces the return address at the top of t's stack (the
// thread is on the first instruction of the function) with the return
// trampoline and remembers the real one.
func (s *Tracer) hijackReturn(t *thread, st *site) error {
	as := t.proc.as
	if as.retTramp == 0 {
		return errors.New("no return trampoline")
	}
	probes := s.entered(t, st, returnBreaklet)
	if probes.n == 0 {
		return nil // every probe's Entry handler declined this call
	}
	sp := t.regs.Rsp
	ret, err := as.mem.ReadUint64(sp)
	if err != nil {
		return fmt.Errorf("return probe at 0x%x: %w", st.addr, err)
	}
	tr := &t.returns
	if ret != as.retTramp {
		// Frames at or below this one are dead: skipped by longjmp or
		// an exception, they will never return. (A frame at the same
		// address is alive only in a tail call, whose return address
		// is already the trampoline.)
		for len(tr.shadow) > 0 && tr.shadow[len(tr.shadow)-1].sp <= sp {
			tr.shadow = tr.shadow[:len(tr.shadow)-1]
		}
		if err := as.mem.WriteUint64(sp, as.retTramp); err != nil {
			return fmt.Errorf("return probe at 0x%x: %w", st.addr, err)
		}
	}
	tr.shadow = append(tr.shadow, retFrame{sp: sp, ret: ret, fn: st.addr, base: st.fileBase, entryNS: t.hitNS, probes: probes})
	tr.shadow[len(tr.shadow)-1].entry.save(&t.regs)
	return nil
}

// returnHit is a function returning through the return trampoline.
func (s *Tracer) returnHit(t *thread) error {
	if err := s.takeReturn(t); err != nil {
		return err
	}
	return t.setRegsAndResume(0)
}

// takeReturn fires the return probes of the frame t returns from and sets
// t.regs.Rip to the real return address.
func (s *Tracer) takeReturn(t *thread) error {
	tr := &t.returns
	sp := t.regs.Rsp - 8 // where the hijacked return address was
	// Frames deeper than the returning one were skipped (longjmp,
	// exception unwinding): drop them without firing.
	for len(tr.shadow) > 0 && tr.shadow[len(tr.shadow)-1].sp < sp {
		tr.shadow = tr.shadow[:len(tr.shadow)-1]
	}
	if len(tr.shadow) == 0 || tr.shadow[len(tr.shadow)-1].sp != sp {
		return fmt.Errorf("thread %d returned through the return trampoline with no matching frame (sp 0x%x)", t.tid, sp)
	}
	fr := tr.shadow[len(tr.shadow)-1]
	tr.shadow = tr.shadow[:len(tr.shadow)-1]
	// In a tail call fr.ret is the trampoline itself: the caller's
	// frame, at the same stack address, returns next.
	t.regs.Rip = fr.ret
	now := s.now()
	tr.entry = &fr.entry
	for i := 0; i < fr.probes.n; i++ {
		f := fr.probes.at(i)
		t.at = hitPoint{fr.fn, fr.base}
		tr.data = f.data
		s.fireReturn(t, f.probeRef, fr.fn, fr.ret, now-fr.entryNS, now)
	}
	tr.entry, tr.data = nil, 0
	t.at = hitPoint{}
	return nil
}

// fireReturn counts a return of p's function and runs its handler.
func (s *Tracer) fireReturn(t *thread, p probeRef, fn, ret, dur, at uint64) {
	if t.proc.unfollowed || !p.active() {
		return
	}
	p.hits.Add(1)
	if p.handlers.Return != nil {
		p.handlers.Return(t)
	}
	s.emit(t, p, fn, ret, dur, at)
}

// restore puts back the real return addresses of t's hijacked frames, for
// a detach: as the thread runs on untraced, they return normally.
func (tr *threadReturns) restore(as *addrSpace) error {
	for _, fr := range tr.shadow {
		if !fr.restored && fr.ret != as.retTramp {
			if err := as.mem.WriteUint64(fr.sp, fr.ret); err != nil {
				return fmt.Errorf("put back a return address at 0x%x: %w", fr.sp, err)
			}
		}
	}
	tr.shadow = nil
	return nil
}

// goFrame is the entry of a Go function with a return probe.
type goFrame struct {
	fn      uint64
	entryNS uint64
	entry   entryRegs
	probes  frameProbes
}

// goFrameKey identifies a frame of a goroutine, in a way that survives
// the runtime copying the goroutine's stack to grow it: the goroutine's g
// (which does not move) and the frame's depth below the stack's top
// (copystack keeps it). A goroutine runs on any thread, but its depth at
// a function's ret is the one it had at the entry. Code not in Go's
// register ABI has no g at hand: its frames are keyed by stack pointer.
type goFrameKey struct{ g, depth uint64 }

// Entries whose return is never seen (a panic, a goroutine that exits by
// runtime.Goexit) would pile up: when the entries reach sweepAt (first
// goFramesFirstSweep), the provably dead ones are swept (sweepGoFrames),
// and sweepAt doubles when that leaves more than half. A live entry is
// never dropped for room; past maxGoFrames a new entry is not kept, and
// its probes count the call missed (its return is reported unpaired).
const (
	goFramesFirstSweep = 1 << 16
	maxGoFrames        = 1 << 22
)

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

// goEntered records the entry of a Go function with return probes: when,
// the argument registers, and the probes that track the call.
func (s *Tracer) goEntered(t *thread, st *site) {
	pr := &t.proc.returns
	if pr.goFrames == nil {
		pr.goFrames = make(map[goFrameKey]goFrame)
		pr.sweepAt = goFramesFirstSweep
	}
	k := goFrameKeyOf(t, st.loc.ABI)
	// A frame already at this key is dead: a goroutine has one frame
	// at a depth at a time (one left by a panic is replaced here).
	if _, ok := pr.goFrames[k]; !ok && len(pr.goFrames) >= pr.sweepAt {
		pr.sweepGoFrames(t.proc.as.mem, k)
		if len(pr.goFrames) > pr.sweepAt/2 && pr.sweepAt < maxGoFrames {
			pr.sweepAt *= 2
		}
		if len(pr.goFrames) >= maxGoFrames {
			for _, b := range st.breaklets {
				if b.kind == goEntryBreaklet && b.active() {
					b.missed.Add(1)
				}
			}
			return
		}
	}
	fr := goFrame{fn: st.addr, entryNS: t.hitNS, probes: s.entered(t, st, goEntryBreaklet)}
	fr.entry.save(&t.regs)
	pr.goFrames[k] = fr
}

// sweepGoFrames forgets the entries whose frames are provably gone, the
// frame of a new entry being at key cur: those of cur's goroutine at its
// depth or deeper (it has come back above them), those of a goroutine
// whose g has no stack any more (dead), and those deeper than their
// goroutine's whole stack (a live frame is inside it: copystack keeps
// depths, and shrinks a stack only to what is in use). Entries keyed by
// stack pointer (code without a g at hand) prove nothing and are kept.
func (pr *processReturns) sweepGoFrames(mem *memory, cur goFrameKey) {
	size := make(map[uint64]uint64) // g → g.stack.hi - g.stack.lo, 0: no stack
	for k := range pr.goFrames {
		if k.g == 0 {
			continue
		}
		if k.g == cur.g && k.depth >= cur.depth {
			delete(pr.goFrames, k)
			continue
		}
		n, ok := size[k.g]
		if !ok {
			// g.stack is runtime.g's first two words (lo, hi), which
			// the runtime's assembly reads at those offsets.
			lo, err1 := mem.ReadUint64(k.g)
			hi, err2 := mem.ReadUint64(k.g + 8)
			if err1 != nil || err2 != nil {
				n = ^uint64(0) // unreadable: prove nothing
			} else if hi > lo {
				n = hi - lo
			}
			size[k.g] = n
		}
		if n == 0 || k.depth > n {
			delete(pr.goFrames, k)
		}
	}
}

// goReturn fires the Go return probes of the function t returns from, at
// one of its rets: the breaklets of st for the same function fn.
func (s *Tracer) goReturn(t *thread, st *site, fn uint64, abi uprobe.ABI) {
	pr, tr := &t.proc.returns, &t.returns
	k := goFrameKeyOf(t, abi)
	var dur uint64
	now := s.now()
	fr, paired := pr.goFrames[k]
	if paired && fr.fn == fn {
		dur, tr.goEntry = now-fr.entryNS, fr.entry
		tr.entry = &tr.goEntry
		delete(pr.goFrames, k)
	} else {
		paired = false
	}
	ret, _ := t.proc.as.mem.ReadUint64(t.regs.Rsp)
	saved := t.at
	for _, b := range st.breaklets {
		if b.kind != goReturnBreaklet || b.fn != fn {
			continue
		}
		tr.data = 0
		if paired {
			f := fr.probes.find(b.Probe)
			if f == nil {
				continue // its Entry handler declined this call
			}
			tr.data = f.data
		}
		t.at = hitPoint{fn, st.fileBase}
		s.fireReturn(t, b.probeRef, fn, ret, dur, now)
	}
	t.at, tr.entry, tr.data = saved, nil, 0
}

// Go's stack-split prologue: a function whose frame does not fit in what
// is left of its goroutine's stack calls runtime.morestack, which copies
// the stack to a bigger one (or lets the goroutine be preempted) and then
// runs the function again from its first instruction. Its entry
// instruction runs twice for one call; the second time is not reported.

// willRestart records, at the morestack call of the Go function entered
// at fn, that the goroutine of t will enter fn again.
func (pr *processReturns) willRestart(t *thread, fn uint64) {
	if pr.restarts == nil {
		pr.restarts = make(map[uint64]uint64)
	}
	pr.restarts[arch.GoGReg.Get(&t.regs)] = fn
}

// restarted reports whether t, at the entry fn of a Go function, enters it
// again after a morestack call rather than in a call of its own.
func (pr *processReturns) restarted(t *thread, fn uint64) bool {
	g := arch.GoGReg.Get(&t.regs)
	if f, ok := pr.restarts[g]; ok && f == fn {
		delete(pr.restarts, g)
		return true
	}
	return false
}

// C++ exceptions: the unwinder reads return addresses to find the frames
// to unwind, and a return trampoline has no unwind entry, so it would give
// up (std::terminate). When unwinding starts, the thread's hijacked return
// addresses are put back; when a handler catches the exception, those of
// the frames still alive are hijacked again, and the others are dropped.

// unwindStartFuncs are the functions of libgcc's unwinder that start walking the
// stack; unwindCaughtFuncs are called by the handler that caught an exception.
var (
	unwindStartFuncs  = []string{"_Unwind_RaiseException", "_Unwind_ForcedUnwind", "_Unwind_Resume_or_Rethrow"}
	unwindCaughtFuncs = []string{"__cxa_begin_catch"}
)

// armUnwindHooks puts the engine's breakpoints on the unwinder functions
// that mapping m's file defines.
func (s *Tracer) armUnwindHooks(t *thread, m elfsym.Mapping) error {
	f := s.mappedFile(t.proc.pid, m)
	if f == nil {
		return nil
	}
	hook := func(names []string, what string, action func(*thread) error) error {
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
			pl := &sitePlan{loc: &loc, breaklets: []breaklet{{kind: internalBreaklet, name: what, action: action}}}
			if err := s.armSite(t, addr, addr-loc.Offset, pl); err != nil {
				return err
			}
		}
		return nil
	}
	if err := hook(unwindStartFuncs, "unwind start", unwindStarts); err != nil {
		return err
	}
	return hook(unwindCaughtFuncs, "unwind caught", unwindCaught)
}

// unwindStarts puts back the real return addresses of t's hijacked frames.
func unwindStarts(t *thread) error {
	as := t.proc.as
	for i := range t.returns.shadow {
		fr := &t.returns.shadow[i]
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
func unwindCaught(t *thread) error {
	as := t.proc.as
	sp := t.regs.Rsp
	keep := t.returns.shadow[:0]
	for _, fr := range t.returns.shadow {
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
	t.returns.shadow = keep
	return nil
}
