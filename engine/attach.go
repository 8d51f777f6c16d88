package engine

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/elfsym"
)

// Attach seizes every thread of the running process pid, arms the probes
// in it and traces it (and, unless Config.NoFollowFork, its children)
// until it exits or Stop detaches. The process keeps running throughout:
// its threads stop only for the moment the probes are armed.
func Attach(cfg Config, pid int) (*Session, error) {
	s, err := newSession(cfg, processLibraries(pid))
	if err != nil {
		return nil, err
	}
	return s.begin(func() error { return s.attach(pid) })
}

// processLibraries returns where the running process pid finds its
// libraries: the files it maps, then what ProgramLibraries says of its
// executable with its own LD_LIBRARY_PATH. What of /proc/PID cannot be
// read is left out (Attach then fails on the process itself, with the
// reason).
func processLibraries(pid int) *elfsym.Libraries {
	var env elfsym.LibraryEnv
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		env.Program = exe
	}
	if maps, err := elfsym.ReadMaps(pid); err == nil {
		for _, m := range maps {
			if m.Inode != 0 && strings.HasPrefix(m.Path, "/") && !strings.HasSuffix(m.Path, " (deleted)") {
				env.Mapped = append(env.Mapped, m.Path)
			}
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		env.LDLibraryPath = getenv(strings.Split(string(data), "\x00"), "LD_LIBRARY_PATH")
	}
	return elfsym.NewLibraries(env)
}

// ErrPermission is wrapped by Attach when the kernel refuses to let
// ptprobe trace the process.
var ErrPermission = errors.New("not permitted to trace the process")

func (s *Session) attach(pid int) error {
	s.pid = pid
	s.attached = true
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return fmt.Errorf("attach to %d: no such process", pid)
	}
	// Seize every thread, reading the task list again until it stops
	// growing: a thread created by one not yet seized would be missed.
	// Threads created by seized ones are traced by PTRACE_O_TRACECLONE.
	seized := make(map[int]bool)
	for {
		tids, err := tasks(pid)
		if err != nil {
			return fmt.Errorf("attach to %d: %w", pid, err)
		}
		grew := false
		for _, tid := range tids {
			if seized[tid] {
				continue
			}
			if err := seize(tid, ptraceOptions); err != nil {
				if err == unix.ESRCH {
					continue // exited meanwhile
				}
				s.detachSeized(seized)
				if err == unix.EPERM {
					return fmt.Errorf("attach to %d: %w: the process belongs to another user, is not dumpable, or /proc/sys/kernel/yama/ptrace_scope forbids attaching to non-children (run as its user, or set ptrace_scope to 0): %v", pid, ErrPermission, err)
				}
				return fmt.Errorf("attach to thread %d of %d: %w", tid, pid, err)
			}
			seized[tid] = true
			grew = true
		}
		if !grew {
			break
		}
	}
	if !s.cfg.NoPin {
		s.sched = startFollower(s.cfg.Priority, s.warn)
	}
	s.initClock()

	// Stop every thread, then arm from the main one: no thread runs
	// while text is being written.
	p := &process{pid: pid}
	s.procs[pid] = p
	stops := make(map[int]unix.WaitStatus)
	for tid := range seized {
		if err := unix.PtraceInterrupt(tid); err == nil {
			s.threads[tid] = &thread{tid: tid, proc: p}
			p.nthreads++
		}
	}
	for len(stops) < len(s.threads) {
		var ws unix.WaitStatus
		tid, err := wait4(-1, &ws)
		if err != nil {
			return fmt.Errorf("attach to %d: wait: %w", pid, err)
		}
		if _, ours := s.threads[tid]; !ours {
			s.early[tid] = ws // a thread just created by a seized one
			continue
		}
		if ws.Exited() || ws.Signaled() {
			s.threadExited(s.threads[tid], ws)
			continue
		}
		stops[tid] = ws
	}
	main := s.threads[pid]
	if main == nil {
		for _, t := range s.threads {
			main = t
			break
		}
	}
	if main == nil {
		return fmt.Errorf("attach to %d: every thread exited", pid)
	}
	if err := s.newImage(main); err != nil {
		s.detachAll()
		return err
	}
	s.started = s.t0
	// Let each thread go on from the stop it was in.
	ids := make([]int, 0, len(stops))
	for tid := range stops {
		ids = append(ids, tid)
	}
	sort.Ints(ids)
	for _, tid := range ids {
		if err := s.handle(tid, stops[tid]); err != nil {
			return err
		}
	}
	return nil
}

// detachSeized lets go of threads seized before Attach failed.
func (s *Session) detachSeized(seized map[int]bool) {
	for tid := range seized {
		if unix.PtraceInterrupt(tid) == nil {
			var ws unix.WaitStatus
			wait4(tid, &ws)
			detach(tid, 0)
		}
	}
}

// tasks lists the thread IDs of process pid.
func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// Stop asks the session to detach from every traced process: the probes
// are removed, return addresses put back, threads moved out of the slot
// regions, and the processes run on untraced. Wait returns once it is
// done. Stop may be called from any goroutine, more than once.
func (s *Session) Stop() {
	if s.stopReq.Swap(true) {
		return
	}
	s.waker.wake()
}

// detachAll detaches from every traced thread, leaving the programs as if
// they had never been traced.
func (s *Session) detachAll() {
	// Stop every thread and see where each is.
	want := make(map[int]bool)
	for tid := range s.threads {
		if unix.PtraceInterrupt(tid) == nil {
			want[tid] = true
		}
	}
	pending := make(map[int]unix.Signal) // signals to deliver at the detach
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
		if ws.Exited() || ws.Signaled() {
			s.threadExited(t, ws)
			delete(want, tid)
			continue
		}
		delete(want, tid)
		sig, event := ws.StopSignal(), stopEvent(ws)
		switch {
		case event == unix.PTRACE_EVENT_STOP:
			// Interrupted, group-stopped or newborn: nothing to undo.
			t.state = running
		case event == unix.PTRACE_EVENT_CLONE || event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK:
			msg, _ := unix.PtraceGetEventMsg(t.tid)
			if err := s.newTask(t, int(msg), event); err == nil && s.threads[int(msg)] != nil {
				if unix.PtraceInterrupt(int(msg)) == nil {
					want[int(msg)] = true
				}
			}
		case event == unix.PTRACE_EVENT_EXEC:
			s.execed(t, 0) // a fresh image: no int3 of ours
		case event != 0:
		case sig == unix.SIGTRAP:
			s.leaveTrap(t, pending)
		default:
			getRegs(t.tid, &t.regs)
			if as := t.proc.as; as != nil {
				if st, ok := as.trampAt(t.regs.Rip); ok && t.regs.Rip == st.tramp {
					// A fault of the displaced instruction:
					// the program sees it at the probed address.
					t.regs.Rip = st.addr
					setRegs(t.tid, &t.regs)
				}
			}
			pending[tid] = sig
		}
	}

	// Put back return addresses and move threads out of trampolines.
	for _, t := range s.threads {
		as := t.proc.as
		if as == nil {
			continue
		}
		if err := getRegs(t.tid, &t.regs); err != nil {
			continue
		}
		for _, fr := range t.shadow {
			if !fr.restored && fr.ret != as.retTramp {
				if err := as.mem.WriteUint64(fr.sp, fr.ret); err != nil {
					s.warn(fmt.Errorf("thread %d: put back a return address at 0x%x: %w", t.tid, fr.sp, err))
				}
			}
		}
		t.shadow = nil
		if st, ok := as.trampAt(t.regs.Rip); ok {
			switch {
			case t.regs.Rip == st.tramp:
				t.regs.Rip = st.addr // about to run the displaced instruction
			default:
				for _, ex := range st.trampExits {
					if t.regs.Rip == ex.addr {
						t.regs.Rip = ex.resume // it ran; about to jump back
					}
				}
			}
			// Otherwise (in a system call made in the slot, or in a
			// rewritten call) the thread finishes there: the slot
			// region stays mapped and jumps back by itself.
		}
		setRegs(t.tid, &t.regs)
	}

	// Remove the int3s, once per address space, and check the text.
	done := make(map[*addrSpace]bool)
	for _, p := range s.procs {
		as := p.as
		if as == nil || done[as] {
			continue
		}
		done[as] = true
		s.restoreText(as)
	}

	for tid := range s.threads {
		detach(tid, pending[tid])
	}
	s.result.Detached = true
}

// leaveTrap undoes a SIGTRAP stop met while detaching: a hit whose
// instruction has not run yet, a post-handler exit, a return through the
// trampoline; any other SIGTRAP is the program's and is delivered.
func (s *Session) leaveTrap(t *thread, pending map[int]unix.Signal) {
	if err := getRegs(t.tid, &t.regs); err != nil {
		return
	}
	as := t.proc.as
	if as == nil {
		pending[t.tid] = unix.SIGTRAP
		return
	}
	pc := t.regs.Rip - 1
	switch ex, isExit := as.exits[pc]; {
	case as.sites[pc] != nil:
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

// restoreText writes the original first byte of every site of as back and
// reads the text back to check it against the file's bytes.
func (s *Session) restoreText(as *addrSpace) {
	for addr, st := range as.sites {
		want := st.loc.Inst.Bytes
		if _, err := as.mem.WriteMemory(addr, want[:1]); err != nil {
			s.warn(fmt.Errorf("remove the breakpoint at 0x%x (%s): %w", addr, st.loc.Function, err))
		}
		got := make([]byte, len(want))
		if err := as.mem.readFull(addr, got); err != nil || string(got) != string(want) {
			s.result.TextMismatches = append(s.result.TextMismatches,
				fmt.Sprintf("0x%x (%s, file offset 0x%x): memory % x, file % x", addr, st.loc.Function, st.loc.Offset, got, want))
		}
		s.result.SitesRestored++
	}
	as.sites = make(map[uint64]*site)
}
