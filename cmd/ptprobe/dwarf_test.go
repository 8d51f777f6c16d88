package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve/dwarf"
)

// jsonEvent is an event of --format json.
type jsonEvent struct {
	Probe string         `json:"probe"`
	Args  map[string]any `json:"args"`
}

// traceJSON runs ptprobe trace --format json with args and returns the
// program's output and the events, which ptprobe writes to a file of its
// own (-o) apart from the program's.
func traceJSON(t *testing.T, args ...string) (string, []jsonEvent) {
	t.Helper()
	return traceEvents[jsonEvent](t, args...)
}

// traceEvents is traceJSON with the events decoded into E.
func traceEvents[E any](t *testing.T, args ...string) (string, []E) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "events")
	r := ptprobe(t, append([]string{"trace", "--format", "json", "-o", out}, args...)...)
	if r.status != 0 {
		t.Fatalf("ptprobe %v: status %d\n%s", args, r.status, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var evs []E
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var ev E
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return r.stdout, evs
}

var workLine = regexp.MustCompile(`^work a=(-?\d+) b=(-?\d+) s=(\S+) x=(-?\d+) y=(-?\d+) name=(\S+) tag=(\S+) c=(\S+) sum=(-?\d+)$`)

// workCalls are the arguments dwarf.c says it passed to work, one map per
// call, keyed by the fetch-arg names a probe by name gives them.
func workCalls(t *testing.T, out string) []map[string]string {
	t.Helper()
	var calls []map[string]string
	for _, l := range strings.Split(out, "\n") {
		if m := workLine.FindStringSubmatch(l); m != nil {
			calls = append(calls, map[string]string{"a": m[1], "b": m[2], "s": m[3], "p_x": m[4], "p_y": m[5], "p_name": m[6], "p_tag": m[7], "c": m[8], "sum": m[9]})
		}
	}
	if len(calls) == 0 {
		t.Fatalf("dwarf printed no work line:\n%s", out)
	}
	return calls
}

// argString is a fetched value as the program prints it.
func argString(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// TestDWARFArgs: parameters, a string parameter and members through a
// pointer, by name, equal what the program passed on every call, with
// gcc -O0 (stack slots, the probe past the prologue) and -O2 (registers
// from the location lists at the exact entry address); a source-line
// probe fetches a local computed on the line before; a line of an inlined
// function is probed in each copy; $retval is typed by the function's
// DWARF result (docs/DESIGN.md §10).
func TestDWARFArgs(t *testing.T) {
	dir := t.TempDir()
	for _, opt := range []string{"-O0", "-O2"} {
		t.Run(opt, func(t *testing.T) {
			prog := testprog.BuildAs(t, dir, "dwarf"+opt, "dwarf", opt, "-g")
			const n = 5
			out, evs := traceJSON(t,
				"-e", "p:t/work "+prog+":work a b s p->x p->y p->name p->tag c",
				"-e", "p:t/sum "+prog+":dwarf.c:30 sum",
				"-e", "p:t/rel "+prog+":work:+3 sum", // dwarf.c:30 again, from work's line
				"-e", "p:t/twice "+prog+":dwarf.c:22",
				"-e", "r:t/ret "+prog+":work $retval",
				"--", prog, strconv.Itoa(n))
			calls := workCalls(t, out)
			var works, sums, rels, rets []jsonEvent
			twice := 0
			for _, ev := range evs {
				switch {
				case ev.Probe == "t/work":
					works = append(works, ev)
				case ev.Probe == "t/sum":
					sums = append(sums, ev)
				case ev.Probe == "t/rel":
					rels = append(rels, ev)
				case ev.Probe == "t/ret":
					rets = append(rets, ev)
				case strings.HasPrefix(ev.Probe, "t/twice"):
					twice++
				}
			}
			if len(works) != len(calls) || len(sums) != len(calls) || len(rels) != len(calls) || len(rets) != len(calls) {
				t.Fatalf("%d calls, %d work, %d sum, %d work:+3, %d ret events", len(calls), len(works), len(sums), len(rels), len(rets))
			}
			for i, c := range calls {
				for _, k := range []string{"a", "b", "s", "p_x", "p_y", "p_name", "p_tag", "c"} {
					if got := argString(works[i].Args[k]); got != c[k] {
						t.Errorf("call %d: %s = %q, the program passed %q", i, k, got, c[k])
					}
				}
				if got := argString(sums[i].Args["sum"]); got != c["sum"] {
					t.Errorf("call %d: sum at dwarf.c:30 = %q, the program computed %q", i, got, c["sum"])
				}
				if got := argString(rels[i].Args["sum"]); got != c["sum"] {
					t.Errorf("call %d: sum at work:+3 = %q, the program computed %q", i, got, c["sum"])
				}
				sum, _ := strconv.Atoi(c["sum"])
				if got := argString(rets[i].Args["arg1"]); got != strconv.Itoa(3*sum) {
					t.Errorf("call %d: $retval = %q, want %d (a signed int)", i, got, 3*sum)
				}
			}
			// twice runs n times in the loop and once more after it.
			if twice != n+1 {
				t.Errorf("dwarf.c:22 fired %d times, twice ran %d times", twice, n+1)
			}
		})
	}
}

var goWorkLine = regexp.MustCompile(`^work goid=(\d+) s=(\S+) n=(\d+) len=(\d+) cap=(\d+) xs0=(\d+) xs=(\S*) ws=(\S*)$`)

// sliceJSON is a Go slice of a JSON event as "LEN:E1,E2,..." (its first
// elements only).
func sliceJSON(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprintf("not a slice: %v", v)
	}
	var es []string
	for _, e := range m["elems"].([]any) {
		es = append(es, argString(e))
	}
	return argString(m["len"]) + ":" + strings.Join(es, ",")
}

// firstElems is "LEN:E1,E2,..." of a slice the program printed whole
// (its elements joined with commas), cut to its first SliceElems.
func firstElems(all string) string {
	es := strings.Split(all, ",")
	if all == "" {
		es = nil
	}
	n := len(es)
	return strconv.Itoa(n) + ":" + strings.Join(es[:min(n, dwarf.SliceElems)], ",")
}

// TestDWARFGo: a Go function's string, int and slice arguments by name
// (the register ABI), a method named as Go names it, and the goroutine id
// of every event, equal what the program printed. A slice is its length
// and its first dwarf.SliceElems elements ([]int and []string; nil, short
// and longer than that).
func TestDWARFGo(t *testing.T) {
	prog := testprog.BuildGo(t, t.TempDir(), "dwarfargs")
	out, evs := traceJSON(t,
		"-e", "p:t/work "+prog+":main.work s n xs xs.len xs.cap xs[0] ws",
		"-e", "p:t/add "+prog+":main.(*T).Add n t.name t.count",
		"--", prog, "4")
	var want [][]string
	for _, l := range strings.Split(out, "\n") {
		if m := goWorkLine.FindStringSubmatch(l); m != nil {
			want = append(want, m[1:])
		}
	}
	var works, adds []jsonEvent
	for _, ev := range evs {
		switch ev.Probe {
		case "t/work":
			works = append(works, ev)
		case "t/add":
			adds = append(adds, ev)
		}
	}
	if len(want) != 4 || len(works) != 4 || len(adds) != 4 {
		t.Fatalf("%d calls printed, %d work and %d Add events\n%s", len(want), len(works), len(adds), out)
	}
	count := 0
	for i, w := range want {
		ws := strings.SplitN(w[7], ":", 2)
		want := append(w[:6:6], firstElems(w[6]), firstElems(ws[1]))
		got := []string{argString(works[i].Args["goid"]), argString(works[i].Args["s"]), argString(works[i].Args["n"]),
			argString(works[i].Args["xs_len"]), argString(works[i].Args["xs_cap"]), argString(works[i].Args["xs_0"]),
			sliceJSON(works[i].Args["xs"]), sliceJSON(works[i].Args["ws"])}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("call %d: goid s n len cap xs[0] xs ws = %v, the program printed %v", i, got, want)
		}
		a := adds[i].Args
		if argString(a["n"]) != w[2] || argString(a["t_name"]) != "tee" || argString(a["t_count"]) != strconv.Itoa(count) || argString(a["goid"]) != w[0] {
			t.Errorf("call %d: (*T).Add args %v, want n=%s t.name=tee t.count=%d goid=%s", i, a, w[2], count, w[0])
		}
		n, _ := strconv.Atoi(w[2])
		count += n
	}
}

// TestGoGlobGoid: a glob on a Go program (expanded by the CLI, before
// the backends) gives each probe it means the goid its spec by name
// would have: the goroutine ids the program prints.
func TestGoGlobGoid(t *testing.T) {
	prog := testprog.BuildGo(t, t.TempDir(), "dwarfargs")
	out, evs := traceJSON(t, "-e", prog+":main.wor*", "--", prog, "3")
	var want []string
	for _, l := range strings.Split(out, "\n") {
		if m := goWorkLine.FindStringSubmatch(l); m != nil {
			want = append(want, m[1])
		}
	}
	var got []string
	for _, ev := range evs {
		if ev.Probe == "ptprobe/main_work" {
			got = append(got, argString(ev.Args["goid"]))
		}
	}
	if len(want) != 3 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("goids of the glob's main.work events %v, the program printed %v\n%s", got, want, out)
	}
}

// TestDWARFLibc: libc's malloc by its parameter's name, from Debian's
// libc6-dbg (the build-id file under /usr/lib/debug), equal to the
// requested sizes of a program that prints them.
func TestDWARFLibc(t *testing.T) {
	testprog.SystemProbes(t, false) // libc: not while a kernel test probes it
	r := ptprobe(t, "list", "--vars", "libc", "malloc")
	if r.status != 0 || !strings.Contains(r.stdout, "bytes") {
		t.Skipf("skipped: libc has no debug information here (install libc6-dbg): %s", r.stderr)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
#include <stdlib.h>
int main(void) { for (int i = 1; i <= 5; i++) { size_t n = 1000 * i + 7; printf("%zu\n", n); fflush(stdout); free(malloc(n)); } return 0; }
`), 0o644)
	prog := filepath.Join(dir, "m")
	if b, err := exec.Command("gcc", "-O0", "-o", prog, src).CombinedOutput(); err != nil {
		t.Skipf("skipped: gcc: %v %s", err, b)
	}
	out, evs := traceJSON(t, "-e", "p:t/malloc libc:malloc bytes", "--", prog)
	seen := make(map[string]bool)
	for _, ev := range evs {
		seen[argString(ev.Args["bytes"])] = true
	}
	for _, l := range strings.Fields(out) {
		if !seen[l] {
			t.Errorf("malloc(%s) was called, no event has bytes=%s", l, l)
		}
	}
}

// TestDWARFEnum: a C enum by name prints its enumerator's name, or its
// number when none has it (dwarf.c passes GREEN, BLUE and 7), in text,
// on the ptrace backend and, where it can run, the kernel's: the kernel
// fetches the integer and ptprobe names it as it reads trace_pipe.
func TestDWARFEnum(t *testing.T) {
	prog := testprog.BuildAs(t, t.TempDir(), "dwarf", "dwarf", "-O2", "-g")
	backends := []string{"ptrace"}
	if os.Geteuid() == 0 {
		backends = append(backends, "kernel")
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			if b == "kernel" {
				testprog.KernelUprobes(t)
			}
			ev := filepath.Join(t.TempDir(), "ev")
			r := ptprobe(t, "trace", "--backend", b, "-o", ev, "-e", "p:t/work "+prog+":work c", "--", prog, "4")
			if r.status != 0 {
				t.Fatalf("status %d: %s", r.status, r.stderr)
			}
			calls := workCalls(t, r.stdout)
			text, _ := os.ReadFile(ev)
			lines := strings.Split(strings.TrimSpace(string(text)), "\n")
			if len(lines) != len(calls) {
				t.Fatalf("%d events, %d calls:\n%s", len(lines), len(calls), text)
			}
			names := 0
			for i, c := range calls {
				if !strings.HasSuffix(lines[i], " c="+c["c"]) {
					t.Errorf("call %d: %q, the program passed c=%s", i, lines[i], c["c"])
				}
				if _, err := strconv.Atoi(c["c"]); err != nil {
					names++
				}
			}
			if names == 0 || names == len(calls) {
				t.Errorf("the calls %v pass no enumerator or no other number: nothing shown", calls)
			}
		})
	}
}

// TestDWARFReturnVars: in a return probe a parameter by name is its
// value at the entry (the argument registers the entry saves), members
// through a pointer read at the return, with $retval typed by DWARF: equal
// to what the program passed, on C at -O2 and in Go. A parameter the entry
// keeps in a stack slot (gcc -O0) is refused with a caret, and the
// kernel, whose uretprobes save nothing, refuses names there too.
func TestDWARFReturnVars(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.BuildAs(t, dir, "dwarf", "dwarf", "-O2", "-g")
	out, evs := traceJSON(t, "-e", "r:t/ret "+prog+":work a s p->x p->name c rv=$retval", "--", prog, "4")
	calls := workCalls(t, out)
	if len(evs) != len(calls) {
		t.Fatalf("%d returns, %d calls", len(evs), len(calls))
	}
	for i, c := range calls {
		for _, k := range []string{"a", "s", "p_x", "p_name", "c"} {
			if got := argString(evs[i].Args[k]); got != c[k] {
				t.Errorf("return %d: %s = %q, the program passed %q", i, k, got, c[k])
			}
		}
		sum, _ := strconv.Atoi(c["sum"])
		if got := argString(evs[i].Args["rv"]); got != strconv.Itoa(3*sum) {
			t.Errorf("return %d: $retval = %q, want %d", i, got, 3*sum)
		}
	}

	gprog := testprog.BuildGo(t, dir, "dwarfargs")
	out, gevs := traceJSON(t, "-e", "r:t/ret "+gprog+":main.work s n xs", "--", gprog, "3")
	var want [][]string
	for _, l := range strings.Split(out, "\n") {
		if m := goWorkLine.FindStringSubmatch(l); m != nil {
			want = append(want, m[1:])
		}
	}
	if len(gevs) != 3 || len(want) != 3 {
		t.Fatalf("%d Go returns, %d calls printed", len(gevs), len(want))
	}
	for i, w := range want {
		got := []string{argString(gevs[i].Args["s"]), argString(gevs[i].Args["n"]), sliceJSON(gevs[i].Args["xs"])}
		if strings.Join(got, " ") != w[1]+" "+w[2]+" "+firstElems(w[6]) {
			t.Errorf("Go return %d: s n xs = %v, the program printed %v", i, got, w)
		}
	}

	o0 := testprog.BuildAs(t, dir, "dwarf-O0", "dwarf", "-O0", "-g")
	spec := "r " + o0 + ":work b"
	r := ptprobe(t, "trace", "-e", spec, "--", o0, "1")
	caret := strings.Repeat(" ", len("  Command: ")+strings.LastIndex(spec, " b")+1) + "^"
	if r.status != 2 || strings.Contains(r.stdout, "work a=") || !strings.Contains(r.stderr, "stack slot") || !strings.Contains(r.stderr, "\n"+caret+"\n") {
		t.Errorf("-O0 return probe by name: status %d, stdout %q, stderr %q; want 2, a stack slot, a caret under b", r.status, r.stdout, r.stderr)
	}
	if os.Geteuid() == 0 {
		testprog.KernelUprobes(t)
		r := ptprobe(t, "trace", "--backend", "kernel", "-e", "r "+prog+":work a", "--", prog, "1")
		if r.status != 2 || !strings.Contains(r.stderr, "kernel uretprobes cannot save") {
			t.Errorf("a return probe by name on the kernel: status %d, %s", r.status, r.stderr)
		}
	}
}

// TestDWARFErrors: an unknown variable (with the visible ones), a member
// of a non-struct, a file without DWARF (with the build-id path looked
// at), split DWARF: exit 2 and the program never runs.
func TestDWARFErrors(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.BuildAs(t, dir, "dwarf", "dwarf", "-O2", "-g")
	nodbg := testprog.BuildAs(t, dir, "nodbg", "dwarf", "-O2", "-g0", "-Wl,--build-id")
	split := testprog.BuildAs(t, dir, "split", "dwarf", "-O2", "-g", "-gsplit-dwarf")
	for _, c := range []struct {
		spec string
		argv string
		want []string
	}{
		{prog + ":work nope", prog, []string{"no variable nope here", "visible: a, b, c, p, s", "work+0x0"}},
		{prog + ":work a->x", prog, []string{"->x: a int is not a pointer"}},
		{prog + ":work p->nope", prog, []string{"has no member nope", "its members: x, y, name, tag"}},
		{prog + ":nope.c:3", prog, []string{"no source file nope.c"}},
		{nodbg + ":work a", nodbg, []string{"no DWARF debug information", "/usr/lib/debug/.build-id/"}},
		{split + ":work a", split, []string{"split DWARF (.dwo) is not supported"}},
	} {
		r := ptprobe(t, "trace", "-e", c.spec, "--", c.argv, "1")
		if r.status != 2 {
			t.Errorf("%s: status %d, want 2", c.spec, r.status)
		}
		if strings.Contains(r.stdout, "work a=") {
			t.Errorf("%s: the program ran", c.spec)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: %q does not say %q", c.spec, r.stderr, w)
			}
		}
	}
}

// TestDWARFNamesUnique: a source line in two inlined copies expands to
// two probes, EVENT and EVENT_1; another spec that names a probe EVENT_1
// is refused (exit 2, naming both specs), by trace and by compare, and
// the program never runs. Before, trace counted two probes of one name.
func TestDWARFNamesUnique(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.BuildAs(t, dir, "dwarf", "dwarf", "-O2", "-g")
	line := prog + ":dwarf.c:22"
	r := ptprobe(t, "trace", "--count", "-e", line, "--", prog, "2")
	if r.status != 0 || !strings.Contains(r.stdout, "ptprobe/dwarf_c_L22 2\n") || !strings.Contains(r.stdout, "ptprobe/dwarf_c_L22_1 1\n") {
		t.Fatalf("%s: status %d, want two probes (the line's inlined copies):\n%s%s", line, r.status, r.stdout, r.stderr)
	}
	other := "p:ptprobe/dwarf_c_L22_1 " + prog + ":work"
	for _, args := range [][]string{
		{"trace", "-e", line, "-e", other},
		{"trace", "-e", other, "-e", line},
		{"compare", "-e", line, "-e", other},
	} {
		r := ptprobe(t, append(args, "--", prog, "1")...)
		if r.status != 2 || !strings.Contains(r.stderr, "it names ptprobe/dwarf_c_L22_1, as ") || strings.Contains(r.stdout, "work a=") {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want 2, the name of both", args, r.status, r.stdout, r.stderr)
		}
	}
}

// TestDWARFCompare: both backends give the same values for names
// (compare agrees), on C at -O2 and on a Go program's integer arguments.
// The kernel reads no Go string (it has no counted string): it says so.
func TestDWARFCompare(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.BuildAs(t, dir, "dwarf", "dwarf", "-O2", "-g")
	r, res := runCompare(t, "-e", "p:t/work "+prog+":work a b s p->x p->name p->tag c", "-e", "p:t/sum "+prog+":dwarf.c:30 sum", "--", prog, "20")
	if r.status != 0 || !res.Agree {
		t.Fatalf("compare status %d (want 0): %s\n%s", r.status, r.stdout, r.stderr)
	}
	for _, p := range res.Probes {
		if p.KernelHits != 20 {
			t.Errorf("%s: %d kernel hits, want 20", p.Probe, p.KernelHits)
		}
	}
	gprog := testprog.BuildGo(t, dir, "dwarfargs")
	out, evs := traceJSON(t, "--backend", "kernel", "-e", "p:t/work "+gprog+":main.work n xs.len", "--", gprog, "3")
	var want [][]string
	for _, l := range strings.Split(out, "\n") {
		if m := goWorkLine.FindStringSubmatch(l); m != nil {
			want = append(want, m[1:])
		}
	}
	if len(evs) != 3 || len(want) != 3 {
		t.Fatalf("%d events, %d calls printed", len(evs), len(want))
	}
	for i, w := range want {
		got := []string{argString(evs[i].Args["goid"]), argString(evs[i].Args["n"]), argString(evs[i].Args["xs_len"])}
		if strings.Join(got, " ") != w[0]+" "+w[2]+" "+w[3] {
			t.Errorf("kernel, call %d: goid n len = %v, the program printed %v", i, got, w)
		}
	}
	r = ptprobe(t, "trace", "--backend", "kernel", "-e", gprog+":main.work s", "--", gprog, "1")
	if r.status != 2 || !strings.Contains(r.stderr, "is a Go string") {
		t.Errorf("a Go string on the kernel: status %d, %s", r.status, r.stderr)
	}
	r = ptprobe(t, "trace", "--backend", "kernel", "-e", gprog+":main.work xs", "--", gprog, "1")
	if r.status != 2 || !strings.Contains(r.stderr, "is a Go slice") || !strings.Contains(r.stderr, "xs.len") {
		t.Errorf("a Go slice on the kernel: status %d, %s", r.status, r.stderr)
	}
}

// TestStack: --stack names the callers up to main, through frame
// pointers (gcc -O0), through the CFI alone (gcc -O2
// -fomit-frame-pointer), and in Go (main.main's goroutine), in text under
// the event and as the JSON event's "stack" array.
func TestStack(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		flags []string
	}{
		// No CFI for dwarf.c's functions: the frame pointers only.
		{"fp", []string{"-O0", "-g0", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables"}},
		{"nofp", []string{"-O2", "-g", "-fomit-frame-pointer"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			prog := testprog.BuildAs(t, dir, "dwarf-"+c.name, "dwarf", c.flags...)
			// At work+4, past push %rbp; mov %rsp,%rbp with -O0: the
			// frame pointer chain is set up.
			at := "work"
			if c.name == "fp" {
				at = "work+4"
			}
			_, evs := traceJSONRaw(t, "--stack", "-e", "p:t/work "+prog+":"+at, "--", prog, "2")
			if len(evs) != 2 {
				t.Fatalf("%d events, want 2", len(evs))
			}
			for _, ev := range evs {
				if len(ev.Stack) < 2 || !strings.HasPrefix(ev.Stack[0].Func, "work+0x") || !strings.HasPrefix(ev.Stack[1].Func, "main+0x") {
					t.Errorf("stack %+v: want work, then main", ev.Stack)
				}
				if c.name == "nofp" && (!strings.HasSuffix(ev.Stack[1].File, "dwarf.c") || ev.Stack[1].Line != 50) {
					t.Errorf("stack %+v: want main at dwarf.c:50", ev.Stack)
				}
			}
			if c.name == "fp" {
				return
			}
			r := ptprobe(t, "trace", "--stack=2", "-e", "p:t/work "+prog+":work", "--", prog, "1")
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			var frames []string
			for _, l := range lines {
				if strings.HasPrefix(l, " => ") {
					frames = append(frames, l)
				}
			}
			if len(frames) != 2 || !strings.HasPrefix(frames[1], " => main+0x") || !strings.HasSuffix(frames[1], "dwarf.c:50)") {
				t.Errorf("text stack %q: want 2 frames, work and main (dwarf.c:50)", frames)
			}
		})
	}
	t.Run("inlined", func(t *testing.T) {
		// dwarf.c:22 is in twice, which gcc -O2 inlines into total at
		// line 39 (and 40, where the copy's code is moved away from
		// its line's address: no inlined frame there, as addr2line -i
		// says too).
		prog := testprog.BuildAs(t, dir, "dwarf-inl", "dwarf", "-O2", "-g")
		_, evs := traceJSONRaw(t, "--stack=3", "-e", "p:t/l "+prog+":dwarf.c:22", "--", prog, "2")
		inl := 0
		for _, ev := range evs {
			if ev.Probe != "t/l" {
				continue
			}
			inl++
			if len(ev.Stack) != 3 || ev.Stack[0].Func != "twice (inlined)" || !ev.Stack[0].Inlined || ev.Stack[0].Line != 22 ||
				!strings.HasPrefix(ev.Stack[1].Func, "total+0x") || ev.Stack[1].Inlined || ev.Stack[1].Line != 39 || ev.Stack[1].PC != ev.Stack[0].PC ||
				!strings.HasPrefix(ev.Stack[2].Func, "main+0x") {
				t.Errorf("stack %+v: want twice (inlined) at dwarf.c:22, total at dwarf.c:39 at the same pc, main", ev.Stack)
			}
		}
		if inl != 2 {
			t.Errorf("%d hits in the first copy, want 2 (the loop's)", inl)
		}
		r := ptprobe(t, "trace", "--stack=2", "-e", "p:t/l "+prog+":dwarf.c:22", "--", prog, "1")
		if !strings.Contains(r.stdout, "\n => twice (inlined) (") || !strings.Contains(r.stdout, "dwarf.c:22)\n => total+0x") {
			t.Errorf("text stack: %q", r.stdout)
		}
	})
	t.Run("go", func(t *testing.T) {
		prog := testprog.BuildGo(t, dir, "dwarfargs")
		_, evs := traceJSONRaw(t, "--stack", "-e", "p:t/work "+prog+":main.work n", "--", prog, "2")
		if len(evs) != 2 {
			t.Fatalf("%d events, want 2", len(evs))
		}
		for _, ev := range evs {
			if len(ev.Stack) < 2 || ev.Stack[0].Func != "main.work+0x0" || !strings.HasPrefix(ev.Stack[1].Func, "main.main.func1+0x") {
				t.Errorf("stack %+v: want main.work, then main.main.func1", ev.Stack)
			}
		}
	})
}

type stackEvent struct {
	Probe string `json:"probe"`
	Stack []struct {
		PC      string `json:"pc"`
		Func    string `json:"func"`
		Inlined bool   `json:"inlined"`
		File    string `json:"file"`
		Line    int    `json:"line"`
	} `json:"stack"`
}

// traceJSONRaw is traceJSON keeping the events' stacks.
func traceJSONRaw(t *testing.T, args ...string) (string, []stackEvent) {
	t.Helper()
	return traceEvents[stackEvent](t, args...)
}
