package engine

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/internal/privs"
)

// process is one traced thread group.
type process struct {
	pid int
	as  *addrSpace
	// nthreads counts the live threads we know of.
	nthreads int
	// unfollowed: a child of a fork that the session does not follow
	// (Options.NoFollowFork): its probes do not fire, and it is let go
	// as soon as it has no int3 of ours (see releaseChild).
	unfollowed bool
	// returns is the process's part of the return probes (returns.go).
	returns processReturns
	// gen is, for a vfork child running in its parent's address space,
	// the AGen its records carry there (0: none).
	gen uint32
	// vforkedBy is, for a vfork child that has not exec'd or exited, the
	// parent thread that waits for it inside vfork (see settleAll).
	vforkedBy *thread
	// trapAct is the process's SIGTRAP action as last read (nil: SIG_DFL;
	// see sigtrap.go).
	trapAct *kernelSigaction
}

// ptraceEvent handles PTRACE_EVENT_* stops.
func (s *Tracer) ptraceEvent(t *thread, cause int) error {
	switch cause {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		if cause != unix.PTRACE_EVENT_VFORK && t.proc.as != nil && !t.proc.unfollowed {
			// A moment to read the SIGTRAP action again (a thread
			// pool installs its handlers before its threads), by an
			// injected call only when /proc says it changed kind:
			// the injection waits for this thread alone, and
			// another thread's exec or exit_group meanwhile waits
			// for the tracer to reap its siblings (a deadlock the
			// review reproduced 6 times in 20 when it ran at every
			// clone).
			if err := s.relearnTrapAction(t); err != nil {
				s.warn(fmt.Errorf("thread %d: %w", t.tid, err))
			}
		}
		if t.newTaskID == 0 {
			return fmt.Errorf("new task of thread %d: not known", t.tid)
		}
		if err := s.newTask(t, t.newTaskID, cause); err != nil {
			return err
		}
	case unix.PTRACE_EVENT_EXEC:
		s.execed(t)
		s.privilegesLost(t.proc.pid)
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
		return t.stepOutOfExec()
	}
	return t.resume(0)
}

// newTask sets up a thread or process created by t.
func (s *Tracer) newTask(t *thread, id, cause int) error {
	parent := t.proc
	var p *process
	isThread := cause == unix.PTRACE_EVENT_CLONE && isThreadOf(parent.pid, id)
	switch {
	case isThread:
		p = parent
		p.nthreads++
	case cause == unix.PTRACE_EVENT_VFORK || (cause == unix.PTRACE_EVENT_CLONE && sameVM(parent.pid, id)):
		// Shares the parent's memory: same sites, same slots, same
		// area, where its records carry its own AGen.
		p = &process{pid: id, as: parent.as, nthreads: 1, unfollowed: s.opts.NoFollowFork, trapAct: parent.trapAct}
		if cause == unix.PTRACE_EVENT_VFORK {
			p.vforkedBy = t
		}
		parent.as.users++
		s.procs[id] = p
		if ar := parent.as.area; ar != nil {
			p.gen = s.sharedChild(ar, id, t.tid, p.unfollowed)
		}
	case t.forkedUnarmed:
		// Forked before the attach armed the parent: a copy of the
		// memory without int3s or slot regions. Let it go untraced at
		// its first stop, with nothing to restore.
		as, err := newAddrSpace(id)
		if err != nil {
			return err
		}
		p = &process{pid: id, as: as, nthreads: 1, unfollowed: true}
		s.procs[id] = p
	default:
		as, err := parent.as.fork(id)
		if err != nil {
			return err
		}
		p = &process{pid: id, as: as, nthreads: 1, unfollowed: s.opts.NoFollowFork, trapAct: parent.trapAct}
		s.procs[id] = p
	}
	t.forkedUnarmed = false
	nt := &thread{tid: id, proc: p, state: newborn}
	if !isThread {
		// The child's stack is a copy: so are the hijacked returns.
		nt.returns.shadow = append([]retFrame(nil), t.returns.shadow...)
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
func (s *Tracer) execed(t *thread) {
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
	p.vforkedBy = nil // its parent's vfork has ended
	p.returns = processReturns{}
	t.comm = ""
	t.returns = threadReturns{}
	s.leaveArea(p)
	p.as.release()
	p.as = nil
}

// threadExited updates the books after t exited.
func (s *Tracer) threadExited(t *thread, ws unix.WaitStatus) {
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
		s.leaveArea(p)
		p.as.release()
	}
}

// releaseChild lets a fork child go untraced before it runs: its copy of
// the text gets the original bytes back, its copy of the stack the real
// return addresses.
func (s *Tracer) releaseChild(t *thread) error {
	as := t.proc.as
	if err := t.returns.restore(as); err != nil {
		return fmt.Errorf("child %d: %w", t.tid, err)
	}
	s.lowerSemaphores(as, t.proc.pid)
	as.releaseExits(s.warn)
	if _, mismatches := as.restore(s.warn); len(mismatches) > 0 {
		return fmt.Errorf("child %d: %w after removing the probes: %s", t.tid, ErrTextMismatch, mismatches[0])
	}
	delete(s.threads, t.tid)
	delete(s.procs, t.proc.pid)
	as.release()
	if err := detach(t.tid, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("detach child %d: %w", t.tid, err)
	}
	return nil
}

// privilegesLost warns when process pid has just exec'd a file whose
// set-user-ID, set-group-ID or file capabilities the kernel ignored
// because the exec was traced (package privs): it runs without them.
func (s *Tracer) privilegesLost(pid int) {
	if s.tracerCapable {
		return
	}
	path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return
	}
	c, err := privs.Of(pid)
	if err != nil {
		return
	}
	if w := privs.Lost(path, c); w != "" {
		s.warn(fmt.Errorf("process %d exec'd %s", pid, w))
	}
}

// stepOutOfExec resumes t, stopped inside execve (its exec event, or an
// interrupt on the way out), to execve's syscall-exit-stop
// (PTRACE_SYSCALL): an ordinary stop, where the new image can be armed.
// Not a single-step: its SIGTRAP is forced (force_sig), which resets the
// program's SIGTRAP action and unblocks SIGTRAP when the new image
// inherited SIGTRAP ignored or blocked (docs/DESIGN.md §4, "SIGTRAP").
func (t *thread) stepOutOfExec() error {
	if err := ptraceRaw(unix.PTRACE_SYSCALL, t.tid, 0, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("step thread %d out of exec: %w", t.tid, err)
	}
	t.stopped = false
	return nil
}
