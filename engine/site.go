package engine

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/resolve"
)

// site is a breakpoint armed at one address of one address space: the int3
// that replaced the first byte of the probed instruction, the trampoline
// that runs the displaced instruction, and the probes that share it (the
// kernel's aggregate probe).
type site struct {
	addr     uint64
	fileBase uint64 // address of file offset 0 of the probed file
	loc      *resolve.Location
	entry    []probeRef // entry probes, in registration order
	ret      []probeRef // return probes caught by rewriting the return address
	// goEntry are return probes of Go functions starting here: the
	// entry records the time and the argument registers, the return is
	// caught at retAt sites.
	goEntry []probeRef
	retAt   []retAt // Go return probes whose function returns through this ret
	post    bool    // some entry probe has a post handler
	// restartOf: this is the call of runtime.morestack in the prologue
	// of the Go functions entered at these addresses; restartable: the
	// Go function entered here has such a call (see goRestarted).
	restartOf   []uint64
	restartable bool
	// emulate: the tracer performs the instruction (no trampoline).
	emulate bool
	// tramp is the trampoline's address, 0 when emulated, and
	// trampExits its exits (jmp or int3) with where each resumes.
	tramp      uint64
	trampExits []exitStop
	// internal is the engine's own action on a hit (the dynamic
	// linker's _dl_debug_state: rescan the mappings).
	internal func(t *thread) error
}

// slotRegionSize is the size of one slot region. Trampolines are at most a
// few dozen bytes, so one region holds thousands.
const slotRegionSize = 1 << 20

// slotHeader is the part of the first region reserved for the engine's
// own code: the injected system call's code (injectedSyscall) at 0 and the
// return trampoline's int3 at retTrampOffset.
const slotHeader = 16

// retTrampOffset is where the return trampoline's int3 is in the header.
const retTrampOffset = syscallCodeLen

// slotReach is how far a trampoline may be from its site: rel32 branches
// and rebased disp32 reach ±2 GiB; keep a margin for the instruction
// lengths and the region size.
const slotReach = 1<<31 - 2*slotRegionSize

// slotRegion is an anonymous r-x mapping the engine injected into the
// tracee, bump-allocated into trampolines.
type slotRegion struct {
	start, end, next uint64
	tramps           []trampRef
}

type trampRef struct {
	start, end uint64
	site       *site
}

func within(a, b, d uint64) bool {
	if a > b {
		return a-b <= d
	}
	return b-a <= d
}

// regionFor returns a slot region within reach of addr with room for n
// bytes, injecting a new one when none has.
func (s *Session) regionFor(t *thread, addr uint64, n int) (*slotRegion, error) {
	as := t.proc.as
	for _, r := range as.slots {
		if within(r.start, addr, slotReach) && r.end-r.next >= uint64(n) {
			return r, nil
		}
	}
	return s.newRegion(t, addr)
}

// newRegion maps a slot region near addr in the thread's address space.
func (s *Session) newRegion(t *thread, addr uint64) (*slotRegion, error) {
	maps, err := readMapsSorted(t.proc.pid)
	if err != nil {
		return nil, err
	}
	for _, hint := range holesNear(maps, addr, slotRegionSize) {
		got, err := s.remoteSyscall(t, unix.SYS_MMAP, hint, slotRegionSize,
			unix.PROT_READ|unix.PROT_EXEC,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
		if err != nil {
			if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOMEM) {
				continue
			}
			return nil, fmt.Errorf("map a slot region near 0x%x in process %d: %w", addr, t.proc.pid, err)
		}
		if got != hint {
			// A kernel without MAP_FIXED_NOREPLACE took it as a hint.
			s.remoteSyscall(t, unix.SYS_MUNMAP, got, slotRegionSize, 0, 0, 0, 0)
			continue
		}
		r := &slotRegion{start: got, end: got + slotRegionSize, next: got}
		as := t.proc.as
		if as.stub == 0 {
			hdr := append(injectedSyscall(0), int3) // the return trampoline follows
			if _, err := as.mem.WriteMemory(got, hdr); err != nil {
				return nil, err
			}
			as.stub, as.retTramp = got, got+retTrampOffset
			r.next = got + slotHeader
		}
		as.slots = append(as.slots, r)
		return r, nil
	}
	return nil, fmt.Errorf("no free address range within ±2 GiB of 0x%x in process %d for a slot region", addr, t.proc.pid)
}

// slotOffset is how far below the probed code the engine prefers to put a
// slot region. Right next to a library it would take the place of the
// program's next mmap, and right above the main executable the place of
// the brk heap: the program's own layout would change. 1 GiB below is in
// reach of rel32 and far from both.
const slotOffset = 1 << 30

// holesNear lists page-aligned addresses for a region of n bytes within
// reach of addr, each in a hole of the address space with a guard page on
// either side, the closest to addr - slotOffset first.
func holesNear(maps []mapRange, addr uint64, n uint64) []uint64 {
	const low = 1 << 16 // mmap_min_addr
	const top = 0x7ffffffff000
	target := uint64(low)
	if addr > slotOffset+low {
		target = addr - slotOffset
	}
	var cands []uint64
	prevEnd := uint64(low)
	for i := 0; i <= len(maps); i++ {
		holeStart, holeEnd := prevEnd, uint64(top)
		if i < len(maps) {
			holeEnd = maps[i].start
			prevEnd = max(prevEnd, maps[i].end)
		}
		if holeEnd <= holeStart || holeEnd-holeStart < n+2*pageSize {
			continue
		}
		lo, hi := holeStart+pageSize, holeEnd-pageSize-n // region start bounds
		c := min(max(target, lo), hi) &^ (pageSize - 1)
		if c < lo {
			c += pageSize
		}
		if c > hi || !within(c, addr, slotReach) || !within(c+n, addr, slotReach) {
			// The point nearest target is out of reach: try the
			// end of the hole nearest addr.
			if hi < addr {
				c = hi &^ (pageSize - 1)
			} else {
				c = lo
			}
			if !within(c, addr, slotReach) || !within(c+n, addr, slotReach) {
				continue
			}
		}
		cands = append(cands, c)
	}
	dist := func(c uint64) uint64 {
		if c > target {
			return c - target
		}
		return target - c
	}
	sort.Slice(cands, func(i, j int) bool { return dist(cands[i]) < dist(cands[j]) })
	return cands
}

const pageSize = 4096

// int3 is the breakpoint instruction.
const int3 = 0xcc

// armSite arms the probes of plan pl at addr: it checks that memory holds the
// file's bytes, writes the trampoline and then the int3.
func (s *Session) armSite(t *thread, addr, fileBase uint64, pl *sitePlan, internal func(*thread) error) error {
	loc := pl.loc
	as := t.proc.as
	if st, ok := as.sites[addr]; ok {
		// Already armed (the engine's own breakpoint and a user probe,
		// or a rescan): only the internal action can be added.
		if internal != nil {
			st.internal = internal
		}
		return nil
	}
	inst := &loc.Inst
	cur := make([]byte, inst.Len)
	if err := as.mem.readFull(addr, cur); err != nil {
		return fmt.Errorf("%s at 0x%x: %w", loc.Function, addr, err)
	}
	if !bytes.Equal(cur, inst.Bytes) {
		if cur[0] == int3 {
			return fmt.Errorf("%s at 0x%x in process %d already holds an int3 (a debugger or a kernel uprobe is using it); refusing to arm it", loc.Function, addr, t.proc.pid)
		}
		return fmt.Errorf("%s at 0x%x in process %d: memory % x differs from the file's % x; refusing to arm it", loc.Function, addr, t.proc.pid, cur, inst.Bytes)
	}
	st := &site{addr: addr, fileBase: fileBase, loc: loc, internal: internal, retAt: pl.retAt,
		restartOf: pl.restartOf, restartable: len(loc.Restarts) > 0}
	for _, p := range pl.probes {
		switch {
		case p.Spec.Kind == returnKind && loc.Go:
			// Never a hijacked return address in Go code, whatever
			// else is probed here: the return is caught at the rets.
			st.goEntry = append(st.goEntry, p)
		case p.Spec.Kind == returnKind:
			st.ret = append(st.ret, p)
		default:
			st.entry = append(st.entry, p)
			st.post = st.post || p.handlers.Post != nil
		}
	}
	if inst.Class == arch.ClassEmulate {
		st.emulate = true
	} else if err := s.writeTrampoline(t, st); err != nil {
		if !errors.Is(err, arch.ErrNeedsEmulation) {
			return fmt.Errorf("%s at 0x%x: %w", loc.Function, addr, err)
		}
		st.emulate = true
	}
	if _, err := as.mem.WriteMemory(addr, []byte{int3}); err != nil {
		return err
	}
	as.sites[addr] = st
	return nil
}

// writeTrampoline relocates the site's instruction into a slot region.
func (s *Session) writeTrampoline(t *thread, st *site) error {
	as := t.proc.as
	// The trampoline's length does not depend on where it goes, so
	// relocate once to learn it, then for real at its address.
	probe, err := arch.Relocate(&st.loc.Inst, st.addr, st.addr, st.post)
	if err != nil {
		return err
	}
	n := len(probe.Code)
	r, err := s.regionFor(t, st.addr, n)
	if err != nil {
		return err
	}
	tr, err := arch.Relocate(&st.loc.Inst, st.addr, r.next, st.post)
	if err != nil {
		return err
	}
	if _, err := as.mem.WriteMemory(r.next, tr.Code); err != nil {
		return err
	}
	st.tramp = r.next
	r.tramps = append(r.tramps, trampRef{start: r.next, end: r.next + uint64(len(tr.Code)), site: st})
	r.next += uint64(len(tr.Code))
	for _, e := range tr.Exits {
		ex := exitStop{site: st, addr: st.tramp + uint64(e.Offset), resume: e.Resume}
		st.trampExits = append(st.trampExits, ex)
		if st.post {
			as.exits[ex.addr] = ex
		}
	}
	return nil
}

// syscallCodeLen is the length of injectedSyscall's code.
const syscallCodeLen = 8

// injectedSyscall is the code of an injected system call: mov $nr, %eax;
// syscall; int3. The number is in the code rather than set in rax by the
// tracer because a thread stopped inside a system call of its own (at a
// clone or fork event) has that call's result written to rax when it
// returns to user mode, over whatever the tracer set.
func injectedSyscall(nr uintptr) []byte {
	return []byte{0xb8, byte(nr), byte(nr >> 8), byte(nr >> 16), byte(nr >> 24), 0x0f, 0x05, int3}
}

// remoteSyscall makes the stopped thread t run one system call and returns
// its result. It runs injectedSyscall in the header of the first slot
// region, or, before that region exists (right after exec or at attach,
// when no other thread of the address space runs), the same bytes written
// over the code at rip for the duration of the call. The thread's
// registers are restored; a thread stopped inside a clone or fork gets
// that call's result in rax, as it would have had. A thread stopped inside
// a vfork or an exec cannot run one: it would not return to user mode
// (vfork waits for its child) or returns into another image.
func (s *Session) remoteSyscall(t *thread, nr uintptr, a1, a2, a3, a4, a5, a6 uint64) (uint64, error) {
	as := t.proc.as
	saved := t.regs
	if t.stopped {
		switch stopEvent(t.stop) {
		case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK:
			// Stopped before the call returns: it returns the new
			// task's ID to this thread.
			msg, err := unix.PtraceGetEventMsg(t.tid)
			if err != nil {
				return 0, fmt.Errorf("thread %d inside clone: %w", t.tid, err)
			}
			saved.Rax = uint64(msg)
		case unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_VFORK_DONE, unix.PTRACE_EVENT_EXEC:
			return 0, fmt.Errorf("thread %d is inside vfork or exec: %w", t.tid, errInSyscall)
		}
	}
	code := injectedSyscall(nr)
	stub := as.stub
	var orig []byte
	if stub == 0 {
		stub = saved.Rip
		orig = make([]byte, len(code))
		if err := as.mem.readFull(stub, orig); err != nil {
			return 0, err
		}
		if _, err := as.mem.WriteMemory(stub, code); err != nil {
			return 0, err
		}
	} else if _, err := as.mem.WriteMemory(stub, code[:5]); err != nil { // the number
		return 0, err
	}
	regs := t.regs
	regs.Orig_rax = ^uint64(0) // not in a system call: no restart on resume
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = a1, a2, a3, a4, a5, a6
	regs.Rip = stub
	res, err := s.runUntil(t, &regs, stub+uint64(len(code)))
	if orig != nil {
		if _, werr := as.mem.WriteMemory(stub, orig); werr != nil && err == nil {
			err = werr
		}
	}
	t.regs = saved
	if serr := setRegs(t.tid, &saved); serr != nil && err == nil {
		err = fmt.Errorf("restore registers of thread %d: %w", t.tid, serr)
	}
	if err != nil {
		return 0, err
	}
	if int64(res) < 0 && int64(res) > -4096 {
		return 0, unix.Errno(-int64(res))
	}
	return res, nil
}

// errInSyscall: a thread stopped where it cannot run an injected system
// call.
var errInSyscall = errors.New("stopped where it cannot run an injected system call")

// runUntil sets regs on the stopped thread t, resumes it and waits until it
// stops on the int3 before stop (rip == stop). It returns rax there.
// Signals that arrive meanwhile are requeued for the thread.
func (s *Session) runUntil(t *thread, regs *arch.Regs, stop uint64) (uint64, error) {
	if err := setRegs(t.tid, regs); err != nil {
		return 0, fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	if err := cont(t.tid, 0); err != nil {
		return 0, fmt.Errorf("resume thread %d: %w", t.tid, err)
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(t.tid, &ws, waitFlags, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for thread %d: %w", t.tid, err)
		}
		if ws.Exited() || ws.Signaled() {
			s.deferExit(t.tid, ws)
			return 0, fmt.Errorf("thread %d exited during an injected system call", t.tid)
		}
		var r arch.Regs
		if err := getRegs(t.tid, &r); err != nil {
			return 0, fmt.Errorf("registers of thread %d: %w", t.tid, err)
		}
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == 0 && r.Rip == stop {
			return r.Rax, nil
		}
		// Another signal: let the call complete, deliver it later.
		if sig := ws.StopSignal(); sig != unix.SIGTRAP {
			t.requeue = append(t.requeue, sig)
		}
		if err := cont(t.tid, 0); err != nil {
			return 0, fmt.Errorf("resume thread %d: %w", t.tid, err)
		}
	}
}
