package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel"
)

// ourLines returns the lines of uprobe_events that belong to ptprobe run
// pid (its group is ptprobe_<pid> or ptprobe_<pid>_<n>).
func ourLines(t *testing.T, tfs string, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tfs, "uprobe_events"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, fmt.Sprintf(":%s%d/", kernel.SessionPrefix, pid)) || strings.Contains(l, fmt.Sprintf(":%s%d_", kernel.SessionPrefix, pid)) {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestKernelTrace(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	r := ptprobe(t, "trace", "--backend", "kernel", "--count", "-e", "p:my/push "+prog+":push_func a=%di:s64", "-e", "r "+prog+":mid_func", "--", prog, "500")
	if r.status != 3 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	if want := "my/push 500\nptprobe/mid_func__return 500\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("kernel --count printed %q, want it to end in %q", r.stdout, want)
	}
	// The same events as the ptrace backend, line for line but for the
	// addresses, pids and times.
	ev := filepath.Join(dir, "ev.json")
	r = ptprobe(t, "trace", "--backend", "kernel", "--format", "json", "-o", ev, "-e", prog+":push_func a=%di:s64 b=%si:u32", "--", prog, "20")
	b, _ := os.ReadFile(ev)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 20 {
		t.Fatalf("%d events, want 20: %s", len(lines), r.stderr)
	}
	for i, l := range lines {
		var e struct {
			Comm string         `json:"comm"`
			Args map[string]any `json:"args"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Comm != "probes" || e.Args["a"] != float64(i) || e.Args["b"] != float64(2*i) {
			t.Errorf("event %d: %s", i, l)
		}
	}
}

func TestKernelRejectedSpec(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	// Our grammar takes %fs_base; the kernel's fetch-args do not.
	r := ptprobe(t, "trace", "--backend", "kernel", "-e", prog+":push_func x=%fs_base", "--", "true")
	if r.status != 2 {
		t.Errorf("status %d, want 2", r.status)
	}
	if !strings.Contains(r.stderr, "trace_uprobe: error: Invalid register name") || !strings.Contains(r.stderr, "  Command: ") || !strings.Contains(r.stderr, "^") {
		t.Errorf("stderr does not show the kernel's error_log entry:\n%s", r.stderr)
	}
	lines := strings.Split(r.stderr, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  Command: ") && i+1 < len(lines) {
			if col := strings.Index(lines[i+1], "^"); col < 0 || !strings.HasPrefix(l[col:], "%fs_base") {
				t.Errorf("caret is not under %%fs_base:\n%s\n%s", l, lines[i+1])
			}
		}
	}
}

func TestKprobeUnsupported(t *testing.T) {
	tfs := testprog.KernelUprobes(t)
	if _, err := os.Stat(filepath.Join(tfs, "kprobe_events")); err == nil {
		t.Skip("skipped: this kernel has kprobe_events; the unsupported path cannot be seen here")
	}
	r := ptprobe(t, "trace", "--backend", "kernel", "-k", "p do_sys_openat2 dfd=%di", "--", "true")
	if r.status != 2 || !strings.Contains(r.stderr, "kprobe_events") || !strings.Contains(r.stderr, "CONFIG_KPROBE_EVENTS") {
		t.Errorf("status %d, stderr %q; want exit 2 saying the kernel has no kprobe_events", r.status, r.stderr)
	}
	r = ptprobe(t, "trace", "-k", "p do_sys_openat2", "--", "true")
	if r.status != 2 || !strings.Contains(r.stderr, "--backend kernel") {
		t.Errorf("-k without --backend kernel: status %d, stderr %q", r.status, r.stderr)
	}
}

// startKernelTrace starts ptprobe on the kernel backend tracing a shell
// that writes its pid to a file and sleeps; it returns once the probes are
// defined.
func startKernelTrace(t *testing.T, tfs string) (*exec.Cmd, int) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(ptprobeBin, "trace", "--backend", "kernel", "-e", "libc:malloc", "--",
		"/bin/sh", "-c", "echo $$ > "+pidFile+"; exec sleep 30")
	// A file, not a pipe: the program outlives ptprobe and would keep a
	// pipe open, and Wait with it.
	errf, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var prog int
	t.Cleanup(func() {
		if prog > 0 {
			syscall.Kill(prog, syscall.SIGKILL)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && len(ourLines(t, tfs, cmd.Process.Pid)) > 0 {
			prog, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			if prog > 0 {
				return cmd, prog
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	b, _ := os.ReadFile(errf.Name())
	t.Fatalf("ptprobe did not start tracing; stderr:\n%s", b)
	return nil, 0
}

// TestKernelInterrupted: SIGINT makes ptprobe remove its events; after
// SIGKILL, the next run removes them.
func TestKernelInterrupted(t *testing.T) {
	testprog.SystemProbes(t, true)
	tfs := testprog.KernelUprobes(t)

	cmd, _ := startKernelTrace(t, tfs)
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if left := ourLines(t, tfs, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("after SIGINT, uprobe_events still holds %q", left)
	}

	cmd, _ = startKernelTrace(t, tfs)
	cmd.Process.Kill()
	cmd.Wait()
	killed := cmd.Process.Pid
	if left := ourLines(t, tfs, killed); len(left) == 0 {
		t.Fatalf("after SIGKILL nothing of run %d is left: the test shows nothing", killed)
	}
	r := ptprobe(t, "trace", "--backend", "kernel", "--count", "-e", "libc:malloc", "--", "true")
	if r.status != 0 {
		t.Fatalf("next run: status %d: %s", r.status, r.stderr)
	}
	if left := ourLines(t, tfs, killed); len(left) > 0 {
		t.Errorf("the next run did not remove the events of killed run %d: %q", killed, left)
	}
	if insts, _ := filepath.Glob(filepath.Join(tfs, "instances", fmt.Sprintf("%s%d*", kernel.SessionPrefix, killed))); len(insts) > 0 {
		t.Errorf("instances of killed run left: %v", insts)
	}
}
