package engine_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// acidFunctions are the functions of testdata/c/acid.c probed on every
// instruction boundary.
var acidFunctions = []string{"next_random", "classify", "table_sum", "collatz", "fib", "put_num", "acid_main"}

// boundaries returns the file offset of every instruction of the named
// functions of prog.
func boundaries(t *testing.T, prog string, funcs []string) []uint64 {
	t.Helper()
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var offs []uint64
	for _, name := range funcs {
		sym, err := f.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		size := sym.Size
		code := make([]byte, size)
		if _, err := f.ReadAt(code, int64(sym.Offset)); err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos < len(code); {
			inst, err := arch.Decode(code[pos:])
			if err != nil {
				t.Fatalf("%s+0x%x: %v", name, pos, err)
			}
			offs = append(offs, sym.Offset+uint64(pos))
			pos += inst.Len
		}
	}
	return offs
}

// singleStep runs argv under single-stepping and calls visit with the
// registers at each stop, from the exec stop (before the first
// instruction) to the instruction that exits. It returns the program's
// standard output (up to 64 KiB).
func singleStep(t *testing.T, argv []string, visit func(pid int, regs *unix.PtraceRegs)) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer pinForStepping()()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Files: []*os.File{os.Stdin, w, os.Stderr},
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(p.Pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	for {
		var regs unix.PtraceRegs
		if err := unix.PtraceGetRegs(p.Pid, &regs); err != nil {
			t.Fatal(err)
		}
		visit(p.Pid, &regs)
		if err := unix.PtraceSingleStep(p.Pid); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Wait4(p.Pid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
	}
	out := make([]byte, 1<<16)
	n, _ := r.Read(out)
	return string(out[:n])
}

// stepCounts single-steps prog and counts how often each instruction at a
// file offset of its executable mappings ran; last is the offset of the
// last one (the exit system call).
func stepCounts(t *testing.T, prog string) (counts map[uint64]int, output string, last uint64) {
	t.Helper()
	counts = make(map[uint64]int)
	var exec []elfsym.Mapping
	output = singleStep(t, []string{prog}, func(pid int, regs *unix.PtraceRegs) {
		if exec == nil {
			maps, err := elfsym.ReadMaps(pid)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range maps {
				if m.Exec() && m.Inode != 0 {
					exec = append(exec, m)
				}
			}
		}
		for _, m := range exec {
			if off, ok := m.FileOffsetOf(regs.Rip); ok {
				counts[off]++
				last = off
			}
		}
	})
	return counts, output, last
}

// TestAcid puts a probe on every instruction boundary of the functions of
// a program with loops, a jump table, rip-relative data, calls and
// recursion, all at once, and compares each site's hit count with the
// number of times single-stepping saw the instruction run; with and
// without post handlers (which take the stop-exit and emulation paths).
func TestAcid(t *testing.T) {
	for _, build := range []struct {
		name  string
		flags []string
	}{{"static", testprog.NoLibc}, {"static-pie", testprog.NoLibcPIE}} {
		for _, post := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/post=%v", build.name, post), func(t *testing.T) {
				dir := t.TempDir()
				prog := testprog.Build(t, dir, "acid", build.flags...)
				want, wantOut, exitOff := stepCounts(t, prog)
				offs := boundaries(t, prog, acidFunctions)
				var pcs []backend.Probe
				posts := 0
				for _, off := range offs {
					pc := backend.Probe{Spec: mustParse(t, fmt.Sprintf("p:acid/at_0x%x %s:0x%x", off, prog, off))}
					if post {
						pc.Handlers.Post = func(uprobe.Context) { posts++ }
					}
					pcs = append(pcs, pc)
				}
				tr := runTraced(t, pcs, false, prog)
				if tr.out != wantOut {
					t.Errorf("traced output %q, single-stepped %q", tr.out, wantOut)
				}
				total, exits := 0, 0
				bad := 0
				for i, p := range tr.sess.Probes() {
					got := p.Hits()
					total += int(got)
					if offs[i] == exitOff {
						exits = int(got)
					}
					if int(got) != want[offs[i]] {
						bad++
						if bad < 10 {
							t.Errorf("site at file offset 0x%x: %d hits, single-stepping counted %d", offs[i], got, want[offs[i]])
						}
					}
				}
				// The exit system call never returns: no post handler.
				if post && posts != total-exits {
					t.Errorf("post handlers ran %d times for %d hits (%d of them the exit system call)", posts, total, exits)
				}
				t.Logf("%d sites, %d hits", len(offs), total)
				if total < 10000 {
					t.Errorf("only %d hits: the acid program did not run its functions?", total)
				}
			})
		}
	}
}

// TestAcidNoStop is TestAcid for the no-stop path: sites at least
// patchGap bytes apart (so that no patch covers another site) in a run,
// runs until every boundary had its turn, each site's hits against
// single-stepping. Most sites take the no-stop path; those that cannot be
// patched take the stop path, and are checked too.
func TestAcidNoStop(t *testing.T) {
	const patchGap = 2 * arch.MaxInstLen
	for _, build := range []struct {
		name  string
		flags []string
	}{{"static", testprog.NoLibc}, {"static-pie", testprog.NoLibcPIE}} {
		t.Run(build.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := testprog.Build(t, dir, "acid", build.flags...)
			want, wantOut, _ := stepCounts(t, prog)
			var groups [][]uint64
			for _, off := range boundaries(t, prog, acidFunctions) {
				placed := false
				for i, g := range groups {
					if off >= g[len(g)-1]+patchGap {
						groups[i] = append(g, off)
						placed = true
						break
					}
				}
				if !placed {
					groups = append(groups, []uint64{off})
				}
			}
			noStop, stop, total := 0, 0, 0
			reasons := map[string]int{}
			for _, offs := range groups {
				var pcs []backend.Probe
				for _, off := range offs {
					pcs = append(pcs, backend.Probe{Spec: mustParse(t, fmt.Sprintf("p:acid/at_0x%x %s:0x%x", off, prog, off))})
				}
				tr := runTraced(t, pcs, false, prog)
				if tr.out != wantOut {
					t.Errorf("traced output %q, single-stepped %q", tr.out, wantOut)
				}
				for i, p := range tr.sess.Probes() {
					got := p.Hits()
					total += int(got)
					if int(got) != want[offs[i]] {
						t.Errorf("site at file offset 0x%x: %d hits, single-stepping counted %d", offs[i], got, want[offs[i]])
					}
					n, m, why := p.Path()
					noStop, stop = noStop+n, stop+m
					if why != nil {
						// By kind of reason, not by site.
						r := why.Error()
						if _, after, ok := strings.Cut(r, ": "); ok {
							r = after
						}
						if i := strings.IndexAny(r, "0123456789"); i >= 0 {
							r = r[:i] + "…"
						}
						reasons[r]++
					}
				}
			}
			t.Logf("%d runs, %d sites on the no-stop path, %d on the stop path, %d hits; stop path because: %v", len(groups), noStop, stop, total, reasons)
			if noStop < stop {
				t.Errorf("fewer sites on the no-stop path (%d) than on the stop path (%d)", noStop, stop)
			}
		})
	}
}

// pinForStepping confines the calling locked thread, and so the program
// it starts next, to one CPU: a single-step stop then wakes the tracer on
// the same CPU, several times faster. The returned func restores the
// thread's affinity; call it before unlocking the thread.
func pinForStepping() (restore func()) {
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return func() {}
	}
	for i := 0; i < 1024; i++ {
		if old.IsSet(i) {
			one.Set(i)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return func() {}
	}
	return func() { unix.SchedSetaffinity(0, &old) }
}
