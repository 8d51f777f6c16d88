package engine

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/uprobe"
)

// loop handles stops until no traced thread is left.
func (s *Session) loop() error {
	for {
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
				return nil
			}
			if err != nil {
				return fmt.Errorf("wait: %w", err)
			}
		}
		if !s.waker.is(tid, ws) {
			if err := s.handle(tid, ws); err != nil {
				return err
			}
		}
		if s.stopReq.Load() {
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

// deferExit records the exit of a thread seen while waiting for another.
func (s *Session) deferExit(tid int, ws unix.WaitStatus) { s.exits[tid] = ws }

func (s *Session) handle(tid int, ws unix.WaitStatus) error {
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
	t.stopped, t.stop = true, ws
	t.regsRead = false // regsIn is of an earlier stop
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
	return s.resume(t, sig)
}

// stopEvent handles a PTRACE_EVENT_STOP of a seized thread: its first stop
// when it was just created, a group-stop (job control), the trap after a
// SIGCONT ended one, or a PTRACE_INTERRUPT.
func (s *Session) stopEvent(t *thread, sig unix.Signal) error {
	if t.state == newborn {
		t.state = running
		if t.proc.unfollowed && t.proc.as.users == 1 {
			return s.releaseChild(t)
		}
		return s.resume(t, 0)
	}
	if isStopSignal(sig) {
		// Stay stopped as without ptrace; SIGCONT ends the listen with
		// another PTRACE_EVENT_STOP.
		if err := listen(t.tid); err != nil && err != unix.ESRCH {
			return fmt.Errorf("listen on thread %d: %w", t.tid, err)
		}
		t.stopped = false // listening: an interrupt makes it report again
		return nil
	}
	return s.resume(t, 0)
}

// resume continues t, delivering sig (0 for none) and any signal requeued
// while it ran an injected system call.
func (s *Session) resume(t *thread, sig unix.Signal) error {
	for _, q := range t.requeue {
		unix.Tgkill(t.proc.pid, t.tid, q)
	}
	t.requeue = t.requeue[:0]
	if err := cont(t.tid, sig); err != nil {
		if err == unix.ESRCH {
			t.stopped = false
			return nil // killed meanwhile; its exit is reported next
		}
		return fmt.Errorf("resume thread %d: %w", t.tid, err)
	}
	t.stopped = false
	return nil
}

// setRegsAndResume writes t.regs back and resumes t. When only rip
// changed since trap read the registers (the one-stop path without
// handlers that write registers), it writes rip alone: PTRACE_SETREGS
// checks and stores every register, a third of a microsecond more a hit.
func (s *Session) setRegsAndResume(t *thread, sig unix.Signal) error {
	if t.regsRead {
		t.regsRead = false
		in := t.regsIn
		in.Rip = t.regs.Rip
		if in == t.regs {
			if err := pokeRip(t.tid, t.regs.Rip); err != nil {
				if err == unix.ESRCH {
					return nil
				}
				return fmt.Errorf("set rip of thread %d: %w", t.tid, err)
			}
			return s.resume(t, sig)
		}
	}
	if err := setRegs(t.tid, &t.regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	return s.resume(t, sig)
}

func (s *Session) threadExited(t *thread, ws unix.WaitStatus) {
	delete(s.threads, t.tid)
	p := t.proc
	p.nthreads--
	if t.tid == p.pid {
		if p.pid == s.pid {
			switch {
			case ws.Exited():
				s.result = Result{ExitCode: ws.ExitStatus()}
			case ws.Signaled():
				s.result = Result{ExitCode: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
			}
			s.result.Wall = time.Since(s.started)
		}
		delete(s.procs, p.pid)
		p.as.release()
	}
}

// trap handles a SIGTRAP stop: a probe hit, a post-handler exit, a return
// trampoline, the end of an exec single-step, or the program's own SIGTRAP.
func (s *Session) trap(t *thread) error {
	if t.state == execStep {
		t.state = running
		if err := s.newImage(t); err != nil {
			s.warn(fmt.Errorf("process %d after exec: %w", t.proc.pid, err))
		}
		return s.resume(t, 0)
	}
	if err := getRegs(t.tid, &t.regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("registers of thread %d: %w", t.tid, err)
	}
	t.regsIn, t.regsRead = t.regs, true
	as := t.proc.as
	if as == nil {
		return s.resume(t, unix.SIGTRAP)
	}
	pc := t.regs.Rip - 1
	if st, ok := as.sites[pc]; ok {
		return s.hit(t, st)
	}
	if ex, ok := as.exits[pc]; ok {
		return s.postStop(t, ex)
	}
	if pc == as.retTramp && as.retTramp != 0 {
		return s.returnHit(t)
	}
	return s.resume(t, unix.SIGTRAP)
}

// hit runs the probes of st on t and sends t through the trampoline.
func (s *Session) hit(t *thread, st *site) error {
	return s.setRegsAndResume(t, s.enter(t, st))
}

// enter is a hit but for its last system calls: it runs the probes of st
// on t, stopped on st's int3 with its registers read, and leaves in
// t.regs where t goes on (the trampoline, past an emulated instruction,
// or where a pre handler sent it), returning the signal to resume with.
// It makes no system call of its own on the one-stop path; fetch-args
// read memory, return probes write the return address.
func (s *Session) enter(t *thread, st *site) unix.Signal {
	t.regs.Rip = st.addr
	t.at = hitPoint{st.addr, st.fileBase}
	if t.proc.unfollowed {
		// A vfork child not followed: it shares the parent's int3s
		// until it execs; its hits only run the displaced instruction.
		return s.displace(t, st)
	}
	for _, fn := range st.restartOf {
		t.proc.willRestart(t, fn)
	}
	t.silent = st.restartable && t.proc.restarted(t, st.addr)
	if t.silent {
		// The runtime grew the goroutine's stack and runs the
		// function again from its entry: the same call, not another.
		return s.displace(t, st)
	}
	for _, p := range st.entry {
		p.hits.Add(1)
		if p.handlers.Pre != nil {
			p.handlers.Pre(t)
		}
		s.emit(t, p, st.addr, 0, 0)
	}
	for _, r := range st.retAt {
		s.goReturn(t, st, r)
	}
	if len(st.goEntry) > 0 {
		s.goEntered(t, st)
	}
	if st.internal != nil {
		if err := st.internal(t); err != nil {
			s.warn(err)
		}
	}
	if t.regs.Rip != st.addr {
		// A pre handler redirected the thread: skip the instruction.
		t.at = hitPoint{}
		return 0
	}
	if len(st.ret) > 0 {
		if err := s.hijackReturn(t, st); err != nil {
			s.warn(err)
		}
	}
	return s.displace(t, st)
}

// displace sets t, stopped on st's int3 with rip at st.addr, to go
// through the displaced instruction: its trampoline, or its emulation.
// It returns the signal to resume t with.
func (s *Session) displace(t *thread, st *site) unix.Signal {
	defer func() { t.at = hitPoint{} }()
	if !st.emulate {
		t.regs.Rip = st.tramp
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

func (s *Session) runPost(t *thread, st *site) {
	if !st.post || t.proc.unfollowed || t.silent {
		return
	}
	for _, p := range st.entry {
		if p.handlers.Post != nil {
			p.handlers.Post(t)
		}
	}
}

// postStop is the int3 at a trampoline exit of a site with post handlers.
func (s *Session) postStop(t *thread, ex exitStop) error {
	t.regs.Rip = ex.resume
	t.at = hitPoint{ex.site.addr, ex.site.fileBase}
	s.runPost(t, ex.site)
	t.at = hitPoint{}
	return s.setRegsAndResume(t, 0)
}

// fault handles a fault signal: if it came from a displaced instruction in
// a trampoline, the fault handlers run and, unless one handles it, the
// signal reaches the program at the probed address.
func (s *Session) fault(t *thread, sig unix.Signal) error {
	if t.proc.as == nil {
		return s.resume(t, sig)
	}
	if err := getRegs(t.tid, &t.regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("registers of thread %d: %w", t.tid, err)
	}
	st, ok := t.proc.as.trampAt(t.regs.Rip)
	if !ok {
		return s.resume(t, sig)
	}
	si, err := getSiginfo(t.tid)
	if err != nil {
		return s.resume(t, sig) // a group-stop cannot be a fault
	}
	f := uprobe.Fault{Signal: sig, Code: int(si.Code), Addr: siginfoAddr(&si), TrapNo: trapNo(sig, si.Code)}
	faultRip := t.regs.Rip
	// Undo what the trampoline did before the faulting instruction: the
	// push of an emulated call (rsp moved by 8 before the store faulted).
	if st.loc.Inst.Op == x86CALL && faultRip != st.tramp {
		t.regs.Rsp += 8
	}
	t.regs.Rip = st.addr
	t.at = hitPoint{st.addr, st.fileBase}
	handled := false
	for _, p := range st.entry {
		if p.handlers.Fault != nil && p.handlers.Fault(t, f) {
			handled = true
		}
	}
	t.at = hitPoint{}
	if handled {
		if t.regs.Rip == st.addr {
			t.regs.Rip = st.addr + uint64(st.loc.Inst.Len)
		}
		return s.setRegsAndResume(t, 0)
	}
	// Resuming with the same signal keeps the kernel's siginfo, so the
	// program sees the fault exactly as without the probe, at st.addr.
	return s.setRegsAndResume(t, sig)
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

// emit sends the event of one hit of p to OnEvent; for return probes
// retIP is the address returned to and dur the time since the entry.
func (s *Session) emit(t *thread, p probeRef, ip, retIP, dur uint64) {
	if s.cfg.OnEvent == nil {
		return
	}
	ev := &s.ev
	ev.TimeNS = s.now()
	// The tracer runs where the program thread stopped, when it can.
	ev.PID, ev.TID, ev.CPU = t.proc.pid, t.tid, s.sched.pinnedCPU()
	ev.Comm = t.Comm()
	ev.Group, ev.Name, ev.Kind = p.Spec.Group, p.Spec.Event, p.Spec.Kind
	ev.IP, ev.RetIP, ev.DurationNS = ip, retIP, dur
	ev.Args = uprobe.FetchArgs(t, p.args, ev.Args[:0])
	s.cfg.OnEvent(ev)
}

// ptraceEvent handles PTRACE_EVENT_* stops.
func (s *Session) ptraceEvent(t *thread, cause int) error {
	switch cause {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		msg, err := unix.PtraceGetEventMsg(t.tid)
		if err != nil {
			return fmt.Errorf("new task of thread %d: %w", t.tid, err)
		}
		if err := s.newTask(t, int(msg), cause); err != nil {
			return err
		}
	case unix.PTRACE_EVENT_EXEC:
		s.execed(t)
		if t.proc.unfollowed {
			// A vfork child not followed: its new image has no int3
			// of ours; let it go.
			delete(s.threads, t.tid)
			delete(s.procs, t.proc.pid)
			if err := detach(t.tid, 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("detach %d after exec: %w", t.tid, err)
			}
			return nil
		}
		// Step out of execve to an ordinary stop, where the new image
		// can be armed (registers set at this stop would be overwritten
		// by execve's return value).
		t.state = execStep
		if err := unix.PtraceSingleStep(t.tid); err != nil && err != unix.ESRCH {
			return fmt.Errorf("step thread %d out of exec: %w", t.tid, err)
		}
		return nil
	}
	return s.resume(t, 0)
}

// newTask sets up a thread or process created by t.
func (s *Session) newTask(t *thread, id, cause int) error {
	parent := t.proc
	var p *process
	isThread := cause == unix.PTRACE_EVENT_CLONE && isThreadOf(parent.pid, id)
	switch {
	case isThread:
		p = parent
		p.nthreads++
	case cause == unix.PTRACE_EVENT_VFORK || (cause == unix.PTRACE_EVENT_CLONE && sameVM(parent.pid, id)):
		// Shares the parent's memory: same sites, same slots.
		p = &process{pid: id, as: parent.as, nthreads: 1, unfollowed: s.cfg.NoFollowFork}
		parent.as.users++
		s.procs[id] = p
	default:
		as, err := parent.as.fork(id)
		if err != nil {
			return err
		}
		p = &process{pid: id, as: as, nthreads: 1, unfollowed: s.cfg.NoFollowFork}
		s.procs[id] = p
	}
	nt := &thread{tid: id, proc: p, state: newborn}
	if !isThread {
		// The child's stack is a copy: so are the hijacked returns.
		nt.shadow = append([]retFrame(nil), t.shadow...)
	}
	s.threads[id] = nt
	if ws, ok := s.early[id]; ok {
		delete(s.early, id)
		return s.handle(id, ws)
	}
	return nil
}

// isThreadOf reports whether task id belongs to thread group pid.
func isThreadOf(pid, id int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, id))
	return err == nil
}

// sameVM reports whether two processes share their memory (clone with
// CLONE_VM but without CLONE_THREAD).
func sameVM(a, b int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), 1 /* KCMP_VM */, 0, 0, 0)
	return errno == 0 && r == 0
}

// execed updates the books after t's process exec'd: the other threads are
// gone, the thread took the process ID, and the address space is new.
func (s *Session) execed(t *thread) {
	p := t.proc
	for tid, o := range s.threads {
		if o.proc == p && o != t {
			delete(s.threads, tid)
		}
	}
	if t.tid != p.pid {
		delete(s.threads, t.tid)
		t.tid = p.pid
		s.threads[p.pid] = t
	}
	p.nthreads = 1
	t.comm = ""
	t.shadow = nil
	p.as.release()
	p.as = nil
}

// releaseChild lets a fork child go untraced before it runs: its copy of
// the text gets the original bytes back, its copy of the stack the real
// return addresses.
func (s *Session) releaseChild(t *thread) error {
	as := t.proc.as
	for _, fr := range t.shadow {
		if !fr.restored && fr.ret != as.retTramp {
			if err := as.mem.WriteUint64(fr.sp, fr.ret); err != nil {
				return fmt.Errorf("child %d: put back a return address: %w", t.tid, err)
			}
		}
	}
	s.restoreText(as)
	if n := len(s.result.TextMismatches); n > 0 {
		return fmt.Errorf("child %d: text differs from the file after removing the probes: %s", t.tid, s.result.TextMismatches[n-1])
	}
	s.result.SitesRestored = 0 // counts the main detach only
	delete(s.threads, t.tid)
	delete(s.procs, t.proc.pid)
	as.release()
	if err := detach(t.tid, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("detach child %d: %w", t.tid, err)
	}
	return nil
}
