package engine_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestNoStopThreads: 8 threads x 20000 hits on the no-stop path, each
// event with its string and integer fetch-args: every hit is there, once,
// in each thread's own order, with the thread's own name.
func TestNoStopThreads(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "named", testprog.PIE...)
	want, _ := testprog.Run(t, prog, "8", "20000")
	tr := runTraced(t, specs(t, "p:t/named "+prog+":named s=+0(%di):string i=%si:s64"), true, prog, "8", "20000")
	if tr.out != want || tr.result.ExitCode != 0 {
		t.Fatalf("traced: %q, status %d; untraced %q", tr.out, tr.result.ExitCode, want)
	}
	p := tr.probe(t, "t/named")
	if n, stop, why := p.Path(); n != 1 || stop != 0 {
		t.Fatalf("path: %d no-stop sites, %d stop (%v); want the no-stop path", n, stop, why)
	}
	if len(tr.hits) != 160000 || p.Hits() != 160000 || p.Missed() != 0 {
		t.Fatalf("%d events, %d hits, %d missed; want 160000, 160000, 0", len(tr.hits), p.Hits(), p.Missed())
	}
	next := map[int]int64{}
	name := map[int]string{}
	names := map[string]bool{}
	for _, h := range tr.hits {
		s, i := h.args[0].S, int64(h.args[1].U)
		if h.args[0].Fault || h.args[1].Fault {
			t.Fatalf("thread %d: a fetch-arg faulted: %+v", h.tid, h.args)
		}
		if n, ok := name[h.tid]; ok && n != s {
			t.Fatalf("thread %d: name %q, then %q", h.tid, n, s)
		}
		name[h.tid] = s
		if i != next[h.tid] {
			t.Fatalf("thread %d (%s): i=%d, want %d", h.tid, s, i, next[h.tid])
		}
		next[h.tid]++
	}
	for tid, n := range next {
		if n != 20000 {
			t.Errorf("thread %d: %d hits, want 20000", tid, n)
		}
		names[name[tid]] = true
	}
	if len(next) != 8 || len(names) != 8 {
		t.Errorf("%d threads, %d names: want 8 each (%v)", len(next), len(names), names)
	}
}

// TestNoStopOff: Options.StopPath keeps every probe on the stop path, with
// the same counts.
func TestNoStopOff(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "named", testprog.PIE...)
	tr := launchTraced(t, engine.Options{StopPath: true}, specs(t, "p:t/named "+prog+":named s=+0(%di):string"), false, []string{prog, "2", "500"})
	p := tr.probe(t, "t/named")
	if n, stop, why := p.Path(); n != 0 || stop != 1 || why == nil || p.Hits() != 1000 {
		t.Errorf("path %d no-stop, %d stop (%v), %d hits; want the stop path, 1000 hits", n, stop, why, p.Hits())
	}
}

// TestNoStopDrop: with DropWhenFull, every hit is an event or counted
// missed, never lost unaccounted and never waited for.
func TestNoStopDrop(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "named", testprog.PIE...)
	tr := launchTraced(t, engine.Options{DropWhenFull: true}, specs(t, "p:t/named "+prog+":named s=+0(%di):string"), true, []string{prog, "2", "200000"})
	p := tr.probe(t, "t/named")
	if p.Hits()+p.Missed() != 400000 || uint64(len(tr.hits)) != p.Hits() {
		t.Errorf("%d hits (%d events) + %d missed, want 400000", p.Hits(), len(tr.hits), p.Missed())
	}
	t.Logf("%d hits, %d missed", p.Hits(), p.Missed())
}

// TestNoStopSlowConsumer: an OnEvent slower than the program fills the
// ring for seconds on end; the recorders wait for room (the heartbeat
// beats on its own goroutine while the drain is busy), and every hit is
// an event: none missed, none lost.
func TestNoStopSlowConsumer(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "named", testprog.PIE...)
	const threads, calls = 2, 150000
	var events int
	cfg := engine.Options{OnEvent: func(*uprobe.Event) {
		events++
		for end := time.Now().Add(3 * time.Microsecond); time.Now().Before(end); {
		}
	}}
	s, err := uprobe.Parse("p:t/named " + prog + ":named s=+0(%di):string")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Probes = []backend.Probe{{Spec: s}}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cfg.Process.Stdout = devnull
	start := time.Now()
	tr, err := engine.Launch([]string{prog, fmt.Sprint(threads), fmt.Sprint(calls)}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Wait()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("wait: %v, status %d", err, res.ExitCode)
	}
	p := tr.Probes()[0]
	if p.Hits() != threads*calls || p.Missed() != 0 || events != threads*calls {
		t.Fatalf("%d hits, %d missed, %d events; want %d, 0, %d", p.Hits(), p.Missed(), events, threads*calls, threads*calls)
	}
	t.Logf("%d events in %v", events, time.Since(start))
}

// TestNoStopPlacedStrings: a string fetch-arg read in each kind of memory
// (testdata/c/placed.c): .rodata, .bss, the main thread's stack, the heap,
// a thread's stack, a string that runs into an unmapped page, an unmapped
// page, and pages of .bss and of the main stack that the program made
// PROT_NONE, give on the no-stop path what they give on the stop path and
// under the kernel (a fault where the program could not read); and a
// pointer into a page that another thread maps and unmaps all the while
// never kills the program (docs/DESIGN.md §8).
func TestNoStopPlacedStrings(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "placed", append(testprog.PIE, "-pthread")...)
	const rounds, race = 50, 20000
	argv := []string{prog, fmt.Sprint(rounds), fmt.Sprint(race)}
	want := func(kind, round int) (string, bool) {
		switch kind {
		case 0:
			return "rodata", false
		case 1:
			return fmt.Sprintf("stack-%d", round), false
		case 2:
			return fmt.Sprintf("bss-%d", round), false
		case 3:
			return fmt.Sprintf("heap-%d", round), false
		case 4:
			return fmt.Sprintf("thread-%d", round), false
		}
		return "", true // 5, 6, 8, 9: the kernel's strncpy_from_user faults too
	}
	for _, stopPath := range []bool{false, true} {
		t.Run(fmt.Sprintf("StopPath=%v", stopPath), func(t *testing.T) {
			tr := launchTraced(t, engine.Options{StopPath: stopPath}, specs(t, "p:t/placed "+prog+":probed s=+0(%di):string k=%si:s64"), true, argv)
			if tr.out != "ok\n" || tr.result.ExitCode != 0 {
				t.Fatalf("traced: %q, status %d", tr.out, tr.result.ExitCode)
			}
			if n, stop, why := tr.probe(t, "t/placed").Path(); stopPath != (n == 0) || stopPath != (stop == 1) {
				t.Fatalf("path: %d no-stop sites, %d stop (%v)", n, stop, why)
			}
			seen := map[int]int{}
			raced := 0
			for _, h := range tr.hits {
				kind := int(h.args[1].U)
				s := h.args[0]
				if kind == 7 {
					// The page is mapped zeroed, then "race" is copied in.
					if !s.Fault && !strings.HasPrefix("race", s.S) {
						t.Fatalf("kind 7: %q, want a prefix of \"race\" or a fault", s.S)
					}
					raced++
					continue
				}
				w, fault := want(kind, seen[kind])
				if s.Fault != fault || s.S != w {
					t.Fatalf("kind %d, call %d: %q (fault %v), want %q (fault %v)", kind, seen[kind], s.S, s.Fault, w, fault)
				}
				seen[kind]++
			}
			for _, kind := range []int{0, 1, 2, 3, 4, 5, 6, 8, 9} {
				if n := seen[kind]; n != rounds {
					t.Errorf("kind %d: %d calls, want %d", kind, n, rounds)
				}
			}
			if raced != race {
				t.Errorf("%d racing calls, want %d", raced, race)
			}
		})
	}
}

// TestNoStopFault: the probed instruction faults on the no-stop path
// (testdata/c/fault.c, whose SIGSEGV handler counts faults seen at
// load_word's address): the program's handler sees the fault at the
// probed address, not in the thunk, so its output is the untraced one.
// Before, it printed at_load_word=0.
func TestNoStopFault(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "fault", testprog.PIE...)
	const n = 50
	want, _ := testprog.Run(t, prog, fmt.Sprint(n))
	tr := runTraced(t, specs(t, "p:test/load "+prog+":load_word"), false, prog, fmt.Sprint(n))
	p := tr.probe(t, "test/load")
	if sites, stop, why := p.Path(); sites != 1 || stop != 0 {
		t.Fatalf("path: %d no-stop sites, %d stop (%v); want the no-stop path", sites, stop, why)
	}
	if tr.out != want {
		t.Errorf("traced program printed %q, untraced %q", tr.out, want)
	}
	if got := p.Hits(); got != 2*n {
		t.Errorf("hits = %d, want %d", got, 2*n)
	}
}
