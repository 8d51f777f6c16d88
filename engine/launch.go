package engine

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (s *Tracer) start(path string, argv []string) error {
	proc := &s.opts.Process
	files := []*os.File{proc.Stdin, proc.Stdout, proc.Stderr}
	for i, def := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if files[i] == nil {
			files[i] = def
		}
	}
	env := proc.Env
	if env == nil {
		env = os.Environ()
	}
	if proc.NoASLR {
		// The personality is the thread's and the child inherits it;
		// this thread is the engine's own, so setting it is harmless.
		if old, err := personality(0xffffffff); err == nil {
			personality(old | addrNoRandomize)
		}
	}
	started, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir:   proc.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", path, err)
	}
	s.pid = started.Pid
	started.Release()

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
	switch sched := &s.opts.Sched; {
	case sched.SameCPU:
		cpu := currentCPU()
		if sched.CPU != nil {
			cpu = *sched.CPU
		}
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(s.pid, &one); err != nil {
			unix.Kill(s.pid, unix.SIGKILL)
			return fmt.Errorf("confine %s to CPU %d: %w", path, cpu, err)
		}
		s.sched = pinnedFollower(cpu, s.warn)
	case !sched.NoFollow:
		s.sched = startFollower(sched.Priority, s.warn)
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
