// Package launch starts the programs ptprobe's backends trace, and waits
// for them: both start a program stopped before its first instruction,
// under ptrace at the SIGTRAP of its execve (mapped, none of it run), with
// the standard files, environment, directory and address-space
// randomization a backend.Process asks for (docs/DESIGN.md §4). The
// kernel backend then enables its events and detaches; the ptrace engine
// seizes it (Options.Seize) and arms its probes.
package launch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/ptprobe/ptprobe/backend"
	"golang.org/x/sys/unix"
)

// addrNoRandomize is ADDR_NO_RANDOMIZE of <sys/personality.h>.
const addrNoRandomize = 0x0040000

// LookPath returns the file a program name means: the name itself when
// it has a '/', else the executable of that name in this process's PATH
// (exec.LookPath), which is where the program is looked for before it
// starts, as its probes are resolved in it.
func LookPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("no program")
	}
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find program %q: %w", name, err)
	}
	return path, nil
}

// Options say how Start hands the program over. nil and the zero value
// leave it as PTRACE_TRACEME leaves it.
type Options struct {
	// Seize trades the PTRACE_TRACEME that Go's os.StartProcess starts
	// a traced program with for PTRACE_SEIZE with SeizeOptions (the
	// PTRACE_O_* flags): a TRACEME tracee cannot be left in a job-control
	// stop and still be told of SIGCONT, and only a seized one takes
	// PTRACE_INTERRUPT and PTRACE_LISTEN. Start detaches the program into
	// a SIGSTOP, seizes it stopped, and returns it in the ptrace-stop the
	// seizing traps it into: the caller ends the group stop with SIGCONT
	// when it resumes the program (PTRACE_CONT). None of the program
	// runs meanwhile.
	Seize        bool
	SeizeOptions int
}

// Program is a program Start started.
type Program struct {
	Pid  int
	Path string // the file it runs
}

// Start starts the program at path with argv (argv[0] its name) as proc
// says (nil: the zero backend.Process), stopped under ptrace before its
// first instruction, and returns it traced by the calling thread.
//
// The calling goroutine must be locked to its OS thread
// (runtime.LockOSThread), and every ptrace request on the program must be
// made from that thread, as Go's SysProcAttr.Ptrace requires. With
// NoASLR the thread's personality gets ADDR_NO_RANDOMIZE for the start,
// which the program inherits, and its own personality back after it.
//
// On an error the program, if it started, is killed and waited for.
func Start(path string, argv []string, proc *backend.Process, opts *Options) (*Program, error) {
	if proc == nil {
		proc = &backend.Process{}
	}
	if opts == nil {
		opts = &Options{}
	}
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
		old, err := personality(0xffffffff)
		if err != nil {
			return nil, fmt.Errorf("start %s without address space randomization: personality: %w", path, err)
		}
		if _, err := personality(old | addrNoRandomize); err != nil {
			return nil, fmt.Errorf("start %s without address space randomization: personality: %w", path, err)
		}
		// The child has its copy; this thread goes back to its own.
		defer personality(old)
	}
	started, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir:   proc.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p := &Program{Pid: started.Pid, Path: path}
	started.Release()

	// The first stop is the SIGTRAP after execve: the new image is
	// mapped and nothing of it has run.
	var ws unix.WaitStatus
	if _, err := Wait4(p.Pid, &ws, unix.WALL); err != nil {
		p.Kill()
		return nil, fmt.Errorf("wait for %s to start: %w", path, err)
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		if ws.Exited() || ws.Signaled() {
			return nil, fmt.Errorf("%s ended before it started (status 0x%x)", path, uint32(ws))
		}
		p.Kill()
		return nil, fmt.Errorf("%s did not stop at its start under ptrace (status 0x%x)", path, uint32(ws))
	}
	if opts.Seize {
		if err := p.seize(opts.SeizeOptions); err != nil {
			p.Kill()
			return nil, err
		}
	}
	return p, nil
}

// seize trades the program's PTRACE_TRACEME for PTRACE_SEIZE: detach
// into a SIGSTOP, seize the stopped program, wait for the ptrace-stop
// the seizing traps it into.
func (p *Program) seize(options int) error {
	if err := ptrace(unix.PTRACE_DETACH, p.Pid, 0, uintptr(unix.SIGSTOP)); err != nil {
		return fmt.Errorf("detach %d to seize it: %w", p.Pid, err)
	}
	var ws unix.WaitStatus
	if _, err := Wait4(p.Pid, &ws, unix.WUNTRACED|unix.WNOTHREAD); err != nil || !ws.Stopped() {
		return fmt.Errorf("wait for %s to stop (status 0x%x): %v", p.Path, uint32(ws), err)
	}
	if err := ptrace(unix.PTRACE_SEIZE, p.Pid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("seize %d: %w", p.Pid, err)
	}
	if _, err := Wait4(p.Pid, &ws, unix.WALL); err != nil || !ws.Stopped() {
		return fmt.Errorf("%s did not stop once seized (status 0x%x): %v", p.Path, uint32(ws), err)
	}
	return nil
}

// Kill kills the program and waits for it to end.
func (p *Program) Kill() {
	unix.Kill(p.Pid, unix.SIGKILL)
	p.Wait()
}

// Wait waits until the program has exited, past any stop, and returns
// how it ended. It waits for the program's main thread, so a program
// still traced must be kept running by its tracer meanwhile.
func (p *Program) Wait() (Exit, error) {
	var ws unix.WaitStatus
	for {
		if _, err := Wait4(p.Pid, &ws, unix.WALL); err != nil {
			return Exit{}, fmt.Errorf("wait for %s: %w", p.Path, err)
		}
		if ws.Exited() || ws.Signaled() {
			return ExitOf(ws), nil
		}
	}
}

// Exit is how a program ended.
type Exit struct {
	// Code is its exit status, or -1 when a signal killed it.
	Code       int
	Signal     syscall.Signal
	CoreDumped bool
}

// ExitOf decodes the wait status of an exit.
func ExitOf(ws unix.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return Exit{Code: ws.ExitStatus()}
}

// Wait4 is wait4(2) on pid with options, retried when a signal
// interrupts it (EINTR: Go's own signals do, and os/signal's).
func Wait4(pid int, ws *unix.WaitStatus, options int) (int, error) {
	for {
		wpid, err := unix.Wait4(pid, ws, options, nil)
		if err != unix.EINTR {
			return wpid, err
		}
	}
}

// personality calls personality(2); 0xffffffff queries it.
func personality(p uint64) (uint64, error) {
	r, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(p), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return uint64(r), nil
}

// ptrace makes a ptrace request without a data buffer.
func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
