package engine_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/stress"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
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
	waitChild(t, cmd.Process.Pid) // the parent is inside vfork
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

// TestDetachDuringVfork detaches while the program's only thread waits
// inside vfork for a child that sleeps before it execs. The wait cannot
// be interrupted: the detach restores the text under it and detaches the
// thread when it comes out. An attached program's Close does not wait for
// that; a launched one's does (a launched program dies with its tracer).
// Either way the program ticks on afterwards, untraced, with its text the
// file's.
func TestDetachDuringVfork(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "vforkwait", testprog.PIE...)
	probes := specs(t, "p:t/tick "+prog+":tick")
	warn := func(err error) { t.Errorf("engine warning: %v", err) }
	check := func(t *testing.T, pid int) {
		for deadline := time.Now().Add(5 * time.Second); len(childrenOf(pid)) > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the vfork child is still there after 5 s")
			}
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if bytes.Contains(b, []byte("TracerPid:\t0\n")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the program is still traced 5 s after the detach:\n%s", b)
			}
		}
		checkText(t, pid, prog, "tick", true)
		time.Sleep(20 * time.Millisecond)
		if st := procState(pid); st != 'S' && st != 'R' {
			t.Errorf("after the vfork the program is in state %c", st)
		}
	}
	t.Run("attached", func(t *testing.T) {
		cmd := exec.Command(prog, "2000", "500") // the vfork 0.5 s after the start
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		tr, err := engine.Attach(cmd.Process.Pid, &engine.Options{Probes: probes, Warn: warn})
		if err != nil {
			t.Fatal(err)
		}
		if len(childrenOf(cmd.Process.Pid)) > 0 {
			tr.Close()
			t.Skip("skipped: the attach took longer than the program's 0.5 s before its vfork")
		}
		child := waitChild(t, cmd.Process.Pid)
		if err := tr.Close(); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", child)); exe != prog {
			t.Errorf("when the detach returned the vfork child runs %q: the detach waited for the vfork to end", exe)
		}
		if res, _ := tr.Wait(); !res.Detached || len(res.TextMismatches) > 0 {
			t.Errorf("detach result %+v", res)
		}
		check(t, cmd.Process.Pid)
	})
	t.Run("launched", func(t *testing.T) {
		tr, err := engine.Launch([]string{prog, "1000"}, &engine.Options{Probes: probes, Warn: warn})
		if err != nil {
			t.Fatal(err)
		}
		pid := tr.Pid()
		defer func() { unix.Kill(pid, unix.SIGKILL); var ws unix.WaitStatus; unix.Wait4(pid, &ws, 0, nil) }()
		waitChild(t, pid)
		if err := tr.Close(); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if res, _ := tr.Wait(); !res.Detached || len(res.TextMismatches) > 0 {
			t.Errorf("detach result %+v", res)
		}
		check(t, pid)
	})
}

// childrenOf lists the children of process pid's main thread.
func childrenOf(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	return strings.Fields(string(b))
}

// waitChild waits until process pid has a child, at most 5 s, and returns
// its process ID.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if c := childrenOf(pid); len(c) > 0 {
			n, _ := strconv.Atoi(c[0])
			return n
		}
	}
	t.Fatalf("process %d made no child in 5 s", pid)
	return 0
}

// TestDetachInSignalHandler: a probe with a post handler on a function
// called in a hot loop, a SIGUSR1 whose handler sleeps, a detach while it
// sleeps. Most hits end in a trampoline, so the signal usually interrupts
// the thread there, and the handler returns into it after the detach: its
// exit, an int3 while traced, must then jump back by itself. Each round
// the program must run on, neither killed by a SIGTRAP nor stopped, with
// its text the file's.
func TestDetachInSignalHandler(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "sighold", testprog.PIE...)
	spec := mustParse(t, "p:t/probed "+prog+":probed")
	const rounds = 8
	cmd := exec.Command(prog)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	for i := 0; i < rounds; i++ {
		posts := 0
		tr, err := engine.Attach(pid, &engine.Options{
			Probes: []backend.Probe{{Spec: spec, Handlers: uprobe.Handlers{Post: func(uprobe.Context) { posts++ }}}},
			Warn:   func(err error) { t.Errorf("round %d: engine warning: %v", i, err) },
		})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		waitHits(t, tr.Probes()[0], 100)
		cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(50 * time.Millisecond) // the handler sleeps 200 ms
		if err := tr.Close(); err != nil {
			t.Fatalf("round %d: detach: %v", i, err)
		}
		if res, _ := tr.Wait(); !res.Detached || len(res.TextMismatches) > 0 {
			t.Errorf("round %d: detach result %+v", i, res)
		}
		if posts == 0 {
			t.Errorf("round %d: the post handler never ran", i)
		}
		time.Sleep(250 * time.Millisecond) // the handler has returned
		if st := procState(pid); st != 'S' && st != 'R' {
			t.Fatalf("round %d: after the detach and the handler's return the program is in state %c", i, st)
		}
		checkText(t, pid, prog, "probed", true)
	}
}

// TestAttachDetachChurn attaches to and detaches from a program that makes
// a thread and forks a child over and over, so that attaches and detaches
// land at clone and fork events, with new tasks half set up: each detach
// must leave the text as the file's and the program running, and no child
// may die (of an int3 it inherited, say).
func TestAttachDetachChurn(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "churn", testprog.PIE...)
	var out strings.Builder
	cmd := exec.Command(prog)
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	const rounds = 30
	for i := 0; i < rounds; i++ {
		tr, err := engine.Attach(pid, &engine.Options{
			Probes: specs(t, "p:t/probed "+prog+":probed"),
			Warn:   func(err error) { t.Errorf("round %d: engine warning: %v", i, err) },
		})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		waitHits(t, tr.Probes()[0], 20)
		if err := tr.Close(); err != nil {
			t.Fatalf("round %d: detach: %v", i, err)
		}
		if res, _ := tr.Wait(); !res.Detached || len(res.TextMismatches) > 0 {
			t.Fatalf("round %d: detach result %+v", i, res)
		}
		checkText(t, pid, prog, "probed", true)
		if st := procState(pid); st != 'S' && st != 'R' {
			t.Fatalf("round %d: after the detach the program is in state %c", i, st)
		}
	}
	time.Sleep(50 * time.Millisecond) // a child forked during the last detach ends
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the program ended with %v, output %q", err, out.String())
	}
	if !strings.Contains(out.String(), " bad=0\n") {
		t.Errorf("children died: %s", out.String())
	}
	t.Logf("%d attach/detach cycles: %s", rounds, strings.TrimSpace(out.String()))
}
