// Package engine is ptprobe's ptrace probe engine. It launches a program
// under ptrace, arms probes (an int3 on the first byte of each probed
// instruction) in every executable mapping of the probed files, in every
// thread and child of the program, and handles each hit with one stop:
// the pre handler runs, then the thread continues in an out-of-line copy of
// the displaced instruction (a trampoline in a slot region the engine maps
// into the program) that jumps back to the original code.
//
// All ptrace requests of a session come from one locked OS thread, the
// only one the kernel accepts them from.
package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

const returnKind = uprobe.Return

// ProbeConfig is one probe to arm: its spec and its Go handlers.
type ProbeConfig struct {
	Spec     *uprobe.Spec
	Handlers uprobe.Handlers
}

// Config configures a session.
type Config struct {
	Probes []ProbeConfig
	// OnEvent receives an event for each hit of each probe, after the
	// pre handler (return probes: after the return handler), on the
	// engine's ptrace thread while the hitting thread is stopped. The
	// event and its Args are reused once OnEvent returns. nil: no events
	// (handlers and hit counts only).
	OnEvent func(*uprobe.Event)
	// Warn receives problems that do not stop the session, such as a
	// library probe that cannot be armed in a library loaded later. nil
	// discards them.
	Warn func(error)
	// Stdin, Stdout and Stderr of the program; nil means ptprobe's own.
	Stdin, Stdout, Stderr *os.File
	// Env of the program; nil means ptprobe's environment.
	Env []string
	// Dir is the program's working directory; "" means ptprobe's.
	Dir string
	// NoPin leaves the ptrace thread free to run on any CPU, at normal
	// priority. By default it follows the program thread it serves from
	// CPU to CPU, so that stops and resumes are same-CPU wake-ups,
	// several times cheaper (see cpuFollower).
	NoPin bool
	// Priority is the scheduling policy of the following ptrace thread.
	Priority TracerPriority
	// SameCPU confines the launched program (and so its threads and
	// children, which inherit it) and the tracer to CPU: every stop is
	// then a same-CPU wake-up, the cheapest there is (DESIGN.md §6), at
	// the price of the program's parallelism. Without it the program's
	// affinity is untouched, and the scheduler may place it on another
	// CPU than the tracer's, which makes each stop several times dearer.
	SameCPU bool
	// CPU is SameCPU's CPU; -1 picks the one the tracer runs on.
	CPU int
	// NoFollowFork lets children of fork go untraced: every int3 and
	// hijacked return address is removed from the child before it runs.
	// A vfork child shares its parent's memory and text, so it stays
	// traced (its hits not reported) until it execs or exits.
	NoFollowFork bool
	// NoASLR starts the program with address space randomization off
	// (personality ADDR_NO_RANDOMIZE), as setarch -R does: two runs of a
	// program then see the same addresses, which `ptprobe compare`
	// needs to compare pointer arguments.
	NoASLR bool
}

// TracerPriority chooses the scheduling policy of the ptrace thread.
type TracerPriority int

const (
	// PriorityAuto makes the tracer SCHED_IDLE while some CPU is free,
	// so that the program threads it resumes run on its CPU, and
	// SCHED_OTHER while every CPU is busy; if the process may not
	// leave SCHED_IDLE again (no CAP_SYS_NICE, RLIMIT_NICE 0), it
	// stays SCHED_OTHER.
	PriorityAuto TracerPriority = iota
	// PriorityNormal keeps SCHED_OTHER: a fair share of a busy CPU,
	// but the program threads it resumes are woken on another CPU
	// whenever one is idle, which costs several times more a hit.
	PriorityNormal
	// PriorityIdle makes the tracer SCHED_IDLE for good, even where it
	// cannot leave it: same-CPU hits for unprivileged users, but hits
	// wait milliseconds for the tracer while every CPU is busy.
	PriorityIdle
)

// Probe is an armed probe of a session.
type Probe struct {
	Spec     *uprobe.Spec
	handlers uprobe.Handlers
	hits     atomic.Uint64
	// loc is where a path probe is, resolved at Launch; nil for
	// library probes, resolved per mapped library in byFile.
	loc *resolve.Location
	// byFile caches the resolution of a library probe per file.
	byFile map[elfsym.FileID]*resolve.Location
	armed  atomic.Uint64 // sites armed, over all processes
}

// Hits is the number of times the probe fired (return probes: returns).
func (p *Probe) Hits() uint64 { return p.hits.Load() }

// Armed reports whether the probe was armed in at least one mapping.
func (p *Probe) Armed() bool { return p.armed.Load() > 0 }

// Result is how the launched program ended.
type Result struct {
	// ExitCode is the exit status, or -1 when it was killed.
	ExitCode int
	// Signal killed the program when ExitCode is -1.
	Signal syscall.Signal
	// CoreDumped with Signal.
	CoreDumped bool
	// Wall is how long the program ran, from its first instruction to
	// its exit, probe hits included.
	Wall time.Duration
	// Detached: the session stopped (Stop) before the program ended; the
	// program runs on, untraced. ExitCode is then meaningless.
	Detached bool
	// TextMismatches lists the sites whose text, read back after the
	// detach restored it, differs from the file's bytes (it should be
	// empty).
	TextMismatches []string
	// SitesRestored counts the breakpoints removed at the detach.
	SitesRestored int
}

// Session is one traced program.
type Session struct {
	cfg    Config
	probes []*Probe

	pid      int  // the launched or attached program
	attached bool // by Attach: the program is not our child
	threads  map[int]*thread
	procs    map[int]*process
	// early holds stops of new threads reported before the clone event
	// of their parent.
	early map[int]unix.WaitStatus
	// exits holds exits seen while waiting for one thread.
	exits map[int]unix.WaitStatus

	// hijacks: some probe is a return probe, so the C++ unwinder must be
	// watched (see armUnwindHooks).
	hijacks bool
	// files are the ELF files the session opened, by identity (nil:
	// not a readable ELF file).
	files map[elfsym.FileID]*elfsym.File

	// sched keeps the ptrace thread near the program (nil: NoPin).
	sched     *cpuFollower
	clockBase time.Duration // CLOCK_MONOTONIC at t0
	t0        time.Time
	ev        uprobe.Event

	started time.Time // the program's first instruction
	// stopReq asks the ptrace thread to detach (Stop); the waker
	// wakes it from wait4 (nil if it could not start).
	stopReq atomic.Bool
	waker   *waker
	result  Result
	err     error
	done    chan struct{}
}

// Launch resolves the probes, starts argv under ptrace and arms the
// probes before the program runs its first instruction. Errors in the
// probes (unknown library or symbol, not an instruction boundary, refused
// instruction, not an ELF file) are returned before the program starts.
// Library names are found as argv[0] would find them, with Config.Env.
func Launch(cfg Config, argv []string) (*Session, error) {
	if len(argv) == 0 {
		return nil, errors.New("no program to launch")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("program %q: %w", argv[0], err)
	}
	s, err := newSession(cfg, &resolve.Options{Program: path, Env: cfg.Env})
	if err != nil {
		return nil, err
	}
	return s.begin(func() error { return s.start(path, argv) })
}

// newSession resolves the probes of cfg, their library names in libs.
func newSession(cfg Config, ropts *resolve.Options) (*Session, error) {
	s := &Session{
		cfg:     cfg,
		threads: make(map[int]*thread),
		procs:   make(map[int]*process),
		early:   make(map[int]unix.WaitStatus),
		exits:   make(map[int]unix.WaitStatus),
		files:   make(map[elfsym.FileID]*elfsym.File),
		done:    make(chan struct{}),
	}
	res := resolve.New(ropts)
	// The probed files stay open for the session: the mappings of the
	// same files are resolved in them again.
	defer func() {
		for _, f := range res.Release() {
			s.files[f.ID] = f
		}
	}()
	for _, pc := range cfg.Probes {
		p, err := s.newProbe(pc, res)
		if err != nil {
			res.Close()
			s.closeFiles()
			return nil, err
		}
		s.probes = append(s.probes, p)
		s.hijacks = s.hijacks || p.Spec.Kind == uprobe.Return
	}
	return s, nil
}

// begin starts the session's ptrace thread, which runs first (launching
// or attaching) and then handles every stop.
func (s *Session) begin(first func() error) (*Session, error) {
	started := make(chan error, 1)
	go s.run(first, started, 16, nil)
	if err := <-started; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

// newProbe resolves a probe in its file with res; library probes are
// checked against the library of that name the program would find, and
// resolved again in each library actually mapped.
func (s *Session) newProbe(pc ProbeConfig, res *resolve.Resolver) (*Probe, error) {
	spec := pc.Spec
	p := &Probe{Spec: spec, handlers: pc.Handlers, byFile: make(map[elfsym.FileID]*resolve.Location)}
	f, err := res.File(spec)
	if err != nil {
		return nil, err
	}
	loc, err := resolve.In(f, spec)
	if err != nil {
		return nil, err
	}
	if loc.IFunc {
		s.warn(fmt.Errorf("probe %q: %s is an indirect function (IFUNC) of %s: the probe is on its resolver, which runs once; probe one of its implementations instead (ptprobe list %s '*%s*')",
			spec.Text, spec.Symbol, f.Path, f.Path, spec.Symbol))
	}
	if spec.IsLibrary() {
		p.byFile[f.ID] = &loc
	} else {
		p.loc = &loc
	}
	return p, nil
}

func (s *Session) closeFiles() {
	for id, f := range s.files {
		if f != nil {
			f.Close()
		}
		delete(s.files, id)
	}
}

// Pid is the process ID of the launched program.
func (s *Session) Pid() int { return s.pid }

// Probes are the session's probes, in the order of Config.Probes.
func (s *Session) Probes() []*Probe { return s.probes }

// Wait waits until every traced process has exited and returns how the
// launched program ended.
func (s *Session) Wait() (Result, error) {
	<-s.done
	return s.result, s.err
}

func (s *Session) warn(err error) {
	if s.cfg.Warn != nil {
		s.cfg.Warn(err)
	}
}

// run is the session's ptrace thread: it starts the program, arms the
// probes and handles every stop until no traced thread is left.
func (s *Session) run(first func() error, started chan<- error, tries int, locked chan<- struct{}) {
	runtime.LockOSThread()
	// Once it traces, never unlocked: the thread is the tracer of the
	// program's threads and must not run other goroutines' code
	// afterwards either; Go retires it when this goroutine returns.
	if locked != nil {
		close(locked)
	}
	if mainThread, children := unix.Gettid() == unix.Getpid(), threadHasChildren(); mainThread || children {
		// Not a thread to trace from. Go never retires the main thread,
		// so what the session sets on it (SCHED_IDLE, a one-CPU
		// affinity) would outlast the session, and the children of
		// exiting threads pass to it. A thread with children of its
		// own (Go forks os/exec children on whatever thread runs the
		// goroutine) would have them reaped by the tracer, which waits
		// for its own children. Start over on another thread: this one
		// stays locked until the new goroutine holds its own, so that
		// it cannot be the same one, then goes back unchanged.
		if tries > 0 {
			moved := make(chan struct{})
			go s.run(first, started, tries-1, moved)
			<-moved
			runtime.UnlockOSThread()
			return
		}
		s.warn(fmt.Errorf("no thread free of children for the tracer (main thread %v): other children of this process may be reaped by it", mainThread))
	}
	defer close(s.done)
	defer s.closeFiles()
	defer func() { s.sched.close() }()
	quietStops()
	if k, err := startWaker(); err != nil {
		s.warn(fmt.Errorf("%w: Stop will take effect only at the program's next stop", err))
	} else {
		s.waker = k
		defer k.close()
	}

	err := first()
	started <- err
	if err != nil {
		s.err = err
		return
	}
	if err := s.loop(); err != nil {
		// Leave the programs as they were rather than with int3s
		// nobody handles.
		s.err = err
		s.detachAll()
	}
}

func (s *Session) start(path string, argv []string) error {
	files := []*os.File{s.cfg.Stdin, s.cfg.Stdout, s.cfg.Stderr}
	for i, def := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if files[i] == nil {
			files[i] = def
		}
	}
	env := s.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	if s.cfg.NoASLR {
		// The personality is the thread's and the child inherits it;
		// this thread is the engine's own, so setting it is harmless.
		if old, err := personality(0xffffffff); err == nil {
			personality(old | addrNoRandomize)
		}
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", path, err)
	}
	s.pid = proc.Pid
	proc.Release()

	// The first stop is the SIGTRAP after execve: the new image is
	// mapped and nothing of it has run.
	var ws unix.WaitStatus
	if _, err := wait4(s.pid, &ws); err != nil {
		return fmt.Errorf("wait for %s to start: %w", path, err)
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fmt.Errorf("%s did not start under ptrace (status 0x%x)", path, uint32(ws))
	}
	// Go starts it with PTRACE_TRACEME, whose tracees cannot be left in a
	// job-control stop and still be told of SIGCONT. Trade it for
	// PTRACE_SEIZE: detach into a SIGSTOP, seize the stopped program,
	// and continue it (SIGCONT) once armed. None of it runs meanwhile.
	if err := detach(s.pid, unix.SIGSTOP); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("detach %d to seize it: %w", s.pid, err)
	}
	if _, err := unix.Wait4(s.pid, &ws, unix.WUNTRACED|unix.WNOTHREAD, nil); err != nil || !ws.Stopped() {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("wait for %s to stop (status 0x%x): %v", path, uint32(ws), err)
	}
	if err := seize(s.pid, ptraceOptions|unix.PTRACE_O_EXITKILL); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("seize %d: %w", s.pid, err)
	}
	// Seized while stopped, it traps again into a ptrace-stop.
	if _, err := wait4(s.pid, &ws); err != nil || !ws.Stopped() {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("%s did not stop once seized (status 0x%x): %v", path, uint32(ws), err)
	}
	switch {
	case s.cfg.SameCPU:
		cpu := currentCPU()
		if s.cfg.CPU >= 0 {
			cpu = s.cfg.CPU
		}
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(s.pid, &one); err != nil {
			unix.Kill(s.pid, unix.SIGKILL)
			return fmt.Errorf("confine %s to CPU %d: %w", path, cpu, err)
		}
		s.sched = pinnedFollower(cpu, s.warn)
	case !s.cfg.NoPin:
		s.sched = startFollower(s.cfg.Priority, s.warn)
	}
	s.initClock()

	p := &process{pid: s.pid, nthreads: 1}
	s.procs[s.pid] = p
	t := &thread{tid: s.pid, proc: p}
	s.threads[s.pid] = t
	if err := s.newImage(t); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		wait4(s.pid, &ws)
		return err
	}
	s.started = time.Now()
	unix.Kill(s.pid, unix.SIGCONT) // ends the SIGSTOP of the seizing
	if err := cont(s.pid, 0); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("resume %d: %w", s.pid, err)
	}
	return nil
}

// addrNoRandomize is ADDR_NO_RANDOMIZE of <sys/personality.h>.
const addrNoRandomize = 0x0040000

// personality calls personality(2); 0xffffffff queries it.
func personality(p uint64) (uint64, error) {
	r, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(p), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return uint64(r), nil
}

func wait4(pid int, ws *unix.WaitStatus) (int, error) {
	for {
		wpid, err := unix.Wait4(pid, ws, waitFlags, nil)
		if err != unix.EINTR {
			return wpid, err
		}
	}
}

// wait4NoHang returns a stop or exit of any traced thread if one is ready,
// else 0, without blocking or entering the Go scheduler.
func wait4NoHang(ws *unix.WaitStatus) (int, error) {
	pid, _, errno := unix.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(ws)), waitFlags|unix.WNOHANG, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(pid), nil
}

// initClock sets the base of the event timestamps.
func (s *Session) initClock() {
	s.t0 = time.Now()
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	s.clockBase = time.Duration(ts.Nano())
}

// now is the CLOCK_MONOTONIC time in nanoseconds, from the vDSO clock.
func (s *Session) now() uint64 {
	return uint64(s.clockBase + time.Since(s.t0))
}
