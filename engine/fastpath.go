package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/recorder"
	"github.com/ptprobe/ptprobe/resolve"
)

// The no-stop path (docs/DESIGN.md §8): a site whose probes have no Go
// handler takes its hits without a ptrace stop. A jmp rel32 over its
// first instructions leads to a thunk in a slot region:
//
//	lea -128(%rsp),%rsp          skip the red zone
//	push %rax
//	movabs $descriptor,%rax
//	call recorder                records the hit (internal/recorder)
//	pop %rax
//	lea 128(%rsp),%rsp
//	the replaced instructions, relocated
//	jmp back
//
// and the drain (drain.go) turns the records into events.

// fastStrategy is a site patched with a jmp to its thunk.
type fastStrategy struct {
	span    arch.Span
	orig    []byte // the file's bytes the jmp and its filler replace
	thunk   uint64
	relocAt uint64 // where the relocated instructions start in the thunk
	// heads are where each of span.Insts starts after relocAt, and
	// relocLen the relocated code's length: a fault there is the
	// program's, seen at the original instruction (originalAt).
	heads    []int
	relocLen int
	desc     uint64 // the descriptor's address in the process
	id       uint32 // its ID in the area
	ar       *area
}

func (fs *fastStrategy) original(st *site) []byte { return fs.orig }

// originalAt maps rip inside the relocated instructions of the thunk of
// site st to the address of the original instruction it runs, and says
// whether the instruction's relocation had pushed a return address
// already (a call, rewritten as push and jmp, past its first byte): the
// state a fault there is delivered with, as without the probe, once rsp
// is put back. ok is false outside the relocated code (the thunk's own).
func (fs *fastStrategy) originalAt(st *site, rip uint64) (addr uint64, pushed, ok bool) {
	if rip < fs.relocAt || rip >= fs.relocAt+uint64(fs.relocLen) {
		return 0, false, false
	}
	k := int(rip - fs.relocAt)
	addr = st.addr
	for i, h := range fs.heads {
		if i+1 < len(fs.heads) && fs.heads[i+1] <= k {
			addr += uint64(fs.span.Insts[i].Len)
			continue
		}
		flow := fs.span.Insts[i].Flow
		pushed = (flow == arch.FlowCall || flow == arch.FlowCallIndirect) && k > h
		return addr, pushed, true
	}
	return 0, false, false
}
func (fs *fastStrategy) lacksPost() bool { return true }

// The thunk's parts (see above).
var (
	thunkHead = []byte{0x48, 0x8D, 0x64, 0x24, 0x80, 0x50, 0x48, 0xB8} // lea -0x80(%rsp),%rsp; push %rax; movabs $imm64,%rax (the imm follows)
	thunkTail = []byte{0x58, 0x48, 0x8D, 0xA4, 0x24, 0x80, 0x00, 0x00, 0x00}
)

// thunkLen is the thunk's length before the relocated instructions.
const thunkLen = 8 + 8 + 5 + 9

func (fs *fastStrategy) arm(s *Tracer, t *thread, st *site) error {
	as := t.proc.as
	rec, err := s.recorderFor(t, st.addr)
	if err != nil {
		return err
	}
	probe, err := arch.RelocateSpan(fs.span, st.addr, st.addr+thunkLen)
	if err != nil {
		return err
	}
	r, err := s.regionFor(t, st.addr, thunkLen+len(probe))
	if err != nil {
		return err
	}
	if !within(r.next, rec, slotReach) {
		return fmt.Errorf("the thunk at 0x%x cannot reach the recorder at 0x%x", r.next, rec)
	}
	fs.thunk, fs.relocAt = r.next, r.next+thunkLen
	reloc, heads, err := arch.RelocateSpanHeads(fs.span, st.addr, fs.relocAt)
	if err != nil {
		return err
	}
	fs.heads, fs.relocLen = heads, len(reloc)
	code := append([]byte(nil), thunkHead...)
	code = binary.LittleEndian.AppendUint64(code, fs.desc)
	call, ok := arch.Jmp(fs.thunk+uint64(len(code)), rec)
	if !ok {
		return fmt.Errorf("the thunk at 0x%x cannot reach the recorder at 0x%x", fs.thunk, rec)
	}
	call[0] = 0xE8 // a call, not a jmp
	code = append(code, call...)
	code = append(code, thunkTail...)
	code = append(code, reloc...)
	if _, err := as.mem.WriteMemory(fs.thunk, code); err != nil {
		return err
	}
	r.tramps = append(r.tramps, trampRef{start: fs.thunk, end: fs.thunk + uint64(len(code)), site: st})
	r.next += uint64(len(code))
	jmp, ok := arch.Jmp(st.addr, fs.thunk)
	if !ok {
		return fmt.Errorf("the site at 0x%x cannot reach its thunk at 0x%x", st.addr, fs.thunk)
	}
	// The rest of the replaced bytes get int3s: a jump that the function
	// analysis missed into them traps instead of running garbage.
	patch := append(jmp, make([]byte, fs.span.Len-arch.JmpLen)...)
	for i := arch.JmpLen; i < len(patch); i++ {
		patch[i] = int3
	}
	_, err = as.mem.WriteMemory(st.addr, patch)
	return err
}

func (fs *fastStrategy) disarm(mem *memory, st *site) error {
	_, err := mem.WriteMemory(st.addr, fs.orig)
	return err
}

func (fs *fastStrategy) evacuate(st *site, regs *arch.Regs) bool {
	// A thread in the thunk or the recorder runs on to the relocated
	// instructions and jumps back to the original code past them: once
	// the text is restored that is where it would be.
	return false
}

// recorderFor returns the address of the recorder's code within reach of
// addr, writing it into a slot region the first time.
func (s *Tracer) recorderFor(t *thread, addr uint64) (uint64, error) {
	as := t.proc.as
	for _, r := range as.slots {
		if r.recorder != 0 && within(r.recorder, addr, slotReach-slotRegionSize) {
			return r.recorder, nil
		}
	}
	r, err := s.regionFor(t, addr, len(recorder.Code))
	if err != nil {
		return 0, err
	}
	if _, err := as.mem.WriteMemory(r.next, recorder.Code); err != nil {
		return 0, err
	}
	r.recorder = r.next
	r.next += uint64((len(recorder.Code) + 15) &^ 15)
	return r.recorder, nil
}

// Why a site takes the stop path: what fastFor says is not met.
var (
	errFastHandlers = errors.New("a probe there has Go handlers, a return probe or the engine's own breakpoint")
	errFastGo       = errors.New("the code is a Go program's (the runtime's tracebacks and preemption do not know the recorder's frames)")
	errFastCPU      = errors.New("the CPU or kernel lacks user-mode RDFSBASE (HWCAP2_FSGSBASE)")
	errFastSeccomp  = errors.New("the process runs under seccomp, which may refuse the recorder's process_vm_readv")
	errFastNoFunc   = errors.New("the function's bounds are unknown, so its branches cannot be checked")
	errFastLSDA     = errors.New("a mid-function site in a file with C++ exception tables (a landing pad could be in the patch)")
	errFastOff      = errors.New("the stop path was asked for")
	errFastInside   = errors.New("a thread was inside the bytes to patch")
	errFastCovers   = errors.New("the patch would cover another probed instruction")
)

// fastFor decides whether site st, with the breaklets of plan pl, can
// take the no-stop path in t's process, and sets up its strategy if so;
// else it says why not.
func (s *Tracer) fastFor(t *thread, st *site, pl *sitePlan) (*fastStrategy, error) {
	if s.opts.StopPath {
		return nil, errFastOff
	}
	if !s.fastOK(pl.breaklets) {
		return nil, errFastHandlers
	}
	loc := pl.loc
	f := s.files[loc.ID]
	if f == nil {
		return nil, fmt.Errorf("%s: the file is not open", loc.Function)
	}
	if err := noStopRules(loc); err != nil {
		return nil, err
	}
	if err := s.fastUsable(t); err != nil {
		return nil, err
	}
	span, err := loc.Patch(f)
	if err != nil {
		return nil, err
	}
	end := st.addr + uint64(span.Len)
	for a := st.addr + 1; a < end; a++ {
		if _, ok := t.proc.as.sites[a]; ok {
			return nil, errFastCovers
		}
	}
	if i, _ := slices.BinarySearch(s.planned, st.addr+1); i < len(s.planned) && s.planned[i] < end {
		return nil, errFastCovers
	}
	// The jmp must not land under a thread in the middle of the bytes
	// it replaces. Threads that run now do not run this code: the
	// mapping is new (a rescan), or the others are held (holdAll).
	for _, o := range s.threads {
		if o.proc.as != t.proc.as || !o.stopped {
			continue
		}
		var regs arch.Regs
		if getRegs(o.tid, &regs) == nil && regs.Rip > st.addr && regs.Rip < end && !s.stepOut(o, st.addr, end) {
			return nil, errFastInside
		}
	}
	var plans []readPlan
	for _, b := range pl.breaklets {
		ps, err := plansFor(b.args, st.fileBase)
		if err != nil {
			return nil, err
		}
		plans = append(plans, ps...)
	}
	if len(plans) > 0 && seccompOn(t.proc.pid) {
		return nil, errFastSeccomp
	}
	if len(plans) > recorder.MaxPlans {
		return nil, fmt.Errorf("%d memory reads: %w", len(plans), errNotRecordable)
	}
	fs := &fastStrategy{span: span}
	fs.orig = make([]byte, fs.span.Len)
	off := 0
	for i := range fs.span.Insts {
		off += copy(fs.orig[off:], fs.span.Insts[i].Bytes)
	}
	copy(fs.orig[off:], fs.span.Pad)
	ar, err := s.areaOf(t)
	if err != nil {
		return nil, err
	}
	fs.ar = ar
	st.sync = slices.ContainsFunc(pl.breaklets, func(b breaklet) bool { return b.sync })
	if fs.id, fs.desc, err = ar.newDescriptor(st, plans, recordLen(plans)); err != nil {
		return nil, err
	}
	return fs, nil
}

// NoStopAt reports whether an entry probe without Go handlers at loc, in
// file f, can take the no-stop path by the rules that depend on the file
// alone (docs/DESIGN.md §8: the code's language, the function's bounds,
// exception tables, the patch rules); nil if it can. What only a running
// process tells is left out: a thread inside the bytes to patch, another
// probe they would cover, seccomp with memory reads, the CPU. ptprobe
// list --paths shows it for every function.
func NoStopAt(f *elfsym.File, loc *resolve.Location) error {
	if err := noStopRules(loc); err != nil {
		return err
	}
	_, err := loc.Patch(f)
	return err
}

// noStopRules are the rules of NoStopAt before the patch is planned.
func noStopRules(loc *resolve.Location) error {
	switch {
	case loc.Go:
		return errFastGo
	case loc.FuncEnd <= loc.FuncStart:
		return errFastNoFunc
	case loc.Vaddr != loc.FuncStart && loc.LSDA:
		return errFastLSDA
	}
	return nil
}

// fastOK reports whether breaklets can all fire without a stop: entry
// probes without Go handlers, and internal actions that can wait for the
// drain (the dynamic linker's hook).
func (s *Tracer) fastOK(bs []breaklet) bool {
	for _, b := range bs {
		if b.kind == internalBreaklet && b.sync {
			continue
		}
		if b.kind != entryBreaklet {
			return false
		}
		if h := b.handlers; h.Pre != nil || h.Post != nil || h.Fault != nil || h.Entry != nil || h.Return != nil {
			return false
		}
	}
	return true
}

// fastUsable says whether the no-stop path can run in t's process at all.
func (s *Tracer) fastUsable(t *thread) error {
	if s.fastErr == nil {
		s.fastErr = tscUsable()
		if s.fastErr == nil {
			if hw, err := auxvEntry(t.proc.pid, 26 /* AT_HWCAP2 */); err != nil || hw&2 == 0 {
				s.fastErr = errFastCPU
			}
		}
		if s.fastErr == nil {
			s.fastErr = errNone
			s.clock.start()
		}
	}
	if s.fastErr == errNone {
		return nil
	}
	return s.fastErr
}

// errNone marks fastUsable's answer as known and good.
var errNone = errors.New("")

// seccompOn reports whether process pid runs under a seccomp filter.
func seccompOn(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v) != "0"
		}
	}
	return false
}

// areaOf returns the area of t's address space, made the first time.
func (s *Tracer) areaOf(t *thread) (*area, error) {
	as := t.proc.as
	if as.area != nil {
		return as.area, nil
	}
	if as.stub == 0 {
		// The area's system calls run from the first slot region.
		if _, err := s.regionFor(t, t.proc.as.dlState|t.regs.Rip, 0); err != nil {
			return nil, err
		}
	}
	ar, err := s.newArea(t, s.clock.hzTicks)
	if err != nil {
		return nil, err
	}
	// The threads known now; those created later are entered at their
	// first stop, and the recorder asks the kernel for any other.
	for _, o := range s.threads {
		if o.proc.as == as {
			var regs arch.Regs
			if o == t {
				regs = t.regs
			} else if !o.stopped || getRegs(o.tid, &regs) != nil {
				continue
			}
			ar.setThread(regs.Fs_base, o.tid)
			s.noteComm(o.proc.pid, o.tid)
		}
	}
	as.area = ar
	s.addArea(ar)
	return ar, nil
}

// stepOut single-steps the held thread t out of [lo, hi), the bytes a
// patch is about to replace: a few instructions at most. It reports
// whether t is out, stopped in the step's SIGTRAP stop (which resumes as
// the interrupt's stop does). A thread in a group-stop, or one that meets
// a signal meanwhile, is left where it is.
func (s *Tracer) stepOut(t *thread, lo, hi uint64) bool {
	if stopEvent(t.stop) != unix.PTRACE_EVENT_STOP || t.stop.StopSignal() != unix.SIGTRAP {
		return false
	}
	for range arch.MaxInstLen {
		if err := unix.PtraceSingleStep(t.tid); err != nil {
			return false
		}
		var ws unix.WaitStatus
		if _, err := wait4(t.tid, &ws); err != nil || !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP || stopEvent(ws) != 0 {
			if ws.Exited() || ws.Signaled() {
				s.deferExit(t.tid, ws)
			} else if err == nil {
				t.stoppedWith(ws) // left for the loop: handle() when released
			}
			return false
		}
		t.stoppedWith(ws)
		t.stepped = true
		var regs arch.Regs
		if getRegs(t.tid, &regs) != nil {
			return false
		}
		if regs.Rip < lo || regs.Rip >= hi {
			t.stepped = true
			return true
		}
	}
	return false
}

// holdAll stops every thread of the address space as that runs, handling
// the other stops that come meanwhile as the loop does, and returns them:
// text that threads may be executing can then be patched. Threads created
// meanwhile are held too.
func (s *Tracer) holdAll(as *addrSpace) ([]*thread, error) {
	var held []*thread
	// A thread that waits in vfork for its child cannot stop until the
	// child execs or exits, and runs no code of the program meanwhile:
	// holding the child along with it would wait forever.
	inVfork := s.waitingInVfork()
	for {
		var want []*thread
		for _, t := range s.threads {
			if t.proc.as == as && !t.stopped && t.state == running && !inVfork[t] {
				if interrupt(t.tid) == nil {
					want = append(want, t)
				}
			}
		}
		if len(want) == 0 {
			return held, nil
		}
		for _, t := range want {
			for {
				var ws unix.WaitStatus
				_, err := wait4(t.tid, &ws)
				if err != nil {
					break // gone
				}
				if ws.Exited() || ws.Signaled() {
					s.deferExit(t.tid, ws)
					break
				}
				if stopEvent(ws) == unix.PTRACE_EVENT_STOP && t.state == running {
					t.stoppedWith(ws) // the interrupt's stop, or a group-stop
					held = append(held, t)
					break
				}
				// Another stop first: handled as the loop would; the
				// interrupt is still pending.
				if err := s.handle(t.tid, ws); err != nil {
					return held, err
				}
				if t.stopped {
					held = append(held, t)
					break
				}
			}
		}
	}
}

// release lets threads held by holdAll go on from their stops.
func (s *Tracer) release(held []*thread) error {
	var first error
	for _, t := range held {
		if s.threads[t.tid] != t || !t.stopped {
			continue
		}
		var err error
		switch {
		case stopEvent(t.stop) == unix.PTRACE_EVENT_STOP:
			err = s.stopEvent(t, t.stop.StopSignal())
		case t.stepped:
			t.stepped = false
			err = t.resume(0) // stepOut's trap
		default:
			err = s.handle(t.tid, t.stop) // a stop stepOut met
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}
