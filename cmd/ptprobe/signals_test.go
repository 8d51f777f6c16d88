package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestEarlySignal sends SIGTERM to ptprobe at varying moments right after
// it starts, from before it has read its flags to after it has launched
// the program (a shell that leaves a mark, then execs one that runs until
// killed): every time ptprobe must end with 128+15 by itself — the program
// not started, or ended by the SIGTERM passed on to it, as a later SIGTERM
// is — and leave no program running. The one exception is a SIGTERM in
// the Go runtime's first milliseconds, before any code of ptprobe runs:
// its default action ends ptprobe, and the program must not have been
// started. Before, a SIGTERM that came after ptprobe watched its signals
// but before the program was started was lost: the program ran on.
func TestEarlySignal(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	const rounds = 40
	killed := 0
	for i := 0; i < rounds; i++ {
		delay := time.Duration(i) * time.Millisecond
		mark := filepath.Join(dir, fmt.Sprintf("started%d", i))
		cmd := exec.Command(ptprobeBin, "trace", "--count", "-o", os.DevNull, "-e", prog+":tick", "--", "/bin/sh", "-c", "touch "+mark+"; exec "+prog)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			killProgs(prog)
			t.Fatalf("SIGTERM %v after the start: ptprobe still runs 10 s later (the signal was lost)", delay)
		}
		_, started := os.Stat(mark)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == 128+int(syscall.SIGTERM):
		case errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM && started != nil:
			killed++ // before ptprobe's first code ran; nothing started
		default:
			t.Errorf("SIGTERM %v after the start: ptprobe ended with %v (program started: %v), want exit status %d", delay, err, started == nil, 128+int(syscall.SIGTERM))
		}
		if n := killProgs(prog); n > 0 {
			t.Errorf("SIGTERM %v after the start: %d processes of the program left running", delay, n)
		}
	}
	t.Logf("%d of %d SIGTERMs came before ptprobe's first code ran", killed, rounds)
	if killed == rounds {
		t.Errorf("every SIGTERM came before ptprobe's first code ran: the test proved nothing")
	}
}

// killProgs kills the processes that run prog and returns how many there
// were.
func killProgs(prog string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == prog {
			var pid int
			for _, c := range e.Name() {
				pid = pid*10 + int(c-'0')
			}
			syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}
