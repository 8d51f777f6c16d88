package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestKilledWhileAttached: ptprobe is SIGKILLed while it traces an
// 8-thread hot loop with probes on the no-stop path only; the program
// goes on with the right output: no int3 of ptprobe's is in its way, and
// its recorders stop waiting for the drain once its heartbeat stops
// (docs/DESIGN.md §8). A probe on the stop path would have killed it at
// its next hit.
func TestKilledWhileAttached(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "hot", testprog.PIE...)
	stop := filepath.Join(dir, "stop")
	var out bytes.Buffer
	p := exec.Command(prog, "8", stop)
	p.Stdout = &out
	p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			p.Process.Kill()
			p.Wait()
		}
	}()
	for try := 0; try < 3; try++ {
		var errb bytes.Buffer
		tr := exec.Command(ptprobeBin, "trace", "-p", fmt.Sprint(p.Process.Pid), "-o", os.DevNull,
			"-e", "p:t/probed "+prog+":probed x=%di i=%si", "-e", "p:t/framed "+prog+":framed")
		tr.Stderr = &errb
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		// Attached and armed once the jmps are in the text.
		armed := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !armed; time.Sleep(5 * time.Millisecond) {
			armed = textStarts(t, p.Process.Pid, prog, "probed", 0xe9) && textStarts(t, p.Process.Pid, prog, "framed", 0xe9)
		}
		time.Sleep(time.Duration(50+try*100) * time.Millisecond) // hits under way
		tr.Process.Signal(syscall.SIGKILL)
		tr.Wait()
		if !armed {
			t.Fatalf("ptprobe did not patch the program for the no-stop path: %s", errb.String())
		}
		// The ring fills; the recorders give up a second after the
		// last heartbeat.
		time.Sleep(1500 * time.Millisecond)
		if err := p.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("try %d: the program died after ptprobe was killed: %v", try, err)
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := p.Wait()
	waited = true
	if err != nil || out.String() != "threads=8 ok\n" {
		t.Fatalf("the program after 3 SIGKILLed ptprobes: %v, output %q", err, out.String())
	}
}

// textStarts reports whether function fn of prog in process pid starts
// with the byte b.
func textStarts(t *testing.T, pid int, prog, fn string, b byte) bool {
	t.Helper()
	out, err := exec.Command("nm", prog).Output()
	if err != nil {
		t.Skip("nm: ", err)
	}
	var off uint64
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == fn {
			fmt.Sscanf(f[0], "%x", &off)
		}
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != prog || !strings.Contains(f[1], "x") {
			continue
		}
		var start, end, foff uint64
		fmt.Sscanf(f[0], "%x-%x", &start, &end)
		fmt.Sscanf(f[2], "%x", &foff)
		if off < foff || off-foff >= end-start {
			continue
		}
		mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
		if err != nil {
			return false
		}
		defer mem.Close()
		var c [1]byte
		if _, err := mem.ReadAt(c[:], int64(start+off-foff)); err != nil {
			return false
		}
		return c[0] == b
	}
	return false
}

// TestKilledBeforeDlopen: ptprobe is SIGKILLed while attached to a program
// that loads a library later. The dynamic linker's hook (_dl_debug_state,
// which the linker calls at every dlopen) is then a patched jmp whose
// thread waits for the rescan only while ptprobe's heartbeat goes on
// (docs/DESIGN.md §8), not an int3: the program loads the library and
// finishes with the right output. With an int3 hook it died of SIGTRAP in
// every try.
func TestKilledBeforeDlopen(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "dlopener", testprog.PIE...)
	lib := filepath.Join(dir, "libplugin.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	argv := []string{prog, lib, "1000", "800", "3"}
	want, _ := testprog.Run(t, argv...)
	for try := 0; try < 3; try++ {
		var out bytes.Buffer
		p := exec.Command(argv[0], argv[1:]...)
		p.Stdout = &out
		p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		tr := exec.Command(ptprobeBin, "trace", "-p", fmt.Sprint(p.Process.Pid), "-o", os.DevNull,
			"-e", "p:t/plugin "+lib+":plugin_func x=%di", "-e", "p:t/main "+prog+":main")
		tr.Stderr = &errb
		if err := tr.Start(); err != nil {
			p.Process.Kill()
			p.Wait()
			t.Fatal(err)
		}
		// Attached once a probe of the program is patched in; the
		// program still sleeps before its dlopen.
		armed := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !armed; time.Sleep(5 * time.Millisecond) {
			armed = textStarts(t, p.Process.Pid, prog, "main", 0xe9)
		}
		tr.Process.Signal(syscall.SIGKILL)
		tr.Wait()
		err := p.Wait()
		if !armed {
			t.Fatalf("try %d: ptprobe did not patch the program: %s", try, errb.String())
		}
		if err != nil || out.String() != want {
			t.Fatalf("try %d: the program after ptprobe was killed: %v, output %q, untraced %q", try, err, out.String(), want)
		}
	}
}
