package tracefs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"golang.org/x/sys/unix"
)

// requireTracefs opens this machine's tracefs for the tests that use the
// real kernel, or skips them saying why they cannot run.
func requireTracefs(t *testing.T) *Tracefs {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the tracefs tests define uprobes, which needs root (run `go test ./kernel/...` as root)")
	}
	tfs, err := Open()
	if err != nil {
		t.Skipf("skipped: no tracefs on this machine: %v", err)
	}
	if !tfs.Features.UprobeEvents {
		t.Skipf("skipped: this kernel has no uprobe_events in %s (CONFIG_UPROBE_EVENTS is off)", tfs.Root)
	}
	if !tfs.Features.Instances {
		t.Skipf("skipped: %s has no instances directory", tfs.Root)
	}
	return tfs
}

// checkNoLeftovers fails the test if tracefs still has an event of group
// or the instance of that name (for names no session uses).
func checkNoLeftovers(t *testing.T, tfs *Tracefs, group string) {
	t.Helper()
	data, err := os.ReadFile(tfs.Path(UprobeEvents))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, ":"+group+"/") {
			t.Errorf("uprobe_events still has %q", l)
		}
	}
	if Exists(tfs.Path("instances", group)) {
		t.Errorf("instance %s is still there", group)
	}
	if Exists(tfs.Path("events", group)) {
		t.Errorf("event group %s is still there", group)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Skipf("skipped: pid %d was reused at once", pid)
	}
	return pid
}

// TestOpenMounts: with nothing mounted at the place, Open
// mounts tracefs there (a second mount of the same tracefs, in a
// temporary directory, removed at the end).
func TestOpenMounts(t *testing.T) {
	t.Parallel()
	requireTracefs(t)
	dir := t.TempDir()
	tfs, err := open(dir, filepath.Join(dir, "nowhere"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if !tfs.Mounted || tfs.Root != dir || !tfs.Features.UprobeEvents || !tfs.Features.ErrorLog {
		t.Errorf("%+v", tfs)
	}
	// Already mounted: used as it is.
	tfs2, err := open(dir, "")
	if err != nil || tfs2.Mounted {
		t.Errorf("second open: %+v, %v", tfs2, err)
	}
}

// TestCleanStale: the instance and event group of a dead pid are removed,
// those of live pids are not.
func TestCleanStale(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	sym, _ := f.Lookup("push_func")
	f.Close()

	dead := SessionPrefix + strconv.Itoa(deadPID(t))
	dead2 := dead + "_3"
	live := SessionPrefix + "1_77" // init is alive
	groups := []string{dead, dead2, live}
	t.Cleanup(func() {
		for _, g := range groups {
			os.Remove(tfs.Path("instances", g))
			tfs.RemoveGroup(g)
			checkNoLeftovers(t, tfs, g)
		}
	})
	for _, g := range groups {
		if err := os.Mkdir(tfs.Path("instances", g), 0o750); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("p:%s/ev %s:0x%x", g, prog, sym.Offset)
		if err := Write(tfs.Path(UprobeEvents), line+"\n", os.O_APPEND); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	// Enabled in the dead session's instance, as a killed ptprobe
	// leaves it.
	// A session started meanwhile by a parallel test (of this package
	// or another) may have cleaned the dead ones up already.
	if err := Write(tfs.Path("instances", dead, "events", dead, "ev", "enable"), "1", os.O_TRUNC); err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENODEV) {
			t.Fatal(err)
		}
		t.Logf("%s was removed before it could be enabled, by a parallel session's cleanup", dead)
	}
	removed, err := tfs.CleanStale()
	if err != nil {
		t.Fatal(err)
	}
	// Sessions made by parallel tests clean stale sessions too: what
	// matters is that they are gone, whoever removed them.
	t.Logf("removed %q", removed)
	for _, r := range removed {
		if strings.Contains(r, live) {
			t.Errorf("removed %s of a live pid", r)
		}
	}
	checkNoLeftovers(t, tfs, dead)
	checkNoLeftovers(t, tfs, dead2)
	if !Exists(tfs.Path("instances", live)) || !Exists(tfs.Path("events", live, "ev")) {
		t.Errorf("the live session %s was touched", live)
	}
}

func TestKernelEventNames(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	group := "ptprobetest" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() {
		if err := tfs.RemoveGroup(group); err != nil {
			t.Error(err)
		}
		checkNoLeftovers(t, tfs, group)
	})
	dir := t.TempDir()
	colon := filepath.Join(dir, "a:b")
	if err := os.WriteFile(colon, []byte("any regular file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line, event string // event: the kernel's name for it
	}{
		{"p:" + group + "/ /bin/true:0", "p_true_0x0"},
		{"r:" + group + "/ /bin/true:0x10", "p_true_0x10"},
		// The kernel keeps the ':' of the file name in the event name;
		// Parse makes names C identifiers ("p_a_b_0x20").
		{"p:" + group + "/ " + colon + ":0x20", "p_a:b_0x20"},
	} {
		spec := mustParse(t, tc.line)
		if err := Write(tfs.Path(UprobeEvents), tc.line+"\n", os.O_APPEND); err != nil {
			t.Errorf("the kernel refused %q: %v\n%s", tc.line, err, tfs.Refused(UprobeEvents, tc.line, err).Caret())
			continue
		}
		if !strings.Contains(tc.event, ":") && spec.Event != tc.event {
			t.Errorf("Parse(%q).Event = %q, the kernel's %q", tc.line, spec.Event, tc.event)
		}
		data, _ := os.ReadFile(tfs.Path(UprobeEvents))
		if !strings.Contains(string(data), ":"+group+"/"+tc.event+" "+spec.Path+":0x") {
			t.Errorf("%q: no %s/%s on path %q in uprobe_events:\n%s", tc.line, group, tc.event, spec.Path, data)
		}
		if err := tfs.RemoveEvent(UprobeEvents, group, tc.event); err != nil {
			t.Error(err)
		}
	}
}
