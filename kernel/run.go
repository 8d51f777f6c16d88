package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/internal/launch"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// runResult is how a program run by Session.run ended.
type runResult struct {
	pid  int
	exit launch.Exit
	// wall is how long the program ran under the probes, from its
	// first instruction (the detach) to its exit or the end of the
	// trace.
	wall     time.Duration
	detached bool
}

// run runs the program at path (argv) as proc says, as the kernel backend
// traces a program: it starts it stopped before its first instruction
// (under ptrace, at the SIGTRAP of its execve), limits the session's
// events to it (and, with follow, its descendants), enables them,
// detaches (the program then runs untraced: the kernel's uprobes do the
// work) and reads the events while it runs; when it has exited, run
// disables the events and reads every event left in the buffers. fn is
// called for each event as Events calls it; started, if set, with the
// program's pid once it runs, on the calling goroutine.
//
// The trace ends when the program exits: children it leaves running are
// not waited for, and their later events are not read. If fn returns an
// error, run stops reading, still waits for the program and returns the
// error. When ctx is done first, run closes the session (its events are
// removed) and returns at once, detached: the program runs on, waited for
// by a goroutine until it exits.
func (s *Session) run(ctx context.Context, path string, argv []string, proc *backend.Process, follow bool, started func(int), fn func(*uprobe.Event) error) (runResult, error) {
	type startedMsg struct {
		prog *launch.Program
		t0   time.Time
		err  error
	}
	startc := make(chan startedMsg, 1)
	type waited struct {
		exit launch.Exit
		end  time.Time
		err  error
	}
	waitc := make(chan waited, 1)
	go func() {
		// ptrace requests must come from the thread that started the
		// program; the thread is never unlocked, so Go retires it
		// with the goroutine.
		runtime.LockOSThread()
		prog, t0, err := s.startStopped(path, argv, proc, follow)
		startc <- startedMsg{prog, t0, err}
		if err != nil {
			return
		}
		exit, err := prog.Wait()
		waitc <- waited{exit, time.Now(), err}
	}()
	st := <-startc
	if st.err != nil {
		return runResult{}, st.err
	}
	if started != nil {
		started(st.prog.Pid)
	}

	readCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readc := make(chan error, 1)
	go func() { readc <- s.Events(readCtx, fn) }()

	select {
	case w := <-waitc:
		derr := s.Disable()
		cancel()
		rerr := <-readc
		if w.err != nil {
			return runResult{}, fmt.Errorf("kernel: %w", w.err)
		}
		r := runResult{pid: st.prog.Pid, exit: w.exit, wall: w.end.Sub(st.t0)}
		return s.ended(r, path, derr, rerr)
	case <-ctx.Done():
		return s.detached(runResult{pid: st.prog.Pid, wall: time.Since(st.t0), detached: true}, readc)
	}
}

// ended is the result of a run whose program ended (what names it in the
// warning of lost events), its events read (rerr) and the session
// disabled (derr).
func (s *Session) ended(r runResult, what string, derr, rerr error) (runResult, error) {
	if lost, err := s.Lost(); err == nil && lost > 0 {
		s.warn(fmt.Errorf("kernel: %d events of %s were lost: a CPU's buffer was full (Options.BufferKB sets its size)", lost, what))
	}
	if rerr != nil {
		return r, rerr
	}
	if derr != nil && !errors.Is(derr, os.ErrClosed) {
		return r, derr
	}
	return r, nil
}

// detached ends a run whose context is done: Close stops Events (it
// reads what is buffered and returns), then removes the instance and
// the events; readc gives the reading's error.
func (s *Session) detached(r runResult, readc <-chan error) (runResult, error) {
	cerr := s.Close()
	rerr := <-readc
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return r, cerr
	}
	return r, rerr
}

// startStopped starts the program under ptrace, points the session at it
// and lets it go untraced. It returns the time it let it go: the program's
// first instruction. Called on a locked OS thread.
func (s *Session) startStopped(path string, argv []string, proc *backend.Process, follow bool) (*launch.Program, time.Time, error) {
	prog, err := launch.Start(path, argv, proc, nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("kernel: %w", err)
	}
	fail := func(err error) (*launch.Program, time.Time, error) {
		prog.Kill()
		return nil, time.Time{}, err
	}
	// Should we die before detaching, the program dies with us rather
	// than stay stopped forever.
	if err := unix.PtraceSetOptions(prog.Pid, unix.PTRACE_O_EXITKILL); err != nil {
		return fail(fmt.Errorf("kernel: ptrace options of %d: %w", prog.Pid, err))
	}
	if err := s.setPIDs(follow, []int{prog.Pid}); err != nil {
		return fail(err)
	}
	if s.hasProbes() {
		if err := s.Enable(); err != nil {
			return fail(err)
		}
	}
	// The program runs from the detach: its run time starts here, not
	// after this returns (the program may be done by then).
	t0 := time.Now()
	if err := unix.PtraceDetach(prog.Pid); err != nil {
		return fail(fmt.Errorf("kernel: detach from %d: %w", prog.Pid, err))
	}
	return prog, t0, nil
}
