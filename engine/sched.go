package engine

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cpuFollower keeps the engine's ptrace thread on the CPU of the program
// thread it serves, without touching the program's own affinity.
//
// Each probe hit is two wake-ups: the stop wakes the tracer, and
// PTRACE_CONT wakes the program thread. On one CPU that costs ~10 µs a
// hit on this machine; when a wake-up has to bring another CPU out of its
// idle halt, ~60 µs (docs/DESIGN.md §6). Pinning the tracer next to the
// program thread is not enough: at PTRACE_CONT the tracer is running, so
// its CPU is busy, and the kernel's wake-up placement
// (select_idle_sibling) sends the program thread to any idle CPU of the
// cache domain instead. A SCHED_IDLE tracer does not make its CPU busy:
// the scheduler counts a CPU that runs only SCHED_IDLE threads as idle
// (sched_idle_cpu), so the program thread is woken on the tracer's CPU,
// preempts the tracer at once, and the tracer finds the next stop ready
// when it runs again.
//
// The price is that a SCHED_IDLE thread gets almost no CPU while normal
// threads are runnable where it runs: on a machine whose CPUs are all
// busy, hits would wait for the tracer, a time slice of 0.2% of a CPU
// coming once in hundreds of milliseconds. So the tracer is SCHED_IDLE
// only while some CPU is free, and only if it may return to SCHED_OTHER
// (CAP_SYS_NICE, or an RLIMIT_NICE that allows nice 0: the kernel treats
// leaving SCHED_IDLE as raising the priority from nice 20). Otherwise it
// stays SCHED_OTHER and still follows the program, which is then woken on
// another CPU whenever one idles. Config.Priority chooses otherwise.
//
// Who notices that the CPUs became busy cannot be the tracer itself: a
// starved SCHED_IDLE thread runs too seldom to look. A watcher goroutine,
// on the runtime's ordinary threads, reads the machine's runnable count
// every watchEvery and sets the ptrace thread's policy from outside
// (sched_setattr takes any thread of the process).
//
// Following: the program thread may move (the load balancer pulls it to
// an idle CPU). A SCHED_IDLE tracer on its CPU would have found the next
// stop ready, so a wait that finds none (waitMissed) is the cheap sign of
// a move; the thread's CPU is then read from /proc and the tracer moves
// after it. Without such a sign the check runs every checkEvery.
//
// All methods run on the ptrace thread, except where said.
type cpuFollower struct {
	// tid is the ptrace thread's.
	tid int
	// cpu is the CPU the ptrace thread is confined to, -1 when none.
	cpu int
	// follow: move to the CPU of the stopped program thread.
	follow bool
	// allowed is the ptrace thread's affinity before any pinning.
	allowed unix.CPUSet

	// policyMu orders the policy changes of the ptrace thread and the
	// watcher; idle is the ptrace thread's policy (SCHED_IDLE) now, read
	// without the lock by waitMissed.
	policyMu sync.Mutex
	idle     atomic.Bool
	// mayIdle: SCHED_IDLE is wanted and can be left again; set before
	// the watcher starts, cleared under policyMu.
	mayIdle bool
	// fromIdle: serving made the tracer SCHED_OTHER, and served puts
	// SCHED_IDLE back (under policyMu).
	fromIdle bool
	// forceIdle: SCHED_IDLE for good (PriorityIdle), from armed on.
	forceIdle bool
	// stopWatch ends the watcher, which closes watchDone (nil: none).
	stopWatch, watchDone chan struct{}
	// stuck is the watcher's failure to leave SCHED_IDLE, for stopped
	// to warn of (Options.Warn runs on the ptrace thread).
	stuck atomic.Pointer[error]

	// last is the session-clock time (ns) of the last check.
	last   uint64
	missed bool

	nice    int // the thread's nice value, kept when the policy changes
	warn    func(error)
	loadavg int // fd of /proc/loadavg, or -1
	// schedstat is the fd of the ptrace thread's stat, or -1; stops
	// counts the stops it has handled (stopped), which the watcher reads.
	schedstat int
	stops     atomic.Uint64
	path      []byte // reused /proc/TID/stat path, NUL-terminated
	buf       [1024]byte
}

const (
	// checkEvery spaces the ptrace thread's periodic checks of the CPU
	// the program thread runs on: a check (a small /proc read, ~5 µs)
	// every 2 ms costs 0.25%.
	checkEvery = 2 * time.Millisecond
	// watchEvery spaces the watcher's reads of the machine's load: each
	// wakes a thread of the runtime, on a CPU the program could have used,
	// so not too often; busyToNormal of them make the reaction to busy
	// CPUs 20 ms, freeToIdle the return to SCHED_IDLE 0.5 s.
	watchEvery = 10 * time.Millisecond
	// missGap spaces the checks after missed waits, which a program
	// thread that sleeps between hits misses every time.
	missGap = 200 * time.Microsecond
	// busyToNormal consecutive checks with every CPU busy make a
	// SCHED_IDLE tracer SCHED_OTHER; freeToIdle with a CPU free make it
	// SCHED_IDLE again.
	busyToNormal = 2
	freeToIdle   = 50
)

// startFollower confines the calling (ptrace) thread to the CPU it runs
// on and chooses its policy as prio says; armed sets it.
func startFollower(prio TracerPriority, warn func(error)) *cpuFollower {
	f := &cpuFollower{tid: unix.Gettid(), cpu: currentCPU(), follow: true, loadavg: -1, schedstat: -1, warn: warn}
	if attr, err := unix.SchedGetAttr(0, 0); err == nil {
		f.nice = int(attr.Nice) // kept across policy changes
	}
	if err := unix.SchedGetaffinity(0, &f.allowed); err != nil {
		f.allowed.Zero()
		f.allowed.Set(f.cpu)
	}
	if err := pinThread(f.cpu); err != nil {
		warn(fmt.Errorf("pin the tracer to CPU %d: %w", f.cpu, err))
		f.cpu, f.follow = -1, false
		return f
	}
	switch {
	case prio == PriorityIdle:
		f.forceIdle = true
		return f
	case prio != PriorityAuto || !canLeaveIdle(f.nice):
		return f
	}
	fd, err := unix.Open("/proc/loadavg", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return f // without it, busy CPUs would go unnoticed
	}
	// The tracer's own state says whether it starves (runnable, and no
	// stop handled since the last look); the machine's runnable count
	// alone also counts ptprobe's other threads (the no-stop drain, the
	// Go scheduler's spinning threads), and read them as busy CPUs.
	sfd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/stat", f.tid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return f
	}
	f.loadavg, f.schedstat, f.mayIdle = fd, sfd, true
	return f
}

// armed is called once the session's first arming is done, before the
// program runs on: the tracer takes the policy its priority chose. Not
// before: arming is work (system calls injected and waited for, text
// written), not the hit ping-pong SCHED_IDLE is for, and a SCHED_IDLE
// tracer on a machine whose CPUs are busy would take seconds for it while
// the program waits stopped (see serving).
func (f *cpuFollower) armed() {
	switch {
	case f == nil:
	case f.forceIdle:
		if err := f.setIdle(true); err != nil {
			f.warn(fmt.Errorf("make the tracer SCHED_IDLE: %w", err))
		}
	case f.mayIdle:
		if f.setIdle(true) != nil {
			f.mayIdle = false
			return
		}
		f.stopWatch, f.watchDone = make(chan struct{}), make(chan struct{})
		go f.watch()
	}
}

// watch chooses the ptrace thread's policy while the session follows: it
// makes the tracer SCHED_OTHER while every CPU is busy and SCHED_IDLE
// again once one has been free for a while. It runs on a goroutine of its
// own.
func (f *cpuFollower) watch() {
	defer close(f.watchDone)
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	var buf [128]byte
	busyChecks, freeChecks := 0, 0
	lastStops := f.stops.Load()
	for {
		select {
		case <-f.stopWatch:
			return
		case <-tick.C:
		}
		running, ok := runnable(f.loadavg, buf[:])
		state, ok2 := taskState(f.schedstat, buf[:])
		if !ok || !ok2 {
			continue
		}
		// Starving: the tracer is runnable and has handled no stop
		// since the last look. A SCHED_IDLE tracer in the hit
		// ping-pong sleeps in wait4 while the program runs and gets
		// its CPU as soon as the program stops; only threads that
		// want the CPU more keep it waiting. (Its run-queue wait in
		// schedstat is counted only once it runs: no help here.)
		stops := f.stops.Load()
		starving := state == 'R' && stops == lastStops
		lastStops = stops
		// running counts this goroutine's thread, and the tracer when
		// it is runnable; the program's stopped threads are not
		// runnable. A CPU is free when fewer others run.
		free := running-2 < f.allowed.Count()
		if starving {
			busyChecks = busyChecks + 1
		} else {
			busyChecks = 0
		}
		if free && !starving {
			freeChecks++
		} else {
			freeChecks = 0
		}
		f.policyMu.Lock()
		switch idle := f.idle.Load(); {
		case !f.mayIdle:
		case idle && busyChecks >= busyToNormal:
			if err := f.setIdle(false); err != nil {
				f.mayIdle = false   // stuck at SCHED_IDLE: nothing to choose
				f.stuck.Store(&err) // warned on the ptrace thread, by stopped
			}
		case !idle && freeChecks >= freeToIdle:
			f.setIdle(true)
		}
		f.policyMu.Unlock()
	}
}

// stopWatching ends the watcher, if one runs.
func (f *cpuFollower) stopWatching() {
	if f.stopWatch != nil {
		close(f.stopWatch)
		<-f.watchDone
		f.stopWatch = nil
	}
}

// pinnedFollower confines the calling thread to cpu for good (SameCPU):
// the program is confined there too, so there is nothing to follow.
func pinnedFollower(cpu int, warn func(error)) *cpuFollower {
	f := &cpuFollower{cpu: cpu, loadavg: -1, schedstat: -1}
	if err := pinThread(cpu); err != nil {
		warn(fmt.Errorf("pin the tracer to CPU %d: %w", cpu, err))
		f.cpu = -1
	}
	return f
}

// canLeaveIdle reports whether this process may take a thread from
// SCHED_IDLE back to SCHED_OTHER at nice: with CAP_SYS_NICE, or with an
// RLIMIT_NICE that allows nice (the kernel treats leaving SCHED_IDLE as
// raising the priority from nice 20). A CAP_SYS_NICE held only in a user
// namespace looks the same here but is refused; choosePolicy then warns.
func canLeaveIdle(nice int) bool {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NICE, &lim) == nil && lim.Cur >= uint64(20-nice) {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[unix.CAP_SYS_NICE/32].Effective&(1<<(unix.CAP_SYS_NICE%32)) != 0
}

// pinnedCPU is the CPU the ptrace thread is confined to, else the one it
// runs on now.
func (f *cpuFollower) pinnedCPU() int {
	if f == nil || f.cpu < 0 {
		return currentCPU()
	}
	return f.cpu
}

// following reports whether the follower moves the ptrace thread.
func (f *cpuFollower) following() bool { return f != nil && f.follow }

// quit ends the following for the rest of the session: the ptrace thread
// goes back to SCHED_OTHER, where it may, and to the CPUs it was allowed.
// A detach needs it: the threads it lets go run at full speed at once,
// and a SCHED_IDLE tracer would wait for their time slices to detach the
// next.
func (f *cpuFollower) quit() {
	if f == nil {
		return
	}
	f.stopWatching()
	f.follow, f.mayIdle = false, false
	if f.idle.Load() {
		f.setIdle(false) // stays SCHED_IDLE where it may not leave it
	}
	if f.cpu >= 0 && unix.SchedSetaffinity(0, &f.allowed) == nil {
		f.cpu = -1
	}
}

// close releases the follower's file.
func (f *cpuFollower) close() {
	if f == nil {
		return
	}
	f.stopWatching()
	if f.loadavg >= 0 {
		unix.Close(f.loadavg)
		f.loadavg = -1
	}
	if f.schedstat >= 0 {
		unix.Close(f.schedstat)
		f.schedstat = -1
	}
}

// setIdle switches the ptrace thread between SCHED_IDLE and SCHED_OTHER.
// Once the watcher runs, callers hold policyMu.
func (f *cpuFollower) setIdle(idle bool) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Nice: int32(f.nice)}
	if idle {
		attr.Policy = unix.SCHED_IDLE
	}
	if err := unix.SchedSetAttr(f.tid, &attr, 0); err != nil {
		return err
	}
	f.idle.Store(idle)
	return nil
}

// serving is called before the ptrace thread serves other goroutines'
// requests: work, not the hit ping-pong SCHED_IDLE is for, and work the
// program may be waiting on (a no-stop sync site waits for its rescan,
// docs/DESIGN.md §8). A SCHED_IDLE thread on a machine whose CPUs are
// busy would get a few milliseconds a second for it; and a Go thread
// starved while it runs Go code holds up every stop-the-world of the
// garbage collector, every goroutine of the process with it (the
// heartbeat of the no-stop path's recorders included). The tracer goes
// to SCHED_OTHER until served.
func (f *cpuFollower) serving() {
	if f == nil || !f.idle.Load() {
		return
	}
	f.policyMu.Lock()
	if f.mayIdle && f.setIdle(false) == nil {
		f.fromIdle = true
	}
	f.policyMu.Unlock()
}

// served ends what serving began: a tracer that was SCHED_IDLE is so
// again at once. Leaving that to the watcher (half a second of free CPU)
// made every stop of that half second cost the SCHED_OTHER figure, 2.5×
// the one-stop cost: the dynamic linker's hook, a sync site, is served
// at every program's start (docs/DESIGN.md §6). If every CPU became busy
// meanwhile, the watcher sees it within busyToNormal reads.
func (f *cpuFollower) served() {
	if f == nil {
		return
	}
	f.policyMu.Lock()
	if f.fromIdle {
		f.fromIdle = false
		if f.mayIdle && !f.idle.Load() {
			f.setIdle(true)
		}
	}
	f.policyMu.Unlock()
}

// waitMissed records that a wait for the next stop found none ready. For
// a SCHED_IDLE tracer that means the program thread it resumed runs on
// another CPU (or blocked): on the tracer's own CPU it would have run
// until its next stop first. A SCHED_OTHER tracer usually goes on running
// after PTRACE_CONT, so its misses say nothing and are not counted.
func (f *cpuFollower) waitMissed() {
	if f.idle.Load() {
		f.missed = true
	}
}

// stopped is called at each stop of program thread tid, at session-clock
// time now (ns). Most calls return at once.
func (f *cpuFollower) stopped(tid int, now uint64) {
	f.stops.Add(1)
	missed := f.missed
	f.missed = false
	if !f.follow || now < f.last+uint64(missGap) || (!missed && now < f.last+uint64(checkEvery)) {
		return
	}
	f.last = now
	if err := f.stuck.Swap(nil); err != nil {
		f.warn(fmt.Errorf("the tracer cannot leave SCHED_IDLE (%w) while every CPU is busy: hits may wait for the other threads' time slices", *err))
	}
	cpu, ok := f.threadCPU(tid)
	if !ok || cpu == f.cpu || !f.allowed.IsSet(cpu) {
		return
	}
	if pinThread(cpu) == nil {
		f.cpu = cpu
	}
}

// runnable reads the number of runnable threads of the machine, the
// fourth field of /proc/loadavg ("R/T"), from its open file fd into buf.
func runnable(fd int, buf []byte) (int, bool) {
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	b := buf[:n]
	for field := 0; field < 3; field++ {
		for len(b) > 0 && b[0] != ' ' {
			b = b[1:]
		}
		if len(b) > 0 {
			b = b[1:]
		}
	}
	v, ok := parseUint(b)
	return int(v), ok
}

// taskState reads the state letter of a thread's stat (R, S, D, t...),
// after the parenthesized name, from its open file fd into buf.
func taskState(fd int, buf []byte) (byte, bool) {
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	b := buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// threadCPU reads the CPU thread tid last ran on (field 39 of its stat).
func (f *cpuFollower) threadCPU(tid int) (int, bool) {
	f.path = append(strconv.AppendInt(append(f.path[:0], "/proc/"...), int64(tid), 10), "/stat\x00"...)
	atCWD := unix.AT_FDCWD
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(atCWD), uintptr(unsafe.Pointer(&f.path[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return 0, false
	}
	n, err := unix.Read(int(fd), f.buf[:])
	unix.Close(int(fd))
	if err != nil || n <= 0 {
		return 0, false
	}
	stat := f.buf[:n]
	// The command name (field 2) may hold spaces and parentheses:
	// count fields from the last ')'.
	i := len(stat) - 1
	for i >= 0 && stat[i] != ')' {
		i--
	}
	if i < 0 {
		return 0, false
	}
	field := 2
	for i++; i < len(stat); i++ {
		if stat[i] == ' ' {
			field++
			if field == 39 {
				v, ok := parseUint(stat[i+1:])
				return int(v), ok
			}
		}
	}
	return 0, false
}

// parseUint parses the decimal number at the start of b.
func parseUint(b []byte) (uint64, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	return v, i > 0
}
