package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// caretAt returns what of the "Command:" line the caret of an error_log
// style message stands under, "" when there is none.
func caretAt(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for i, l := range lines {
		if _, cmd, ok := strings.Cut(l, "Command: "); ok && i+1 < len(lines) {
			col := strings.Index(lines[i+1], "^") - (len(l) - len(cmd))
			if col >= 0 && col <= len(cmd) {
				return cmd[col:]
			}
		}
	}
	return ""
}

// TestGarbledSpecs: the mutations of valid specs that the reliability
// review saw taken for libraries that may load later, and unknown
// libraries and symbols: each exits 2 with a caret under the byte where
// the spec goes wrong, or with the closest names, and the program never
// starts; with either backend.
func TestGarbledSpecs(t *testing.T) {
	cases := []struct {
		spec  string
		caret string   // what the caret stands under; "" for none
		want  []string // in stderr
	}{
		{"lig(%di):string", "(%di):string", []string{"Invalid library name"}},
		{"libc:srle(%di):stxring3", "(%di):stxring3", []string{"Unknown symbol syntax"}},
		{"lsize=%di:u6", "=%di:u6", []string{"Invalid library name"}},
		{"%di:u64", "%di:u64", []string{"Invalid library name"}},
		{"libcc:malloc", "", []string{`no library "libcc"`, "(did you mean libc"}},
		{"libc:mallocc", "", []string{`unknown symbol "mallocc"`, "(did you mean malloc"}},
	}
	backends := [][]string{{"--backend", "ptrace"}}
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err == nil {
			backends = append(backends, []string{"--backend", "kernel"})
		}
	}
	for _, backend := range backends {
		for _, c := range cases {
			t.Run(backend[1]+"/"+c.spec, func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "started")
				args := append(append([]string{"trace"}, backend...), "-e", c.spec, "--", "/bin/sh", "-c", "touch "+marker)
				r := ptprobe(t, args...)
				if r.status != 2 || !strings.HasPrefix(r.stderr, "ptprobe: ") {
					t.Errorf("status %d, want 2; stderr %q", r.status, r.stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("stderr %q does not say %q", r.stderr, w)
					}
				}
				if got := caretAt(r.stderr); got != c.caret {
					t.Errorf("caret under %q, want %q:\n%s", got, c.caret, r.stderr)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Errorf("the program was started despite the bad probe")
				}
			})
		}
	}
}

// TestLibraryNamesCLI: an empty event name after a group is the kernel's
// default name; a library found only through the program's DT_RUNPATH is
// probed, with either backend; an existing library the program never
// loads lets it run and is named at exit.
func TestLibraryNamesCLI(t *testing.T) {
	testprog.SystemProbes(t, false)
	marker := filepath.Join(t.TempDir(), "started")
	r := ptprobe(t, "trace", "--count", "-e", "r:g/ libc:calloc $retval:s64", "--", "/bin/sh", "-c", "touch "+marker)
	if _, err := os.Stat(marker); r.status != 0 || err != nil || !strings.Contains(r.stdout, "g/calloc__return ") {
		t.Errorf("r:g/ libc:calloc: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}

	prog, _ := testprog.BuildRunpath(t, t.TempDir(), false)
	backends := []string{"ptrace"}
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/sys/kernel/tracing/uprobe_events"); err == nil {
			backends = append(backends, "kernel")
		}
	}
	for _, b := range backends {
		r := ptprobe(t, "trace", "--backend", b, "--count", "-e", "libptplugin:plugin_func", "--", prog, "5")
		if r.status != 0 || !strings.HasSuffix(r.stdout, "sum=70\nptprobe/plugin_func 5\n") {
			t.Errorf("%s backend, RUNPATH library: status %d, stdout %q, stderr %q", b, r.status, r.stdout, r.stderr)
		}
	}

	// A real library of the system that /bin/sh does not load.
	lib := "libz"
	if _, ok := elfsym.SearchLibrary(lib); !ok {
		t.Skipf("skipped the rest: no %s on this system", lib)
	}
	marker = filepath.Join(t.TempDir(), "started")
	r = ptprobe(t, "trace", "-e", "p:t/unused "+lib+":inflate", "--", "/bin/sh", "-c", "touch "+marker)
	want := fmt.Sprintf("ptprobe: probe t/unused (%s:inflate) was never armed", lib)
	if _, err := os.Stat(marker); r.status != 0 || err != nil || !strings.Contains(r.stderr, want) {
		t.Errorf("unused library: status %d, stderr %q (want %q), started: %v", r.status, r.stderr, want, err == nil)
	}
}

// TestArgNPastEntry: $argN at an offset past a function's first
// instruction is refused on both backends with the kernel's message
// ("$arg* can be used only on function entry or exit") and a caret under
// the $arg, and the program never starts; at the entry it is taken. As
// root, the kernel's own uprobe_events is asked the same line (it refuses
// $argN in every uprobe) and must give the same message at the same
// place.
func TestArgNPastEntry(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	spec := prog + ":push_func+1 a=$arg1"
	const msg = "$arg* can be used only on function entry or exit"
	backends := [][]string{{"--backend", "ptrace"}}
	tracing := "/sys/kernel/tracing"
	root := os.Geteuid() == 0
	if _, err := os.Stat(filepath.Join(tracing, "uprobe_events")); root && err == nil {
		backends = append(backends, []string{"--backend", "kernel"})
	}
	for _, backend := range backends {
		t.Run(backend[1], func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			r := ptprobe(t, append(append([]string{"trace"}, backend...), "-e", spec, "--", "/bin/sh", "-c", "touch "+marker)...)
			if r.status != 2 || !strings.Contains(r.stderr, msg) || !strings.Contains(r.stderr, "push_func+0x1") {
				t.Errorf("status %d, want 2, and the kernel's message; stderr:\n%s", r.status, r.stderr)
			}
			if got := caretAt(r.stderr); got != "$arg1" {
				t.Errorf("caret under %q, want $arg1:\n%s", got, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the program was started despite the bad probe")
			}
			if r := ptprobe(t, append(append([]string{"trace", "--count"}, backend...), "-e", prog+":push_func a=$arg1", "-o", os.DevNull, "--", prog, "2")...); r.status != 3 {
				t.Errorf("$arg1 at the entry: status %d, want the program's 3; stderr:\n%s", r.status, r.stderr)
			}
		})
	}
	if len(backends) < 2 {
		t.Logf("not compared with the kernel's own refusal: needs root and %s/uprobe_events", tracing)
		return
	}
	// The same line as the kernel takes it, in a group of this test's
	// own; the kernel defines nothing of it.
	sym, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer sym.Close()
	fn, err := sym.Lookup("push_func")
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("p:ptprobe_argn_%d/a %s:0x%x a=$arg1", os.Getpid(), prog, fn.Offset+1)
	f, err := os.OpenFile(filepath.Join(tracing, "uprobe_events"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.WriteString(line + "\n")
	f.Close()
	if werr == nil {
		os.WriteFile(filepath.Join(tracing, "uprobe_events"), []byte(fmt.Sprintf("-:ptprobe_argn_%d/a\n", os.Getpid())), 0)
		t.Fatalf("the kernel took %q", line)
	}
	log, _ := os.ReadFile(filepath.Join(tracing, "error_log"))
	i := strings.LastIndex(string(log), line)
	if i < 0 {
		t.Fatalf("error_log has no entry for %q:\n%s", line, log)
	}
	entry := string(log)[strings.LastIndex(string(log[:i]), "\n[")+1:]
	if !strings.Contains(entry, msg) || caretAt(entry) != "$arg1" {
		t.Errorf("the kernel says\n%s\nwant %q with a caret under $arg1", entry, msg)
	}
}
