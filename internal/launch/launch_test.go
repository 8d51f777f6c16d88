package launch

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"golang.org/x/sys/unix"
)

// procState is the state letter of /proc/PID/stat ('t': stopped by a
// tracer).
func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(string(b), ')')
	return b[i+2]
}

// thisPersonality is the calling thread's personality.
func thisPersonality(t *testing.T) uint64 {
	t.Helper()
	p, err := personality(0xffffffff)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStart: the program is stopped under ptrace before it runs, then
// runs with the files, environment, directory and personality asked for,
// and Wait tells its exit status; the starting thread keeps its own
// personality.
func TestStart(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sh, err := LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	before := thisPersonality(t)
	proc := &backend.Process{Stdout: out, Env: []string{"PTPROBE_LAUNCH=yes"}, Dir: dir, NoASLR: true}
	p, err := Start(sh, []string{"sh", "-c", `echo "$PTPROBE_LAUNCH"; pwd; cat /proc/self/personality; exit 7`}, proc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after := thisPersonality(t); after != before {
		t.Errorf("the starting thread's personality is 0x%x, was 0x%x", after, before)
	}
	if st := procState(t, p.Pid); st != 't' {
		t.Errorf("started program in state %c, want t (stopped by its tracer)", st)
	}
	if b, _ := os.ReadFile(out.Name()); len(b) != 0 {
		t.Errorf("the program ran before it was let go: %q", b)
	}
	if err := unix.PtraceDetach(p.Pid); err != nil {
		p.Kill()
		t.Fatal(err)
	}
	exit, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit != (Exit{Code: 7}) {
		t.Errorf("exit %+v, want code 7", exit)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	real, _ := filepath.EvalSymlinks(dir)
	if len(lines) != 3 || lines[0] != "yes" || (lines[1] != dir && lines[1] != real) || !strings.HasSuffix(lines[2], "40000") {
		t.Errorf("output %q: want the environment's yes, %s and a personality with ADDR_NO_RANDOMIZE (0040000)", lines, dir)
	}
}

// TestStartSeize: with Seize the program is a PTRACE_SEIZE tracee (which
// takes PTRACE_INTERRUPT; a PTRACE_TRACEME one does not), stopped, and
// runs to its end once continued with SIGCONT.
func TestStartSeize(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sh, err := LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Start(sh, []string{"sh", "-c", "exit 0"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ptrace(unix.PTRACE_INTERRUPT, plain.Pid, 0, 0); !errors.Is(err, unix.EIO) {
		t.Errorf("PTRACE_INTERRUPT of a PTRACE_TRACEME tracee: %v, want EIO", err)
	}
	plain.Kill()

	p, err := Start(sh, []string{"sh", "-c", "exit 5"}, nil, &Options{Seize: true, SeizeOptions: unix.PTRACE_O_EXITKILL})
	if err != nil {
		t.Fatal(err)
	}
	if err := ptrace(unix.PTRACE_INTERRUPT, p.Pid, 0, 0); err != nil {
		p.Kill()
		t.Fatalf("PTRACE_INTERRUPT of the seized program: %v", err)
	}
	if st := procState(t, p.Pid); st != 't' {
		t.Errorf("seized program in state %c, want t", st)
	}
	unix.Kill(p.Pid, unix.SIGCONT)
	if err := unix.PtraceCont(p.Pid, 0); err != nil {
		p.Kill()
		t.Fatal(err)
	}
	// Its stops until it exits: the SIGCONT's delivery, the end of the
	// group stop; each let go with its signal, as a tracer does.
	var ws unix.WaitStatus
	for i := 0; ; i++ {
		if _, err := Wait4(p.Pid, &ws, unix.WALL); err != nil {
			t.Fatal(err)
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
		if i > 100 {
			p.Kill()
			t.Fatalf("the program keeps stopping (status 0x%x)", uint32(ws))
		}
		sig := 0
		if s := ws.StopSignal(); s != unix.SIGTRAP && s != unix.SIGSTOP && ws.TrapCause() <= 0 {
			sig = int(s)
		}
		if err := unix.PtraceCont(p.Pid, sig); err != nil {
			p.Kill()
			t.Fatal(err)
		}
	}
	if got := ExitOf(ws); got != (Exit{Code: 5}) {
		t.Errorf("exit %+v, want code 5", got)
	}
}

// TestExitOf: exit codes and deaths by signal.
func TestExitOf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sh, err := LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(sh, []string{"sh", "-c", "kill -TERM $$"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	unix.PtraceDetach(p.Pid)
	exit, err := p.Wait()
	if err != nil || exit != (Exit{Code: -1, Signal: syscall.SIGTERM}) {
		t.Errorf("Wait = %+v, %v; want SIGTERM", exit, err)
	}
}

// TestStartErrors: a file that is no program, and LookPath's names.
func TestStartErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	notProg := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notProg, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Start(notProg, []string{"data"}, nil, nil); err == nil || !errors.Is(err, syscall.EACCES) {
		if p != nil {
			p.Kill()
		}
		t.Errorf("Start of a file that is not executable: %v, want EACCES", err)
	}
	if path, err := LookPath("/no/such/dir/prog"); err != nil || path != "/no/such/dir/prog" {
		t.Errorf("LookPath of a path: %q, %v", path, err)
	}
	if _, err := LookPath("ptprobe-no-such-program"); err == nil {
		t.Error("LookPath found ptprobe-no-such-program")
	}
	if _, err := LookPath(""); err == nil {
		t.Error("LookPath of no name succeeded")
	}
}
