package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// Run runs argv as the kernel backend traces a program: it starts the
// program stopped before its first instruction (under ptrace, at the
// SIGTRAP of its execve), limits the session's events to it and its
// descendants (SetPIDs), enables them, detaches (the program then runs
// untraced: the kernel's uprobes do the work), waits for it to exit,
// disables the events and reads every event left in the buffers. fn is
// called for each event as Events calls it, while the program runs.
//
// stdin, stdout and stderr default to ours when nil, env to our
// environment; argv[0] is looked up in PATH when it has no '/'.
//
// exitCode is the program's exit status, or -1 when a signal killed it;
// sig is that signal. The trace ends when the program exits: children
// it leaves running are not waited for, and their later events are not
// read. If fn returns an error, Run stops reading, still waits for the
// program and returns the error with its exit status.
func Run(s *Session, argv []string, stdin, stdout, stderr *os.File, env []string, fn func(*uprobe.Event) error) (exitCode int, sig syscall.Signal, err error) {
	if len(argv) == 0 {
		return -1, 0, errors.New("kernel: run: no program")
	}
	path := argv[0]
	if !containsSlash(path) {
		if path, err = exec.LookPath(path); err != nil {
			return -1, 0, fmt.Errorf("kernel: run: %w", err)
		}
	}
	files := []*os.File{stdin, stdout, stderr}
	for i, def := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if files[i] == nil {
			files[i] = def
		}
	}
	if env == nil {
		env = os.Environ()
	}

	type started struct {
		pid int
		err error
	}
	startc := make(chan started, 1)
	type waited struct {
		ws  unix.WaitStatus
		err error
	}
	waitc := make(chan waited, 1)
	go func() {
		// ptrace requests must come from the thread that started the
		// program; the thread is never unlocked, so Go retires it.
		runtime.LockOSThread()
		pid, t0, err := startStopped(s, path, argv, files, env)
		startc <- started{pid, err}
		if err != nil {
			return
		}
		ws, err := waitExit(pid)
		s.runWall.Store(int64(time.Since(t0)))
		waitc <- waited{ws, err}
	}()
	st := <-startc
	if st.err != nil {
		return -1, 0, st.err
	}

	ctx, cancel := context.WithCancel(context.Background())
	readc := make(chan error, 1)
	go func() { readc <- s.Events(ctx, fn) }()

	w := <-waitc
	exitCode, sig = exitStatus(w.ws)
	derr := s.Disable()
	cancel()
	rerr := <-readc
	if w.err != nil {
		return -1, 0, fmt.Errorf("kernel: wait for %s: %w", path, w.err)
	}
	if lost, err := s.Lost(); err == nil && lost > 0 {
		s.warn(fmt.Errorf("kernel: %d events of %s were lost: a CPU's buffer was full (Options.BufferKB sets its size)", lost, path))
	}
	if rerr != nil {
		return exitCode, sig, rerr
	}
	if derr != nil && !errors.Is(derr, ErrClosed) {
		return exitCode, sig, derr
	}
	return exitCode, sig, nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// startStopped starts the program under ptrace, points the session at it
// and lets it go untraced. It returns the time it let it go: the program's
// first instruction. Called on a locked OS thread.
func startStopped(s *Session, path string, argv []string, files []*os.File, env []string) (int, time.Time, error) {
	if s.opts.NoASLR {
		// The child inherits this thread's personality; the thread is
		// locked to Run and retired with it.
		if old, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0); errno == 0 {
			unix.RawSyscall(unix.SYS_PERSONALITY, old|0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0)
		}
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("kernel: start %s: %w", path, err)
	}
	pid := proc.Pid
	proc.Release()
	fail := func(err error) (int, time.Time, error) {
		unix.Kill(pid, unix.SIGKILL)
		waitExit(pid)
		return 0, time.Time{}, err
	}

	// The first stop is the SIGTRAP after execve: the program is mapped
	// and none of it has run.
	var ws unix.WaitStatus
	if _, err := wait4(pid, &ws); err != nil {
		return fail(fmt.Errorf("kernel: wait for %s to start: %w", path, err))
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		if ws.Exited() || ws.Signaled() {
			return 0, time.Time{}, fmt.Errorf("kernel: %s ended before it started (status 0x%x)", path, uint32(ws))
		}
		return fail(fmt.Errorf("kernel: %s did not stop at its start (status 0x%x)", path, uint32(ws)))
	}
	// Should we die before detaching, the program dies with us rather
	// than stay stopped forever.
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL); err != nil {
		return fail(fmt.Errorf("kernel: ptrace options of %d: %w", pid, err))
	}
	if err := s.SetPIDs(pid); err != nil {
		return fail(err)
	}
	if err := s.Enable(); err != nil {
		return fail(err)
	}
	// The program runs from the detach: its run time starts here, not
	// after this returns (the program may be done by then).
	t0 := time.Now()
	if err := unix.PtraceDetach(pid); err != nil {
		return fail(fmt.Errorf("kernel: detach from %d: %w", pid, err))
	}
	return pid, t0, nil
}

// waitExit waits until pid has exited and returns its status.
func waitExit(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		if _, err := wait4(pid, &ws); err != nil {
			return ws, err
		}
		if ws.Exited() || ws.Signaled() {
			return ws, nil
		}
	}
}

func wait4(pid int, ws *unix.WaitStatus) (int, error) {
	for {
		wpid, err := unix.Wait4(pid, ws, unix.WALL, nil)
		if err != unix.EINTR {
			return wpid, err
		}
	}
}

// exitStatus splits a wait status into the exit code (-1 when killed by
// a signal) and the signal.
func exitStatus(ws unix.WaitStatus) (int, syscall.Signal) {
	if ws.Signaled() {
		return -1, ws.Signal()
	}
	return ws.ExitStatus(), 0
}
