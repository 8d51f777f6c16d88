package engine_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// retvals returns the $retval of each event of a probe.
func retvals(tr *traced, probe string) []int64 {
	var r []int64
	for _, h := range tr.byProbe(probe) {
		r = append(r, int64(h.args[0].U))
	}
	return r
}

// TestReturnProbes: exact counts and $retval for a plain function,
// recursion 10000 deep, frames left by longjmp, several rets, a tail call.
func TestReturnProbes(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "retprobes", testprog.PIE...)
	const n = 30
	wantOut, _ := testprog.Run(t, prog, "30")
	r := func(fn string) string { return "r:t/" + fn + " " + prog + ":" + fn + " v=$retval:s64" }
	tr := runTraced(t, specs(t, r("plain"), r("recurse"), r("level1"), r("level2"), r("level3"), r("multi_ret"), r("tail_a"), r("tail_b")), true, prog, "30")
	if tr.out != wantOut {
		t.Errorf("traced output %q, untraced %q", tr.out, wantOut)
	}
	plain := retvals(tr, "t/plain")
	if len(plain) != n {
		t.Fatalf("plain: %d returns, want %d", len(plain), n)
	}
	for i, v := range plain {
		if v != int64(2*i) {
			t.Fatalf("plain return %d: $retval %d, want %d", i, v, 2*i)
		}
	}
	// recurse(10000): the innermost call returns first, with 0.
	rec := retvals(tr, "t/recurse")
	if len(rec) != 10001 {
		t.Fatalf("recurse: %d returns, want 10001", len(rec))
	}
	for i, v := range rec {
		if v != int64(i) {
			t.Fatalf("recurse return %d: $retval %d, want %d", i, v, i)
		}
	}
	// n times all three levels are left by longjmp (no return event),
	// then n normal returns: level3 = i+3, level2 = i+5, level1 = i+6.
	for lvl, add := range map[string]int64{"t/level3": 3, "t/level2": 5, "t/level1": 6} {
		vs := retvals(tr, lvl)
		if len(vs) != n {
			t.Errorf("%s: %d returns, want %d (the longjmp'd frames must not fire)", lvl, len(vs), n)
			continue
		}
		for i, v := range vs {
			if v != int64(i)+add {
				t.Errorf("%s return %d: $retval %d, want %d", lvl, i, v, int64(i)+add)
				break
			}
		}
	}
	multi := retvals(tr, "t/multi_ret")
	if len(multi) != n {
		t.Errorf("multi_ret: %d returns, want %d", len(multi), n)
	}
	for i, v := range multi {
		x := int64(i%3 - 1)
		want := int64(2)
		if x < 0 {
			want = 1
		} else if x > 0 {
			want = 3
		}
		if v != want {
			t.Errorf("multi_ret(%d) return: $retval %d, want %d", x, v, want)
			break
		}
	}
	// The tail call: tail_b returns for both, tail_b's event first.
	a, b := retvals(tr, "t/tail_a"), retvals(tr, "t/tail_b")
	if len(a) != n || len(b) != n {
		t.Fatalf("tail_a %d, tail_b %d returns, want %d each", len(a), len(b), n)
	}
	for i := range a {
		if a[i] != int64(i)+100 || b[i] != int64(i)+100 {
			t.Fatalf("tail call %d: tail_a $retval %d, tail_b %d, want %d", i, a[i], b[i], i+100)
		}
	}
	var order []string
	for _, h := range tr.hits {
		if strings.HasPrefix(h.probe, "t/tail_") {
			order = append(order, h.probe)
		}
	}
	if len(order) >= 2 && (order[0] != "t/tail_b" || order[1] != "t/tail_a") {
		t.Errorf("tail call events in order %v, want tail_b then tail_a", order[:2])
	}
}

// TestReturnProbesCxx: an exception thrown through probed frames is caught
// (the unwinder never meets the return trampoline), the unwound frames do
// not fire, the frames left alive do.
func TestReturnProbesCxx(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ is not installed: cannot build testdata/c/cxx.cpp")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "cxx")
	if out, err := exec.Command("g++", "-O2", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "cxx.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	const n = 25
	wantOut, wantStatus := testprog.Run(t, prog, "25")
	r := func(fn, sym string) string { return "r:t/" + fn + " " + prog + ":" + sym + " v=$retval:s64" }
	tr := runTraced(t, specs(t, r("outer", "_Z5outerl"), r("middle", "_Z6middlel"), r("thrower", "_Z7throwerl"), r("deep", "_Z4deepl")), true, prog, "25")
	if tr.out != wantOut || tr.result.ExitCode != wantStatus {
		t.Fatalf("traced program printed %q, status %d; untraced %q, %d", tr.out, tr.result.ExitCode, wantOut, wantStatus)
	}
	for probe, want := range map[string]func(i int64) int64{
		"t/middle": func(i int64) int64 { return 2 * i },
		"t/outer":  func(i int64) int64 { return 2*i + 1000 },
	} {
		vs := retvals(tr, probe)
		if len(vs) != n {
			t.Errorf("%s: %d returns, want %d", probe, len(vs), n)
			continue
		}
		for i, v := range vs {
			if v != want(int64(i)) {
				t.Errorf("%s return %d: $retval %d, want %d", probe, i, v, want(int64(i)))
				break
			}
		}
	}
	if a, b := len(tr.byProbe("t/thrower")), len(tr.byProbe("t/deep")); a+b != 0 {
		t.Errorf("unwound frames fired: thrower %d, deep %d returns", a, b)
	}
}

// TestReturnProbesGo: return probes on Go functions of a program whose
// goroutine stacks grow and move; returns are caught at the functions'
// ret instructions.
func TestReturnProbesGo(t *testing.T) {
	prog := testprog.BuildGo(t, t.TempDir(), "recurse")
	wantOut, _ := testprog.Run(t, prog, "3000", "4")
	var returns int
	pcs := specs(t, "r:t/recurse "+prog+":main.recurse v=$retval:s64", "r:t/leaf "+prog+":main.leaf v=$retval:s64")
	pcs[0].Handlers.Return = func(uprobe.Context) { returns++ }
	tr := runTraced(t, pcs, true, prog, "3000", "4")
	if tr.out != wantOut || tr.result.ExitCode != 0 {
		t.Fatalf("traced program printed %q, status %d; untraced %q", tr.out, tr.result.ExitCode, wantOut)
	}
	if got := len(tr.byProbe("t/recurse")); got != 4*3001 || returns != 4*3001 {
		t.Errorf("recurse: %d return events, %d handler calls; want %d", got, returns, 4*3001)
	}
	leaves := map[int64]bool{}
	for _, v := range retvals(tr, "t/leaf") {
		leaves[v] = true
	}
	if len(leaves) != 4 || !leaves[0] || !leaves[3] || !leaves[6] || !leaves[9] {
		t.Errorf("leaf return values %v, want 0, 3, 6, 9", leaves)
	}
}

// TestReturnValueOverride: a return handler changes what malloc returns.
func TestReturnValueOverride(t *testing.T) {
	testprog.SystemProbes(t, false)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "oom", testprog.PIE...)
	pcs := specs(t, "r:t/malloc libc:malloc")
	calls := 0
	pcs[0].Handlers.Return = func(ctx uprobe.Context) {
		calls++
		if calls%3 == 0 {
			ctx.Regs().Rax = 0
		}
	}
	tr := runTraced(t, pcs, false, prog, "9")
	want := "ok 1\nok 2\nout of memory at allocation 3\nok 4\nok 5\nout of memory at allocation 6\nok 7\nok 8\nout of memory at allocation 9\n"
	if tr.out != want {
		t.Errorf("output %q, want %q", tr.out, want)
	}
}

// TestReturnProbesGoCombined: an entry probe, a post handler, a return
// probe and a Go return handler on the same Go function, whose goroutine
// stacks grow and move: no return address is ever rewritten (the program
// runs as untraced), entries = returns = calls, each return is paired with
// its entry (a duration) and its $arg1 is the argument at that entry
// (recurse(n) returns n), and the hit counts are the events.
func TestReturnProbesGoCombined(t *testing.T) {
	prog := testprog.BuildGo(t, t.TempDir(), "recurse")
	wantOut, _ := testprog.Run(t, prog, "3000", "4")
	var posts, returns int
	pcs := specs(t, "p:t/in "+prog+":main.recurse n=$arg1:s64",
		"r:t/out "+prog+":main.recurse n=$arg1:s64 rv=$retval:s64",
		"r:t/leaf "+prog+":main.leaf x=$arg1:s64 rv=$retval:s64")
	pcs[0].Handlers.Post = func(uprobe.Context) { posts++ }
	pcs[1].Handlers.Return = func(uprobe.Context) { returns++ }
	tr := runTraced(t, pcs, true, prog, "3000", "4")
	if tr.out != wantOut || tr.result.ExitCode != 0 {
		t.Fatalf("traced program printed %q, status %d; untraced %q", tr.out, tr.result.ExitCode, wantOut)
	}
	const calls = 4 * 3001
	ins, outs := tr.byProbe("t/in"), tr.byProbe("t/out")
	if len(ins) != calls || len(outs) != calls || posts != calls || returns != calls {
		t.Fatalf("%d entries, %d returns, %d post handler calls, %d return handler calls; want %d each", len(ins), len(outs), posts, returns, calls)
	}
	for _, name := range []string{"t/in", "t/out", "t/leaf"} {
		if got, want := tr.probe(t, name).Hits(), uint64(len(tr.byProbe(name))); got != want {
			t.Errorf("%s: %d hits counted, %d events", name, got, want)
		}
	}
	depth := map[int64]int{}
	for _, h := range ins {
		depth[int64(h.args[0].U)]++
	}
	for n := int64(0); n <= 3000; n++ {
		if depth[n] != 4 {
			t.Fatalf("entries with n=%d: %d, want 4 (one per goroutine)", n, depth[n])
		}
	}
	for i, h := range outs {
		if n, rv := int64(h.args[0].U), int64(h.args[1].U); n != rv || h.dur == 0 {
			t.Fatalf("return %d: $arg1 %d, $retval %d, duration %d ns: want $arg1 = $retval (the entry's n) and a duration", i, n, rv, h.dur)
		}
	}
	for _, h := range tr.byProbe("t/leaf") {
		if x, rv := int64(h.args[0].U), int64(h.args[1].U); rv != 3*x {
			t.Errorf("leaf: $arg1 %d, $retval %d, want 3*$arg1", x, rv)
		}
	}
}

// TestReturnProbeEntryArgs: $argN in a return probe is the argument the
// function was entered with (saved at the entry, as the kernel's exit
// events do), not what the register holds at the return: on recursion
// 10000 deep, under longjmp, in a tail call, with an entry probe and a
// post handler on the same function.
func TestReturnProbeEntryArgs(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "retprobes", testprog.PIE...)
	const n = 30
	wantOut, _ := testprog.Run(t, prog, "30")
	pcs := specs(t, "r:t/rec "+prog+":recurse n=$arg1:s64 rv=$retval:s64",
		"p:t/recin "+prog+":recurse n=$arg1:s64",
		"r:t/l1 "+prog+":level1 x=$arg1:s64 jump=$arg2:s32 rv=$retval:s64",
		"r:t/tb "+prog+":tail_b x=$arg1:s64 rv=$retval:s64")
	posts := 0
	pcs[1].Handlers.Post = func(uprobe.Context) { posts++ }
	tr := runTraced(t, pcs, true, prog, "30")
	if tr.out != wantOut {
		t.Errorf("traced output %q, untraced %q", tr.out, wantOut)
	}
	rec := tr.byProbe("t/rec")
	if len(rec) != 10001 || len(tr.byProbe("t/recin")) != 10001 || posts != 10001 {
		t.Fatalf("recurse: %d returns, %d entries, %d post handler calls; want 10001 each", len(rec), len(tr.byProbe("t/recin")), posts)
	}
	for i, h := range rec {
		// recurse(n) returns n; at its return %rdi holds what the
		// last call passed (0), not n.
		if nArg, rv := int64(h.args[0].U), int64(h.args[1].U); nArg != rv || nArg != int64(i) {
			t.Fatalf("recurse return %d: $arg1 %d, $retval %d, want both %d", i, nArg, rv, i)
		}
	}
	l1 := tr.byProbe("t/l1")
	if len(l1) != n {
		t.Fatalf("level1: %d returns, want %d (the longjmp'd frames must not fire)", len(l1), n)
	}
	for i, h := range l1 {
		if x, jump, rv := int64(h.args[0].U), int64(h.args[1].U), int64(h.args[2].U); x != int64(i) || jump != 0 || rv != x+6 {
			t.Fatalf("level1 return %d: $arg1 %d, $arg2 %d, $retval %d; want %d, 0, %d", i, x, jump, rv, i, i+6)
		}
	}
	tb := tr.byProbe("t/tb")
	if len(tb) != n {
		t.Fatalf("tail_b: %d returns, want %d", len(tb), n)
	}
	for i, h := range tb {
		if x, rv := int64(h.args[0].U), int64(h.args[1].U); x != int64(i) || rv != x+100 {
			t.Fatalf("tail_b return %d: $arg1 %d, $retval %d; want %d, %d", i, x, rv, i, i+100)
		}
	}
}

// TestReturnProbesGoDeep: a Go function recursing deeper than the engine's
// first bound on the entries it keeps (1<<16 live frames): no entry whose
// return is still to come is dropped, so every return is paired with its
// entry (a duration, and $arg1 the entry's n, which recurse(n) returns),
// entries = returns = calls, and nothing is counted missed.
func TestReturnProbesGoDeep(t *testing.T) {
	prog := testprog.BuildGo(t, t.TempDir(), "recurse")
	const depth = 70000
	wantOut, _ := testprog.Run(t, prog, itoa(depth), "1")
	pcs := specs(t, "r:t/out "+prog+":main.recurse n=$arg1:s64 rv=$retval:s64")
	tr := runTraced(t, pcs, true, prog, itoa(depth), "1")
	if tr.out != wantOut || tr.result.ExitCode != 0 {
		t.Fatalf("traced program printed %q, status %d; untraced %q", tr.out, tr.result.ExitCode, wantOut)
	}
	outs := tr.byProbe("t/out")
	if len(outs) != depth+1 {
		t.Fatalf("%d returns, want %d", len(outs), depth+1)
	}
	bad := 0
	for _, h := range outs {
		if n, rv := int64(h.args[0].U), int64(h.args[1].U); n != rv || h.dur == 0 {
			if bad++; bad <= 3 {
				t.Errorf("return: $arg1 %d, $retval %d, duration %d ns: want $arg1 = $retval (the entry's n) and a duration", n, rv, h.dur)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d returns not paired with their entry", bad, len(outs))
	}
	if m := tr.probe(t, "t/out").Missed(); m != 0 {
		t.Errorf("%d missed", m)
	}
}
