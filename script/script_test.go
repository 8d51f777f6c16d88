package script

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/agg"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// questions is testdata/c/questions.c's work, computed here: for i in
// 0..n-1, sized(i%5, 1<<(i%13), names[i%3]) returns kind*size+name[0].
type call struct {
	kind, size int64
	name       string
}

var names = []string{"alpha", "beta", "gamma"}

func questions(n int) []call {
	var out []call
	for i := 0; i < n; i++ {
		out = append(out, call{int64(i % 5), 1 << (i % 13), names[i%3]})
	}
	return out
}

// run loads src and runs the questions program under it with the ptrace
// engine; it returns what the script printed, the program's output and
// exit status, and the script's warnings.
func run(t *testing.T, src string, maxSteps uint64, n int) (printed, output string, status int, warnings []error) {
	t.Helper()
	return runBuilt(t, src, maxSteps, n, testprog.PIE...)
}

func runBuilt(t *testing.T, src string, maxSteps uint64, n int, flags ...string) (printed, output string, status int, warnings []error) {
	t.Helper()
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", flags...)
	src = strings.ReplaceAll(src, "PROG", prog)
	var out bytes.Buffer
	var mu sync.Mutex
	s, err := Load(filepath.Join(dir, "q.star"), []byte(src), &Options{MaxSteps: maxSteps, Stdout: &out, Warn: func(err error) {
		mu.Lock()
		warnings = append(warnings, err)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	progOut, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer progOut.Close()
	tr, err := engine.Launch([]string{prog, fmt.Sprint(n)}, &engine.Options{
		Probes:  s.BackendProbes(true),
		OnEvent: s.OnEvent,
		Process: engineProcess(progOut),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Wait()
	if err != nil {
		t.Fatal(err)
	}
	s.Exit()
	b, _ := os.ReadFile(progOut.Name())
	return out.String(), string(b), res.ExitCode, warnings
}

func untraced(t *testing.T, n int) (string, int) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	return testprog.Run(t, prog, fmt.Sprint(n))
}

// TestDictAtExit: a dict keyed by an argument, printed at exit, holds
// the program's own distribution.
func TestDictAtExit(t *testing.T) {
	const n = 200
	printed, output, status, warnings := run(t, `
by_name = {}
by_kind = {}
sizes = hist()
def on_sized(ev):
    by_name[ev.args["name"]] = by_name.get(ev.args["name"], 0) + 1
    k = ev.args["kind"]
    by_kind[k] = by_kind.get(k, 0) + ev.args["size"]
    sizes.add(ev.args["size"])
probe("PROG:sized kind=%di:s64 size=%si:u64 name=+0(%dx):string", on_sized)
def done():
    for k in sorted(by_name):
        print("name", k, by_name[k])
    for k in sorted(by_kind):
        print("kind", k, by_kind[k])
    print(sizes)
at_exit(done)
`, 0, n)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	wantOut, wantStatus := untraced(t, n)
	if output != wantOut || status != wantStatus {
		t.Errorf("program printed %q and exited %d, untraced %q and %d", output, status, wantOut, wantStatus)
	}
	byName := map[string]int{}
	byKind := map[int64]int64{}
	var h agg.Log2
	for _, c := range questions(n) {
		byName[c.name]++
		byKind[c.kind] += c.size
		h.Add(c.size)
	}
	var want strings.Builder
	for _, k := range names {
		fmt.Fprintf(&want, "name %s %d\n", k, byName[k])
	}
	for k := int64(0); k < 5; k++ {
		fmt.Fprintf(&want, "kind %d %d\n", k, byKind[k])
	}
	want.Write(h.AppendText(nil))
	want.WriteString("\n")
	if printed != want.String() {
		t.Errorf("script printed:\n%s\nwant:\n%s", printed, want.String())
	}
}

// TestArray: an array fetch-arg is a list of its elements in a script:
// the first bytes of each name sized was passed.
func TestArray(t *testing.T) {
	const n = 6
	printed, _, _, warnings := run(t, `
def on_sized(ev):
    print(ev.args["b"])
probe("PROG:sized b=+0(%dx):u8[3]", on_sized)
`, 0, n)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	var want strings.Builder
	for _, c := range questions(n) {
		fmt.Fprintf(&want, "[%d, %d, %d]\n", c.name[0], c.name[1], c.name[2])
	}
	if printed != want.String() {
		t.Errorf("script printed:\n%s\nwant:\n%s", printed, want.String())
	}
}

// TestRunaway: an endless handler is stopped at its step limit, named
// with its probe and line, and called no more; the program's output and
// exit status are those of an untraced run.
func TestRunaway(t *testing.T) {
	const n = 50
	printed, output, status, warnings := run(t, `
calls = []
def spin(ev):
    calls.append(1)
    n = 0
    while True:
        n += 1
probe("PROG:sized", spin)
at_exit(lambda: print("calls", len(calls)))
`, 10000, n)
	wantOut, wantStatus := untraced(t, n)
	if output != wantOut || status != wantStatus {
		t.Errorf("program printed %q and exited %d, untraced %q and %d", output, status, wantOut, wantStatus)
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(warnings), warnings)
	}
	var e *Error
	if !errors.As(warnings[0], &e) || e.Line != 7 || e.Probe != "ptprobe/sized" {
		t.Errorf("warning %v: want line 7 of probe ptprobe/sized", warnings[0])
	}
	if want := "handler spin() of probe ptprobe/sized: stopped after 10000 steps (--max-steps); its handler is called no more"; !strings.Contains(warnings[0].Error(), want) {
		t.Errorf("warning %q does not say %q", warnings[0], want)
	}
	if printed != "calls 1\n" {
		t.Errorf("script printed %q, want one call", printed)
	}
}

// TestSetRetval: a script makes sized return 0 when its kind is 4; the
// program's sum and exit status are what that makes of them.
func TestSetRetval(t *testing.T) {
	const n = 100
	_, output, status, warnings := run(t, `
def ret(ev):
    if ev.args["kind"] == 4:
        ev.set_retval(0)
probe("r PROG:sized kind=$arg1:s64", ret)
`, 0, n)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	var sum int64
	for _, c := range questions(n) {
		if c.kind != 4 {
			sum += c.kind*c.size + int64(c.name[0])
		}
	}
	fib := "fib=55"
	if want := fmt.Sprintf("sum=%d %s\n", sum, fib); output != want || status != int(sum%100) {
		t.Errorf("program printed %q, exited %d; want %q, %d", output, status, want, sum%100)
	}
}

// TestLoadErrors: a script that cannot load says where, before anything
// runs.
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"def f(ev):\n  pass\nprobe('/bin/true:0x10', f\n", "q.star:4: got end of file, want ')'"},
		{"def f(ev):\n  pass\n\nprobe('/bin/true:0x10 x=%zz', f)\n", "q.star:4: bad probe spec: error: Invalid register name"},
		{"x = 1\n", "q.star:1: no probe"},
		{"n = 0\nwhile True:\n  n += 1\n", "q.star:3: Starlark computation cancelled: too many steps"},
		{"probe('/bin/true:0x10', 3)\n", "q.star:1: probe: for parameter fn: got int, want callable"},
		{"def f(ev):\n  pass\nprobe('/bin/true:0x10', f)\nprobe('/bin/true:0x10', f)\n", "q.star:4: probes \"/bin/true:0x10\" and \"/bin/true:0x10\" have the same name"},
		{"def f(ev):\n  pass\nprobe('/bin/true:0x10', f)\ninterval(0, f)\n", "q.star:4: interval: want a number of seconds"},
	} {
		_, err := Load("q.star", []byte(c.src), &Options{MaxSteps: 1000})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
	_, err := Load("q.star", []byte("probe('/bin/true:0x10 x=%zz', print)\n"), nil)
	var ue *uprobe.Error
	if !errors.As(err, &ue) {
		t.Errorf("a bad spec's error %v does not wrap the *uprobe.Error", err)
	}
}

func BenchmarkHandler(b *testing.B) {
	s, err := Load("b.star", []byte(`
counts = {}
def on(ev):
    k = ev.args["size"]
    counts[k] = counts.get(k, 0) + 1
probe("p:g/a /bin/true:0x10 size=%di:u64", on)
`), nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := &uprobe.Event{Group: "g", Name: "a", Comm: "sqlite3", Args: []uprobe.Value{{Name: "size", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: 4096}}}
	b.ReportAllocs()
	for b.Loop() {
		s.OnEvent(ev)
	}
	if p := s.Probes()[0]; p.Failed != nil {
		b.Fatal(p.Failed)
	}
}

// TestStack: probe(..., stack=True) gives each hit of the recursive fib
// (built with frame pointers) its stack: main, then one fib per level.
func TestStack(t *testing.T) {
	printed, _, _, warnings := runBuilt(t, `
depths = {}
def on_fib(ev):
    s = ev.stack
    d = 0
    for f in s:
        if f != "fib":
            break
        d += 1
    if s[d] != "main":
        fail("stack %s" % s)
    depths[d] = depths.get(d, 0) + 1
probe("PROG:fib", on_fib, stack=True)
at_exit(lambda: print(sorted(depths.items())))
`, 0, 1, "-O2", "-pie", "-fpie", "-fno-omit-frame-pointer")
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	// Calls of fib(10)'s recursion by depth d (d fib frames): fib(10)
	// at depth 1; fib(n) at depth d calls fib(n-1) and fib(n-2) at d+1.
	byDepth := map[int]int{}
	var walk func(n, d int)
	walk = func(n, d int) {
		byDepth[d]++
		if n >= 2 {
			walk(n-1, d+1)
			walk(n-2, d+1)
		}
	}
	walk(10, 1)
	var want []string
	for d := 1; d <= 10; d++ {
		want = append(want, fmt.Sprintf("(%d, %d)", d, byDepth[d]))
	}
	if w := "[" + strings.Join(want, ", ") + "]\n"; printed != w {
		t.Errorf("depths %q, want %q", printed, w)
	}
}
