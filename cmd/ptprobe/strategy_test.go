package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestStrategyFlags: --count in JSON says how each probe took its hits;
// --no-fast puts a no-stop probe on the stop path with the same count,
// --drop keeps hits + missed equal to the calls, and --verbose says the
// same on stderr.
func TestStrategyFlags(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "chatty", testprog.PIE...)
	const calls = 2000
	run := func(flags ...string) (hits, missed uint64, strategy, stderr string) {
		t.Helper()
		args := append([]string{"trace", "--count", "--format", "json", "--verbose"}, flags...)
		args = append(args, "-e", prog+":probed i=%di:s64", "--", prog, "2000")
		r := ptprobe(t, args...)
		if r.status != 0 {
			t.Fatalf("%v: status %d\n%s", flags, r.status, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var c struct {
			Probe    string `json:"probe"`
			Hits     uint64 `json:"hits"`
			Missed   uint64 `json:"missed"`
			Strategy string `json:"strategy"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c); err != nil {
			t.Fatalf("%v: last line %q: %v", flags, lines[len(lines)-1], err)
		}
		return c.Hits, c.Missed, c.Strategy, r.stderr
	}
	hits, _, s, stderr := run()
	if hits != calls || s != "no-stop (1 sites)" {
		t.Errorf("default: %d hits, strategy %q; want %d, \"no-stop (1 sites)\"", hits, s, calls)
	}
	if !strings.Contains(stderr, "ptprobe/probed: no-stop (1 sites)") {
		t.Errorf("--verbose did not say the strategy: %q", stderr)
	}
	hits, _, s, _ = run("--no-fast")
	if hits != calls || s != "stop (1 sites): the stop path was asked for" {
		t.Errorf("--no-fast: %d hits, strategy %q", hits, s)
	}
	hits, missed, s, _ := run("--drop")
	if hits+missed != calls || !strings.HasPrefix(s, "no-stop") {
		t.Errorf("--drop: %d hits + %d missed, want %d; strategy %q", hits, missed, calls, s)
	}
}

// TestListPaths: list --paths says, per function, the path an entry
// probe would take by the file's rules, and trace takes that path:
// bench.c's bench_push takes the no-stop path, bench_push_ool (a jmp
// back into bench_push 1 byte in) cannot be patched with a jmp.
func TestListPaths(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "bench", testprog.PIE...)
	r := ptprobe(t, "list", "--paths", prog, "bench_push*")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Fatalf("line %q", l)
		}
		got[f[3]] = strings.Join(f[4:], " ")
	}
	if got["bench_push"] != "no-stop" || !strings.HasPrefix(got["bench_push_ool"], "stop: ") || !strings.Contains(got["bench_push_ool"], "cannot be patched with a jmp") {
		t.Fatalf("list --paths:\n%s", r.stdout)
	}
	for fn, want := range map[string]string{"bench_push": "no-stop (1 sites)", "bench_push_ool": "stop (1 sites): "} {
		r := ptprobe(t, "trace", "--count", "--format", "json", "-e", prog+":"+fn, "--", prog, "push", "10")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var c struct {
			Strategy string `json:"strategy"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c); err != nil || !strings.HasPrefix(c.Strategy, want) {
			t.Errorf("trace of %s: strategy %q (%v), want %q...", fn, c.Strategy, err, want)
		}
	}
}

// TestNoStopProfiled: a function built with -pg begins with "call
// *mcount@GOTPCREL(%rip)" after its frame setup; the no-stop patch runs
// that indirect call out of line (arch's push and jmp through the same
// GOT slot), so the probe takes the no-stop path, every call is counted,
// and gprof's call counts are those of the untraced run.
func TestNoStopProfiled(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "chatty", "-pg")
	r := ptprobe(t, "list", "--paths", prog, "probed")
	if !strings.Contains(r.stdout, "probed  no-stop") {
		t.Fatalf("list --paths:\n%s%s", r.stdout, r.stderr)
	}
	run := func(name string, argv ...string) string {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "GMON_OUT_PREFIX="+filepath.Join(dir, name))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return string(out)
	}
	want := run("untraced", prog, "500")
	got := run("traced", ptprobeBin, "trace", "--count", "--format", "json", "-o", filepath.Join(dir, "count"), "-e", prog+":probed i=%di:s64", "--", prog, "500")
	if got != want {
		t.Fatalf("output differs from the untraced run")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "count"))
	var c struct {
		Hits     uint64 `json:"hits"`
		Strategy string `json:"strategy"`
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c); err != nil || c.Hits != 500 || c.Strategy != "no-stop (1 sites)" {
		t.Fatalf("count %q: %+v (%v)", b, c, err)
	}
	calls := func(name string) string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, name+".*"))
		if len(files) != 1 {
			t.Skipf("skipped: no gmon.out of the %s run (%v)", name, files)
		}
		out, err := exec.Command("gprof", "-b", "-p", prog, files[0]).Output()
		if err != nil {
			t.Skipf("skipped: gprof: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "probed" {
				return l
			}
		}
		t.Fatalf("gprof of the %s run names no probed:\n%s", name, out)
		return ""
	}
	u, tr := strings.Fields(calls("untraced")), strings.Fields(calls("traced"))
	if len(u) < 4 || len(tr) < 4 || u[3] != "500" || tr[3] != u[3] {
		t.Errorf("gprof's calls of probed: untraced %v, traced %v", u, tr)
	}
}
