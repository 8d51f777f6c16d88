// Package engine is ptprobe's ptrace probe engine: uprobes done from an
// ordinary process. It launches a program under ptrace (Launch) or
// attaches to a running one (Attach), arms probes in every executable
// mapping of the probed files, in every thread and child of the program
// and in libraries loaded later, and handles each hit with one stop: the
// pre handler runs, then the thread continues in an out-of-line copy of
// the displaced instruction (a trampoline in a slot region the engine maps
// into the program) that jumps back to the original code
// (docs/DESIGN.md §3).
//
// A Tracer is the traced program. Probes are given at its start
// (Options.Probes, armed before the program runs on) or added while it
// runs (Tracer.Uprobe, Executable.Uprobe), each a *Probe that can be
// disabled, enabled again and closed. Close detaches: the program runs on
// as if it had never been traced.
//
// All ptrace requests of a Tracer come from one locked OS thread, the only
// one the kernel accepts them from (the ptrace thread); handlers and
// Options.OnEvent run there, while the hitting thread is stopped
// (docs/DESIGN.md §4).
package engine

import (
	"errors"
	"fmt"

	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/launch"
	"github.com/ptprobe/ptprobe/internal/privs"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Options configure a Tracer. The zero value (and nil) is the default:
// no probe yet, events discarded, the program started with ptprobe's
// standard files and environment, fork children followed, and the ptrace
// thread scheduled as SchedOptions' zero value says.
type Options struct {
	// Probes are armed before the program runs its first instruction
	// (Launch) or on (Attach). Errors in them (unknown library or
	// symbol, not an instruction boundary, refused instruction, a
	// fetch-arg the function cannot have) are returned before anything
	// starts.
	Probes []backend.Probe
	// MaxProbes bounds how many probes one spec of Probes may expand
	// to (a glob, a USDT probe, a C++ name: resolve.Expand); 0 is
	// resolve.DefaultMaxProbes.
	MaxProbes int
	// OnEvent receives an event for each hit of each probe, after the
	// pre handler (return probes: after the return handler), on the
	// ptrace thread while the hitting thread is stopped. The event and
	// its Args are reused once OnEvent returns. nil: no events (handlers
	// and hit counts only).
	OnEvent func(*uprobe.Event)
	// Warn receives problems that do not stop the session, such as a
	// library probe that cannot be armed in a library loaded later. It
	// runs on the ptrace thread. nil discards them.
	Warn func(error)
	// Process says how Launch starts the program (ignored by Attach).
	Process backend.Process
	// NoFollowFork lets children of fork go untraced: every int3 and
	// hijacked return address is removed from the child before it runs.
	// A vfork child shares its parent's memory and text, so it stays
	// traced (its hits not reported) until it execs or exits.
	NoFollowFork bool
	// Sched is the scheduling of the ptrace thread.
	Sched SchedOptions
	// StopPath makes every probe take the stop path: no site is
	// patched for the no-stop path (docs/DESIGN.md §8), even where it
	// could be.
	StopPath bool
	// DropWhenFull: on the no-stop path, a hit that finds the ring full
	// is counted as missed (Probe.Missed) instead of waiting for the
	// drain, as the kernel's ring buffers do. By default nothing is
	// lost: the hitting thread waits.
	DropWhenFull bool
}

// SchedOptions say where and how the ptrace thread runs. Each stop of a
// program thread is two wake-ups, the tracer's and the program thread's;
// on one CPU they cost several times less than across CPUs
// (docs/DESIGN.md §6). The zero value: the ptrace thread follows the
// program thread it serves from CPU to CPU with PriorityAuto.
type SchedOptions struct {
	// NoFollow leaves the ptrace thread free to run on any CPU, at
	// normal priority.
	NoFollow bool
	// Priority is the scheduling policy of the following ptrace thread.
	Priority TracerPriority
	// SameCPU confines the launched program (and so its threads and
	// children, which inherit it) and the tracer to one CPU: every stop
	// is then a same-CPU wake-up, the cheapest there is, at the price of
	// the program's parallelism. Without it the program's affinity is
	// untouched.
	SameCPU bool
	// CPU is SameCPU's CPU; nil: the CPU the ptrace thread runs on.
	CPU *int
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

// Result is how the traced program ended, or that the Tracer detached.
type Result struct {
	// ExitCode is the exit status, or -1 when it was killed.
	ExitCode int
	// Signal killed the program when ExitCode is -1.
	Signal syscall.Signal
	// CoreDumped with Signal.
	CoreDumped bool
	// Wall is how long the program ran traced, from its first
	// instruction (Launch) or the attach to its exit or the detach,
	// probe hits included.
	Wall time.Duration
	// Detached: the Tracer detached (Close, Detach) before the program
	// ended; the program runs on, untraced. ExitCode is then
	// meaningless.
	Detached bool
	// TextMismatches lists the sites whose text, read back after the
	// detach restored it, differs from the file's bytes (it should be
	// empty).
	TextMismatches []string
	// SitesRestored counts the probed addresses taken out at the
	// detach.
	SitesRestored int
}

// Tracer is one traced program, with its threads and children.
type Tracer struct {
	opts   Options
	probes []*Probe
	res    *resolve.Resolver // library names of the probes added later

	pid int // the launched or attached program
	// tracerCapable: this process has CAP_SYS_PTRACE, so the kernel
	// grants traced execs their set-user-ID and file capabilities.
	tracerCapable bool
	attached      bool // by Attach: the program is not our child
	threads       map[int]*thread
	procs         map[int]*process
	// early holds stops of new threads reported before the clone event
	// of their parent.
	early map[int]unix.WaitStatus
	// exits holds exits seen while waiting for one thread.
	exits map[int]unix.WaitStatus
	// inVfork holds the threads a detach could not stop, waiting inside
	// vfork for a child: the ptrace thread detaches them once they come
	// out, after Wait has returned (see lingerInVfork).
	inVfork []int

	// hijacks: some probe rewrites return addresses, so the C++
	// unwinder must be watched (see armUnwindHooks).
	hijacks bool
	// files are the ELF files the session opened, by identity (nil:
	// not a readable ELF file).
	files map[elfsym.FileID]*elfsym.File

	// sched keeps the ptrace thread near the program (nil: NoFollow).
	sched     *cpuFollower
	clockBase time.Duration // CLOCK_MONOTONIC at t0
	t0        time.Time
	ev        uprobe.Event

	started time.Time // the program's first instruction
	// requests is what other goroutines ask of the ptrace thread (do);
	// the waker wakes it from wait4 for them (nil if it could not
	// start: requests then wait for the program's next stop).
	requests requestQueue
	waker    *waker
	// tracerTID is the ptrace thread's ID, once it runs.
	tracerTID int
	detach    atomic.Bool // a detach was asked for
	result    Result
	err       error
	done      chan struct{}
	closed    sync.Once

	// The no-stop path: whether it can run (fastUsable), the TSC's
	// clock, the areas and their drain. fastMu guards the areas and
	// the sites' fastProbes against the drain; eventMu keeps OnEvent
	// calls of the ptrace thread and of the drain apart.
	fastErr error
	// planned are the addresses armMapping arms now, in order.
	planned []uint64
	clock   tscClock
	fastMu  sync.Mutex
	eventMu sync.Mutex
	areas   []*area
	// areaList is a copy of areas for the heartbeat, which takes no
	// lock (publishAreas).
	areaList atomic.Pointer[[]*area]
	drain    *drainer
	// comms are the names of the threads entered in areas' thread
	// tables, read when they were entered: the drain's fallback for a
	// thread gone by the time it reads its records (under fastMu).
	comms map[uint32]string
}

// Launch starts argv under ptrace with the probes of opts armed before the
// program runs its first instruction, and traces it (and, unless
// Options.NoFollowFork, its children) until it exits or the Tracer
// detaches. Library names are found as argv[0] finds its libraries, with
// opts.Process.Env. The program is killed if ptprobe dies first.
func Launch(argv []string, opts *Options) (*Tracer, error) {
	if len(argv) == 0 {
		return nil, errors.New("no program to launch")
	}
	path, err := launch.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("program %q: %w", argv[0], err)
	}
	s, err := newTracer(opts, &resolve.Options{Program: path, Env: optsOf(opts).Process.Env})
	if err != nil {
		return nil, err
	}
	return s.begin(func() error { return s.start(path, argv) })
}

func optsOf(opts *Options) *Options {
	if opts == nil {
		return &Options{}
	}
	return opts
}

// newTracer resolves the probes of opts, their library names as ropts say.
func newTracer(opts *Options, ropts *resolve.Options) (*Tracer, error) {
	s := &Tracer{
		opts:    *optsOf(opts),
		threads: make(map[int]*thread),
		procs:   make(map[int]*process),
		early:   make(map[int]unix.WaitStatus),
		exits:   make(map[int]unix.WaitStatus),
		files:   make(map[elfsym.FileID]*elfsym.File),
		done:    make(chan struct{}),
		res:     resolve.New(ropts),

		tracerCapable: privs.TracerCapable(),
	}
	// The names of the probes a spec expands to must be unique (those
	// of plain specs are the caller's to choose).
	type namedBy struct {
		text     string
		expanded bool
	}
	named := make(map[string]namedBy)
	for _, bp := range s.opts.Probes {
		// A name of several probe points is the probes it names
		// (docs/DESIGN.md §9).
		specs, err := s.res.Expand(bp.Spec, &resolve.ExpandOptions{MaxProbes: s.opts.MaxProbes, Warn: s.warn})
		if err != nil {
			s.closeFiles()
			return nil, err
		}
		for _, spec := range specs {
			expanded := len(specs) > 1 || spec != bp.Spec
			if prev, ok := named[spec.Probe()]; ok && (expanded || prev.expanded) {
				s.closeFiles()
				return nil, fmt.Errorf("probe %q: %w: it names %s, as %q does (name the probes with p:GROUP/EVENT)", bp.Spec.Text, ErrDuplicateName, spec.Probe(), prev.text)
			}
			named[spec.Probe()] = namedBy{bp.Spec.Text, expanded}
			p, err := s.newProbe(spec, bp.Handlers)
			if err != nil {
				s.closeFiles()
				return nil, err
			}
			s.probes = append(s.probes, p)
			s.hijacks = s.hijacks || p.Spec.Kind == uprobe.Return
		}
	}
	return s, nil
}

// begin starts the session's ptrace thread, which runs first (launching
// or attaching) and then handles every stop.
func (s *Tracer) begin(first func() error) (*Tracer, error) {
	started := make(chan error, 1)
	go s.run(first, started, maxThreadTries, nil)
	if err := <-started; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

// closeFiles closes the files the session and its resolver opened.
func (s *Tracer) closeFiles() {
	for _, f := range s.res.Release() {
		if s.files[f.ID] != f {
			f.Close()
		}
	}
	for id, f := range s.files {
		if f != nil {
			f.Close()
		}
		delete(s.files, id)
	}
}

// Pid is the process ID of the launched or attached program.
func (s *Tracer) Pid() int { return s.pid }

// Probes are the Tracer's probes that are not closed, in the order they
// were given or added. It may be called from any goroutine.
func (s *Tracer) Probes() []*Probe {
	var ps []*Probe
	if err := s.do(func() error {
		ps = append(ps, s.probes...)
		return nil
	}); err != nil {
		// The ptrace thread has ended: the list is no one else's now.
		<-s.done
		ps = append(ps, s.probes...)
	}
	return ps
}

// Wait waits until every traced process has exited or the Tracer
// detached, and returns how the launched or attached program ended.
func (s *Tracer) Wait() (Result, error) {
	<-s.done
	return s.result, s.err
}

// Detach asks the Tracer to detach from every traced process: the probes
// are removed, return addresses put back, threads moved out of the slot
// regions, and the processes run on untraced, their text checked against
// the files. It returns at once; Wait returns once it is done. It may be
// called from any goroutine, more than once.
func (s *Tracer) Detach() {
	if s.detach.Swap(true) {
		return
	}
	s.waker.wake()
}

// Close detaches (Detach) and waits until it is done (Wait). A program
// that exited before is left as it ended. Close may be called more than
// once; it returns the error of the session, if any.
func (s *Tracer) Close() error {
	s.closed.Do(s.Detach)
	_, err := s.Wait()
	return err
}

func (s *Tracer) warn(err error) {
	if s.opts.Warn != nil {
		s.opts.Warn(err)
	}
}

// initClock sets the base of the event timestamps.
func (s *Tracer) initClock() {
	s.t0 = time.Now()
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	s.clockBase = time.Duration(ts.Nano())
}

// now is the CLOCK_MONOTONIC time in nanoseconds, from the vDSO clock.
func (s *Tracer) now() uint64 {
	return uint64(s.clockBase + time.Since(s.t0))
}

// emit sends the event of one hit of p, taken at time at, to OnEvent;
// for return probes retIP is the address returned to and dur the time
// since the entry.
func (s *Tracer) emit(t *thread, p probeRef, ip, retIP, dur, at uint64) {
	if s.opts.OnEvent == nil {
		return
	}
	ev := &s.ev
	ev.TimeNS = at
	// The tracer runs where the program thread stopped, when it can.
	ev.PID, ev.TID, ev.CPU = t.proc.pid, t.tid, s.sched.pinnedCPU()
	ev.Comm = t.Comm()
	ev.Group, ev.Name, ev.Kind = p.Spec.Group, p.Spec.Event, p.Spec.Kind
	ev.IP, ev.RetIP, ev.DurationNS = ip, retIP, dur
	ev.Args = uprobe.FetchArgs(t, p.args, ev.Args[:0])
	s.eventMu.Lock()
	s.opts.OnEvent(ev)
	s.eventMu.Unlock()
}
