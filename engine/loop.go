package engine

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/uprobe"
)

// loop handles stops until no traced thread is left, serving the
// requests of other goroutines in between.
func (s *Tracer) loop() error {
	for {
		if err := s.step(); err != nil {
			if err == errNoTracee {
				return nil
			}
			return err
		}
		if s.requests.pending.Load() > 0 {
			s.serveRequests()
		}
		if s.detach.Load() {
			s.detachAll()
			return nil
		}
		if len(s.threads) == 0 && len(s.exits) == 0 {
			// Every traced thread is gone. The process embedding the
			// engine may have children of its own: wait4 would not
			// fail with ECHILD while they live.
			return nil
		}
	}
}

// errNoTracee: wait4 says there is nothing left to wait for.
var errNoTracee = errors.New("no traced thread left")

// step waits for the next stop or exit of a traced thread (or the waker)
// and handles it.
func (s *Tracer) step() error {
	var ws unix.WaitStatus
	var tid int
	if len(s.exits) > 0 {
		// Exits collected while waiting for one thread.
		for id, st := range s.exits {
			tid, ws = id, st
			delete(s.exits, id)
			break
		}
	} else {
		var err error
		if s.sched.following() {
			tid, err = wait4NoHang(&ws)
			if tid == 0 && err == nil {
				s.sched.waitMissed()
			}
		}
		if tid == 0 || err != nil {
			tid, err = wait4(-1, &ws)
		}
		if err == unix.ECHILD {
			return errNoTracee
		}
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
	}
	if s.waker.is(tid, ws) {
		if ws.Stopped() {
			s.waker.served()
		}
		return nil
	}
	return s.handle(tid, ws)
}

// deferExit records the exit of a thread seen while waiting for another.
func (s *Tracer) deferExit(tid int, ws unix.WaitStatus) { s.exits[tid] = ws }

func (s *Tracer) handle(tid int, ws unix.WaitStatus) error {
	t := s.threads[tid]
	if ws.Exited() || ws.Signaled() {
		if t == nil {
			delete(s.early, tid)
			return nil
		}
		s.threadExited(t, ws)
		return nil
	}
	if !ws.Stopped() {
		return nil
	}
	if t == nil {
		// A new thread or child whose creation event its parent has
		// not reported yet: it starts when that event arrives.
		s.early[tid] = ws
		return nil
	}
	if s.sched != nil {
		s.sched.stopped(tid, s.now())
	}
	t.stoppedWith(ws)
	sig := ws.StopSignal()
	event := stopEvent(ws)
	switch {
	case event == unix.PTRACE_EVENT_STOP:
		return s.stopEvent(t, sig)
	case event != 0:
		return s.ptraceEvent(t, event)
	case t.state == newborn && sig == unix.SIGSTOP:
		return s.stopEvent(t, sig)
	case sig == unix.SIGTRAP:
		return s.trap(t)
	case sig == unix.SIGSEGV || sig == unix.SIGBUS || sig == unix.SIGFPE || sig == unix.SIGILL:
		return s.fault(t, sig)
	}
	return t.resume(sig)
}

// canInject reports whether a thread in a stop with this PTRACE_EVENT_*
// (0: a signal-delivery stop) can run an injected system call (see
// remoteSyscall).
func canInject(event int) bool {
	switch event {
	case unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_VFORK_DONE, unix.PTRACE_EVENT_EXEC:
		return false
	}
	return true
}

// stopEvent handles a PTRACE_EVENT_STOP of a seized thread: its first stop
// when it was just created, a group-stop (job control), the trap after a
// SIGCONT ended one, or a PTRACE_INTERRUPT.
func (s *Tracer) stopEvent(t *thread, sig unix.Signal) error {
	if t.state == newborn {
		t.state = running
		if t.proc.unfollowed && t.proc.as.users == 1 {
			return s.releaseChild(t)
		}
		if t.proc.as != nil && t.proc.as.area != nil {
			if err := s.newbornArea(t); err != nil {
				s.warn(err)
			}
		}
		return t.resume(0)
	}
	if t.state == execStep {
		// The stop of an attach's PTRACE_INTERRUPT, reported before
		// the step out of execve (armAfterSyscall) ended: step again.
		return t.stepOutOfExec()
	}
	if isStopSignal(sig) {
		// Stay stopped as without ptrace; SIGCONT ends the listen with
		// another PTRACE_EVENT_STOP.
		return t.listen()
	}
	return t.resume(0)
}

// trap handles a SIGTRAP stop: a probe hit, a post-handler exit, a return
// trampoline, the end of an exec single-step, or the program's own SIGTRAP.
func (s *Tracer) trap(t *thread) error {
	if t.state == execStep {
		t.state = running
		if err := s.newImage(t); err != nil {
			s.warn(fmt.Errorf("process %d after exec: %w", t.proc.pid, err))
		}
		return t.resume(0)
	}
	if err := t.readRegs(); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("registers of thread %d: %w", t.tid, err)
	}
	as := t.proc.as
	if as == nil {
		return t.resume(unix.SIGTRAP)
	}
	pc := t.regs.Rip - 1
	if t.proc.trapAct != nil && as.isTrap(pc) {
		s.undoTrapReset(t)
	}
	if st, ok := as.sites[pc]; ok {
		return s.hit(t, st)
	}
	if ex, ok := as.exits[pc]; ok {
		return s.postStop(t, ex)
	}
	if pc == as.retTramp && as.retTramp != 0 {
		return s.returnHit(t)
	}
	if _, ok := as.retired[pc]; ok {
		// The trap of a site taken out while the thread was on its
		// way: the original instruction is back, run it.
		t.regs.Rip = pc
		return t.setRegsAndResume(0)
	}
	return t.resume(unix.SIGTRAP)
}

// hit runs the breaklets of st on t and sends t through the displaced
// instruction.
func (s *Tracer) hit(t *thread, st *site) error {
	return t.setRegsAndResume(s.enter(t, st))
}

// enter is a hit but for its last system calls: it runs the breaklets of
// st on t, stopped on st's int3 with its registers read, and leaves in
// t.regs where t goes on (the trampoline, past an emulated instruction,
// or where a pre handler sent it), returning the signal to resume with.
// It makes no system call of its own on the one-stop path; fetch-args
// read memory, return probes write the return address.
func (s *Tracer) enter(t *thread, st *site) unix.Signal {
	t.regs.Rip = st.addr
	t.at = hitPoint{st.addr, st.fileBase}
	defer func() { t.at = hitPoint{} }()
	if t.proc.unfollowed {
		// A vfork child not followed: it shares the parent's int3s
		// until it execs; its hits only run the displaced instruction.
		return s.displace(t, st)
	}
	t.silent = st.restartable && t.proc.returns.restarted(t, st.addr)
	if t.silent {
		// The runtime grew the goroutine's stack and runs the
		// function again from its entry: the same call, not another.
		return s.displace(t, st)
	}
	t.hitNS = s.now()
	var hijack, goEntry bool
	for i := range st.breaklets {
		b := &st.breaklets[i]
		switch b.kind {
		case entryBreaklet:
			if !b.active() {
				continue
			}
			b.hits.Add(1)
			if b.handlers.Pre != nil {
				b.handlers.Pre(t)
			}
			s.emit(t, b.probeRef, st.addr, 0, 0, t.hitNS)
		case returnBreaklet:
			hijack = hijack || b.active()
		case goEntryBreaklet:
			goEntry = goEntry || b.active()
		case goReturnBreaklet:
			if i == 0 || st.breaklets[i-1].kind != goReturnBreaklet || st.breaklets[i-1].fn != b.fn {
				s.goReturn(t, st, b.fn, b.abi) // once per function
			}
		case restartBreaklet:
			t.proc.returns.willRestart(t, b.fn)
		case internalBreaklet:
			if err := b.action(t); err != nil {
				s.warn(err)
			}
		}
	}
	if goEntry {
		s.goEntered(t, st)
	}
	if t.regs.Rip != st.addr {
		// A pre handler redirected the thread: skip the instruction.
		return 0
	}
	if hijack {
		if err := s.hijackReturn(t, st); err != nil {
			s.warn(err)
		}
	}
	return s.displace(t, st)
}

// displace sets t, stopped on st's int3 with rip at st.addr, to go
// through the displaced instruction: its trampoline, or its emulation.
// It returns the signal to resume t with.
func (s *Tracer) displace(t *thread, st *site) unix.Signal {
	ts := trampolineOf(st)
	if !ts.emulate {
		t.regs.Rip = ts.tramp
		return 0
	}
	if err := arch.Emulate(&st.loc.Inst, st.addr, &t.regs, t.proc.as.mem); err != nil {
		// The instruction would have faulted (an unreadable call
		// target or stack): the program gets a SIGSEGV at the
		// probed address, with a siginfo of the kernel's making
		// for an injected signal rather than the CPU's.
		s.warn(fmt.Errorf("emulate %q at 0x%x in thread %d: %w", st.loc.Inst.String(), st.addr, t.tid, err))
		return unix.SIGSEGV
	}
	s.runPost(t, st)
	return 0
}

// runPost runs the post handlers of st's entry probes.
func (s *Tracer) runPost(t *thread, st *site) {
	if !st.post || t.proc.unfollowed || t.silent {
		return
	}
	for _, b := range st.breaklets {
		if b.kind == entryBreaklet && b.handlers.Post != nil && b.active() {
			b.handlers.Post(t)
		}
	}
}

// postStop is the int3 at a trampoline exit of a site with post handlers.
func (s *Tracer) postStop(t *thread, ex exitStop) error {
	t.regs.Rip = ex.resume
	t.at = hitPoint{ex.site.addr, ex.site.fileBase}
	s.runPost(t, ex.site)
	t.at = hitPoint{}
	return t.setRegsAndResume(0)
}

// fault handles a fault signal: if it came from a displaced instruction in
// a trampoline, the fault handlers run and, unless one handles it, the
// signal reaches the program at the probed address.
func (s *Tracer) fault(t *thread, sig unix.Signal) error {
	if t.proc.as == nil {
		return t.resume(sig)
	}
	if err := getRegs(t.tid, &t.regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("registers of thread %d: %w", t.tid, err)
	}
	st, ok := t.proc.as.outOfLine(t.regs.Rip)
	if !ok {
		return t.resume(sig)
	}
	if fs, fast := st.strategy.(*fastStrategy); fast {
		// A fault of the first relocated instruction of the no-stop
		// path: the program's own, shown at the probed address as the
		// stop path and the kernel show it (its handler may look at
		// rip; one that returns runs the site again, a second hit, as
		// on the stop path). Not for a later instruction of the span,
		// whose original address is inside the patch's filler, nor
		// for a signal someone sent (si_code <= 0), which is not the
		// instruction's. Fault handlers are Go handlers, which keep a
		// site off this path.
		addr, pushed, in := fs.originalAt(st, t.regs.Rip)
		si, err := getSiginfo(t.tid)
		if !in || addr != st.addr || err != nil || si.Code <= 0 {
			return t.resume(sig)
		}
		if pushed {
			t.regs.Rsp += 8
		}
		t.regs.Rip = addr
		return t.setRegsAndResume(sig)
	}
	ts := trampolineOf(st)
	si, err := getSiginfo(t.tid)
	if ts == nil || err != nil {
		return t.resume(sig) // a group-stop cannot be a fault
	}
	f := uprobe.Fault{Signal: sig, Code: int(si.Code), Addr: siginfoAddr(&si), TrapNo: trapNo(sig, si.Code)}
	// Undo what the trampoline did before the faulting instruction: the
	// push of a rewritten call (rsp moved by 8 before the store faulted).
	if st.loc.Inst.Flow == arch.FlowCall && t.regs.Rip != ts.tramp {
		t.regs.Rsp += 8
	}
	t.regs.Rip = st.addr
	t.at = hitPoint{st.addr, st.fileBase}
	handled := false
	for _, b := range st.breaklets {
		if b.kind == entryBreaklet && b.handlers.Fault != nil && b.active() && b.handlers.Fault(t, f) {
			handled = true
		}
	}
	t.at = hitPoint{}
	if handled {
		if t.regs.Rip == st.addr {
			t.regs.Rip = st.addr + uint64(st.loc.Inst.Len)
		}
		return t.setRegsAndResume(0)
	}
	// Resuming with the same signal keeps the kernel's siginfo, so the
	// program sees the fault exactly as without the probe, at st.addr.
	return t.setRegsAndResume(sig)
}

// trapNo derives the x86 exception vector from a fault's signal and code.
func trapNo(sig unix.Signal, code int32) int {
	switch sig {
	case unix.SIGSEGV:
		if code == 0x80 { // SI_KERNEL: general protection
			return 13
		}
		return 14
	case unix.SIGBUS:
		if code == 1 { // BUS_ADRALN
			return 17
		}
		return 14
	case unix.SIGFPE:
		if code == 1 || code == 2 { // FPE_INTDIV, FPE_INTOVF
			return 0
		}
		return 19
	case unix.SIGILL:
		return 6
	}
	return -1
}
