package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/compare"
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

func runCompare(t *testing.T, args ...string) (result, compareJSON) {
	t.Helper()
	// One round: these tests are about hits and arguments, which only
	// the first round's runs are compared on.
	r := ptprobe(t, append([]string{"compare", "--format", "json", "--runs", "1"}, args...)...)
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
	testprog.KernelUprobes(t)
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
			r, res := runCompare(t, append(append(args, "--"), c.argv...)...)
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
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	flip := testprog.Build(t, dir, "flip", testprog.PIE...)
	state := filepath.Join(dir, "state")
	// Runs: unprobed (creates state: 10 calls), kernel (removes it: 12
	// calls), ptrace (10 calls).
	r := ptprobe(t, "compare", "--runs", "1", "-e", flip+":flipped i=%di:s64", "--", flip, state)
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
	testprog.KernelUprobes(t)
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
	// The workers share the blocks differently from run to run:
	// --unordered. lzma_index_append's arguments are each block's sizes,
	// the same in every run.
	r, res := runCompare(t, "--unordered", "-e", "p:t/header liblzma:lzma_block_header_encode",
		"-e", "p:t/index liblzma:lzma_index_append unpadded=%dx:u64 size=%cx:u64",
		"-e", "p:t/pthread_create libc:pthread_create",
		"--", "/usr/bin/xz", "-T2", "--block-size=256KiB", "-c", input)
	if r.status != 0 || !res.Agree {
		t.Fatalf("status %d, agree %v: %s %s", r.status, res.Agree, r.stdout, r.stderr)
	}
	for _, p := range res.Probes {
		if p.KernelHits != p.PtraceHits || p.KernelHits == 0 || !p.ArgsEqual {
			t.Errorf("%s: kernel %d hits, ptrace %d, args equal %v", p.Probe, p.KernelHits, p.PtraceHits, p.ArgsEqual)
		}
	}
}

// TestCompareSQLite: sqlite3 producing 20000 rows, probed in its library:
// the no-stop path and kernel uprobes see the same steps and the same
// column arguments, in order.
func TestCompareSQLite(t *testing.T) {
	testprog.KernelUprobes(t)
	if _, err := os.Stat("/usr/bin/sqlite3"); err != nil {
		t.Skip("skipped: /usr/bin/sqlite3 is not on this machine (apt-get install sqlite3)")
	}
	r, res := runCompare(t, "-e", "p:t/step libsqlite3:sqlite3_step", "-e", "p:t/text libsqlite3:sqlite3_column_text col=%si:s32",
		"--", "/usr/bin/sqlite3", ":memory:", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<20000) SELECT x, 'r'||x FROM c;")
	if r.status != 0 || !res.Agree {
		t.Fatalf("status %d, agree %v: %s %s", r.status, res.Agree, r.stdout, r.stderr)
	}
	want := map[string]int{"t/step": 20001, "t/text": 40000}
	for _, p := range res.Probes {
		if p.KernelHits != want[p.Probe] || p.PtraceHits != want[p.Probe] || !p.ArgsEqual {
			t.Errorf("%s: kernel %d hits, ptrace %d (want %d), args equal %v", p.Probe, p.KernelHits, p.PtraceHits, want[p.Probe], p.ArgsEqual)
		}
	}
}

// TestCompareSameCPU: the ptrace run with the program on the tracer's CPU
// agrees as well.
func TestCompareSameCPU(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "threads", testprog.PIE...)
	r, res := runCompare(t, "--same-cpu", "-e", "p:t/probed "+prog+":probed t=%di:s64 i=%si:s64", "--", prog, "3", "500")
	if r.status != 0 || !res.Agree || len(res.Probes) != 1 || res.Probes[0].PtraceHits != 1500 {
		t.Fatalf("status %d: %s %s", r.status, r.stdout, r.stderr)
	}
}

// TestCompareCost: over several interleaved rounds compare reports, per
// backend, the median cost per hit with its spread, or that it is below
// the noise of the unprobed runs; never a negative cost, in JSON or text.
func TestCompareCost(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	args := []string{"compare", "--runs", "3", "-e", "p:t/push " + prog + ":push_func", "--", prog, "500"}
	r := ptprobe(t, append(args[:1:1], append([]string{"--format", "json"}, args[1:]...)...)...)
	if r.status != 0 {
		t.Fatalf("status %d: %s %s", r.status, r.stdout, r.stderr)
	}
	var rep compare.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if rep.Runs != 3 || !(rep.BaselineMinNS <= rep.BaselineNS && rep.BaselineNS <= rep.BaselineMaxNS) || rep.BaselineMinNS <= 0 {
		t.Errorf("runs %d, unprobed %d [%d-%d] ns", rep.Runs, rep.BaselineNS, rep.BaselineMinNS, rep.BaselineMaxNS)
	}
	for name, br := range map[string]compare.BackendReport{"kernel": rep.Kernel, "ptrace": rep.Ptrace} {
		if br.Hits != 500 || !(br.WallMinNS <= br.WallNS && br.WallNS <= br.WallMaxNS) {
			t.Errorf("%s: %d hits, wall %d [%d-%d] ns", name, br.Hits, br.WallNS, br.WallMinNS, br.WallMaxNS)
		}
		if br.UsPerHitMin < 0 || br.UsPerHitMax < br.UsPerHitMin || br.NoiseUsPerHit < 0 {
			t.Errorf("%s: cost spread [%v-%v], noise %v", name, br.UsPerHitMin, br.UsPerHitMax, br.NoiseUsPerHit)
		}
		if (br.UsPerHit == nil) != br.BelowNoise || br.UsPerHit != nil && (*br.UsPerHit <= br.NoiseUsPerHit || *br.UsPerHit < br.UsPerHitMin || *br.UsPerHit > br.UsPerHitMax) {
			t.Errorf("%s: cost %v, below noise %v, spread [%v-%v], noise %v", name, br.UsPerHit, br.BelowNoise, br.UsPerHitMin, br.UsPerHitMax, br.NoiseUsPerHit)
		}
	}

	r = ptprobe(t, args...)
	if r.status != 0 {
		t.Fatalf("status %d: %s %s", r.status, r.stdout, r.stderr)
	}
	cost := regexp.MustCompile(`(?m)^(kernel|ptrace) +[0-9.]+ \[[0-9.]+-[0-9.]+\] +500  (below noise \(the unprobed runs spread [0-9.]+ µs/hit\)|[0-9.]+ \[[0-9.]+-[0-9.]+\], noise [0-9.]+)$`)
	if got := cost.FindAllString(r.stdout, -1); len(got) != 2 || !strings.Contains(r.stdout, "median of 3 runs each, interleaved") {
		t.Errorf("text report:\n%s", r.stdout)
	}
}
