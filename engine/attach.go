package engine

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/internal/privs"
	"github.com/ptprobe/ptprobe/resolve"
)

// Attach seizes every thread of the running process pid, arms the probes
// of opts in it and traces it (and, unless Options.NoFollowFork, its
// children) until it exits or the Tracer detaches. The process keeps running throughout:
// its threads stop only for the moment the probes are armed. Paths and
// library names are the process's own, also in a container (another
// mount namespace: resolve.ProcessOptions, docs/DESIGN.md §2).
//
// A process that embeds the engine must not wait for a child of its own
// that it attaches to while the session lasts: the kernel reports the
// ptrace stops of a tracee to any thread of the tracer's process that
// waits for it, and the engine would never see them.
func Attach(pid int, opts *Options) (*Tracer, error) {
	s, err := newTracer(opts, resolve.ProcessOptions(pid))
	if err != nil {
		return nil, err
	}
	return s.begin(func() error { return s.attach(pid) })
}

func (s *Tracer) attach(pid int) error {
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
			err := seize(tid, ptraceOptions)
			for try := 0; err == unix.EPERM && tid == pid && try < 100 && mayBeExecing(pid); try++ {
				// Another thread of the process may be in execve,
				// the main thread a zombie until the exec takes
				// its ID over (ptrace_attach refuses an exiting
				// task, and the exec may be over by the time
				// /proc is read): try again a little later.
				time.Sleep(time.Millisecond)
				err = seize(tid, ptraceOptions)
			}
			if err == unix.EPERM && procStatus(tid)["TracerPid"] == strconv.Itoa(unix.Gettid()) {
				// Ours already: a thread seized before took this
				// ID by an exec (or a seized thread's clone made
				// it ours).
				if !seized[tid] {
					seized[tid] = true
					grew = true
				}
				continue
			}
			if err != nil {
				if err == unix.ESRCH || (err == unix.EPERM && tid != pid && tracedOrExiting(tid)) {
					// Exited meanwhile; or refused because a seized
					// thread created it (PTRACE_O_TRACECLONE made it
					// ours already), or because it is exiting.
					continue
				}
				s.detachSeized(seized)
				if err == unix.EPERM {
					return fmt.Errorf("attach to %d: %w: %s", pid, ErrPermission, whyNotPermitted(pid))
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
	for idle := 0; len(stops) < len(s.threads); {
		var ws unix.WaitStatus
		tid, err := wait4NoHang(&ws)
		if err != nil {
			return fmt.Errorf("attach to %d: wait: %w", pid, err)
		}
		if tid == 0 {
			// None has stopped yet. A thread that exec'd, or was
			// ended by another's exec, may vanish without a word
			// (its exec reports under the process ID): every 10 ms
			// the threads still awaited that /proc no longer lists
			// are forgotten.
			if idle++; idle%10 == 0 {
				s.forgetVanished(pid, stops)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if _, ours := s.threads[tid]; !ours {
			if tid != pid || !ws.Stopped() || stopEvent(ws) != unix.PTRACE_EVENT_EXEC {
				s.early[tid] = ws // a thread just created by a seized one
				continue
			}
			// The exec event of a thread other than the main one,
			// reported under the process ID after the main
			// thread's end was: that thread is the process now.
			s.threads[pid] = &thread{tid: pid, proc: p}
			p.nthreads++
		}
		if ws.Exited() || ws.Signaled() {
			if tid == pid && len(s.threads) > 1 {
				// The main thread, ended by another thread's
				// execve: the process lives on, and the exec
				// reports under its ID.
				delete(s.threads, tid)
				p.nthreads--
				continue
			}
			s.threadExited(s.threads[tid], ws)
			continue
		}
		stops[tid] = ws
		t := s.threads[tid]
		t.stoppedWith(ws)
		switch stopEvent(ws) {
		case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK:
			t.forkedUnarmed = true
		case unix.PTRACE_EVENT_EXEC:
			// A thread exec'd: the others are gone, and the one
			// that exec'd reports under the process ID, its own
			// ID never again.
			for id, o := range s.threads {
				if o != t {
					delete(s.threads, id)
					delete(stops, id)
				}
			}
			p.nthreads = 1
		}
	}
	if len(s.threads) == 0 {
		return fmt.Errorf("attach to %d: every thread exited", pid)
	}
	// Only now: pinned before, the tracer would have waited for the time
	// slices of the threads that still ran.
	if !s.opts.Sched.NoFollow {
		s.sched = startFollower(s.opts.Sched.Priority, s.warn)
	}
	if main := s.armingThread(pid); main != nil {
		if err := s.newImage(main); err != nil {
			s.detachAll()
			return err
		}
	} else if err := s.armAfterSyscall(pid); err != nil {
		s.detachAll()
		return err
	}
	s.sched.armed()
	s.warnReplaced(pid)
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

// forgetVanished forgets the threads of process pid that have not
// stopped (not in stops) and that /proc no longer lists.
func (s *Tracer) forgetVanished(pid int, stops map[int]unix.WaitStatus) {
	tids, err := tasks(pid)
	if err != nil {
		return
	}
	live := make(map[int]bool, len(tids))
	for _, tid := range tids {
		live[tid] = true
	}
	for tid, t := range s.threads {
		if _, stopped := stops[tid]; !stopped && !live[tid] {
			delete(s.threads, tid)
			t.proc.nthreads--
		}
	}
}

// armAfterSyscall prepares a process none of whose threads can run the
// system calls that arming injects (see armingThread) to be armed as soon
// as it can. A process seized in the middle of an execve (a program
// attached to right after it was started) reports the exec first, its
// other threads gone: handle steps it out of execve and arms the new image
// there, as for a traced exec. A thread stopped at the start of a vfork is
// refused: it would wait for the child with the process unarmed.
func (s *Tracer) armAfterSyscall(pid int) error {
	if len(s.threads) == 1 {
		for _, t := range s.threads {
			if stopEvent(t.stop) == unix.PTRACE_EVENT_EXEC {
				return nil // handle arms it, after the step out of execve
			}
		}
	}
	return fmt.Errorf("attach to %d: %w", pid, errInSyscall)
}

// mayBeExecing reports whether an EPERM from seizing the main thread of
// process pid may be the refusal of a zombie main thread while another
// thread is in execve: the main thread is a zombie with other threads
// alive, or it is untraced and running (the exec may have ended between
// the seize and the read of /proc). A process traced by another tracer is
// not.
func mayBeExecing(pid int) bool {
	st := procStatus(pid)
	if exiting(st) {
		tids, err := tasks(pid)
		return err == nil && len(tids) > 1
	}
	return st["TracerPid"] == "0"
}

// tracedOrExiting reports whether thread tid is traced by the calling
// (ptrace) thread already, or is exiting: the reasons a seize of a thread
// of a process being attached to gets EPERM that are no reason to fail.
func tracedOrExiting(tid int) bool {
	st := procStatus(tid)
	return exiting(st) || st["TracerPid"] == strconv.Itoa(unix.Gettid())
}

// exiting reports whether the task whose procStatus is status is gone
// (nothing read) or a zombie.
func exiting(status map[string]string) bool {
	st := status["State"]
	return st == "" || strings.HasPrefix(st, "Z") || strings.HasPrefix(st, "X")
}

// armingThread is the thread to arm the probes from: the main thread if it
// can run injected system calls where it is stopped, else another that
// can; nil if none can.
func (s *Tracer) armingThread(pid int) *thread {
	var ids []int
	for tid := range s.threads {
		ids = append(ids, tid)
	}
	sort.Ints(ids)
	if t := s.threads[pid]; t != nil {
		ids = append([]int{pid}, ids...)
	}
	for _, tid := range ids {
		switch stopEvent(s.threads[tid].stop) {
		case unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_VFORK_DONE, unix.PTRACE_EVENT_EXEC:
			continue
		}
		return s.threads[tid]
	}
	return nil
}

// whyNotPermitted says why the kernel refused (EPERM) to let this process
// trace pid, from what /proc shows of the checks of ptrace_attach and
// __ptrace_may_access.
func whyNotPermitted(pid int) string {
	status := procStatus(pid)
	self := procStatus(0)
	capPtrace := hasCap(self["CapEff"], unix.CAP_SYS_PTRACE)
	if tracer := status["TracerPid"]; tracer != "" && tracer != "0" {
		// TracerPid is the tracing thread's ID.
		tid, _ := strconv.Atoi(tracer)
		tgid := procStatus(tid)["Tgid"]
		return fmt.Sprintf("it is already traced by thread %s of process %s (%s); a thread has one tracer at a time", tracer, tgid, commOf(tgid))
	}
	if status["State"] != "" && exiting(status) {
		return "it is exiting"
	}
	if uid, myUID := firstField(status["Uid"]), firstField(self["Uid"]); uid != myUID && !capPtrace {
		return fmt.Sprintf("it belongs to uid %s and ptprobe runs as uid %s without CAP_SYS_PTRACE (run it as that user)", uid, myUID)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		switch scope := strings.TrimSpace(string(b)); {
		case scope == "1" && !capPtrace:
			return "/proc/sys/kernel/yama/ptrace_scope is 1: only descendants of the tracer may be traced (launch the program with ptprobe, or set ptrace_scope to 0)"
		case scope == "2" && !capPtrace:
			return "/proc/sys/kernel/yama/ptrace_scope is 2: only a tracer with CAP_SYS_PTRACE may attach"
		case scope == "3":
			return "/proc/sys/kernel/yama/ptrace_scope is 3: no process may attach to another"
		}
	}
	var extra string
	if missing := capsMissing(status["CapPrm"], self["CapEff"]); missing != "" {
		// The kernel lets a tracer without all of the tracee's
		// permitted capabilities attach only with CAP_SYS_PTRACE in
		// the tracee's user namespace.
		extra = fmt.Sprintf("; it holds capabilities that ptprobe lacks (%s)", missing)
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/environ", pid)); err != nil {
		who := "ptprobe"
		if capPtrace {
			who = "ptprobe, although it has CAP_SYS_PTRACE,"
		}
		return fmt.Sprintf("%s may not even read its /proc/%d/environ: it is not dumpable (a set-user-ID program, or it called prctl(PR_SET_DUMPABLE, 0)) or belongs to a user namespace where ptprobe lacks CAP_SYS_PTRACE, or a security module protects it%s", who, pid, extra)
	} else {
		f.Close()
	}
	return "the kernel or a security module refused it" + extra
}

// capsMissing names the capabilities of the hexadecimal set want that the
// set have lacks.
func capsMissing(want, have string) string {
	w, err1 := strconv.ParseUint(want, 16, 64)
	h, err2 := strconv.ParseUint(have, 16, 64)
	if err1 != nil || err2 != nil {
		return ""
	}
	var names []string
	for c := 0; c < 64; c++ {
		if w&^h&(1<<uint(c)) != 0 {
			names = append(names, privs.CapName(c))
		}
	}
	return strings.Join(names, ", ")
}

// procStatus reads the fields of /proc/PID/status (pid 0: this process).
func procStatus(pid int) map[string]string {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	fields := make(map[string]string)
	b, err := os.ReadFile(path)
	if err != nil {
		return fields
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// hasCap reports whether the hexadecimal capability set of a status line
// has capability c.
func hasCap(set string, c int) bool {
	v, err := strconv.ParseUint(set, 16, 64)
	return err == nil && v&(1<<uint(c)) != 0
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func commOf(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// detachSeized lets go of threads seized before Attach failed.
func (s *Tracer) detachSeized(seized map[int]bool) {
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

// warnReplaced warns of each path probe left unarmed at the attach
// while the process maps another file at its path (resolve.Replaced).
func (s *Tracer) warnReplaced(pid int) {
	for _, p := range s.probes {
		if p.loc != nil && !p.Armed() {
			if err := resolve.Replaced(pid, p.Spec, p.loc.ID); err != nil {
				s.warn(err)
			}
		}
	}
}
