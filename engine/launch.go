package engine

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/internal/launch"
)

// start launches the program (internal/launch) seized and stopped before
// its first instruction, arms it, and lets it run.
func (s *Tracer) start(path string, argv []string) error {
	prog, err := launch.Start(path, argv, &s.opts.Process, &launch.Options{Seize: true, SeizeOptions: ptraceOptions | unix.PTRACE_O_EXITKILL})
	if err != nil {
		return err
	}
	s.pid = prog.Pid
	var ws unix.WaitStatus
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
	s.sched.armed()
	s.started = time.Now()
	unix.Kill(s.pid, unix.SIGCONT) // ends the SIGSTOP of the seizing
	if err := cont(s.pid, 0); err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		return fmt.Errorf("resume %d: %w", s.pid, err)
	}
	return nil
}

// wait4 waits for a stop or exit of pid (-1: any tracee or child of the
// ptrace thread).
func wait4(pid int, ws *unix.WaitStatus) (int, error) {
	return launch.Wait4(pid, ws, waitFlags)
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
