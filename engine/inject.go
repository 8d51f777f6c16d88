package engine

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
)

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
func (s *Tracer) remoteSyscall(t *thread, nr uintptr, a1, a2, a3, a4, a5, a6 uint64) (uint64, error) {
	as := t.proc.as
	saved := t.regs
	if t.stopped {
		switch stopEvent(t.stop) {
		case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK:
			// Stopped before the call returns: it returns the new
			// task's ID to this thread.
			if t.newTaskID == 0 {
				return 0, fmt.Errorf("thread %d inside clone: the new task is not known", t.tid)
			}
			saved.Rax = uint64(t.newTaskID)
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
	res, err := s.runSyscall(t, &regs, nr, stub+syscallCodeLen-1)
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

// runSyscall sets regs on the stopped thread t, about to run the system
// call nr whose syscall instruction ends at after, and runs it to its
// syscall-exit-stop (PTRACE_SYSCALL), returning rax there. The int3 that
// follows the call is never executed: a SIGTRAP raised while the thread
// has SIGTRAP blocked, or the process ignores it, would reset the
// program's SIGTRAP action and mask (docs/DESIGN.md §4, "SIGTRAP").
// Signals that arrive meanwhile are requeued for the thread; a thread
// resumed from inside a system call of its own (a clone event) reports
// that call's exit first, which is passed over.
func (s *Tracer) runSyscall(t *thread, regs *arch.Regs, nr uintptr, after uint64) (uint64, error) {
	if err := setRegs(t.tid, regs); err != nil {
		return 0, fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	entered := false
	sig := unix.Signal(0)
	for {
		if err := ptraceRaw(unix.PTRACE_SYSCALL, t.tid, 0, uintptr(sig)); err != nil {
			return 0, fmt.Errorf("resume thread %d: %w", t.tid, err)
		}
		sig = 0
		var ws unix.WaitStatus
		_, err := unix.Wait4(t.tid, &ws, waitFlags, nil)
		for err == unix.EINTR {
			_, err = unix.Wait4(t.tid, &ws, waitFlags, nil)
		}
		if err != nil {
			return 0, fmt.Errorf("wait for thread %d: %w", t.tid, err)
		}
		if ws.Exited() || ws.Signaled() {
			s.deferExit(t.tid, ws)
			return 0, fmt.Errorf("thread %d exited during an injected system call", t.tid)
		}
		if ws.StopSignal() != unix.SIGTRAP || stopEvent(ws) != 0 {
			if sig := ws.StopSignal(); stopEvent(ws) == 0 && sig != unix.SIGTRAP {
				t.requeue = append(t.requeue, sig) // delivered later
			}
			continue
		}
		si, err := getSiginfo(t.tid)
		if err != nil {
			return 0, fmt.Errorf("siginfo of thread %d: %w", t.tid, err)
		}
		if si.Code != int32(unix.SIGTRAP) {
			t.requeue = append(t.requeue, unix.SIGTRAP) // a SIGTRAP sent to the program
			continue
		}
		var r arch.Regs
		if err := getRegs(t.tid, &r); err != nil {
			return 0, fmt.Errorf("registers of thread %d: %w", t.tid, err)
		}
		if r.Rip != after || r.Orig_rax != uint64(nr) {
			continue // the exit of the thread's own call, or another's
		}
		if !entered {
			entered = true
			continue
		}
		return r.Rax, s.leaveSyscallStop(t)
	}
}

// leaveSyscallStop moves t from the syscall-exit-stop of an injected call
// to an interrupt's stop. Registers put back at a syscall-exit-stop would
// skip the kernel's restart of the system call the thread was in when the
// engine stopped it (a read that got -ERESTARTSYS returns that to the
// program): the restart is decided after get_signal, where the interrupt
// stops the thread, as it was when the call was injected.
func (s *Tracer) leaveSyscallStop(t *thread) error {
	if err := unix.PtraceInterrupt(t.tid); err != nil {
		return fmt.Errorf("interrupt thread %d: %w", t.tid, err)
	}
	if err := cont(t.tid, 0); err != nil {
		return fmt.Errorf("resume thread %d: %w", t.tid, err)
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(t.tid, &ws, waitFlags, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for thread %d: %w", t.tid, err)
		}
		if ws.Exited() || ws.Signaled() {
			s.deferExit(t.tid, ws)
			return fmt.Errorf("thread %d exited during an injected system call", t.tid)
		}
		if stopEvent(ws) == unix.PTRACE_EVENT_STOP {
			return nil
		}
		if sig := ws.StopSignal(); stopEvent(ws) == 0 {
			t.requeue = append(t.requeue, sig) // delivered later
		}
		if err := cont(t.tid, 0); err != nil {
			return fmt.Errorf("resume thread %d: %w", t.tid, err)
		}
	}
}
