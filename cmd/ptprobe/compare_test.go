package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

type compareJSON struct {
	Probes []struct {
		Probe      string `json:"probe"`
		KernelHits int    `json:"kernel_hits"`
		PtraceHits int    `json:"ptrace_hits"`
		ArgsEqual  bool   `json:"args_equal"`
	} `json:"probes"`
	Agree bool `json:"agree"`
}

func compare(t *testing.T, args ...string) (result, compareJSON) {
	t.Helper()
	r := ptprobe(t, append([]string{"compare", "--format", "json"}, args...)...)
	var c compareJSON
	if r.status != 2 {
		if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
			t.Fatalf("compare printed %q (stderr %q): %v", r.stdout, r.stderr, err)
		}
	}
	return r, c
}

// TestCompareAgrees: the two backends agree on the engine's targets, a
// multi-threaded target and real programs probed in their libraries.
func TestCompareAgrees(t *testing.T) {
	testprog.SystemProbes(t, true)
	requireKernelUprobes(t)
	dir := t.TempDir()
	probes := testprog.Build(t, dir, "probes", testprog.PIE...)
	threads := testprog.Build(t, dir, "threads", testprog.PIE...)
	rets := testprog.Build(t, dir, "retprobes", testprog.PIE...)
	input := filepath.Join(dir, "input")
	var lines []string
	for i := 0; i < 2000; i++ {
		lines = append(lines, strings.Repeat(string(rune('a'+i*7%26)), 1+i%13))
	}
	os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644)

	cases := []struct {
		name  string
		specs []string
		argv  []string
		bins  []string
	}{
		{"probes", []string{
			"p:t/push " + probes + ":push_func a=%di:s64 b=%si:s64",
			"p:t/rip " + probes + ":rip_func x=%di:s64",
			"p:t/mid " + probes + ":mid_func+8 rbx=%bx:s64",
			"p:t/call " + probes + ":call_func",
			"p:t/jcc " + probes + ":jcc_func+3 x=%di:s64",
			"p:t/icall " + probes + ":icall_func+4 x=%di:s64",
			"r:t/ret " + probes + ":push_func v=$retval:s64",
		}, []string{probes, "300"}, nil},
		// Not recurse(10000): the kernel stops hijacking returns 64
		// frames deep (MAX_URETPROBE_DEPTH), ptprobe does not.
		{"retprobes", []string{
			"r:t/plain " + rets + ":plain v=$retval:s64",
			"r:t/l1 " + rets + ":level1 v=$retval:s64",
			"r:t/l2 " + rets + ":level2 v=$retval:s64",
			"r:t/l3 " + rets + ":level3 v=$retval:s64",
			"r:t/multi " + rets + ":multi_ret v=$retval:s64",
			"r:t/ta " + rets + ":tail_a v=$retval:s64",
			"r:t/tb " + rets + ":tail_b v=$retval:s64",
		}, []string{rets, "50"}, nil},
		{"threads", []string{"p:t/probed " + threads + ":probed t=%di:s64 i=%si:s64"}, []string{threads, "4", "2000"}, nil},
		{"ls", []string{"p:t/malloc libc:malloc size=%di:u64", "r:t/mallocret libc:malloc ptr=$retval"},
			[]string{"/bin/ls", "-l", "/usr/bin"}, []string{"/bin/ls"}},
		// No heap pointers: the kernel maps its uprobe XOL page into
		// the program, which moves later mmaps (and so large malloc
		// chunks) down by a page in the kernel run.
		{"sort", []string{"p:t/malloc libc:malloc size=%di:u64", "p:t/getenv libc:getenv name=+0(%di):string", "p:t/fopen libc:fopen path=+0(%di):string mode=+0(%si):string"},
			[]string{"/usr/bin/sort", "--parallel=1", input}, []string{"/usr/bin/sort"}},
		{"grep-pcre2", []string{"p:t/match libpcre2-8:pcre2_match_8 len=%dx:u64 start=%cx:u64 first=+0(%si):u8"},
			[]string{"/bin/grep", "-cP", "a+b|c{3}", input}, []string{"/bin/grep"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, b := range c.bins {
				if _, err := os.Stat(b); err != nil {
					t.Skipf("skipped: %s is not on this machine", b)
				}
			}
			var args []string
			for _, s := range c.specs {
				args = append(args, "-e", s)
			}
			r, res := compare(t, append(append(args, "--"), c.argv...)...)
			if r.status != 0 || !res.Agree {
				t.Fatalf("compare status %d (want 0): %s\n%s", r.status, r.stdout, r.stderr)
			}
			total := 0
			for _, p := range res.Probes {
				total += p.KernelHits
			}
			if total == 0 {
				t.Errorf("no probe fired: %s", r.stdout)
			}
		})
	}
}

// TestCompareDiffers: two runs that really differ are reported, exit 1,
// with the first differing events.
func TestCompareDiffers(t *testing.T) {
	requireKernelUprobes(t)
	dir := t.TempDir()
	flip := testprog.Build(t, dir, "flip", testprog.PIE...)
	state := filepath.Join(dir, "state")
	// Runs: unprobed (creates state: 10 calls), kernel (removes it: 12
	// calls), ptrace (10 calls).
	r := ptprobe(t, "compare", "-e", flip+":flipped i=%di:s64", "--", flip, state)
	if r.status != 1 {
		t.Fatalf("status %d, want 1:\n%s%s", r.status, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "12         10") && !strings.Contains(r.stdout, " 12 ") {
		t.Errorf("report does not show 12 against 10 hits:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "kernel: thread #1 hit #11: i=10") || !strings.Contains(r.stdout, "ptrace: (none)") {
		t.Errorf("report does not show the first differing events:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "DIFFER") {
		t.Errorf("report does not say the backends differ:\n%s", r.stdout)
	}
}

// TestCompareMultithreaded: a real multi-threaded program of the machine
// gets the same hits under both backends. Only deterministic counts are
// compared: xz's own number of mallocs varies by one from run to run (with
// either backend, or none), and which thread encodes which block too.
func TestCompareMultithreaded(t *testing.T) {
	testprog.SystemProbes(t, true)
	requireKernelUprobes(t)
	if _, err := os.Stat("/usr/bin/xz"); err != nil {
		t.Skip("skipped: /usr/bin/xz is not on this machine")
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "input")
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), i%97))
	}
	os.WriteFile(input, []byte(b.String()), 0o644)
	r, res := compare(t, "-e", "p:t/header liblzma:lzma_block_header_encode", "-e", "p:t/index liblzma:lzma_index_append",
		"-e", "p:t/pthread_create libc:pthread_create",
		"--", "/usr/bin/xz", "-T2", "--block-size=256KiB", "-c", input)
	if r.status == 2 {
		t.Fatalf("compare failed: %s", r.stderr)
	}
	for _, p := range res.Probes {
		if p.KernelHits != p.PtraceHits || p.KernelHits == 0 {
			t.Errorf("%s: kernel %d hits, ptrace %d", p.Probe, p.KernelHits, p.PtraceHits)
		}
	}
}

// TestCompareSameCPU: the ptrace run with the program on the tracer's CPU
// agrees as well.
func TestCompareSameCPU(t *testing.T) {
	requireKernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "threads", testprog.PIE...)
	r, res := compare(t, "--same-cpu", "-e", "p:t/probed "+prog+":probed t=%di:s64 i=%si:s64", "--", prog, "3", "500")
	if r.status != 0 || !res.Agree || len(res.Probes) != 1 || res.Probes[0].PtraceHits != 1500 {
		t.Fatalf("status %d: %s %s", r.status, r.stdout, r.stderr)
	}
}
