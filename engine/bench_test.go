package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// benchHits runs testdata/c/bench.c with b.N calls of one function under
// the given probe and reports the loop's cost per call in µs (the program
// times its own loop, so start-up and arming are not counted).
func benchHits(b *testing.B, fn string, withArgs, stopPath bool, handlers uprobe.Handlers) {
	dir := b.TempDir()
	prog := testprog.Build(b, dir, "bench", testprog.PIE...)
	spec := "p:bench/hit " + prog + ":bench_" + fn
	if withArgs {
		spec += " x=%di:s64 name=+0(%si):string"
	}
	s, err := uprobe.Parse(spec)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	events := 0
	cfg := engine.Options{Probes: []backend.Probe{{Spec: s, Handlers: handlers}}, Process: backend.Process{Stdout: out}, StopPath: stopPath}
	if withArgs {
		cfg.OnEvent = func(*uprobe.Event) { events++ }
	}
	b.ResetTimer()
	sess, err := engine.Launch([]string{prog, fn, fmt.Sprint(b.N)}, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sess.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := sess.Probes()[0].Hits(); got != uint64(b.N) {
		b.Fatalf("%d hits, want %d", got, b.N)
	}
	text, _ := os.ReadFile(out.Name())
	var ns, calls, sum int64
	if _, err := fmt.Sscanf(string(text), "loop_ns=%d calls=%d sum=%d", &ns, &calls, &sum); err != nil {
		b.Fatalf("bench printed %q: %v", text, err)
	}
	b.ReportMetric(float64(ns)/float64(calls)/1000, "µs/hit")
	if noStop, stop, why := sess.Probes()[0].Path(); (noStop > 0) == stopPath {
		b.Fatalf("armed %d times on the no-stop path, %d on the stop path (%v)", noStop, stop, why)
	}
}

// BenchmarkOneStop is the one-stop path: int3, pre handler, trampoline.
func BenchmarkOneStop(b *testing.B) {
	b.Run("push", func(b *testing.B) { benchHits(b, "push", false, true, uprobe.Handlers{}) })
	b.Run("rip", func(b *testing.B) { benchHits(b, "rip", false, true, uprobe.Handlers{}) })
}

// BenchmarkNoStop is the no-stop path: a jmp to the recorder, the drain
// counting the hits (docs/DESIGN.md §8).
func BenchmarkNoStop(b *testing.B) {
	b.Run("push", func(b *testing.B) { benchHits(b, "push", false, false, uprobe.Handlers{}) })
	b.Run("rip", func(b *testing.B) { benchHits(b, "rip", false, false, uprobe.Handlers{}) })
	b.Run("fetch-args", func(b *testing.B) { benchHits(b, "push", true, false, uprobe.Handlers{}) })
}

// BenchmarkPostHandler adds a post handler: a second stop per hit.
func BenchmarkPostHandler(b *testing.B) {
	post := uprobe.Handlers{Post: func(uprobe.Context) {}}
	b.Run("push", func(b *testing.B) { benchHits(b, "push", false, true, post) })
	b.Run("rip", func(b *testing.B) { benchHits(b, "rip", false, true, post) })
}

// BenchmarkFetchArgs fetches a register and a string and emits an event.
func BenchmarkFetchArgs(b *testing.B) {
	b.Run("push", func(b *testing.B) { benchHits(b, "push", true, true, uprobe.Handlers{}) })
}
