package engine_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// buildSDT builds testdata/c/sdt.c and its dlopen'd library sdtlib.c
// (docs/DESIGN.md §9); it skips without <sys/sdt.h>.
func buildSDT(t *testing.T) (prog, lib string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", "echo '#include <sys/sdt.h>' | gcc -E - >/dev/null").CombinedOutput(); err != nil {
		t.Skipf("no <sys/sdt.h> (Debian's systemtap-sdt-dev): cannot build testdata/c/sdt.c: %v %s", err, out)
	}
	dir := t.TempDir()
	prog = testprog.Build(t, dir, "sdt", "-O2", "-ldl")
	lib = filepath.Join(dir, "libptsdt.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fpic", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "sdtlib.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc sdtlib.c: %v\n%s", err, out)
	}
	return prog, lib
}

// TestUSDTSemaphores traces the SDT probes of a C program and of a
// library it loads with dlopen later, all behind semaphores: the program
// counts how often it reached each probe, which is exactly the hits, and
// prints the semaphores as it saw them (1 each: raised once, by the
// engine). Untraced, it reaches none.
func TestUSDTSemaphores(t *testing.T) {
	prog, lib := buildSDT(t)
	const n = 7
	untraced, code := testprog.Run(t, prog, fmt.Sprint(n), lib)
	if code != 0 || !strings.Contains(untraced, " work=0 twice=0 lib=0 sem=0,0,0") {
		t.Fatalf("untraced: %q (exit %d)", untraced, code)
	}
	tr := runTraced(t, specs(t,
		"usdt:"+prog+":ptsdt:work",
		"p:u/i usdt:"+prog+":ptsdt:work i=$arg1 s=$arg2:string",
		"usdt:"+prog+":ptsdt:twice",
		"usdt:"+lib+":ptsdtlib:call v=$arg1",
	), true, prog, fmt.Sprint(n), lib)
	want := fmt.Sprintf(" work=%d twice=%d lib=%d sem=1,1,1\n", n, 2*n, n)
	if tr.result.ExitCode != 0 || !strings.HasSuffix(tr.out, want) || strings.Fields(tr.out)[0] != strings.Fields(untraced)[0] {
		t.Fatalf("traced output %q (exit %d), want sum as untraced (%q) and %q", tr.out, tr.result.ExitCode, untraced, want)
	}
	names := []string{"zero", "one", "two"}
	table := []int64{11, 22, 33, 44, 55, 66, 77, 88}
	work := tr.byProbe("ptprobe/work")
	if len(work) != n {
		t.Fatalf("%d ptprobe/work events, want %d", len(work), n)
	}
	for i, h := range work {
		// All four of the note's arguments: -4@%ecx, 8@(%rax,%rdx,8),
		// -8@(%rdi,%rsi,8), -8@%r8 (or whatever this gcc chose).
		if len(h.args) != 4 || int64(h.args[0].U) != int64(i) || int64(h.args[2].U) != table[i%8] || int64(h.args[3].U) != int64(i)*1000 {
			t.Errorf("work event %d: %+v, want arg1=%d arg3=%d arg4=%d", i, h.args, i, table[i%8], i*1000)
		}
		if len(h.args) == 4 && h.args[0].Type.String() != "s32" {
			t.Errorf("work arg1 type %s, want s32 (-4@)", h.args[0].Type)
		}
	}
	for i, h := range tr.byProbe("u/i") {
		if len(h.args) != 2 || h.args[0].U != uint64(i) || h.args[1].S != names[i%3] {
			t.Errorf("u/i event %d: %+v, want i=%d s=%q", i, h.args, i, names[i%3])
		}
	}
	// ptsdt:twice has two locations (inlined twice): two probes, named
	// apart, each reached n times, with v = i and -i.
	a, b := tr.byProbe("ptprobe/twice"), tr.byProbe("ptprobe/twice_2")
	if len(a) != n || len(b) != n {
		t.Fatalf("twice: %d and %d events, want %d each", len(a), len(b), n)
	}
	for i := range n {
		x, y := int64(a[i].args[0].U), int64(b[i].args[0].U)
		if !(x == int64(i) && y == -int64(i) || x == -int64(i) && y == int64(i)) {
			t.Errorf("twice call %d: %d and %d, want %d and %d", i, x, y, i, -i)
		}
	}
	call := tr.byProbe("ptprobe/call")
	if len(call) != n {
		t.Fatalf("%d ptprobe/call events in the dlopen'd library, want %d", len(call), n)
	}
	for i, h := range call {
		if h.args[0].Name != "v" || h.args[0].U != uint64(i) {
			t.Errorf("call event %d: %+v, want v=%d", i, h.args, i)
		}
	}
}
