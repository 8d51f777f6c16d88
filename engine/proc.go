package engine

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
)

// addrSpace is the state of one address space (mm): the armed sites, the
// slot regions and the mappings already armed. Threads share it, and so do
// a vfork parent and child until the child execs; a fork child gets a copy.
type addrSpace struct {
	mem   *memory
	sites map[uint64]*site // by the address of the int3
	// exits are the int3s ending trampolines of sites with post
	// handlers, by address.
	exits map[uint64]exitStop
	slots []*slotRegion
	// armed records the executable mappings whose probes are armed (with
	// their end address), so a rescan arms only new ones.
	armed map[mapKey]uint64
	// stub is `syscall; int3` and retTramp the return trampoline's int3,
	// both in the first slot region; 0 until it exists.
	stub, retTramp uint64
	// dlState is the dynamic linker's _dl_debug_state, 0 if not armed.
	dlState uint64
	users   int // processes using this address space
}

// mapKey identifies one mapping of one file.
type mapKey struct {
	start, offset uint64
	id            elfsym.FileID
}

func keyOf(m elfsym.Mapping) mapKey {
	return mapKey{start: m.Start, offset: m.Offset, id: m.ID()}
}

// exitStop is a post-handler int3 at the end of a trampoline.
type exitStop struct {
	site   *site
	addr   uint64 // of the exit's int3 or jmp
	resume uint64
}

func newAddrSpace(pid int) (*addrSpace, error) {
	mem, err := openMemory(pid)
	if err != nil {
		return nil, err
	}
	return &addrSpace{
		mem:   mem,
		sites: make(map[uint64]*site),
		exits: make(map[uint64]exitStop),
		armed: make(map[mapKey]uint64),
		users: 1,
	}, nil
}

// fork returns the address space of a fork child: the same layout, so the
// same sites at the same addresses, but its own memory from now on.
func (as *addrSpace) fork(pid int) (*addrSpace, error) {
	c, err := newAddrSpace(pid)
	if err != nil {
		return nil, err
	}
	for a, st := range as.sites {
		c.sites[a] = st
	}
	for a, e := range as.exits {
		c.exits[a] = e
	}
	for k, end := range as.armed {
		c.armed[k] = end
	}
	for _, r := range as.slots {
		cp := *r
		cp.tramps = append([]trampRef(nil), r.tramps...)
		c.slots = append(c.slots, &cp)
	}
	c.stub, c.retTramp, c.dlState = as.stub, as.retTramp, as.dlState
	return c, nil
}

func (as *addrSpace) release() {
	if as == nil {
		return
	}
	as.users--
	if as.users <= 0 {
		as.mem.close()
	}
}

// isTrap reports whether addr holds one of the engine's int3s: a site, a
// trampoline exit of a site with post handlers, or the return trampoline.
func (as *addrSpace) isTrap(addr uint64) bool {
	if _, ok := as.sites[addr]; ok {
		return true
	}
	if _, ok := as.exits[addr]; ok {
		return true
	}
	return as.retTramp != 0 && addr == as.retTramp
}

// trampAt returns the site whose trampoline contains addr.
func (as *addrSpace) trampAt(addr uint64) (*site, bool) {
	for _, r := range as.slots {
		if addr < r.start || addr >= r.end {
			continue
		}
		for _, t := range r.tramps {
			if addr >= t.start && addr < t.end {
				return t.site, true
			}
		}
	}
	return nil, false
}

// process is one traced thread group.
type process struct {
	pid int
	as  *addrSpace
	// nthreads counts the live threads we know of.
	nthreads int
	// unfollowed: a child of a fork that the session does not follow
	// (Config.NoFollowFork): its probes do not fire, and it is let go
	// as soon as it has no int3 of ours (see releaseChild).
	unfollowed bool
	// goFrames are the entries of Go functions with return probes, by
	// stack pointer (see goEntered).
	goFrames map[goFrameKey]goFrame
	// restarts are, by goroutine (its g), the Go function entry that
	// goroutine will run again once runtime.morestack returns.
	restarts map[uint64]uint64
}

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

// thread is one traced thread and what the engine knows of it.
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
	// regsIn are the registers as trap read them (regsRead), so that
	// setRegsAndResume can tell whether rip alone changed.
	regsIn   arch.Regs
	regsRead bool
	comm     string // cached /proc comm, "" until first needed
	// shadow is the return-probe shadow stack: the return addresses the
	// engine replaced, innermost last.
	shadow []retFrame
	// requeue holds signals that arrived during an injected system call,
	// sent again when the thread resumes.
	requeue []unix.Signal
	// at is where the hit being handled is, for Context; zero between
	// hits.
	at hitPoint
	// silent: the last hit fired no probe (a Go function run again after
	// runtime.morestack), so its post handlers do not run either.
	silent bool
	// entry are the argument registers the function being returned from
	// had at its entry, while its return probes run (Context's
	// EntryReg); nil otherwise, or when the entry was not seen.
	entry *entryRegs
	// goEntry holds the entry registers of a Go return while its
	// probes run (its frame is gone from the books by then).
	goEntry entryRegs
}

// hitPoint is the probed address of a hit and the address of offset 0 of
// the probed file there.
type hitPoint struct{ addr, fileBase uint64 }

// entryRegs are the argument registers of both ABIs (uprobe.SysV and
// uprobe.GoRegs) as a function had them at its entry: what a return
// probe's $argN reads (uprobe.OpEntryReg).
type entryRegs [len(entryRegList)]uint64

var entryRegList = [...]arch.Reg{arch.RAX, arch.RBX, arch.RCX, arch.RDX, arch.RSI, arch.RDI, arch.R8, arch.R9, arch.R10, arch.R11}

// saveEntry records the argument registers of regs.
func (e *entryRegs) save(regs *arch.Regs) {
	for i, r := range entryRegList {
		e[i] = r.Get(regs)
	}
}

// retFrame is one hijacked return address.
type retFrame struct {
	sp      uint64 // where the return address sits on the stack
	ret     uint64 // the real return address
	site    *site
	entryNS uint64 // when the function was entered
	entry   entryRegs
	// restored: the real return address is back on the stack while an
	// exception unwinds (see unwindStarts).
	restored bool
}

// Context methods: a *thread stopped on a hit is the uprobe.Context given
// to handlers.

func (t *thread) PID() int         { return t.proc.pid }
func (t *thread) TID() int         { return t.tid }
func (t *thread) Regs() *arch.Regs { return &t.regs }
func (t *thread) ReadMemory(addr uint64, p []byte) (int, error) {
	return t.proc.as.mem.ReadMemory(addr, p)
}
func (t *thread) ReadMemoryVector(addrs []uint64, bufs [][]byte) (int, error) {
	return t.proc.as.mem.ReadMemoryVector(addrs, bufs)
}
func (t *thread) Addr() uint64     { return t.at.addr }
func (t *thread) FileBase() uint64 { return t.at.fileBase }

// EntryReg is uprobe.EntryRegisters: r as the function being returned
// from had it at its entry.
func (t *thread) EntryReg(r arch.Reg) (uint64, bool) {
	if t.entry == nil {
		return 0, false
	}
	for i, er := range entryRegList {
		if er == r {
			return t.entry[i], true
		}
	}
	return 0, false
}
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
