package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// hit is a copy of an event that outlives OnEvent.
type hit struct {
	probe string
	pid   int
	tid   int
	ip    uint64
	dur   uint64 // return probes: ns since the entry, 0 if not paired
	args  []uprobe.Value
}

// trace runs argv under the engine with the given specs and handlers and
// returns the events, the program's output and how it ended.
type traced struct {
	hits   []hit
	out    string
	result engine.Result
	sess   *engine.Tracer
}

func (tr *traced) byProbe(name string) []hit {
	var r []hit
	for _, h := range tr.hits {
		if h.probe == name {
			r = append(r, h)
		}
	}
	return r
}

func (tr *traced) probe(t *testing.T, name string) *engine.Probe {
	t.Helper()
	for _, p := range tr.sess.Probes() {
		if p.Spec.Probe() == name {
			return p
		}
	}
	t.Fatalf("no probe %s", name)
	return nil
}

func mustParse(t testing.TB, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		if e, ok := err.(*uprobe.Error); ok {
			t.Fatalf("parse %q:\n%s", text, e.Caret())
		}
		t.Fatalf("parse %q: %v", text, err)
	}
	return s
}

func runTraced(t *testing.T, probes []backend.Probe, record bool, argv ...string) *traced {
	t.Helper()
	return launchTraced(t, engine.Options{}, probes, record, argv)
}

// launchTraced runs argv under the engine with cfg and the probes, its
// standard output to a file, engine warnings failing the test (unless
// cfg.Warn is set); with
// record, every event is kept.
func launchTraced(t *testing.T, cfg engine.Options, probes []backend.Probe, record bool, argv []string) *traced {
	t.Helper()
	outFile, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	tr := &traced{}
	var mu sync.Mutex
	cfg.Probes, cfg.Process.Stdout = probes, outFile
	if cfg.Warn == nil {
		cfg.Warn = func(err error) { t.Errorf("engine warning: %v", err) }
	}
	if record {
		cfg.OnEvent = func(ev *uprobe.Event) {
			mu.Lock()
			tr.hits = append(tr.hits, hit{probe: ev.Probe(), pid: ev.PID, tid: ev.TID, ip: ev.IP, dur: ev.DurationNS, args: append([]uprobe.Value(nil), ev.Args...)})
			mu.Unlock()
		}
	}
	sess, err := engine.Launch(argv, &cfg)
	if err != nil {
		t.Fatalf("launch %v: %v", argv, err)
	}
	tr.sess = sess
	tr.result, err = sess.Wait()
	if err != nil {
		t.Fatalf("trace %v: %v", argv, err)
	}
	b, err := os.ReadFile(outFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	tr.out = string(b)
	return tr
}

func specs(t *testing.T, texts ...string) []backend.Probe {
	var pcs []backend.Probe
	for _, s := range texts {
		pcs = append(pcs, backend.Probe{Spec: mustParse(t, s)})
	}
	return pcs
}

// TestProbeForms probes instructions of each form the engine handles
// differently and checks exact hit counts, fetched arguments and the
// program's output and exit status.
func TestProbeForms(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	const n = 1000
	wantOut, wantStatus := testprog.Run(t, prog, fmt.Sprint(n))

	tr := runTraced(t, specs(t,
		"p:test/push "+prog+":push_func a=%di:s64 b=%si:s64",
		"p:test/rip "+prog+":rip_func x=%di:s64",
		"p:test/mid "+prog+":mid_func+8 rbx=%bx:s64",
		"p:test/call "+prog+":call_func x=%di:s64",
		"p:test/jcc "+prog+":jcc_func+3 x=%di:s64",
		"p:test/icall "+prog+":icall_func+4 x=%di:s64",
		"r:test/ret "+prog+":push_func ret=$retval:s64",
	), true, prog, fmt.Sprint(n))

	if tr.out != wantOut || tr.result.ExitCode != wantStatus {
		t.Errorf("traced program printed %q, status %d; untraced %q, status %d", tr.out, tr.result.ExitCode, wantOut, wantStatus)
	}
	check := func(name string, want func(i int64) []int64) {
		t.Helper()
		hits := tr.byProbe(name)
		if len(hits) != n {
			t.Errorf("%s: %d hits, want %d", name, len(hits), n)
			return
		}
		if got := tr.probe(t, name).Hits(); got != n {
			t.Errorf("%s: Hits() = %d, want %d", name, got, n)
		}
		for i, h := range hits {
			w := want(int64(i))
			for j, v := range h.args {
				if int64(v.U) != w[j] || v.Fault {
					t.Errorf("%s hit %d: %s = %d (fault %v), want %d", name, i, v.Name, int64(v.U), v.Fault, w[j])
					return
				}
			}
		}
	}
	check("test/push", func(i int64) []int64 { return []int64{i, 2 * i} })
	check("test/rip", func(i int64) []int64 { return []int64{i} })
	check("test/mid", func(i int64) []int64 { return []int64{3 * i} })
	check("test/call", func(i int64) []int64 { return []int64{i} })
	check("test/jcc", func(i int64) []int64 {
		if i%2 == 1 {
			return []int64{i}
		}
		return []int64{-i}
	})
	check("test/icall", func(i int64) []int64 { return []int64{i} })
	check("test/ret", func(i int64) []int64 { return []int64{3 * i} })
}

// TestThreads: 8 threads x 20000 calls give exactly 160000 hits.
func TestThreads(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "threads", testprog.PIE...)
	wantOut, _ := testprog.Run(t, prog)
	tr := runTraced(t, specs(t, "p:test/probed "+prog+":probed"), false, prog)
	if tr.out != wantOut || tr.result.ExitCode != 0 {
		t.Errorf("traced program printed %q, status %d; untraced %q", tr.out, tr.result.ExitCode, wantOut)
	}
	if got := tr.probe(t, "test/probed").Hits(); got != 8*20000 {
		t.Errorf("hits = %d, want %d", got, 8*20000)
	}
}

// TestLibraryProbe probes a libc function by library name and fetches a
// string argument.
func TestLibraryProbe(t *testing.T) {
	testprog.SystemProbes(t, false)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "libcalls", testprog.PIE...)
	const n = 500
	wantOut, _ := testprog.Run(t, prog, fmt.Sprint(n))
	tr := runTraced(t, specs(t, "p:test/strtol libc:strtol str=+0(%di):string base=%dx:u32"), true, prog, fmt.Sprint(n))
	if tr.out != wantOut {
		t.Errorf("traced program printed %q, untraced %q", tr.out, wantOut)
	}
	hits := tr.byProbe("test/strtol")
	if len(hits) != n {
		t.Fatalf("%d hits, want %d", len(hits), n)
	}
	for i, h := range hits {
		if want := fmt.Sprint(i * 7); h.args[0].S != want || h.args[1].U != 10 {
			t.Fatalf("hit %d: str=%q base=%d, want %q base=10", i, h.args[0].S, h.args[1].U, want)
		}
	}
}

// TestSystemBinary traces a real stripped PIE program of the machine with
// a probe on libc's malloc: its output must not change.
func TestSystemBinary(t *testing.T) {
	testprog.SystemProbes(t, false)
	ls := "/bin/ls"
	if _, err := os.Stat(ls); err != nil {
		t.Skip("/bin/ls is not on this machine")
	}
	wantOut, wantStatus := testprog.Run(t, ls, "-la", "/usr/bin")
	tr := runTraced(t, specs(t, "p:test/malloc libc:malloc size=%di:u64", "r:test/mallocret libc:malloc ptr=$retval"), true, ls, "-la", "/usr/bin")
	if tr.out != wantOut || tr.result.ExitCode != wantStatus {
		t.Errorf("traced ls differs from untraced (status %d vs %d; %d vs %d bytes)", tr.result.ExitCode, wantStatus, len(tr.out), len(wantOut))
	}
	calls, rets := tr.byProbe("test/malloc"), tr.byProbe("test/mallocret")
	if len(calls) == 0 {
		t.Fatal("no malloc hit while ls listed /usr/bin")
	}
	if len(rets) != len(calls) {
		t.Errorf("%d malloc calls but %d returns", len(calls), len(rets))
	}
	for _, r := range rets {
		if r.args[0].U == 0 {
			t.Errorf("malloc returned NULL in ls?")
			break
		}
	}
}

// TestPostHandler checks that post handlers see the state after the
// displaced instruction ran, for a push, a taken and a not-taken branch
// and a call.
func TestPostHandler(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	const n = 200
	var pushPre, pushPost, jccPost, callPost int
	var badPush, badJcc, badCall int
	var preRSP uint64
	var jccArg int64
	var callTarget uint64
	pcs := specs(t, "p:test/push "+prog+":push_func", "p:test/jcc "+prog+":jcc_func+3", "p:test/call "+prog+":call_func")
	pcs[0].Handlers = uprobe.Handlers{
		Pre: func(ctx uprobe.Context) { pushPre++; preRSP = ctx.Regs().Rsp },
		Post: func(ctx uprobe.Context) {
			pushPost++
			r := ctx.Regs()
			var b [8]byte
			ctx.ReadMemory(r.Rsp, b[:])
			if r.Rsp != preRSP-8 || r.Rip != ctx.Addr()+1 || uint64(b[0])|uint64(b[1])<<8 != r.Rbp&0xffff {
				badPush++
			}
		},
	}
	pcs[1].Handlers = uprobe.Handlers{
		Pre: func(ctx uprobe.Context) { jccArg = int64(ctx.Regs().Rdi) },
		Post: func(ctx uprobe.Context) {
			jccPost++
			taken := jccArg <= 0
			want := ctx.Addr() + 2 // fall through: lea
			if taken {
				want = ctx.Addr() + 2 + 5 // jle 1f skips lea (4) and ret (1)
			}
			if ctx.Regs().Rip != want {
				badJcc++
			}
		},
	}
	pcs[2].Handlers = uprobe.Handlers{
		Post: func(ctx uprobe.Context) {
			jccPost += 0
			callPost++
			r := ctx.Regs()
			var b [8]byte
			ctx.ReadMemory(r.Rsp, b[:])
			ret := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			if ret != ctx.Addr()+5 {
				badCall++
			}
			if callTarget == 0 {
				callTarget = r.Rip
			} else if r.Rip != callTarget {
				badCall++
			}
		},
	}
	wantOut, wantStatus := testprog.Run(t, prog, fmt.Sprint(n))
	tr := runTraced(t, pcs, false, prog, fmt.Sprint(n))
	if tr.out != wantOut || tr.result.ExitCode != wantStatus {
		t.Errorf("traced program printed %q, untraced %q", tr.out, wantOut)
	}
	if pushPre != n || pushPost != n || jccPost != n || callPost != n {
		t.Errorf("push pre/post %d/%d, jcc post %d, call post %d; want %d each", pushPre, pushPost, jccPost, callPost, n)
	}
	if badPush+badJcc+badCall > 0 {
		t.Errorf("post handlers saw wrong state: push %d, jcc %d, call %d times", badPush, badJcc, badCall)
	}
}

// TestFault probes an instruction that faults: the fault handler gets the
// trap number and the program's own SIGSEGV handler sees the fault at the
// original address.
func TestFault(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "fault", testprog.PIE...)
	const n = 50
	wantOut, _ := testprog.Run(t, prog, fmt.Sprint(n))
	if !strings.Contains(wantOut, fmt.Sprintf("faults=%d at_load_word=%d bad_addr=%d", n, n, n)) {
		t.Fatalf("untraced fault program printed %q", wantOut)
	}
	var faults, wrong int
	pcs := specs(t, "p:test/load "+prog+":load_word")
	pcs[0].Handlers.Fault = func(ctx uprobe.Context, f uprobe.Fault) bool {
		faults++
		if f.TrapNo != 14 || f.Addr != 0x10 || f.Signal != 11 {
			wrong++
		}
		return false
	}
	tr := runTraced(t, pcs, false, prog, fmt.Sprint(n))
	if tr.out != wantOut {
		t.Errorf("traced program printed %q, untraced %q", tr.out, wantOut)
	}
	if faults != n || wrong != 0 {
		t.Errorf("fault handler called %d times (%d with wrong details), want %d", faults, wrong, n)
	}
	if got := tr.probe(t, "test/load").Hits(); got != 2*n {
		t.Errorf("hits = %d, want %d", got, 2*n)
	}
}

// TestBuilds probes the same functions in a non-PIE build and, by file
// offset, in a stripped PIE build (whose function bounds come from the
// unwind tables).
func TestBuilds(t *testing.T) {
	dir := t.TempDir()
	nopie := testprog.Build(t, dir, "probes", "-O2", "-no-pie", "-fno-pie")
	tr := runTraced(t, specs(t, "p:test/push "+nopie+":push_func a=%di:s64", "p:test/mid "+nopie+":mid_func+8"), true, nopie, "50")
	if n := len(tr.byProbe("test/push")); n != 50 || tr.probe(t, "test/mid").Hits() != 50 {
		t.Errorf("non-PIE: %d push hits, %d mid hits; want 50 each", n, tr.probe(t, "test/mid").Hits())
	}

	// threads.c's probed() is compiled C, so it has an unwind entry.
	full := testprog.Build(t, dir, "threads", testprog.PIE...)
	stripped := filepath.Join(dir, "threads-stripped")
	if out, err := exec.Command("strip", "-o", stripped, full).CombinedOutput(); err != nil {
		t.Skipf("strip (binutils) failed: %v %s", err, out)
	}
	f, err := elfsym.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := f.Lookup("probed")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tr = runTraced(t, specs(t,
		fmt.Sprintf("p:test/entry %s:0x%x", stripped, sym.Offset),
	), false, stripped, "2", "1000")
	if got := tr.probe(t, "test/entry").Hits(); got != 2000 {
		t.Errorf("stripped PIE by offset: %d hits, want 2000", got)
	}
}

// TestForkExec follows a shell that forks and execs the probed program
// twice: probes are armed again in each new image.
func TestForkExec(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	script := fmt.Sprintf("%s 3; %s 4; exit 5", prog, prog)
	tr := runTraced(t, specs(t, "p:test/push "+prog+":push_func", "r:test/ret "+prog+":mid_func"), false, "/bin/sh", "-c", script)
	if tr.result.ExitCode != 5 {
		t.Errorf("exit status %d, want 5", tr.result.ExitCode)
	}
	if a, b := tr.probe(t, "test/push").Hits(), tr.probe(t, "test/ret").Hits(); a != 7 || b != 7 {
		t.Errorf("hits %d and %d, want 7 and 7", a, b)
	}
}
