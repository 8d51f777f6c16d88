package engine

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// site is one probed address of one address space: the physical probe
// that the probes on that instruction share (the kernel's aggregate
// probe), as delve's Breakpoint is shared by its Breaklets. What each
// probe does there is a breaklet; how a thread that reaches the address
// gets to the engine is the site's hitStrategy (docs/DESIGN.md §3).
type site struct {
	addr     uint64
	fileBase uint64 // address of file offset 0 of the probed file
	loc      *resolve.Location
	// breaklets, in the order the probes were added; the engine's own
	// (internal) ones too.
	breaklets []breaklet
	strategy  hitStrategy
	// post: some entry breaklet's probe has a post handler.
	post bool
	// restartable: the Go function entered here calls runtime.morestack
	// in its prologue (resolve.Location.Restarts), after which it runs
	// from here again.
	restartable bool
	// fastProbes are, for a site on the no-stop path, its entry probes
	// as the drain reads them: replaced, never changed in place, when
	// the breaklets change.
	fastProbes atomic.Pointer[[]probeRef]
	// why is, for a site on the stop path, why it is not on the no-stop
	// path (nil when it is, or when it was never a question).
	why error
	// sync: a site on the no-stop path whose internal breaklet must run
	// before the thread goes on (the dynamic linker's hook): its
	// recorder waits for the drain's word (syncMappings). Set before
	// the site is published to the drain, never changed after.
	sync bool
}

// breakletKind is what a breaklet does on a hit.
type breakletKind uint8

const (
	// entryBreaklet: an entry probe; its Pre handler and event.
	entryBreaklet breakletKind = iota
	// returnBreaklet: a return probe caught by rewriting the return
	// address (C and everything that does not move its stacks).
	returnBreaklet
	// goEntryBreaklet: a return probe of a Go function: the entry
	// records the time and the arguments, goReturnBreaklets at the
	// function's rets fire it.
	goEntryBreaklet
	// goReturnBreaklet: at a ret of a Go function with a return probe
	// (fn is the function's entry).
	goReturnBreaklet
	// restartBreaklet: at the morestack call of the Go function entered
	// at fn: its next entry is the same call again (goRestarted).
	restartBreaklet
	// internalBreaklet: the engine's own action (the dynamic linker's
	// _dl_debug_state, C++ unwinding).
	internalBreaklet
)

// breaklet is one thing a site does on a hit.
type breaklet struct {
	kind breakletKind
	// probeRef: the probe, for the probe kinds.
	probeRef
	// fn is the function's entry (goReturnBreaklet, restartBreaklet),
	// abi its calling convention (goReturnBreaklet).
	fn  uint64
	abi uprobe.ABI
	// name and action are an internalBreaklet's; a site has one of
	// each name.
	name   string
	action func(*thread) error
	// sync: the action may run from the ptrace thread after the hit,
	// with the hitting thread waiting in the recorder, rather than at
	// a stop of that thread (syncMappings); the site may then take the
	// no-stop path.
	sync bool
}

// probeRef is a probe with its fetch-args bound to the function it is in
// (resolve.Location.Args).
type probeRef struct {
	*Probe
	args []uprobe.FetchArg
}

// hitStrategy is how a site takes its hits: what it writes over the
// probed instruction, what runs the displaced instruction, and how a
// thread is brought out of that code. Today's strategy is trapStrategy
// (an int3 and a trampoline, one ptrace stop a hit); the no-stop path is
// another (docs/DESIGN.md §3, §8).
type hitStrategy interface {
	// arm writes the site into the address space of the stopped thread
	// t (which may run injected system calls to map slot regions). A
	// thread that then reaches st.addr takes the hit.
	arm(s *Tracer, t *thread, st *site) error
	// disarm puts back the file's bytes the site replaced.
	disarm(mem *memory, st *site) error
	// original is those bytes, as in the file.
	original(st *site) []byte
	// lacksPost reports whether the site was armed without the stop
	// after the displaced instruction that post handlers need.
	lacksPost() bool
	// evacuate moves a stopped thread whose rip is in the site's
	// out-of-line code back to where the original code has it (the
	// probed instruction not run yet, or the instruction after it). It
	// reports whether rip was in code of the site's.
	evacuate(st *site, regs *arch.Regs) bool
}

// armSite arms the site plan pl describes at addr, in the address space
// of the stopped thread t: it checks that memory holds the file's bytes,
// then lets the strategy write the site. An address that has a site
// already only gets pl's breaklets added.
func (s *Tracer) armSite(t *thread, addr, fileBase uint64, pl *sitePlan) error {
	as := t.proc.as
	if err := s.uncover(t, addr); err != nil {
		return err
	}
	old, ok := as.sites[addr]
	if ok {
		old.add(pl.breaklets...)
		_, fast := old.strategy.(*fastStrategy)
		switch {
		case fast && s.fastOK(old.breaklets):
			s.setFastProbes(old)
			return nil
		case !fast && (!old.post || !old.strategy.lacksPost()):
			return nil
		}
		// A post handler joined a site armed without (it needs a
		// trampoline that stops at its exit), or a probe that needs
		// a stop joined one on the no-stop path: arm it again.
		// Threads in the old trampoline or thunk finish there.
		if err := as.disarm(old); err != nil {
			return err
		}
		pl = &sitePlan{loc: old.loc, breaklets: old.breaklets}
	}
	loc := pl.loc
	st := &site{addr: addr, fileBase: fileBase, loc: loc, restartable: len(loc.Restarts) > 0}
	st.add(pl.breaklets...)
	st.strategy = &trapStrategy{}
	if fs, err := s.fastFor(t, st, pl); err == nil {
		st.strategy = fs
	} else {
		st.why = err
	}
	cur := make([]byte, len(st.strategy.original(st)))
	if err := as.mem.readFull(addr, cur); err != nil {
		return fmt.Errorf("%s at 0x%x: %w", loc.Function, addr, err)
	}
	if want := st.strategy.original(st); !bytes.Equal(cur, want) {
		if cur[0] == int3 {
			return fmt.Errorf("%s at 0x%x in process %d: %w (a debugger or a kernel uprobe is using it); refusing to arm it", loc.Function, addr, t.proc.pid, ErrBreakpointThere)
		}
		return fmt.Errorf("%s at 0x%x in process %d: memory % x differs from the file's % x: %w; refusing to arm it", loc.Function, addr, t.proc.pid, cur, want, ErrTextMismatch)
	}
	if err := st.strategy.arm(s, t, st); err != nil {
		return fmt.Errorf("%s at 0x%x: %w", loc.Function, addr, err)
	}
	as.sites[addr] = st
	delete(as.retired, addr)
	if _, fast := st.strategy.(*fastStrategy); fast {
		s.setFastProbes(st)
	}
	for _, b := range st.breaklets {
		if b.Probe != nil {
			b.armedOn(st)
		}
	}
	return nil
}

// uncover moves a site on the no-stop path whose patch covers addr (but
// does not start there) to the stop path, so that addr can have a site of
// its own.
func (s *Tracer) uncover(t *thread, addr uint64) error {
	as := t.proc.as
	for a := addr - 1; a+arch.MaxInstLen*2 > addr && a < addr; a-- {
		st, ok := as.sites[a]
		if !ok {
			continue
		}
		fs, fast := st.strategy.(*fastStrategy)
		if !fast || addr >= a+uint64(fs.span.Len) {
			continue
		}
		if err := as.disarm(st); err != nil {
			return err
		}
		pl := &sitePlan{loc: st.loc, breaklets: st.breaklets}
		nt := &site{addr: a, fileBase: st.fileBase, loc: st.loc, restartable: st.restartable, strategy: &trapStrategy{}, why: errFastCovers}
		nt.add(pl.breaklets...)
		if err := nt.strategy.arm(s, t, nt); err != nil {
			return fmt.Errorf("%s at 0x%x: %w", st.loc.Function, a, err)
		}
		as.sites[a] = nt
		delete(as.retired, a)
	}
	return nil
}

// setFastProbes publishes the entry probes of a site on the no-stop path
// to the drain.
func (s *Tracer) setFastProbes(st *site) {
	var ps []probeRef
	for _, b := range st.breaklets {
		if b.kind == entryBreaklet {
			ps = append(ps, b.probeRef)
		}
	}
	st.fastProbes.Store(&ps)
}

// add adds breaklets to the site.
func (st *site) add(bs ...breaklet) {
	for _, b := range bs {
		if b.kind == internalBreaklet && slices.ContainsFunc(st.breaklets, func(o breaklet) bool { return o.name == b.name }) {
			continue
		}
		st.breaklets = append(st.breaklets, b)
		if b.kind == entryBreaklet && b.handlers.Post != nil {
			st.post = true
		}
	}
}

// remove drops the breaklets of probe p and reports whether any is left.
// The caller publishes the change (setFastProbes) for a no-stop site.
func (st *site) remove(p *Probe) bool {
	keep := st.breaklets[:0]
	for _, b := range st.breaklets {
		if b.Probe != p || b.kind == internalBreaklet {
			keep = append(keep, b)
		}
	}
	clear(st.breaklets[len(keep):])
	st.breaklets = keep
	return len(keep) > 0
}

// sitePlan is what one site of a mapping will carry.
type sitePlan struct {
	loc       *resolve.Location
	breaklets []breaklet
}
