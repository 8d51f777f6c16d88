package engine_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/stress"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// detachCycles is how many attach/detach cycles TestDetachUnderLoad runs;
// ptprobe-bench runs more (its reliability section).
var detachCycles = flag.Int("detach-cycles", 50, "attach/detach cycles of TestDetachUnderLoad")

// TestDetachUnderLoad attaches to and detaches from an 8-thread hot loop
// over and over (stress.DetachCycles), with events formatted, with return
// probes and with post handlers: no detach may kill the program, leave
// text that differs from the file, or upset its sums.
func TestDetachUnderLoad(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "hot", testprog.PIE...)
	rep, err := stress.DetachCycles(prog, dir, 8, *detachCycles)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Deaths {
		t.Errorf("the program died after a detach: %s", d)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	if rep.Cycles != *detachCycles {
		t.Errorf("%d cycles made, want %d", rep.Cycles, *detachCycles)
	}
	t.Logf("%d attach/detach cycles, %d hits, %d deaths", rep.Cycles, rep.Hits, len(rep.Deaths))
}

// TestAttachAlreadyTraced: attaching to a process that a session already
// traces is refused with the reason, naming the tracer.
func TestAttachAlreadyTraced(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cfg := engine.Options{Probes: specs(t, "p:t/tick "+prog+":tick"), Process: backend.Process{Stdout: out}, Warn: func(err error) { t.Errorf("engine warning: %v", err) }}
	first, err := engine.Launch([]string{prog, "2"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	_, err = engine.Attach(first.Pid(), &cfg)
	if !errors.Is(err, engine.ErrPermission) || !strings.Contains(err.Error(), fmt.Sprintf("of process %d (", os.Getpid())) {
		t.Fatalf("second attach: %v, want ErrPermission naming this process as the tracer", err)
	}
	first.Detach()
}

// TestAttachAtStart attaches to a program the moment exec.Cmd.Start
// returns, over and over: Start returns once execve is past its point of
// no return, so the attach can land inside execve (the thread's first stop
// is then the exec's, where no system call can be injected) or in the
// dynamic loader. Each attach must arm, see hits, and detach with the text
// as the file's and the program running on, neither stopped nor dead.
func TestAttachAtStart(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	const rounds = 20
	for i := 0; i < rounds; i++ {
		cmd := exec.Command(prog) // runs until killed
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		err := func() error {
			tr, err := engine.Attach(cmd.Process.Pid, &engine.Options{
				Probes: specs(t, "p:t/tick "+prog+":tick"),
				Warn:   func(err error) { t.Errorf("round %d: engine warning: %v", i, err) },
			})
			if err != nil {
				return err
			}
			waitHits(t, tr.Probes()[0], 0)
			if err := tr.Close(); err != nil {
				return fmt.Errorf("detach: %w", err)
			}
			checkText(t, cmd.Process.Pid, prog, "tick", true)
			time.Sleep(10 * time.Millisecond)
			if st := procState(cmd.Process.Pid); st != 'S' && st != 'R' {
				return fmt.Errorf("after the detach the program is in state %c", st)
			}
			return nil
		}()
		cmd.Process.Kill()
		werr := cmd.Wait()
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the program ended with %v, not by the SIGKILL sent", i, werr)
		}
	}
}

// procState is the state letter of /proc/PID/stat (0 if unreadable).
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// TestAttachInVfork attaches to a process whose only thread waits inside
// vfork for its child to exec: the wait is not interruptible, so the
// thread's first stop comes when the vfork has ended, and it is armed
// there. The probe must fire, and the detach leave the text as the
// file's.
func TestAttachInVfork(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "vforkwait", testprog.PIE...)
	cmd := exec.Command(prog, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	children := fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if b, _ := os.ReadFile(children); len(bytes.TrimSpace(b)) > 0 {
			break // the child exists: the parent is inside vfork
		}
		if time.Now().After(deadline) {
			t.Fatal("the program made no child in 5 s")
		}
	}
	tr, err := engine.Attach(cmd.Process.Pid, &engine.Options{
		Probes: specs(t, "p:t/tick "+prog+":tick"),
		Warn:   func(err error) { t.Errorf("engine warning: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	waitHits(t, tr.Probes()[0], 5)
	if err := tr.Close(); err != nil {
		t.Fatalf("detach: %v", err)
	}
	checkText(t, cmd.Process.Pid, prog, "tick", true)
	if st := procState(cmd.Process.Pid); st != 'S' && st != 'R' {
		t.Errorf("after the detach the program is in state %c", st)
	}
}
