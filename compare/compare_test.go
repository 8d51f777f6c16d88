package compare_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/compare"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

func specs(t *testing.T, texts ...string) []*uprobe.Spec {
	t.Helper()
	var s []*uprobe.Spec
	for _, text := range texts {
		spec, err := uprobe.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, spec)
	}
	return s
}

// TestRunAgrees: the two backends agree on a program's entry and return
// probes, hit for hit, argument for argument; the report says so in
// text and JSON.
func TestRunAgrees(t *testing.T) {
	testprog.KernelUprobes(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	rep, err := compare.Run(context.Background(), specs(t,
		"p:t/push "+prog+":push_func a=%di:s64 b=%si:s64",
		"r:t/ret "+prog+":push_func v=$retval:s64"), []string{prog, "40"}, &compare.Options{Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Agree || !rep.OutputsEqual || rep.Runs != 1 || len(rep.Probes) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, p := range rep.Probes {
		if p.KernelHits != 40 || p.PtraceHits != 40 || !p.ArgsEqual {
			t.Errorf("%s: kernel %d hits, ptrace %d, args equal %v; want 40, 40, true", p.Probe, p.KernelHits, p.PtraceHits, p.ArgsEqual)
		}
	}
	// probes exits with 3; both runs did.
	if rep.Kernel.Hits != 80 || rep.Ptrace.Hits != 80 || rep.Kernel.Status != 3 || rep.Ptrace.Status != 3 {
		t.Errorf("kernel %+v, ptrace %+v", rep.Kernel, rep.Ptrace)
	}
	if rep.Program[0] != prog {
		t.Errorf("program %q", rep.Program)
	}
	text := string(rep.AppendText(nil))
	if !strings.Contains(text, "t/push ") || !strings.HasSuffix(text, "\nhits and arguments agree\n") {
		t.Errorf("text report:\n%s", text)
	}
	var back compare.Report
	if err := json.Unmarshal(rep.AppendJSON(nil), &back); err != nil || !back.Agree || len(back.Probes) != 2 || back.Probes[0].KernelHits != 40 {
		t.Errorf("JSON report %s: %v", rep.AppendJSON(nil), err)
	}
}

// TestRunDiffers: a program that really runs differently each time
// (flip: 10 calls, then 12, then 10) is reported as differing, with the
// first differing events. Runs: unprobed (10 calls), kernel (12),
// ptrace (10).
func TestRunDiffers(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	flip := testprog.Build(t, dir, "flip", testprog.PIE...)
	rep, err := compare.Run(context.Background(), specs(t, flip+":flipped i=%di:s64"), []string{flip, filepath.Join(dir, "state")}, &compare.Options{Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Probes[0]
	if rep.Agree || rep.OutputsEqual || p.KernelHits != 12 || p.PtraceHits != 10 || p.ArgsEqual {
		t.Fatalf("report: %+v", rep)
	}
	if p.KernelFirst != "thread #1 hit #11: i=10" || p.PtraceFirst != "(none)" {
		t.Errorf("first differences %q and %q", p.KernelFirst, p.PtraceFirst)
	}
	if text := string(rep.AppendText(nil)); !strings.Contains(text, "<- hits differ") || !strings.HasSuffix(text, "\nthe backends DIFFER\n") {
		t.Errorf("text report:\n%s", text)
	}
}

// TestRunOutputPassedThrough: with Options.Stdout the program's output of
// every run goes there (unprobed, kernel, ptrace: 3 runs a round).
func TestRunOutputPassedThrough(t *testing.T) {
	testprog.KernelUprobes(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "flip", testprog.PIE...)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// flip's runs alternate 10 and 12 calls: sums 90, 132, 90, 132.
	rep, err := compare.Run(context.Background(), specs(t, prog+":flipped"), []string{prog, filepath.Join(dir, "state")},
		&compare.Options{Runs: 1, Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out.Name())
	if string(b) != "90\n132\n90\n" {
		t.Errorf("output %q, want the 3 runs' 90, 132, 90", b)
	}
	// Not collected: not compared, the statuses only.
	if !rep.OutputsEqual {
		t.Errorf("outputs passed through, yet compared: %+v", rep)
	}
}

// TestRunRefuses: a bad probe, no program or no probe are errors, and
// nothing runs; nor after ctx is done. None of it needs the kernel
// backend: the program never starts.
func TestRunRefuses(t *testing.T) {
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	marker := filepath.Join(t.TempDir(), "started")
	argv := []string{"/bin/sh", "-c", "touch " + marker}
	_, err := compare.Run(context.Background(), specs(t, "libc:no_such_function_here"), argv, nil)
	if err == nil || !strings.Contains(err.Error(), "no_such_function_here") {
		t.Errorf("unknown symbol: %v", err)
	}
	if _, err := compare.Run(context.Background(), nil, argv, nil); err == nil {
		t.Errorf("no probe: no error")
	}
	if _, err := compare.Run(context.Background(), specs(t, prog+":push_func"), nil, nil); err == nil {
		t.Errorf("no program: no error")
	}
	if _, err := compare.Run(context.Background(), specs(t, prog+":push_func"), []string{"no-such-program-here"}, nil); err == nil {
		t.Errorf("a program not in PATH: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := compare.Run(ctx, specs(t, "libc:malloc"), argv, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ctx done: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the program was started")
	}
}
