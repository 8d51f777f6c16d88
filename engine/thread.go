package engine

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
)

// threadState says what a stop of the thread means.
type threadState int

const (
	running threadState = iota
	// newborn: created by clone/fork and not yet seen at its first stop
	// (the SIGSTOP a traced child starts with).
	newborn
	// execStep: single-stepping out of an exec so that the new image
	// can be armed from an ordinary stop.
	execStep
)

// thread is one traced thread: what the engine knows of it, and the
// ptrace requests that change it. All its methods run on the ptrace
// thread.
type thread struct {
	tid   int
	proc  *process
	state threadState
	// stopped: the thread is in a ptrace-stop that the engine has
	// waited for (with status stop) and not ended: it reports no other
	// stop until resumed, and a PTRACE_INTERRUPT makes none.
	stopped bool
	stop    unix.WaitStatus
	regs    arch.Regs
	// regsIn are the registers as readRegs read them (regsRead), so
	// that setRegsAndResume can tell whether rip alone changed.
	regsIn   arch.Regs
	regsRead bool
	comm     string // cached /proc comm, "" until first needed
	// requeue holds signals that arrived during an injected system call,
	// sent again when the thread resumes.
	requeue []unix.Signal
	// returns is the thread's part of the return probes (returns.go).
	returns threadReturns
	// at is where the hit being handled is, for Context; zero between
	// hits.
	at hitPoint
	// hitNS is when the tracer took the current hit (Tracer.now): the
	// time of its entry events, and of the entry of a return probe's
	// call, so that a call's span [entry, return] nests in its caller's
	// whatever runs between the hit and the event.
	hitNS uint64
	// stepped: the thread is in the SIGTRAP stop of a single-step of the
	// engine's (stepOut), resumed without the signal.
	stepped bool
	// silent: the last hit fired no probe (a Go function run again after
	// runtime.morestack), so its post handlers do not run either.
	silent bool
	// newTaskID is the task a clone, fork or vfork event stop reports
	// (0: none), read when the stop is: every later stop overwrites the
	// kernel's event message, the int3 that ends an injected system call
	// included, and the call would then return 0 to the parent.
	newTaskID int
	// forkedUnarmed: the clone or fork event of the stop the thread was
	// in when it was attached to; the task it made copied the memory of
	// before the probes were armed (see newTask).
	forkedUnarmed bool
}

// hitPoint is the probed address of a hit and the address of offset 0 of
// the probed file there.
type hitPoint struct{ addr, fileBase uint64 }

// stopped records a stop of the thread, with its status.
func (t *thread) stoppedWith(ws unix.WaitStatus) {
	again := t.stopped && t.stop == ws
	t.stopped, t.stop = true, ws
	t.regsRead = false // regsIn is of an earlier stop
	if again {
		// The stop recorded before (attach records its stops, arms,
		// then handles them): the event message may be an injected
		// call's by now.
		return
	}
	t.newTaskID = 0
	switch stopEvent(ws) {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		if msg, err := unix.PtraceGetEventMsg(t.tid); err == nil {
			t.newTaskID = int(msg)
		}
	}
}

// readRegs reads the registers of the stopped thread into t.regs, and
// keeps a copy for setRegsAndResume. ESRCH (killed meanwhile) is
// returned as it is: the caller lets the exit be reported next.
func (t *thread) readRegs() error {
	if err := getRegs(t.tid, &t.regs); err != nil {
		return err
	}
	t.regsIn, t.regsRead = t.regs, true
	return nil
}

// resume continues t, delivering sig (0 for none) and any signal requeued
// while it ran an injected system call.
func (t *thread) resume(sig unix.Signal) error {
	for _, q := range t.requeue {
		unix.Tgkill(t.proc.pid, t.tid, q)
	}
	t.requeue = t.requeue[:0]
	err := cont(t.tid, sig)
	switch err {
	case nil, unix.ESRCH: // ESRCH: killed meanwhile; its exit is reported next
		t.stopped = false
		return nil
	}
	return fmt.Errorf("resume thread %d: %w", t.tid, err)
}

// setRegsAndResume writes t.regs back and resumes t. When only rip
// changed since readRegs (the one-stop path without handlers that write
// registers), it writes rip alone: PTRACE_SETREGS checks and stores every
// register, a third of a microsecond more a hit.
func (t *thread) setRegsAndResume(sig unix.Signal) error {
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
			return t.resume(sig)
		}
	}
	if err := setRegs(t.tid, &t.regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	return t.resume(sig)
}

// listen leaves t in its group-stop (job control), as it would be without
// ptrace; SIGCONT ends it with another PTRACE_EVENT_STOP.
func (t *thread) listen() error {
	if err := listen(t.tid); err != nil && err != unix.ESRCH {
		return fmt.Errorf("listen on thread %d: %w", t.tid, err)
	}
	t.stopped = false // listening: an interrupt makes it report again
	return nil
}

// Context methods: a *thread stopped on a hit is the uprobe.Context given
// to handlers.

func (t *thread) PID() int         { return t.proc.pid }
func (t *thread) TID() int         { return t.tid }
func (t *thread) Regs() *arch.Regs { return &t.regs }

// ReadMemory reads as the program itself could (ReadUser): a fetch-arg
// on a PROT_NONE page faults, as under the kernel's uprobe and on the
// no-stop path.
func (t *thread) ReadMemory(addr uint64, p []byte) (int, error) {
	return t.proc.as.mem.ReadUser(addr, p)
}
func (t *thread) ReadMemoryVector(addrs []uint64, bufs [][]byte) (int, error) {
	return t.proc.as.mem.ReadMemoryVector(addrs, bufs)
}
func (t *thread) Addr() uint64     { return t.at.addr }
func (t *thread) FileBase() uint64 { return t.at.fileBase }

// Symbolize is uprobe.Symbolizer, for symstr.
func (t *thread) Symbolize(addr uint64) string { return t.proc.as.symbolize(t.proc.pid, addr) }
func (t *thread) Comm() string {
	if t.comm == "" {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", t.proc.pid, t.tid))
		if err != nil {
			return "<...>"
		}
		t.comm = strings.TrimSuffix(string(b), "\n")
	}
	return t.comm
}

// EntryData is what the return probe's Entry handler returned at the
// entry of the function now returning (uprobe.Context).
func (t *thread) EntryData() uint64 { return t.returns.data }

// EntryReg is uprobe.EntryRegisters: r as the function being returned
// from had it at its entry.
func (t *thread) EntryReg(r arch.Reg) (uint64, bool) { return t.returns.entryReg(r) }
