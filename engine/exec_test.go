package engine_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestDetachDuringExec detaches, at varying moments, from a program that
// execs itself over and over, from its main thread and from a second
// thread in turn: detaches land while the program is inside execve, while
// the engine steps a thread out of it (the new image not armed yet), and
// while it arms a new image. The program must finish its chain untraced
// with the output and exit status it has untraced: no int3 left in an
// image, no SIGTRAP of the engine's step delivered, no thread left
// stopped.
func TestDetachDuringExec(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "execself", testprog.PIE...)
	const chain = "300"
	wantOut, wantCode := testprog.Run(t, prog, chain)
	const rounds = 12
	for i := 0; i < rounds; i++ {
		out, err := os.Create(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := engine.Launch([]string{prog, chain}, &engine.Options{
			Probes:  specs(t, "p:t/stage "+prog+":stage"),
			Process: backend.Process{Stdout: out},
			Warn:    func(err error) { t.Errorf("round %d: engine warning: %v", i, err) },
		})
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		pid := tr.Pid()
		waitHits(t, tr.Probes()[0], uint64(i%4))
		time.Sleep(time.Duration(i%6) * time.Millisecond)
		if err := tr.Close(); err != nil {
			t.Fatalf("round %d: detach: %v", i, err)
		}
		res, _ := tr.Wait()
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			if !res.Detached && res.ExitCode == wantCode {
				continue // the chain ended before the detach
			}
			t.Fatalf("round %d: wait for the program: %v (result %+v)", i, err, res)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "out"))
		if ws.Signaled() || ws.ExitStatus() != wantCode || string(b) != wantOut {
			t.Fatalf("round %d: after the detach (%d hits) the program ended with status %v (signal %v), output %q; untraced: %d, %q",
				i, tr.Probes()[0].Hits(), ws.ExitStatus(), ws.Signal(), b, wantCode, wantOut)
		}
		if len(res.TextMismatches) > 0 {
			t.Errorf("round %d: text mismatches %v", i, res.TextMismatches)
		}
	}
}

// TestAttachDetachDuringExec attaches to a program that spends most of its
// time inside execve (it execs itself thousands of times, from its main
// thread: an attach that races an exec of another thread is not sound
// yet) and detaches at once, round after round: an attach that lands inside execve steps the
// thread out of it to arm the new image, and the detach comes while that
// step is under way, or just after the image was armed. The chain must
// run to its end untraced, with the output and exit status it has
// untraced.
func TestAttachDetachDuringExec(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "execself", testprog.PIE...)
	const chain = "3000"
	wantOut, wantCode := testprog.Run(t, prog, chain, "main")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(prog, chain, "main")
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	const rounds = 25
	failed := 0
	for i := 0; i < rounds; i++ {
		tr, err := engine.Attach(cmd.Process.Pid, &engine.Options{
			Probes: specs(t, "p:t/stage "+prog+":stage"),
			Warn:   func(err error) { t.Errorf("round %d: engine warning: %v", i, err) },
		})
		if errors.Is(err, unix.ESRCH) || (err != nil && strings.Contains(err.Error(), "no such process")) {
			break // the chain ended
		}
		if err != nil {
			// An attach may lose the race with an exec (the
			// memory it arms is gone): it fails, and must leave
			// the program unharmed all the same.
			t.Logf("round %d: attach: %v", i, err)
			failed++
			continue
		}
		if err := tr.Close(); err != nil {
			t.Fatalf("round %d: detach: %v", i, err)
		}
		if res, _ := tr.Wait(); len(res.TextMismatches) > 0 {
			t.Errorf("round %d: text mismatches %v", i, res.TextMismatches)
		}
		time.Sleep(time.Duration(i%5) * time.Millisecond)
	}
	if failed > rounds/2 {
		t.Errorf("%d of %d attaches failed", failed, rounds)
	}
	err = cmd.Wait()
	b, _ := os.ReadFile(out.Name())
	if code := cmd.ProcessState.ExitCode(); code != wantCode || string(b) != wantOut {
		t.Fatalf("after the detaches the program ended with %v, output %q; untraced: status %d, %q", err, b, wantCode, wantOut)
	}
}
