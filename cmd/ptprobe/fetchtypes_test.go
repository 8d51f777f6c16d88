package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// fetchTypesSpec reads testdata/c/fetchtypes.c's struct with the kernel's
// bitfields, char, arrays, a string array and an immediate.
const fetchTypesSpec = ":take fl=+0(%di):b4@4/32 lo=+0(%di):b4@0/32 c=+4(%di):char tag=+4(%di):char[3] v=+8(%di):s16[3] ns=+16(%di):string[2] imm=\\-3:s32"

// TestFetchTypes: the values print as the kernel prints them ('h',
// {1,-1,7}), and, where this machine lets the kernel probe, both backends
// read the same values (compare).
func TestFetchTypes(t *testing.T) {
	prog := testprog.Build(t, t.TempDir(), "fetchtypes", testprog.PIE...)
	const n = 4
	r := ptprobe(t, "trace", "-e", prog+fetchTypesSpec, "-e", `p:t/s `+prog+`:take s=\"hey":string`, "--", prog, fmt.Sprint(n))
	if r.status != 0 {
		t.Fatalf("trace: %d %s", r.status, r.stderr)
	}
	for i := range n {
		parity := map[bool]string{false: "even", true: "odd"}[i%2 == 1]
		want := fmt.Sprintf(`take: \(0x[0-9a-f]+\) fl=%d lo=5 c='h' tag=\{'h','i','%d'\} v=\{%d,%d,7\} ns=\{"%s","pair"\} imm=-3\n`, i, i, i, -i, parity)
		if k := len(regexp.MustCompile(want).FindAllString(r.stdout, -1)); k != 1 {
			t.Errorf("%d lines of %q in:\n%s", k, want, r.stdout)
		}
	}
	if k := strings.Count(r.stdout, ` s: `); k != n || strings.Count(r.stdout, `s="hey"`) != n {
		t.Errorf("immediate string: %d events:\n%s", k, r.stdout)
	}
	if os.Geteuid() != 0 {
		t.Skip("the kernel half needs root (tracefs uprobe_events)")
	}
	if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err != nil {
		t.Skipf("the kernel half needs uprobe_events: %v", err)
	}
	testprog.SystemProbes(t, true)
	r = ptprobe(t, "compare", "-e", prog+fetchTypesSpec, "--", prog, fmt.Sprint(n))
	if r.status != 0 || !strings.Contains(r.stdout, "hits and arguments agree") {
		t.Errorf("compare: status %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
}

// TestSymstr: symstr names an address as the function it is in, as the
// kernel names kernel addresses ("take+0x4/0x<size of take>", "0x0" for
// none), on the ptrace backend; this machine's kernel refuses symstr on
// uprobes, and the kernel backend reports its error_log entry.
func TestSymstr(t *testing.T) {
	prog := testprog.Build(t, t.TempDir(), "fetchtypes", testprog.PIE...)
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	take, err := f.Lookup("take")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	r := ptprobe(t, "trace", "-e", prog+":take fn=+32(%di):symstr none=+40(%di):symstr ip=%ip:symstr", "--", prog, fmt.Sprint(n))
	want := fmt.Sprintf(`take: (0x%%x) fn="take+0x4/0x%x" none="0x0" ip="take+0x0/0x%x"`+"\n", take.Size, take.Size)
	re := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(want), "0x%x", "0x[0-9a-f]+"))
	if r.status != 0 || len(re.FindAllString(r.stdout, -1)) != n {
		t.Errorf("status %d, want %d lines of %q:\n%s%s", r.status, n, want, r.stdout, r.stderr)
	}
	if os.Geteuid() != 0 {
		t.Skip("the kernel half needs root (tracefs uprobe_events)")
	}
	if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err != nil {
		t.Skipf("the kernel half needs uprobe_events: %v", err)
	}
	r = ptprobe(t, "trace", "--backend", "kernel", "-e", prog+":take fn=+32(%di):symstr", "--", prog, "1")
	if r.status != 2 || !strings.Contains(r.stderr, "Unknown type is specified") || caretAt(r.stderr) != "symstr" {
		t.Errorf("kernel: status %d, stderr %q; want 2 and the kernel's error under symstr", r.status, r.stderr)
	}
}
