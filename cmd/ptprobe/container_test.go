package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestTraceContainer: `ptprobe trace -p PID` of a process in a mount
// namespace of its own (testprog.StartInMountNS), with each backend:
// probes by the program's own path (which in ptprobe's namespace is
// another program), by library name (found in the process's
// LD_LIBRARY_PATH, empty here) and a USDT probe count exactly, and
// ptprobe detaches at SIGINT with everything armed.
func TestTraceContainer(t *testing.T) {
	for _, be := range []string{"ptrace", "kernel"} {
		t.Run(be, func(t *testing.T) {
			if be == "kernel" {
				testprog.KernelUprobes(t)
			}
			const n = 5
			p := testprog.StartInMountNS(t, t.TempDir(), n, "early")
			cmd := exec.Command(ptprobeBin, "trace", "--backend", be, "-p", fmt.Sprint(p.Pid), "--count",
				"-e", p.TargetProg+":work", "-e", "libnsplug:plugin_func", "-e", "usdt:"+p.TargetProg+":nswait:tick")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			waitPatched(t, p.Pid, cmd, &errb, p.Prog, "work")
			waitPatched(t, p.Pid, cmd, &errb, p.Lib, "plugin_func")
			p.Run(t)
			cmd.Process.Signal(syscall.SIGINT)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ptprobe: %v\n%s", err, errb.String())
			}
			for _, want := range []string{fmt.Sprintf("ptprobe/work %d\n", n), fmt.Sprintf("ptprobe/plugin_func %d\n", n), fmt.Sprintf("ptprobe/tick %d\n", n)} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output %q lacks %q", out.String(), want)
				}
			}
			if want := fmt.Sprintf("detached from %d", p.Pid); !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "(probes armed: 3 of 3)") {
				t.Errorf("stderr %q, want %q with every probe armed", errb.String(), want)
			}
			checkText(t, p.Pid, p.Prog, "work")
			checkText(t, p.Pid, p.Lib, "plugin_func")
			if code := p.Exit(t); code != 0 {
				t.Errorf("exit status %d after the detach", code)
			}
		})
	}
}

// waitPatched waits until the first byte of function fn of file in
// process pid differs from the file's (a backend armed it), failing if
// ptprobe exits first.
func waitPatched(t *testing.T, pid int, cmd *exec.Cmd, stderr *bytes.Buffer, file, fn string) {
	t.Helper()
	f, err := elfsym.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sym, err := f.Lookup(fn)
	if err != nil {
		t.Fatal(err)
	}
	var want [1]byte
	f.ReadAt(want[:], int64(sym.Offset))
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if proc, err := os.FindProcess(cmd.Process.Pid); err == nil && proc.Signal(syscall.Signal(0)) != nil {
			break
		}
		maps, err := elfsym.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range maps {
			if a, ok := m.Addr(sym.Offset); ok && m.Exec() && m.ID() == f.ID {
				var got [1]byte
				if _, err := mem.ReadAt(got[:], int64(a)); err == nil && got != want {
					return
				}
			}
		}
	}
	t.Fatalf("%s of %s was not armed in %d; ptprobe said:\n%s", fn, file, pid, stderr.String())
}
