package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

const python = "/usr/bin/python3.11"

// TestListUSDT: list shows the USDT probes of python3.11 with the file
// offsets, semaphores and argument specs of its notes, and C++ functions
// by both names.
func TestListUSDT(t *testing.T) {
	f, err := elfsym.Open(python)
	if err != nil {
		t.Skipf("%s (Debian's python3.11): %v", python, err)
	}
	defer f.Close()
	probes, err := f.USDTProbes()
	if err != nil || len(probes) == 0 {
		t.Skipf("%s has no SDT probes: %v", python, err)
	}
	r := ptprobe(t, "list", "--usdt", python, "python:function*")
	if r.status != 0 {
		t.Fatalf("list: %d %s", r.status, r.stderr)
	}
	n := 0
	for _, p := range probes {
		if !strings.HasPrefix(p.Name, "function") {
			continue
		}
		n++
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^0x%08x 0x%08x +usdt:python:%s +%s$`, p.Offset, p.SemOffset, p.Name, regexp.QuoteMeta(p.ArgText)))
		if !line.MatchString(r.stdout) {
			t.Errorf("list does not show %s:%s at 0x%x, semaphore 0x%x, %q:\n%s", p.Provider, p.Name, p.Offset, p.SemOffset, p.ArgText, r.stdout)
		}
	}
	if lines := strings.Count(r.stdout, "\n"); n == 0 || lines != n+1 {
		t.Errorf("%d lines for %d probes:\n%s", lines, n, r.stdout)
	}

	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ is not installed: cannot build testdata/c/names.cpp")
	}
	prog := filepath.Join(t.TempDir(), "names")
	if out, err := exec.Command("g++", "-O2", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "names.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	r = ptprobe(t, "list", prog, "ns::*")
	if !strings.Contains(r.stdout, "  ns::Foo::bar(int)  [_ZN2ns3Foo3barEi]\n") {
		t.Errorf("list ns::* shows %q", r.stdout)
	}
	r = ptprobe(t, "list", "--mangled", prog, "_Z4over*")
	if !strings.Contains(r.stdout, "  _Z4overi\n") || strings.Contains(r.stdout, "over(int)") {
		t.Errorf("list --mangled shows %q", r.stdout)
	}
}

// TestTracePythonUnprivileged traces python3.11's function calls as an
// ordinary user (the README's example): one entry and one return of foo
// per call, with the file and function names.
func TestTracePythonUnprivileged(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is not installed (Debian's python3.11): %v", python, err)
	}
	testprog.SystemProbes(t, false)
	dir := t.TempDir()
	script := filepath.Join(dir, "calls.py")
	const n = 4
	if err := os.WriteFile(script, []byte(fmt.Sprintf("def foo(x):\n    return x + 1\n\nfor i in range(%d):\n    foo(i)\n", n)), 0o644); err != nil {
		t.Fatal(err)
	}
	var argv []string
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and setpriv (util-linux) is missing: cannot drop to an ordinary user")
		}
		for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(ptprobeBin), script} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		argv = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"}
	}
	argv = append(argv, ptprobeBin, "trace",
		"-e", "usdt:"+python+":python:function__entry file=$arg1:string fn=$arg2:string line=$arg3",
		"-e", "usdt:"+python+":python:function__return fn=$arg2:string",
		"-e", "usdt:"+python+":python:line fn=$arg2:string line=$arg3",
		"--", python, script)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	entry := regexp.MustCompile(`(?m)function__entry: \(0x[0-9a-f]+\) file="` + regexp.QuoteMeta(script) + `" fn="foo" line=1$`)
	ret := regexp.MustCompile(`(?m)function__return: \(0x[0-9a-f]+\) fn="foo"$`)
	line := regexp.MustCompile(`(?m)line: \(0x[0-9a-f]+\) fn="foo" line=2$`)
	if e, r, l := len(entry.FindAllString(string(out), -1)), len(ret.FindAllString(string(out), -1)), len(line.FindAllString(string(out), -1)); e != n || r != n || l != n {
		t.Errorf("%d entries, %d returns, %d lines of foo, want %d each", e, r, l, n)
	}
}

// TestNameErrors: a glob over the limit (trace's and compare's
// --max-probes), a USDT probe that is not there
// and the kernel's malformed reference counters are errors (exit 2) that
// say what and where, and the program never starts.
func TestNameErrors(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-probes", "2", "-e", "libc:str*"}, "more than the limit of 2 (--max-probes raises it)"},
		{[]string{"-e", "usdt:libstdc++:libstdcxx:thrown"}, "(it has libstdcxx:catch, libstdcxx:rethrow, libstdcxx:throw)"},
		{[]string{"-e", "libc:strl*", "-e", "libc:strlen"}, `it names ptprobe/strlen, as "libc:strl*" does`},
		// The kernel selftest's carets: p /bin/sh:10(^1a),
		// p /bin/sh:10(10^, p /bin/sh:10(10)^a.
		{[]string{"-e", "/bin/sh:10(1a)"}, "error: Invalid reference counter offset\n  Command: /bin/sh:10(1a)\n" + caret(len("/bin/sh:10("))},
		{[]string{"-e", "/bin/sh:10(10"}, "error: Reference counter brace is not closed\n  Command: /bin/sh:10(10\n" + caret(len("/bin/sh:10(10"))},
		{[]string{"-e", "/bin/sh:10(10)a"}, "error: Reference counter has wrong suffix\n  Command: /bin/sh:10(10)a\n" + caret(len("/bin/sh:10(10)"))},
	} {
		args := append(append([]string{"trace"}, tt.args...), "--", "touch", marker)
		r := ptprobe(t, args...)
		if r.status != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("ptprobe %q: status %d, stderr %q, want 2 and %q", args, r.status, r.stderr, tt.want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("ptprobe %q started the program", args)
		}
	}
	// compare's --max-probes means what trace's does.
	args := []string{"compare", "--max-probes", "2", "-e", "libc:str*", "--", "touch", marker}
	if r := ptprobe(t, args...); r.status != 2 || !strings.Contains(r.stderr, "more than the limit of 2 (--max-probes raises it)") {
		t.Errorf("ptprobe %q: status %d, stderr %q", args, r.status, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("ptprobe %q started the program", args)
	}
}

// caret is the caret line of an error at byte pos of the command.
func caret(pos int) string { return strings.Repeat(" ", len("  Command: ")+pos) + "^" }

// TestCompareUSDT: compare runs the same USDT probes (two locations of
// one, one in a library loaded by dlopen, semaphores all) under both
// backends, which agree on hits and arguments.
func TestCompareUSDT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("compare needs root for its kernel half (tracefs uprobe_events)")
	}
	if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err != nil {
		t.Skipf("compare needs uprobe_events: %v", err)
	}
	if out, err := exec.Command("sh", "-c", "echo '#include <sys/sdt.h>' | gcc -E - >/dev/null").CombinedOutput(); err != nil {
		t.Skipf("no <sys/sdt.h> (Debian's systemtap-sdt-dev): %v %s", err, out)
	}
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "sdt", "-O2", "-ldl")
	lib := filepath.Join(dir, "libptsdt.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fpic", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "sdtlib.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc sdtlib.c: %v\n%s", err, out)
	}
	r := ptprobe(t, "compare", "--runs", "1", "-e", "usdt:"+prog+":ptsdt:twice", "-e", "usdt:"+prog+":ptsdt:work i=$arg1",
		"-e", "usdt:"+lib+":ptsdtlib:call", "--", prog, "9", lib)
	for _, want := range []string{"hits and arguments agree", "ptprobe/twice_2 ", "ptprobe/call "} {
		if r.status != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("compare: status %d, no %q:\n%s\n%s", r.status, want, r.stdout, r.stderr)
		}
	}
	if !regexp.MustCompile(`(?m)^ptprobe/call +9 +9 +equal$`).MatchString(r.stdout) {
		t.Errorf("compare does not count 9 calls on both sides:\n%s", r.stdout)
	}
}

// TestUSDTHighByte: testdata/c/sdthigh.c's probe has -1@%ah (signed) and
// 1@%bh (unsigned) holding the low byte of -3..3 (%al holds 0x7f, which a
// read of the wrong byte shows): the ptrace backend prints %ah signed and
// %bh unsigned, $arg1:s8 and $arg1:u8 the high byte with that sign; the
// kernel backend, whose bitfields are unsigned, prints the unsigned forms
// the same (compare agrees) and refuses the signed one, saying why.
func TestUSDTHighByte(t *testing.T) {
	if out, err := exec.Command("sh", "-c", "echo '#include <sys/sdt.h>' | gcc -E - >/dev/null").CombinedOutput(); err != nil {
		t.Skipf("no <sys/sdt.h> (Debian's systemtap-sdt-dev): %v %s", err, out)
	}
	prog := testprog.Build(t, t.TempDir(), "sdthigh", "-O2")
	r := ptprobe(t, "trace", "-e", "usdt:"+prog+":ptsdt:high", "-e", "p:t/typed usdt:"+prog+":ptsdt:high s=$arg1:s8 u=$arg1:u8 b=$arg2:s8", "--", prog)
	if r.status != 0 {
		t.Fatalf("trace: status %d\n%s", r.status, r.stderr)
	}
	for v := -3; v <= 3; v++ {
		u := v & 0xff
		for _, want := range []string{fmt.Sprintf(" high: (0x%%x) arg1=%d arg2=%d\n", v, u), fmt.Sprintf(" typed: (0x%%x) s=%d u=%d b=%d\n", v, u, v)} {
			re := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(want), "0x%x", "0x[0-9a-f]+"))
			if n := len(re.FindAllString(r.stdout, -1)); n != 1 {
				t.Errorf("%d lines of %q in:\n%s", n, want, r.stdout)
			}
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the kernel half needs root (tracefs uprobe_events)")
	}
	if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err != nil {
		t.Skipf("the kernel half needs uprobe_events: %v", err)
	}
	r = ptprobe(t, "trace", "--backend", "kernel", "-e", "usdt:"+prog+":ptsdt:high", "--", prog)
	if want := "argument arg1 is a signed high-byte register (a USDT argument like -1@%ah), and the kernel's bitfields are unsigned"; r.status != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "($arg1:u8)") {
		t.Errorf("kernel, signed %%ah: status %d, stderr %q; want 2 and %q", r.status, r.stderr, want)
	}
	r = ptprobe(t, "compare", "--runs", "1", "-e", "usdt:"+prog+":ptsdt:high u=$arg1:u8 b=$arg2", "--", prog)
	if r.status != 0 || !regexp.MustCompile(`(?m)^ptprobe/high +7 +7 +equal$`).MatchString(r.stdout) {
		t.Errorf("compare: status %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
}
