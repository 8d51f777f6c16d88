package engine_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
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
// prints the semaphores as it saw them: 1 for work (two probes at one
// location), 2 for twice (two locations), 1 for the library's, as the
// kernel raises them (kernel TestKernelUSDT). Untraced, it reaches none.
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
	want := fmt.Sprintf(" work=%d twice=%d lib=%d sem=1,2,1\n", n, 2*n, n)
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

// python is Debian's python3.11, whose SDT probes have semaphores.
const python = "/usr/bin/python3.11"

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is not installed (Debian's python3.11): %v", python, err)
	}
	f, err := elfsym.Open(python)
	if err != nil {
		t.Skipf("%s: %v", python, err)
	}
	defer f.Close()
	if ps, err := f.USDTProbes(); err != nil || len(ps) == 0 {
		t.Skipf("%s has no SDT probes (not Debian's build?): %v", python, err)
	}
	testprog.SystemProbes(t, false) // not while kernel tests probe it
}

// pyScript calls foo n times from Python (bar's loop: calls the 3.11
// interpreter makes without a C frame between) and once through map (a C
// frame between); foo's body is two lines.
const pyScript = `def foo(x):
    y = x * 2
    return y

def bar(n):
    s = 0
    for i in range(n):
        s += foo(i)
    return s

print(bar(%d) + sum(map(foo, range(1))))
`

// TestUSDTPython traces python3.11's function__entry, function__return
// and line probes: foo's entries and returns are the calls the script
// makes, its lines twice that, with the file name, function name and
// line numbers as strings and integers. CPython 3.11 reaches
// function__entry for calls between Python functions only while the line
// semaphore is raised too (its returns always): so the probes go together.
func TestUSDTPython(t *testing.T) {
	needPython(t)
	const n = 6
	script := filepath.Join(t.TempDir(), "calls.py")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(pyScript, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	untraced, code := testprog.Run(t, python, script)
	tr := runTraced(t, specs(t,
		"usdt:"+python+":python:function__entry file=$arg1:string fn=$arg2:string line=$arg3",
		"usdt:"+python+":python:function__return fn=$arg2:string",
		"usdt:"+python+":python:line file=$arg1:string fn=$arg2:string line=$arg3",
	), true, python, script)
	if tr.out != untraced || tr.result.ExitCode != code {
		t.Fatalf("traced output %q exit %d, untraced %q exit %d", tr.out, tr.result.ExitCode, untraced, code)
	}
	// count counts the events of probe in fn of the script, by line
	// (function__return has fn only).
	count := func(probe, fn string) (k int, lines map[int64]int) {
		lines = make(map[int64]int)
		for _, h := range tr.byProbe(probe) {
			if len(h.args) == 1 {
				if h.args[0].S == fn {
					k++
				}
				continue
			}
			if h.args[0].S == script && h.args[1].S == fn {
				k++
				lines[int64(h.args[2].U)]++
			}
		}
		return k, lines
	}
	calls := n + 1
	if k, lines := count("ptprobe/function__entry", "foo"); k != calls || lines[1] != calls {
		t.Errorf("function__entry of foo: %d (first lines %v), want %d at line 1", k, lines, calls)
	}
	if k, _ := count("ptprobe/function__return", "foo"); k != calls {
		t.Errorf("function__return of foo: %d, want %d", k, calls)
	}
	if k, lines := count("ptprobe/line", "foo"); k != 2*calls || lines[2] != calls || lines[3] != calls {
		t.Errorf("line events in foo: %d %v, want %d each of lines 2 and 3", k, lines, calls)
	}
	if k, _ := count("ptprobe/function__entry", "bar"); k != 1 {
		t.Errorf("function__entry of bar: %d, want 1", k)
	}
	if tr.result.ExitCode != 0 {
		t.Errorf("exit %d", tr.result.ExitCode)
	}
}

// semaphore reads the 16-bit USDT semaphore of probe in the running
// process pid.
func semaphore(t *testing.T, pid int, path, provider, name string) uint16 {
	t.Helper()
	f, err := elfsym.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := f.USDTProbes()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Provider != provider || p.Name != name {
			continue
		}
		maps, err := elfsym.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range maps {
			if a, ok := m.Addr(p.SemOffset); ok && m.ID() == f.ID && strings.HasPrefix(m.Perms, "rw") {
				mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
				if err != nil {
					t.Fatal(err)
				}
				defer mem.Close()
				var b [2]byte
				if _, err := mem.ReadAt(b[:], int64(a)); err != nil {
					t.Fatal(err)
				}
				return binary.LittleEndian.Uint16(b[:])
			}
		}
		t.Fatalf("semaphore of %s:%s not mapped in %d", provider, name, pid)
	}
	t.Fatalf("%s has no SDT probe %s:%s", path, provider, name)
	return 0
}

// TestUSDTAttachDetach attaches to a running python3.11, counts foo's
// calls through function__return, and detaches: the semaphore is 1 while
// attached (raised once) and 0 again after, and the program goes on.
func TestUSDTAttachDetach(t *testing.T) {
	needPython(t)
	script := filepath.Join(t.TempDir(), "loop.py")
	src := "import sys\ndef foo(x):\n    return x\nprint('ready', flush=True)\nfor line in sys.stdin:\n    foo(line)\n    print('done', flush=True)\n"
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	out := bufio.NewReader(outp)
	if l, err := out.ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("python: %q %v", l, err)
	}
	pid := cmd.Process.Pid
	if v := semaphore(t, pid, python, "python", "function__return"); v != 0 {
		t.Fatalf("semaphore %d before attaching", v)
	}
	var mu sync.Mutex
	foos := 0
	tr, err := engine.Attach(pid, &engine.Options{
		Probes: specs(t, "usdt:"+python+":python:function__return fn=$arg2:string"),
		Warn:   func(err error) { t.Errorf("engine warning: %v", err) },
		OnEvent: func(ev *uprobe.Event) {
			mu.Lock()
			if ev.Args[0].S == "foo" {
				foos++
			}
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if v := semaphore(t, pid, python, "python", "function__return"); v != 1 {
		t.Errorf("semaphore %d while attached, want 1", v)
	}
	const n = 4
	for range n {
		fmt.Fprintln(in, "x")
		if l, err := out.ReadString('\n'); err != nil || l != "done\n" {
			t.Fatalf("python: %q %v", l, err)
		}
	}
	// A probe added and closed while attached raises and lowers its own
	// semaphore; one that names several probes is refused.
	line, err := tr.Uprobe(mustParse(t, "usdt:"+python+":python:line"), uprobe.Handlers{})
	if err != nil {
		t.Fatalf("Uprobe(usdt:...:python:line): %v", err)
	}
	if v := semaphore(t, pid, python, "python", "line"); v != 1 {
		t.Errorf("line semaphore %d with its probe added, want 1", v)
	}
	if err := line.Close(); err != nil {
		t.Fatal(err)
	}
	if v := semaphore(t, pid, python, "python", "line"); v != 0 {
		t.Errorf("line semaphore %d with its probe closed, want 0", v)
	}
	if _, err := tr.Uprobe(mustParse(t, "usdt:"+python+":python:function__*"), uprobe.Handlers{}); !errors.Is(err, resolve.ErrTooManyProbes) {
		t.Errorf("Uprobe of two probes: %v, want ErrTooManyProbes", err)
	}
	tr.Detach()
	res, err := tr.Wait()
	if err != nil || !res.Detached {
		t.Fatalf("detach: %+v %v", res, err)
	}
	if v := semaphore(t, pid, python, "python", "function__return"); v != 0 {
		t.Errorf("semaphore %d after detaching, want 0", v)
	}
	mu.Lock()
	if foos != n {
		t.Errorf("%d returns of foo while attached, want %d", foos, n)
	}
	mu.Unlock()
	fmt.Fprintln(in, "x")
	if l, err := out.ReadString('\n'); err != nil || l != "done\n" {
		t.Fatalf("python after the detach: %q %v", l, err)
	}
}

// TestUSDTLibstdcxx counts libstdc++'s libstdcxx:throw and
// libstdcxx:catch probes (no semaphores) in testdata/c/cxx.cpp, which
// throws and catches one exception per call.
func TestUSDTLibstdcxx(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ is not installed: cannot build testdata/c/cxx.cpp")
	}
	prog := filepath.Join(t.TempDir(), "cxx")
	if out, err := exec.Command("g++", "-O2", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "cxx.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	testprog.SystemProbes(t, false)
	const n = 9
	untraced, code := testprog.Run(t, prog, fmt.Sprint(n))
	tr := runTraced(t, specs(t, "usdt:libstdc++:libstdcxx:throw", "usdt:libstdc++:libstdcxx:catch"), false, prog, fmt.Sprint(n))
	if tr.out != untraced || tr.result.ExitCode != code {
		t.Fatalf("traced %q exit %d, untraced %q exit %d", tr.out, tr.result.ExitCode, untraced, code)
	}
	for _, name := range []string{"ptprobe/throw", "ptprobe/catch"} {
		if h := tr.probe(t, name).Hits(); h != n {
			t.Errorf("%s: %d hits, want %d", name, h, n)
		}
	}
}

// TestUSDTChildren: the semaphores are raised in each new image of the
// traced tree (a shell's children run the program twice, after fork and
// exec), each reaching its probes as often as it says.
func TestUSDTChildren(t *testing.T) {
	prog, lib := buildSDT(t)
	const n = 3
	tr := runTraced(t, specs(t, "usdt:"+prog+":ptsdt:work", "usdt:"+lib+":ptsdtlib:call"), false,
		"/bin/sh", "-c", fmt.Sprintf("%s %d %s; %s %d %s", prog, n, lib, prog, n, lib))
	want := fmt.Sprintf(" work=%d twice=0 lib=%d sem=1,0,1\n", n, n)
	if tr.result.ExitCode != 0 || strings.Count(tr.out, want) != 2 {
		t.Fatalf("output %q (exit %d), want twice %q", tr.out, tr.result.ExitCode, want)
	}
	for _, name := range []string{"ptprobe/work", "ptprobe/call"} {
		if h := tr.probe(t, name).Hits(); h != 2*n {
			t.Errorf("%s: %d hits, want %d", name, h, 2*n)
		}
	}
}
