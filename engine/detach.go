package engine

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// detachAll detaches from every traced thread, leaving the programs as if
// they had never been traced.
func (s *Tracer) detachAll() {
	s.sched.quit()
	pending := s.settleAll()

	// Put back return addresses and move threads out of trampolines.
	for _, t := range s.threads {
		as := t.proc.as
		if as == nil {
			continue
		}
		if err := getRegs(t.tid, &t.regs); err != nil {
			continue
		}
		if err := t.returns.restore(as); err != nil {
			s.warn(fmt.Errorf("thread %d: %w", t.tid, err))
		}
		if st, ok := as.outOfLine(t.regs.Rip); ok && st.strategy.evacuate(st, &t.regs) {
			setRegs(t.tid, &t.regs)
		}
	}

	// Take the sites out, once per address space, and check the text.
	// The recorders record nothing more: a thread left in a thunk runs
	// through it untraced.
	done := make(map[*addrSpace]bool)
	for _, p := range s.procs {
		as := p.as
		if as == nil || done[as] {
			continue
		}
		done[as] = true
		if as.area != nil {
			as.area.off()
		}
		s.lowerSemaphores(as, p.pid)
		as.releaseExits(s.warn)
		n, mismatches := as.restore(s.warn)
		s.result.SitesRestored += n
		s.result.TextMismatches = append(s.result.TextMismatches, mismatches...)
	}

	for tid := range s.threads {
		if !slices.Contains(s.inVfork, tid) { // lingerInVfork's
			detach(tid, pending[tid])
		}
	}
	s.result.Detached = true
}

// lingerInVfork detaches the threads the detach left inside vfork
// (settleAll), as each stops on its way out. An attached program would be
// detached by the kernel if the tracer ended first, so for it this runs
// after Wait has returned (afterWait), the detach done as far as the
// caller can tell. A launched program is killed when its tracer ends
// (PTRACE_O_EXITKILL, so that a dying ptprobe leaves no int3 behind), and
// a caller that exits once Wait returns would kill it: for it Wait returns
// only once the vfork is over.
func (s *Tracer) lingerInVfork(afterWait bool) {
	if afterWait != s.attached {
		return
	}
	for _, tid := range s.inVfork {
		for {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err == unix.EINTR {
				continue
			} else if err != nil || ws.Exited() || ws.Signaled() {
				break
			}
			sig := ws.StopSignal()
			if stopEvent(ws) != 0 {
				sig = 0 // the interrupt's stop, or an event: nothing to deliver
			}
			if detach(tid, sig) == nil {
				break
			}
		}
	}
}

// settleAll stops every traced thread where nothing of the engine's is
// under way in it (see settle) and returns the signals to deliver to
// threads when they are detached. Threads already in a stop the engine
// has not ended are settled from that stop; the others are interrupted.
func (s *Tracer) settleAll() map[int]unix.Signal {
	want := make(map[int]bool)
	var ready []*thread
	inVfork := s.waitingInVfork()
	for tid, t := range s.threads {
		switch {
		case t.stopped:
			ready = append(ready, t)
		case inVfork[t]:
			// Its wait for the child is not interruptible: it would
			// stop only once the child execs or exits, and the
			// detach would wait as long. It runs no code of its own
			// meanwhile, so the text can be restored under it; the
			// interrupt stops it when it comes out, and
			// lingerInVfork detaches it then.
			if len(t.returns.shadow) > 0 {
				s.warn(fmt.Errorf("thread %d waits inside vfork: its return addresses taken by return probes cannot be put back", tid))
			}
			if unix.PtraceInterrupt(tid) == nil {
				s.inVfork = append(s.inVfork, tid)
			}
		case unix.PtraceInterrupt(tid) == nil:
			want[tid] = true
		}
	}
	pending := make(map[int]unix.Signal)
	for _, t := range ready {
		s.settle(t, t.stop, want, pending)
	}
	for len(want) > 0 {
		var ws unix.WaitStatus
		tid, err := wait4(-1, &ws)
		if err != nil {
			break
		}
		t := s.threads[tid]
		if t == nil {
			if !s.waker.is(tid, ws) {
				s.early[tid] = ws
			}
			continue
		}
		delete(want, tid)
		if ws.Exited() || ws.Signaled() {
			s.threadExited(t, ws)
			continue
		}
		t.stoppedWith(ws)
		s.settle(t, ws, want, pending)
		for id := range want {
			if s.threads[id] == nil {
				// Gone without a word: a thread other than the
				// main one exec'd, and took the process ID (its
				// exec stop, reported under that ID, was just
				// settled).
				delete(want, id)
			}
		}
	}
	return pending
}

// waitingInVfork is the set of threads that wait inside vfork for a child
// that has not exec'd or exited yet.
func (s *Tracer) waitingInVfork() map[*thread]bool {
	in := make(map[*thread]bool)
	for _, p := range s.procs {
		if t := p.vforkedBy; t != nil && p.nthreads > 0 && s.threads[t.tid] == t {
			in[t] = true
		}
	}
	return in
}

// settle undoes what a stop of t (status ws) left under way before the
// detach: a hit, a post-handler exit or a return of which the thread has
// taken the trap, a fault of a displaced instruction. A thread that still
// has to report a stop (a trap taken but not yet reported, a new task) is
// put in want; pending gets the signal the thread is to be detached with.
func (s *Tracer) settle(t *thread, ws unix.WaitStatus, want map[int]bool, pending map[int]unix.Signal) {
	sig, event := ws.StopSignal(), stopEvent(ws)
	if t.state == execStep {
		// Stepping out of execve (see ptraceEvent): the new image has
		// no int3 of ours yet, and the step's stop is the engine's.
		switch {
		case event == 0 && sig == unix.SIGTRAP:
			// The step's end, execve's syscall-exit-stop: nothing
			// to deliver. (It was a single-step once, whose queued
			// SIGTRAP was delivered by the detach and killed the
			// program.)
			t.state = running
			return
		case event == unix.PTRACE_EVENT_STOP:
			// An interrupt reported before the step's stop: step
			// on to it, and detach there.
			if t.stepOutOfExec() == nil {
				want[t.tid] = true
			}
			return
		}
		t.state = running
	}
	switch {
	case event == unix.PTRACE_EVENT_STOP:
		// Interrupted, group-stopped or newborn. The thread may have
		// just executed one of the engine's int3s: the kernel queued
		// its SIGTRAP, but get_signal reports a job-control trap (this
		// stop) before it dequeues any signal. Detached so, the thread
		// would take that SIGTRAP untraced, and die of it. Let it take
		// it now: its next stop is the SIGTRAP's, undone by leaveTrap.
		t.state = running
		if s.ownTrapPending(t) && t.resume(0) == nil {
			want[t.tid] = true
		}
	case event == unix.PTRACE_EVENT_CLONE || event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK:
		if t.proc.as == nil {
			// An attach that found the process here, before arming
			// (armAfterSyscall): the new task has no int3 of ours;
			// the kernel lets it go when the ptrace thread ends.
			break
		}
		if id := t.newTaskID; id != 0 && s.newTask(t, id, event) == nil && s.threads[id] != nil {
			if unix.PtraceInterrupt(id) == nil {
				want[id] = true
			}
		}
	case event == unix.PTRACE_EVENT_EXEC:
		s.execed(t) // a fresh image: no int3 of ours
	case event != 0:
	case sig == unix.SIGTRAP:
		s.leaveTrap(t, pending)
	default:
		getRegs(t.tid, &t.regs)
		if as := t.proc.as; as != nil {
			if st, ok := as.outOfLine(t.regs.Rip); ok {
				if ts := trampolineOf(st); ts != nil && t.regs.Rip == ts.tramp {
					// A fault of the displaced instruction:
					// the program sees it at the probed
					// address.
					t.regs.Rip = st.addr
					setRegs(t.tid, &t.regs)
				}
			}
		}
		pending[t.tid] = sig
	}
}

// ownTrapPending reports whether t, stopped, has executed one of the
// engine's int3s and not yet taken the SIGTRAP the kernel queued for it.
func (s *Tracer) ownTrapPending(t *thread) bool {
	as := t.proc.as
	if as == nil || getRegs(t.tid, &t.regs) != nil || !as.isTrap(t.regs.Rip-1) {
		return false
	}
	pending, err := kernelTrapPending(t.tid)
	return err == nil && pending
}

// leaveTrap undoes a SIGTRAP stop met while detaching: a hit whose
// instruction has not run yet, a post-handler exit, a return through the
// trampoline; any other SIGTRAP is the program's and is delivered. A
// SIGTRAP that the program sent itself (its si_code is not the kernel's)
// is the program's even where rip is one past an int3 of the engine: a
// thread that ran the trampoline of a 1-byte instruction comes back there.
func (s *Tracer) leaveTrap(t *thread, pending map[int]unix.Signal) {
	if err := getRegs(t.tid, &t.regs); err != nil {
		return
	}
	as := t.proc.as
	if si, err := getSiginfo(t.tid); as == nil || err != nil || si.Code != siKernel {
		pending[t.tid] = unix.SIGTRAP
		return
	}
	pc := t.regs.Rip - 1
	switch ex, isExit := as.exits[pc]; {
	case as.sites[pc] != nil || as.retired[pc] != nil:
		t.regs.Rip = pc // the original instruction runs once restored
	case isExit:
		t.regs.Rip = ex.resume
	case pc == as.retTramp && as.retTramp != 0:
		if err := s.takeReturn(t); err != nil {
			s.warn(err)
		}
	default:
		pending[t.tid] = unix.SIGTRAP
		return
	}
	setRegs(t.tid, &t.regs)
}
