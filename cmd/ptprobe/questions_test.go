package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// sizedCall is one call testdata/c/questions.c makes, computed here from
// its loop: sized(i % 5, 1 << (i % 13), names[i % 3]).
type sizedCall struct {
	kind, size int64
	name       string
}

func sizedCalls(n int) []sizedCall {
	names := []string{"alpha", "beta", "gamma"}
	var out []sizedCall
	for i := 0; i < n; i++ {
		out = append(out, sizedCall{int64(i % 5), 1 << (i % 13), names[i%3]})
	}
	return out
}

// fibCalls is the number of calls of fib(n): 177 for fib(10).
func fibCalls(n int) int {
	if n < 2 {
		return 1
	}
	return 1 + fibCalls(n-1) + fibCalls(n-2)
}

func fib(n int64) int64 {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

const sizedSpec = ":sized kind=%di:s64 size=%si:u64 name=+0(%dx):string"

// checkUntraced fails t unless the traced run's output and status are
// the untraced program's.
func checkUntraced(t *testing.T, r result, argv ...string) {
	t.Helper()
	want, status := testprog.Run(t, argv...)
	if r.stdout != want || r.status != status {
		t.Errorf("traced: %q, status %d; untraced: %q, status %d; stderr:\n%s", r.stdout, r.status, want, status, r.stderr)
	}
}

// TestFilter: exactly the hits for which the expression holds are
// reported, in order.
func TestFilter(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	const n = 300
	events := filepath.Join(dir, "ev")
	r := ptprobe(t, "trace", "-e", prog+sizedSpec, "--filter", `kind >= 3 && size > 100 && name != "beta"`, "-o", events, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	var want []string
	for _, c := range sizedCalls(n) {
		if c.kind >= 3 && c.size > 100 && c.name != "beta" {
			want = append(want, fmt.Sprintf("kind=%d size=%d name=%q", c.kind, c.size, c.name))
		}
	}
	b, _ := os.ReadFile(events)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i := strings.Index(l, "kind="); i >= 0 {
			got = append(got, l[i:])
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%d events:\n%s\nwant %d:\n%s", len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}

	// --count with --filter counts the matching hits.
	r = ptprobe(t, "trace", "--count", "-e", prog+sizedSpec, "--filter", `startswith(name, "g") || kind == 0`, "--", prog, fmt.Sprint(n))
	m := 0
	for _, c := range sizedCalls(n) {
		if strings.HasPrefix(c.name, "g") || c.kind == 0 {
			m++
		}
	}
	if want := fmt.Sprintf("ptprobe/sized %d\n", m); !strings.HasSuffix(r.stdout, want) {
		t.Errorf("--count --filter printed %q, want it to end in %q", r.stdout, want)
	}

	// A bad expression: a caret, exit 2, and the program never ran.
	r = ptprobe(t, "trace", "-e", prog+sizedSpec, "--filter", "knd > 3", "--", prog, "3")
	if r.status != 2 || r.stdout != "" || !strings.Contains(r.stderr, `unknown field "knd" in probe ptprobe/sized (did you mean kind?)`) ||
		!strings.Contains(r.stderr, "  Expression: knd > 3\n              ^") {
		t.Errorf("bad filter: status %d, stdout %q, stderr:\n%s", r.status, r.stdout, r.stderr)
	}
}

// TestCountBy: --count --by gives the distribution the program makes,
// in text and JSON.
func TestCountBy(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	const n = 1000
	want := map[string]int{}
	for _, c := range sizedCalls(n) {
		want[fmt.Sprintf("%s,%d", c.name, c.kind)]++
	}
	out := filepath.Join(dir, "out")
	r := ptprobe(t, "trace", "--count", "--by", "name, kind", "--format", "json", "-o", out, "-e", prog+sizedSpec, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	b, _ := os.ReadFile(out)
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var o struct {
			Map   string
			Key   map[string]any
			Value int
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		got[fmt.Sprintf("%s,%v", o.Key["name"], o.Key["kind"])] = o.Value
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", got, want)
	}

	// Text, bpftrace's layout, smallest first; --top 2 keeps the largest.
	r = ptprobe(t, "trace", "--count", "--by", "size", "--top", "2", "-e", prog+sizedSpec, "--", prog, "30")
	// size 1<<k for i%13 == k: i in 0..29 gives k = 0..3 three times,
	// the others twice.
	if want := "@count[4]: 3\n@count[8]: 3\n\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("--top 2 printed %q, want it to end in %q", r.stdout, want)
	}
}

// TestHistBuckets: --hist puts each size in its power-of-two bucket, and
// --lhist in its linear one.
func TestHistBuckets(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	const n = 100
	out := filepath.Join(dir, "out")
	r := ptprobe(t, "trace", "--hist", "size", "--by", "kind", "--format", "json", "-o", out, "-e", prog+sizedSpec, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	// size is a power of two: its bucket is [size, 2*size).
	want := map[string]int{}
	for _, c := range sizedCalls(n) {
		want[fmt.Sprintf("kind %d [%d, %d)", c.kind, c.size, 2*c.size)]++
	}
	got := map[string]int{}
	b, _ := os.ReadFile(out)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var o struct {
			Key     map[string]int
			Count   int
			Buckets []struct{ Low, High, Count int }
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		for _, bk := range o.Buckets {
			if bk.Count > 0 {
				got[fmt.Sprintf("kind %d [%d, %d)", o.Key["kind"], bk.Low, bk.High)] = bk.Count
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets %v, want %v", got, want)
	}

	r = ptprobe(t, "trace", "--lhist", "size:0:100:25", "-e", prog+sizedSpec, "--", prog, fmt.Sprint(n))
	var lin [5]int // [0,25) [25,50) [50,75) [75,100) [100,...)
	for _, c := range sizedCalls(n) {
		lin[min(c.size/25, 4)]++
	}
	rows := regexp.MustCompile(`(?m)^(\[[^\n]*?\)) +(\d+) \|`).FindAllStringSubmatch(r.stdout, -1)
	var gotRows []string
	for _, row := range rows {
		gotRows = append(gotRows, row[1]+" "+row[2])
	}
	wantRows := []string{"[0, 25) " + strconv.Itoa(lin[0]), "[25, 50) " + strconv.Itoa(lin[1]), "[50, 75) " + strconv.Itoa(lin[2]),
		"[75, 100) " + strconv.Itoa(lin[3]), "[100, ...) " + strconv.Itoa(lin[4])}
	if strings.Join(gotRows, "; ") != strings.Join(wantRows, "; ") {
		t.Errorf("lhist rows %q, want %q:\n%s", gotRows, wantRows, r.stdout)
	}

	// sum, min and max of what the program returned (retval, added to
	// the return probe as a $retval fetch-arg).
	var sum, lo, hi int64
	for i, c := range sizedCalls(n) {
		v := c.kind*c.size + int64(c.name[0])
		sum += v
		if i == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	for _, c := range []struct {
		flag string
		want int64
	}{{"--sum", sum}, {"--min", lo}, {"--max", hi}} {
		r = ptprobe(t, "trace", c.flag, "retval", "-e", "r "+prog+":sized", "--", prog, fmt.Sprint(n))
		if want := fmt.Sprintf("@%s: %d\n\n", c.flag[2:], c.want); !strings.HasSuffix(r.stdout, want) {
			t.Errorf("%s retval printed %q, want it to end in %q (stderr %s)", c.flag, r.stdout, want, r.stderr)
		}
	}
}

// TestInterval: --interval prints and restarts the counts while the
// program runs; all the prints add up to the ticks the program made.
func TestInterval(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	r := ptprobe(t, "trace", "--count", "--by", "probe", "--interval", "250ms", "-e", prog+":tick", "--", prog, "1.3")
	m := regexp.MustCompile(`ticks=(\d+) tocks=\d+`).FindStringSubmatch(r.stdout)
	if r.status != 0 || m == nil {
		t.Fatalf("status %d, output:\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	heads := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d$`).FindAllString(r.stdout, -1)
	if len(heads) < 3 {
		t.Errorf("%d interval prints in 1.3 s at 250 ms, want 3 or more:\n%s", len(heads), r.stdout)
	}
	total := 0
	for _, c := range regexp.MustCompile(`(?m)^@count\[ptprobe/tick\]: (\d+)$`).FindAllStringSubmatch(r.stdout, -1) {
		v, _ := strconv.Atoi(c[1])
		total += v
	}
	if strconv.Itoa(total) != m[1] {
		t.Errorf("the intervals counted %d ticks, the program made %s:\n%s", total, m[1], r.stdout)
	}
}

// TestLatencyFilter: --latency with --filter keeps only the matching
// returns.
func TestLatencyFilter(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	r := ptprobe(t, "trace", "--latency", "--filter", "retval == 0 || retval == 1", "-e", "r "+prog+":fib", "--", prog, "3")
	// The calls of fib(10)'s recursion that return 0 or 1: fib(0),
	// fib(1) and fib(2).
	var small func(n int64) int
	small = func(n int64) int {
		c := 0
		if fib(n) <= 1 {
			c = 1
		}
		if n < 2 {
			return c
		}
		return c + small(n-1) + small(n-2)
	}
	leaves := small(10)
	if !strings.Contains(r.stdout, fmt.Sprintf("count %d, min ", leaves)) {
		t.Errorf("want count %d:\n%s%s", leaves, r.stdout, r.stderr)
	}
}

// TestChrome: a trace of a recursive function: one complete event per
// return, with its entry's argument and its return value, nested.
func TestChrome(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	out := filepath.Join(dir, "trace.json")
	r := ptprobe(t, "trace", "--format", "chrome", "-o", out, "-e", prog+":fib n=%di:s64", "-e", "r "+prog+":fib rv=$retval:s64", "-e", prog+":sized", "--", prog, "4")
	checkUntraced(t, r, prog, "4")
	b, _ := os.ReadFile(out)
	var tr struct {
		TraceEvents []struct {
			Name, Ph string
			Ts, Dur  float64
			Pid, Tid int
			Args     map[string]any
		}
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	type span struct{ start, end float64 }
	var spans []span
	var instants, procNames int
	for _, e := range tr.TraceEvents {
		switch e.Ph {
		case "X":
			n, rv := int64(e.Args["n"].(float64)), int64(e.Args["rv"].(float64))
			if e.Name != "fib" || rv != fib(n) || e.Dur <= 0 || e.Pid == 0 || e.Tid == 0 {
				t.Errorf("complete event %+v: want fib with rv = fib(n)", e)
			}
			spans = append(spans, span{e.Ts, e.Ts + e.Dur})
		case "i":
			if e.Name != "sized" {
				t.Errorf("instant event %+v", e)
			}
			instants++
		case "M":
			if e.Name == "process_name" && e.Args["name"] == "questions" {
				procNames++
			}
		default:
			t.Errorf("event %+v", e)
		}
	}
	if len(spans) != fibCalls(10) || instants != 4 || procNames != 1 {
		t.Errorf("%d complete events (want %d), %d instants (want 4), %d process names (want 1)", len(spans), fibCalls(10), instants, procNames)
	}
	// One thread: any two calls are disjoint or one holds the other.
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := range spans {
		for j := i + 1; j < len(spans) && spans[j].start < spans[i].end; j++ {
			if spans[j].end > spans[i].end {
				t.Fatalf("calls %v and %v overlap without nesting", spans[i], spans[j])
			}
		}
	}
}

// TestFolded: folded stacks of a recursive function built with frame
// pointers: as many stacks as calls, each main;fib;...;fib, as deep as
// the recursion.
func TestFolded(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", "-O2", "-pie", "-fpie", "-fno-omit-frame-pointer")
	r := ptprobe(t, "trace", "--stack", "--format", "folded", "-o", filepath.Join(dir, "folded"), "-e", prog+":fib", "--", prog, "2")
	checkUntraced(t, r, prog, "2")
	b, _ := os.ReadFile(filepath.Join(dir, "folded"))
	line := regexp.MustCompile(`^([^; ]+(;[^; ]+)*) (\d+)$`)
	total, deepest := 0, 0
	byDepth := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not FRAME;FRAME COUNT", l)
		}
		frames := strings.Split(m[1], ";")
		i := len(frames) - 1
		for i >= 0 && frames[i] == "fib" {
			i--
		}
		depth := len(frames) - 1 - i
		if i < 0 || frames[i] != "main" {
			t.Errorf("stack %q: want main, then fib only", l)
		}
		c, _ := strconv.Atoi(m[3])
		total += c
		byDepth[depth] += c
		deepest = max(deepest, depth)
	}
	// fib(10) calls fib(n) fibCalls... times at each depth d (d fib
	// frames): at depth 1 once, the deepest is 10 (fib(10) down to fib(1)).
	if total != fibCalls(10) || deepest != 10 || byDepth[1] != 1 || byDepth[2] != 2 {
		t.Errorf("%d stacks (want %d), deepest %d fib frames (want 10), by depth %v:\n%s", total, fibCalls(10), deepest, byDepth, b)
	}
}

// TestRunScript: ptprobe run with a dict keyed by an argument printed at
// exit; a runaway handler stopped with the program unharmed; a script
// that does not load exits 2 and never starts the program.
func TestRunScript(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(src, "PROG", prog)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const n = 120
	ok := write("ok.star", `
counts = {}
def on_sized(ev):
    counts[ev.args["kind"]] = counts.get(ev.args["kind"], 0) + 1
probe("PROG`+sizedSpec+`", on_sized)
def report():
    for k in sorted(counts):
        print("kind", k, counts[k])
at_exit(report)
`)
	out := filepath.Join(dir, "out")
	r := ptprobe(t, "run", "-o", out, ok, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	kinds := map[int64]int{}
	for _, c := range sizedCalls(n) {
		kinds[c.kind]++
	}
	var want strings.Builder
	for k := int64(0); k < 5; k++ {
		fmt.Fprintf(&want, "kind %d %d\n", k, kinds[k])
	}
	if b, _ := os.ReadFile(out); string(b) != want.String() {
		t.Errorf("script printed %q, want %q", b, want.String())
	}

	spin := write("spin.star", `
def spin(ev):
    n = 0
    while True:
        n += 1
probe("PROG:sized", spin)
`)
	r = ptprobe(t, "run", "--max-steps", "5000", spin, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	if want := "spin.star:5: handler spin() of probe ptprobe/sized: stopped after 5000 steps (--max-steps); its handler is called no more\n"; !strings.HasSuffix(r.stderr, want) {
		t.Errorf("stderr %q, want it to end in %q", r.stderr, want)
	}

	for _, c := range []struct{ src, want string }{
		{"probe('PROG:sized', print\n", "bad.star:2: got end of file, want ')'"},
		{"probe('PROG:sizd', print)\n", `unknown symbol "sizd" (did you mean sized?)`},
		{"x = 1\n", "bad.star:1: no probe"},
		{"def f(ev):\n  ev.set_retval(1)\nprobe('PROG:sized', f)\nfail('at load')\n", "bad.star:4: fail: at load"},
	} {
		r = ptprobe(t, "run", write("bad.star", c.src), "--", prog, "3")
		if r.status != 2 || r.stdout != "" || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: status %d, stdout %q (the program must not run), stderr %q; want %q", c.src, r.status, r.stdout, r.stderr, c.want)
		}
	}
}

// TestKernelQuestions: the same questions on the kernel backend: a
// filter, a keyed count of a string argument, and a script, on events
// read back from tracefs.
func TestKernelQuestions(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "questions", testprog.PIE...)
	const n = 500
	want := map[string]int{}
	for _, c := range sizedCalls(n) {
		if c.kind != 2 {
			want[c.name]++
		}
	}
	r := ptprobe(t, "trace", "--backend", "kernel", "--count", "--by", "name", "--filter", "kind != 2", "--format", "json", "-o", filepath.Join(dir, "out"), "-e", prog+sizedSpec, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	b, _ := os.ReadFile(filepath.Join(dir, "out"))
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var o struct {
			Key   map[string]string
			Value int
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		got[o.Key["name"]] = o.Value
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kernel counts %v, want %v", got, want)
	}

	src := filepath.Join(dir, "k.star")
	os.WriteFile(src, []byte(`
total = [0]
def on(ev):
    total[0] += ev.args["size"]
probe("`+prog+sizedSpec+`", on)
at_exit(lambda: print("total", total[0]))
`), 0o644)
	r = ptprobe(t, "run", "--backend", "kernel", "-o", filepath.Join(dir, "k.out"), src, "--", prog, fmt.Sprint(n))
	checkUntraced(t, r, prog, fmt.Sprint(n))
	var total int64
	for _, c := range sizedCalls(n) {
		total += c.size
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "k.out")); string(b) != fmt.Sprintf("total %d\n", total) {
		t.Errorf("kernel script printed %q, want total %d", b, total)
	}
}

// TestRunInterval: a script's interval() runs several times while the
// program runs, and its at_exit total is the program's own count.
func TestRunInterval(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	src := filepath.Join(dir, "i.star")
	os.WriteFile(src, []byte(`
n = [0]
def tick(ev):
    n[0] += 1
probe("`+prog+`:tick i=%di:s64", tick)
interval(0.25, lambda: print("so far", n[0]))
at_exit(lambda: print("ticks", n[0]))
`), 0o644)
	out := filepath.Join(dir, "out")
	r := ptprobe(t, "run", "-o", out, src, "--", prog, "1.3")
	m := regexp.MustCompile(`ticks=(\d+) tocks=\d+`).FindStringSubmatch(r.stdout)
	if r.status != 0 || m == nil {
		t.Fatalf("status %d, output:\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	prev := -1
	for _, l := range lines[:len(lines)-1] {
		var v int
		if _, err := fmt.Sscanf(l, "so far %d", &v); err != nil || v < prev {
			t.Errorf("interval line %q after %d", l, prev)
		}
		prev = v
	}
	if len(lines) < 4 || lines[len(lines)-1] != "ticks "+m[1] {
		t.Errorf("want 3 or more interval lines, then ticks %s:\n%s", m[1], b)
	}
}

// TestRunAttach: run -p attaches a script to a running program and
// detaches at --duration: the script saw every tick of its window (tick's
// argument counts up by one), and the program's text is the file's again.
func TestRunAttach(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	loop := startLoop(t, prog, nil)
	src := filepath.Join(dir, "a.star")
	os.WriteFile(src, []byte(`
seen = []
def tick(ev):
    seen.append(ev.args["i"])
probe("`+prog+`:tick i=%di:s64", tick)
at_exit(lambda: print(len(seen), seen[-1] - seen[0] + 1 if seen else 0))
`), 0o644)
	r := ptprobe(t, "run", "-p", fmt.Sprint(loop.Process.Pid), "--duration", "400ms", src)
	if r.status != 0 || !strings.Contains(r.stderr, "detached from") {
		t.Fatalf("status %d, stdout %q, stderr:\n%s", r.status, r.stdout, r.stderr)
	}
	var n, span int
	if _, err := fmt.Sscanf(r.stdout, "%d %d", &n, &span); err != nil || n == 0 || n != span {
		t.Errorf("script printed %q: want the hits and the span of tick's argument, equal and not 0", r.stdout)
	}
	checkText(t, loop.Process.Pid, prog, "tick", "tock")
}
