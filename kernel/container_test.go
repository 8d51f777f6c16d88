package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestKernelAttachMountNamespace: the kernel backend attached to a
// process in a mount namespace of its own (testprog.StartInMountNS)
// hands tracefs paths under /proc/PID/root, which the kernel resolves to
// the process's files (inodes that ptprobe's namespace has at no path:
// the same paths hold another program and nothing here): the probe by
// the program's path, by library name and the USDT probe (the kernel
// raises its semaphore) count exactly; when the run ends the semaphore is
// 0, the text equals the file and tracefs holds nothing of the run.
func TestKernelAttachMountNamespace(t *testing.T) {
	tfs := requireTracefs(t)
	for _, mode := range []string{"early", "late", "cache"} {
		t.Run(mode, func(t *testing.T) {
			const n = 6
			p := testprog.StartInMountNS(t, t.TempDir(), n, mode)
			root := fmt.Sprintf("/proc/%d/root", p.Pid)
			var mu sync.Mutex
			hits := map[string]int{}
			var args []uint64
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var lines []string
			req := &backend.Request{
				PID:    p.Pid,
				Probes: probes(t, p.TargetProg+":work i=%di:u64", "libnsplug:plugin_func", "usdt:"+p.TargetProg+":nswait:tick"),
				OnEvent: func(ev *uprobe.Event) {
					mu.Lock()
					hits[ev.Probe()]++
					if ev.Name == "work" {
						args = append(args, ev.Args[0].U)
					}
					mu.Unlock()
				},
				Warn: func(err error) { t.Errorf("warning: %v", err) },
				Started: func(int) {
					data, _ := os.ReadFile(tfs.Path("uprobe_events"))
					for _, l := range strings.Split(string(data), "\n") {
						if strings.Contains(l, root+"/") {
							lines = append(lines, l)
						}
					}
					if v := kernelSemaphore(t, p.Pid, p.Prog, "nswait", "tick"); v != 1 {
						t.Errorf("semaphore %d while attached, want 1", v)
					}
					p.Run(t)
					cancel()
				},
			}
			res, err := Backend{}.Run(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 3 {
				t.Errorf("uprobe_events lines under %s: %q, want 3", root, lines)
			}
			if !res.Detached || res.PID != p.Pid {
				t.Errorf("result %+v, want detached from %d", res, p.Pid)
			}
			for _, name := range []string{"ptprobe/work", "ptprobe/plugin_func", "ptprobe/tick"} {
				if hits[name] != n {
					t.Errorf("%s: %d events, want %d", name, hits[name], n)
				}
			}
			for i, a := range args {
				if a != uint64(i) {
					t.Errorf("work's argument %d: %d", i, a)
				}
			}
			if v := kernelSemaphore(t, p.Pid, p.Prog, "nswait", "tick"); v != 0 {
				t.Errorf("semaphore %d after the run, want 0", v)
			}
			data, err := os.ReadFile(tfs.Path("uprobe_events"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), root+"/") {
				t.Errorf("uprobe_events still has probes of the run:\n%s", data)
			}
			kernelTextEqualsFile(t, p.Pid, p.Prog, "work")
			if code := p.Exit(t); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
		})
	}
}

// kernelSemaphore reads the 16-bit USDT semaphore of a probe of file in
// process pid.
func kernelSemaphore(t *testing.T, pid int, file, provider, name string) uint16 {
	t.Helper()
	f, err := elfsym.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := f.USDTProbes()
	if err != nil {
		t.Fatal(err)
	}
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Provider != provider || p.Name != name {
			continue
		}
		for _, m := range maps {
			if a, ok := m.Addr(p.SemOffset); ok && m.ID() == f.ID && strings.HasPrefix(m.Perms, "rw") {
				var b [2]byte
				if _, err := readMem(pid, a, b[:]); err != nil {
					t.Fatal(err)
				}
				return binary.LittleEndian.Uint16(b[:])
			}
		}
	}
	t.Fatalf("semaphore of %s:%s of %s not mapped in %d", provider, name, file, pid)
	return 0
}

// kernelTextEqualsFile compares the text of a function of file in
// process pid with the file's bytes.
func kernelTextEqualsFile(t *testing.T, pid int, file, fn string) {
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
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, sym.Size)
	f.ReadAt(want, int64(sym.Offset))
	for _, m := range maps {
		if a, ok := m.Addr(sym.Offset); ok && m.Exec() && m.ID() == f.ID {
			got := make([]byte, sym.Size)
			if _, err := readMem(pid, a, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s in %d: % x, file: % x", fn, pid, got, want)
			}
			return
		}
	}
	t.Errorf("%s of %s not mapped in %d", fn, file, pid)
}

func readMem(pid int, addr uint64, b []byte) (int, error) {
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return 0, err
	}
	defer mem.Close()
	return mem.ReadAt(b, int64(addr))
}

// TestKernelAttachReplacedFile: attached to a process whose program was
// replaced on disk after it started (a new file renamed over it), the
// kernel backend warns that the path's probe is on another file than the
// one the process runs, which counts nothing, while the same function by
// /proc/PID/exe (the running file, which the kernel resolves to its
// inode) and the library count exactly.
func TestKernelAttachReplacedFile(t *testing.T) {
	requireTracefs(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "nswait", append(testprog.PIE, "-ldl")...)
	lib := testprog.BuildAs(t, dir, "libplug.so", "plugin", "-O2", "-shared", "-fPIC")
	p := testprog.StartNSWait(t, prog, lib, 3, "early")
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
	var mu sync.Mutex
	hits := map[string]int{}
	var warnings []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := &backend.Request{
		PID:    p.Pid,
		Probes: probes(t, prog+":work", "libplug:plugin_func", fmt.Sprintf("p:t/running /proc/%d/exe:work", p.Pid)),
		OnEvent: func(ev *uprobe.Event) {
			mu.Lock()
			hits[ev.Probe()]++
			mu.Unlock()
		},
		Warn:    func(err error) { warnings = append(warnings, err.Error()) },
		Started: func(int) { p.Run(t); cancel() },
	}
	if _, err := (Backend{}).Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s is not the file process %d runs at that path", prog, p.Pid); len(warnings) != 1 || !strings.Contains(warnings[0], want) {
		t.Errorf("warnings %q, want one saying %q", warnings, want)
	}
	if hits["ptprobe/work"] != 0 || hits["ptprobe/plugin_func"] != 3 || hits["t/running"] != 3 {
		t.Errorf("events %v, want work 0, plugin_func 3, running 3", hits)
	}
	p.Exit(t)
}
