package engine

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Thin wrappers over the ptrace calls the engine makes. All of them must be
// called from the session's locked OS thread: the kernel accepts ptrace
// requests only from the tracing thread.

// ptraceOptions are set on every traced process: children and threads are
// traced from their first instruction, exec is reported, and a launched
// program dies with the tracer rather than running on with our int3s.
const ptraceOptions = unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK |
	unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACEEXEC

// getSiginfo returns the siginfo of the signal a thread is stopped with.
func getSiginfo(tid int) (unix.Siginfo, error) {
	var si unix.Siginfo
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO,
		uintptr(tid), 0, uintptr(unsafe.Pointer(&si)), 0, 0)
	if errno != 0 {
		return si, errno
	}
	return si, nil
}

// siKernel is SI_KERNEL, the si_code of a signal the kernel raises itself,
// as it raises SIGTRAP for an int3 (force_sig).
const siKernel = 0x80

// peekSiginfoArgs is struct ptrace_peeksiginfo_args.
type peekSiginfoArgs struct {
	off   uint64
	flags uint32
	nr    int32
}

// kernelTrapPending reports whether thread tid, stopped, has a SIGTRAP of
// the kernel's (an int3's) queued in its own pending signals, not yet
// taken: PTRACE_PEEKSIGINFO reads the queue without dequeuing it. A
// SIGTRAP that another thread or process sent has another si_code.
func kernelTrapPending(tid int) (bool, error) {
	var buf [32]unix.Siginfo
	args := peekSiginfoArgs{nr: int32(len(buf))}
	n, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
		uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
	if errno != 0 {
		return false, errno
	}
	for i := range int(n) {
		if buf[i].Signo == int32(unix.SIGTRAP) && buf[i].Code == siKernel {
			return true, nil
		}
	}
	return false, nil
}

// siginfoAddr is si_addr of a fault siginfo (the union starts 16 bytes in;
// unix.Siginfo keeps it as raw bytes).
func siginfoAddr(si *unix.Siginfo) uint64 {
	p := (*[128]byte)(unsafe.Pointer(si))
	return *(*uint64)(unsafe.Pointer(&p[16]))
}

// currentCPU is the CPU the calling thread runs on.
func currentCPU() int {
	var cpu, node uint32
	_, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0)
	if errno != 0 {
		return 0
	}
	return int(cpu)
}

// pinThread confines the calling OS thread to one CPU. A stop of a traced
// thread wakes the tracer; when the tracer sleeps on the CPU the tracee
// runs on, the wake-up is ~5x cheaper than across CPUs (docs/DESIGN.md §6).
// Only the tracer is confined: the program's threads keep their affinity.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// ptraceRaw makes a ptrace request the unix package has no wrapper for.
func ptraceRaw(req, pid int, addr, data uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// seize attaches to a thread with PTRACE_SEIZE and the engine's options.
// Seized threads report group-stops as such, so that job control works
// (PTRACE_LISTEN), and can be stopped with PTRACE_INTERRUPT.
func seize(tid int, options int) error {
	return ptraceRaw(unix.PTRACE_SEIZE, tid, 0, uintptr(options))
}

// listen leaves a seized thread in its group-stop, to be told when it is
// continued by SIGCONT.
func listen(tid int) error { return ptraceRaw(unix.PTRACE_LISTEN, tid, 0, 0) }

// detach detaches from a stopped thread, delivering sig (0 for none).
func detach(tid int, sig unix.Signal) error {
	return ptraceRaw(unix.PTRACE_DETACH, tid, 0, uintptr(sig))
}

// stopEvent returns the PTRACE_EVENT_* of a ptrace-stop status, 0 for a
// signal-delivery-stop.
func stopEvent(ws unix.WaitStatus) int { return int(ws>>16) & 0xff }

// isStopSignal reports whether sig stops a process (job control).
func isStopSignal(sig unix.Signal) bool {
	return sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// x86-64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const saNoCldStop = 0x1 // SA_NOCLDSTOP

// quietStops sets SA_NOCLDSTOP on the process's SIGCHLD action, keeping
// its handler (Go's). Every stop of a traced thread otherwise sends the
// tracer a SIGCHLD, and Go's handler, which ignores it, still costs a
// signal delivery and return per probe hit (~1.5 µs here, in a ~10 µs
// hit). With the flag the kernel only wakes the waiting tracer. The flag
// is the process's and stays set: exits of children still raise SIGCHLD,
// but an os/signal user of SIGCHLD in the process embedding the engine
// no longer hears of its children stopping or continuing (until it calls
// signal.Notify for SIGCHLD again, which installs Go's flags anew).
func quietStops() {
	var act kernelSigaction
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&act)), 8, 0, 0); errno != 0 {
		return
	}
	if act.flags&saNoCldStop != 0 || act.handler == 0 || act.handler == 1 {
		return // set already, or SIG_DFL/SIG_IGN: no handler runs
	}
	act.flags |= saNoCldStop
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}

// The hot path's ptrace requests, as raw system calls: none of them
// blocks (a stopped tracee's registers are read and written in place, and
// PTRACE_CONT only wakes it), so they need not tell the Go scheduler, which
// unix.Ptrace* does at ~0.1 µs a call.

// getRegs is PTRACE_GETREGS.
func getRegs(tid int, regs *unix.PtraceRegs) error {
	return ptraceNoBlock(unix.PTRACE_GETREGS, tid, uintptr(unsafe.Pointer(regs)))
}

// setRegs is PTRACE_SETREGS.
func setRegs(tid int, regs *unix.PtraceRegs) error {
	return ptraceNoBlock(unix.PTRACE_SETREGS, tid, uintptr(unsafe.Pointer(regs)))
}

// ripOffset is the offset of rip in struct user_regs_struct, which is
// where PTRACE_POKEUSER writes it.
const ripOffset = uint64(unsafe.Offsetof(unix.PtraceRegs{}.Rip))

// pokeRip is PTRACE_POKEUSER of rip alone.
func pokeRip(tid int, rip uint64) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_POKEUSR, uintptr(tid), uintptr(ripOffset), uintptr(rip), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// cont is PTRACE_CONT delivering sig (0: none).
func cont(tid int, sig unix.Signal) error {
	return ptraceNoBlock(unix.PTRACE_CONT, tid, uintptr(sig))
}

func ptraceNoBlock(req, tid int, data uintptr) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 0, data, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// interrupt is PTRACE_INTERRUPT: the thread reports a PTRACE_EVENT_STOP
// soon (unless it is in a stop already).
func interrupt(tid int) error { return unix.PtraceInterrupt(tid) }
