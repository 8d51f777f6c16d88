package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
)

// runKernel runs argv under the kernel backend with the specs and returns
// the events by probe and the program's output.
func runKernel(t *testing.T, argv []string, texts ...string) (map[string][]uprobe.Event, string, *backend.Result) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var mu sync.Mutex
	evs := make(map[string][]uprobe.Event)
	req := &backend.Request{
		Probes:  probes(t, texts...),
		Argv:    argv,
		Process: backend.Process{Stdout: out},
		OnEvent: func(ev *uprobe.Event) {
			mu.Lock()
			e := *ev
			e.Args = append([]uprobe.Value(nil), ev.Args...)
			evs[ev.Probe()] = append(evs[ev.Probe()], e)
			mu.Unlock()
		},
		Warn: func(err error) { t.Errorf("warning: %v", err) },
	}
	res, err := Backend{}.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out.Name())
	return evs, string(b), res
}

// TestKernelUSDT: the kernel backend arms USDT probes as
// PATH:OFFSET(REF_CTR_OFFSET): the kernel raises the semaphores (once per
// probed location: twice's, with two, to 2), in the program and in the
// library it loads with dlopen later, and the program
// reaches each probe as often as it says; a SIB argument, which kernel
// fetch-args cannot compute, is refused before the program runs.
func TestKernelUSDT(t *testing.T) {
	requireTracefs(t)
	if out, err := exec.Command("sh", "-c", "echo '#include <sys/sdt.h>' | gcc -E - >/dev/null").CombinedOutput(); err != nil {
		t.Skipf("no <sys/sdt.h> (Debian's systemtap-sdt-dev): cannot build testdata/c/sdt.c: %v %s", err, out)
	}
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "sdt", "-O2", "-ldl")
	lib := filepath.Join(dir, "libptsdt.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fpic", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "sdtlib.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc sdtlib.c: %v\n%s", err, out)
	}
	const n = 5
	evs, out, res := runKernel(t, []string{prog, fmt.Sprint(n), lib},
		"usdt:"+prog+":ptsdt:twice",
		"usdt:"+prog+":ptsdt:work i=$arg1",
		"usdt:"+lib+":ptsdtlib:call v=$arg1")
	if res.ExitCode != 0 || !strings.HasSuffix(out, fmt.Sprintf(" work=%d twice=%d lib=%d sem=1,2,1\n", n, 2*n, n)) {
		t.Fatalf("output %q exit %d", out, res.ExitCode)
	}
	if len(evs["ptprobe/twice"]) != n || len(evs["ptprobe/twice_2"]) != n || len(evs["ptprobe/work"]) != n || len(evs["ptprobe/call"]) != n {
		t.Fatalf("events twice %d, twice_2 %d, work %d, call %d, want %d each", len(evs["ptprobe/twice"]), len(evs["ptprobe/twice_2"]), len(evs["ptprobe/work"]), len(evs["ptprobe/call"]), n)
	}
	for i, ev := range evs["ptprobe/call"] {
		if ev.Args[0].Name != "v" || ev.Args[0].U != uint64(i) {
			t.Errorf("call event %d: %+v, want v=%d", i, ev.Args, i)
		}
	}
	for i, ev := range evs["ptprobe/work"] {
		if ev.Args[0].U != uint64(i) || ev.Args[0].Type.String() != "s32" {
			t.Errorf("work event %d: %+v, want i=%d (s32)", i, ev.Args, i)
		}
	}
	_, err := Backend{}.Run(context.Background(), &backend.Request{Probes: probes(t, "usdt:"+prog+":ptsdt:work s=$arg2:string"), Argv: []string{prog}})
	if err == nil || !strings.Contains(err.Error(), "index register") {
		t.Errorf("a SIB argument: %v, want it refused", err)
	}
}

// TestKernelUSDTPython: python3.11's probes through the kernel, counted
// as the ptrace backend counts them (engine TestUSDTPython).
func TestKernelUSDTPython(t *testing.T) {
	requireTracefs(t)
	const python = "/usr/bin/python3.11"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is not installed (Debian's python3.11): %v", python, err)
	}
	// Parallel first: TestStrings takes the lock, then waits for the
	// sequential tests to end.
	t.Parallel()
	testprog.SystemProbes(t, true)
	script := filepath.Join(t.TempDir(), "calls.py")
	const n = 6
	src := fmt.Sprintf("def foo(x):\n    y = x * 2\n    return y\n\ndef bar(n):\n    s = 0\n    for i in range(n):\n        s += foo(i)\n    return s\n\nprint(bar(%d))\n", n)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, out, res := runKernel(t, []string{python, script},
		"usdt:"+python+":python:function__entry file=$arg1:string fn=$arg2:string",
		"usdt:"+python+":python:function__return fn=$arg2:string",
		"usdt:"+python+":python:line file=$arg1:string fn=$arg2:string line=$arg3")
	if res.ExitCode != 0 || out != fmt.Sprint(n*(n-1), "\n") {
		t.Fatalf("output %q exit %d", out, res.ExitCode)
	}
	count := func(probe string, match func(a []uprobe.Value) bool) int {
		k := 0
		for _, ev := range evs[probe] {
			if match(ev.Args) {
				k++
			}
		}
		return k
	}
	inFoo := func(a []uprobe.Value) bool { return a[0].S == script && a[1].S == "foo" }
	if k := count("ptprobe/function__entry", inFoo); k != n {
		t.Errorf("%d entries of foo, want %d", k, n)
	}
	if k := count("ptprobe/function__return", func(a []uprobe.Value) bool { return a[0].S == "foo" }); k != n {
		t.Errorf("%d returns of foo, want %d", k, n)
	}
	for _, line := range []uint64{2, 3} {
		if k := count("ptprobe/line", func(a []uprobe.Value) bool { return inFoo(a) && a[2].U == line }); k != n {
			t.Errorf("%d events of line %d, want %d", k, line, n)
		}
	}
}

// TestKernelRefCtrErrors writes the kernel selftest's malformed reference
// counters (uprobe_syntax_errors.tc) and malformed fetch types to this
// machine's uprobe_events and checks that uprobe.Parse refuses each with
// the kernel's own message at the kernel's caret.
func TestKernelRefCtrErrors(t *testing.T) {
	tfs := requireTracefs(t)
	group := fmt.Sprintf("ptprobe_refctr_%d", os.Getpid())
	for _, line := range []string{
		"p:" + group + "/e /bin/sh:10(1a)",
		"p:" + group + "/e /bin/sh:10(10",
		"p:" + group + "/e /bin/sh:10(10)a",
		"p:" + group + "/e /bin/sh:10(10)%return",
		// The fetch types' errors.
		"p:" + group + "/e /bin/sh:10 %di:u8[4]",
		"p:" + group + "/e /bin/sh:10 +0(%di):u8[4",
		"p:" + group + "/e /bin/sh:10 +0(%di):u8[4]x",
		"p:" + group + "/e /bin/sh:10 +0(%di):u8[0]",
		"p:" + group + "/e /bin/sh:10 +0(%di):u8[65]",
		"p:" + group + "/e /bin/sh:10 %di:b4@30/32",
		"p:" + group + "/e /bin/sh:10 %di:b4@2/24",
		"p:" + group + "/e /bin/sh:10 %di:b0@2/32",
		"p:" + group + "/e /bin/sh:10 \\1x",
		"p:" + group + "/e /bin/sh:10 \\\"ab",
		"p:" + group + "/e /bin/sh:10 \\\"ab\":u8",
	} {
		kerr := tfs.Define(tracefs.UprobeEvents, line)
		if kerr == nil {
			tfs.RemoveEvent(tracefs.UprobeEvents, group, "e")
			t.Errorf("the kernel took %q", line)
			continue
		}
		var ke *KernelError
		if !errors.As(kerr, &ke) || ke.Msg == "" {
			t.Errorf("%q: %v, want the kernel's error_log entry", line, kerr)
			continue
		}
		_, err := uprobe.Parse(line)
		var pe *uprobe.Error
		if !errors.As(err, &pe) || pe.Msg != ke.Msg || pe.Pos != ke.Pos {
			t.Errorf("%q: ptprobe says %v, the kernel %q at %d", line, err, ke.Msg, ke.Pos)
		}
	}
}
