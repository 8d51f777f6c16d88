package engine

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The program's SIGTRAP disposition (docs/DESIGN.md §4, "SIGTRAP"). An
// int3 of the engine's hit while the thread has SIGTRAP blocked, or while
// the process ignores it, makes the kernel (force_sig) reset the action
// to SIG_DFL for the whole process and unblock SIGTRAP in the thread,
// before the engine sees the stop. Nothing of the state before is left to
// read then, so the engine reads the action beforehand, where it stops the
// program anyway (arming, thread and process creation), and after a hit
// in a process whose action is not SIG_DFL finds whether the kernel reset
// it, and puts the action back; a handler is reset only when SIGTRAP was
// blocked, so the thread's mask gets SIGTRAP back too. A process whose
// SIGTRAP action is SIG_DFL (the common case) pays nothing per hit.

// sigtrapBit is SIGTRAP's bit in a signal set.
const sigtrapBit = 1 << (unix.SIGTRAP - 1)

// sigIgn is SIG_IGN as a handler.
const sigIgn = 1

// trapDisposition reads whether process pid catches or ignores SIGTRAP
// (SigCgt and SigIgn of /proc/PID/status, the process's action table).
func trapDisposition(pid int) (caught, ignored bool, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "SigCgt" && k != "SigIgn") {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, false, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "SigCgt" {
			caught = set&sigtrapBit != 0
		} else {
			ignored = set&sigtrapBit != 0
		}
	}
	return caught, ignored, nil
}

// learnTrapAction reads the SIGTRAP action of t's process, t stopped where
// it can run an injected system call: nil when it is SIG_DFL.
func (s *Tracer) learnTrapAction(t *thread) error {
	p := t.proc
	caught, ignored, err := trapDisposition(p.pid)
	if err != nil {
		return err
	}
	if !caught && !ignored {
		p.trapAct = nil
		return nil
	}
	if err := getRegs(t.tid, &t.regs); err != nil {
		return err
	}
	var act kernelSigaction
	if err := s.trapSigaction(t, nil, &act); err != nil {
		return fmt.Errorf("read the SIGTRAP action of process %d: %w", p.pid, err)
	}
	p.trapAct = &act
	return nil
}

// relearnTrapAction is learnTrapAction when the action is already known:
// it injects nothing when /proc's SigCgt and SigIgn give the kind last
// read (default, ignored, a handler). A new handler in place of another
// goes unseen until the kind changes (docs/DESIGN.md §4).
func (s *Tracer) relearnTrapAction(t *thread) error {
	p := t.proc
	caught, ignored, err := trapDisposition(p.pid)
	if err != nil {
		return err
	}
	switch {
	case !caught && !ignored:
		p.trapAct = nil
		return nil
	case p.trapAct == nil:
	case ignored && p.trapAct.handler == 1: // SIG_IGN
		return nil
	case caught && p.trapAct.handler > 1:
		return nil
	}
	return s.learnTrapAction(t)
}

// trapSigaction runs rt_sigaction(SIGTRAP, act, old) in t, through a
// scratch area below t's red zone (the thread is stopped: nothing of the
// program's lives there), whose bytes it puts back.
func (s *Tracer) trapSigaction(t *thread, act, old *kernelSigaction) error {
	const size = int(unsafe.Sizeof(kernelSigaction{}))
	mem := t.proc.as.mem
	scratch := (t.regs.Rsp - 128 - 2*uint64(size)) &^ 15
	saved := make([]byte, 2*size)
	if err := mem.readFull(scratch, saved); err != nil {
		return err
	}
	var newAddr, oldAddr uint64
	if act != nil {
		newAddr = scratch
		if _, err := mem.WriteMemory(newAddr, sigactionBytes(act)); err != nil {
			return err
		}
	}
	if old != nil {
		oldAddr = scratch + uint64(size)
	}
	_, err := s.remoteSyscall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGTRAP), newAddr, oldAddr, 8, 0, 0)
	if err == nil && old != nil {
		b := make([]byte, size)
		if err = mem.readFull(oldAddr, b); err == nil {
			*old = kernelSigaction{
				handler:  uintptr(binary.LittleEndian.Uint64(b[0:])),
				flags:    binary.LittleEndian.Uint64(b[8:]),
				restorer: uintptr(binary.LittleEndian.Uint64(b[16:])),
				mask:     binary.LittleEndian.Uint64(b[24:]),
			}
		}
	}
	if _, werr := mem.WriteMemory(scratch, saved); werr != nil && err == nil {
		err = werr
	}
	return err
}

func sigactionBytes(a *kernelSigaction) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint64(b[0:], uint64(a.handler))
	binary.LittleEndian.PutUint64(b[8:], a.flags)
	binary.LittleEndian.PutUint64(b[16:], uint64(a.restorer))
	binary.LittleEndian.PutUint64(b[24:], a.mask)
	return b
}

// undoTrapReset is called at a stop of t on one of the engine's int3s in a
// process whose SIGTRAP action is not SIG_DFL (trapAct): if the kernel
// reset it for this trap, it is put back, and for a handler (reset only
// when the thread had SIGTRAP blocked) SIGTRAP is blocked in t again.
// t.regs are the registers of the stop, and stay so.
func (s *Tracer) undoTrapReset(t *thread) {
	p := t.proc
	want := p.trapAct
	caught, ignored, err := trapDisposition(p.pid)
	if err != nil || (want.handler == sigIgn && ignored) || (want.handler != sigIgn && caught) {
		return // as it was
	}
	if err := s.trapSigaction(t, want, nil); err != nil {
		s.warn(fmt.Errorf("thread %d: put back the SIGTRAP action the kernel reset at an int3: %w", t.tid, err))
		return
	}
	if want.handler == sigIgn {
		return // ignored: reset whether blocked or not; the mask is not known
	}
	var mask uint64
	if err := sigmask(unix.PTRACE_GETSIGMASK, t.tid, &mask); err != nil {
		s.warn(fmt.Errorf("thread %d: signal mask: %w", t.tid, err))
		return
	}
	mask |= sigtrapBit
	if err := sigmask(unix.PTRACE_SETSIGMASK, t.tid, &mask); err != nil {
		s.warn(fmt.Errorf("thread %d: block SIGTRAP again: %w", t.tid, err))
	}
}

// sigmask is PTRACE_GETSIGMASK or PTRACE_SETSIGMASK (req) of thread tid.
func sigmask(req, tid int, mask *uint64) error {
	if _, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 8, uintptr(unsafe.Pointer(mask)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}
