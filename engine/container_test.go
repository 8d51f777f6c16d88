package engine_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestAttachMountNamespace attaches to a process in a mount namespace of
// its own (a container without a runtime: testprog.StartInMountNS),
// whose program and library are bind mounts at paths that in ours hold
// another program and nothing: probes by the program's own path, by
// library name (found through its LD_LIBRARY_PATH under /proc/PID/root,
// mapped at the attach or dlopen'ed after it, or through its own
// ld.so.cache, which ours does not match) and a USDT probe behind a
// semaphore count exactly; after the detach the semaphore is 0 again and
// the text equals the file.
func TestAttachMountNamespace(t *testing.T) {
	for _, mode := range []string{"early", "late", "cache"} {
		t.Run(mode, func(t *testing.T) {
			const n = 7
			p := testprog.StartInMountNS(t, t.TempDir(), n, mode)
			if root := elfsym.ProcessRoot(p.Pid); root != fmt.Sprintf("/proc/%d/root", p.Pid) {
				t.Fatalf("ProcessRoot(%d) = %q: the process should have a mount namespace of its own", p.Pid, root)
			}
			tr, err := engine.Attach(p.Pid, &engine.Options{
				Probes: specs(t, p.TargetProg+":work", "libnsplug:plugin_func", "usdt:"+p.TargetProg+":nswait:tick"),
				Warn:   func(err error) { t.Errorf("engine warning: %v", err) },
			})
			if err != nil {
				t.Fatalf("attach: %v", err)
			}
			if v := semaphore(t, p.Pid, p.Prog, "nswait", "tick"); v != 1 {
				t.Errorf("semaphore %d while attached, want 1", v)
			}
			done := p.Run(t)
			if want := fmt.Sprintf("done work=%d plugin=%d ticks=%d", 3*n*(n-1)/2, 7*n*(n-1)/2, n); done != want {
				t.Errorf("program said %q, want %q", done, want)
			}
			tr.Detach()
			res, err := tr.Wait()
			if err != nil || !res.Detached {
				t.Fatalf("detach: %+v %v", res, err)
			}
			for _, pr := range tr.Probes() {
				if pr.Hits() != n || !pr.Armed() {
					t.Errorf("%s: %d hits (armed %v), want %d", pr.Spec.Probe(), pr.Hits(), pr.Armed(), n)
				}
			}
			if v := semaphore(t, p.Pid, p.Prog, "nswait", "tick"); v != 0 {
				t.Errorf("semaphore %d after the detach, want 0", v)
			}
			textEqualsFile(t, p.Pid, p.Prog, "work")
			textEqualsFile(t, p.Pid, p.Lib, "plugin_func")
			if code := p.Exit(t); code != 0 {
				t.Errorf("exit status %d after the detach, want 0", code)
			}
		})
	}
}

// TestAttachReplacedFile: a probe on the path of a program that was
// replaced on disk after it started (a new file at the same path) is the
// new file, which the process does not map: it is never armed, counts
// nothing and is warned of at the attach, naming the running file
// (/proc/PID/exe), which a probe can name.
func TestAttachReplacedFile(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "nswait", append(testprog.PIE, "-ldl")...)
	lib := testprog.BuildAs(t, dir, "libplug.so", "plugin", "-O2", "-shared", "-fPIC")
	p := startNSWait(t, prog, lib)
	// A library deleted while mapped is still found by its name: the
	// process's /proc/PID/map_files/ holds it, for root.
	deleted := os.Geteuid() == 0
	if deleted {
		if err := os.Remove(lib); err != nil {
			t.Fatal(err)
		}
	}
	// Replaced as a package upgrade replaces it: a new file renamed over.
	data, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(prog+".new", prog); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	tr, err := engine.Attach(p.Pid, &engine.Options{
		Probes: specs(t, prog+":work", "libplug:plugin_func", fmt.Sprintf("p:nswait/running /proc/%d/exe:work", p.Pid)),
		Warn:   func(err error) { warnings = append(warnings, err.Error()) },
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if want := fmt.Sprintf("%s is not the file process %d runs at that path: it maps %s (deleted)", prog, p.Pid, prog); len(warnings) != 1 || !strings.Contains(warnings[0], want) ||
		!strings.Contains(warnings[0], fmt.Sprintf("the file it runs is /proc/%d/exe", p.Pid)) {
		t.Errorf("warnings %q, want one saying %q", warnings, want)
	}
	p.Run(t)
	tr.Detach()
	if _, err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
	pr := tr.Probes()
	if pr[0].Armed() || pr[0].Hits() != 0 {
		t.Errorf("%s on the replaced path: armed %v, %d hits; want never armed", pr[0].Spec.Text, pr[0].Armed(), pr[0].Hits())
	}
	for _, q := range pr[1:] {
		if !q.Armed() || q.Hits() != 3 {
			t.Errorf("%s: armed %v, %d hits; want 3 (library deleted: %v)", q.Spec.Text, q.Armed(), q.Hits(), deleted)
		}
	}
	p.Exit(t)
}

// startNSWait starts nswait LIB 3 early in our own namespace.
func startNSWait(t *testing.T, prog, lib string) *testprog.NSProcess {
	t.Helper()
	return testprog.StartNSWait(t, prog, lib, 3, "early")
}

// textEqualsFile compares the text of the named functions of file in
// process pid with the file's bytes.
func textEqualsFile(t *testing.T, pid int, file string, funcs ...string) {
	t.Helper()
	f, err := elfsym.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, name := range funcs {
		sym, err := f.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, sym.Size)
		f.ReadAt(want, int64(sym.Offset))
		found := false
		for _, m := range maps {
			addr, ok := m.Addr(sym.Offset)
			if !ok || !m.Exec() || m.ID() != f.ID {
				continue
			}
			found = true
			got := make([]byte, sym.Size)
			if _, err := mem.ReadAt(got, int64(addr)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s in %d after the detach: % x, file: % x", name, pid, got, want)
			}
		}
		if !found {
			t.Errorf("%s of %s not mapped in %d", name, file, pid)
		}
	}
}
