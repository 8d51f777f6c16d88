package handlers_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/handlers"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// run runs argv under the ptrace engine with probes and returns what the
// program wrote to its stdout and the run's result.
func run(t *testing.T, argv []string, probes []backend.Probe, onEvent func(*uprobe.Event)) (string, *backend.Result) {
	t.Helper()
	out, err := os.Create(t.TempDir() + "/stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	res, err := engine.Backend{}.Run(context.Background(), &backend.Request{Argv: argv, Probes: probes,
		Process: backend.Process{Stdout: out}, OnEvent: onEvent, Warn: func(err error) { t.Log(err) }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b), res
}

func parse(t *testing.T, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failures returns the allocations oom's output says failed.
func failures(out string) []string {
	var n []string
	for _, l := range strings.Split(out, "\n") {
		if a, ok := strings.CutPrefix(l, "out of memory at allocation "); ok {
			n = append(n, a)
		}
	}
	return n
}

// TestRetvalEvery: malloc returns NULL at every 3rd call, and only then,
// as the program itself reports.
func TestRetvalEvery(t *testing.T) {
	testprog.SystemProbes(t, false)
	prog := testprog.Build(t, t.TempDir(), "oom", testprog.PIE...)
	rv, err := handlers.NewRetval(0, &handlers.RetvalOptions{Every: 3})
	if err != nil {
		t.Fatal(err)
	}
	out, res := run(t, []string{prog, "10"}, []backend.Probe{{Spec: parse(t, "r libc:malloc"), Handlers: rv.Handlers()}}, nil)
	if got := strings.Join(failures(out), " "); got != "3 6 9" || res.Status() != 0 {
		t.Errorf("failed allocations %q (status %d), want 3 6 9:\n%s", got, res.Status(), out)
	}
	if strings.Count(out, "ok ") != 7 || res.Probes[0].Hits != 10 {
		t.Errorf("%d ok lines, %d returns, want 7 and 10:\n%s", strings.Count(out, "ok "), res.Probes[0].Hits, out)
	}

	// nil options: every return.
	rv, err = handlers.NewRetval(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = run(t, []string{prog, "4"}, []backend.Probe{{Spec: parse(t, "r libc:malloc"), Handlers: rv.Handlers()}}, nil)
	if got := strings.Join(failures(out), " "); got != "1 2 3 4" {
		t.Errorf("nil options: failed allocations %q, want all 4", got)
	}
}

// TestRetvalProbability: with a seed, the same allocations fail in two
// runs; with probability 1, all do.
func TestRetvalProbability(t *testing.T) {
	testprog.SystemProbes(t, false)
	prog := testprog.Build(t, t.TempDir(), "oom", testprog.PIE...)
	failed := func(p float64, seed int64) []string {
		rv, err := handlers.NewRetval(0, &handlers.RetvalOptions{Probability: p, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := run(t, []string{prog, "200"}, []backend.Probe{{Spec: parse(t, "r libc:malloc"), Handlers: rv.Handlers()}}, nil)
		return failures(out)
	}
	a, b := failed(0.5, 42), failed(0.5, 42)
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("seed 42 failed different allocations:\n%v\n%v", a, b)
	}
	// Of 200 returns at p = 0.5, all or none failing would be a 2^-199
	// chance: the choice is random, not fixed.
	if len(a) == 0 || len(a) == 200 {
		t.Errorf("%d of 200 allocations failed at probability 0.5", len(a))
	}
	if n := len(failed(1, 0)); n != 200 {
		t.Errorf("%d of 200 allocations failed at probability 1", n)
	}
}

func TestRetvalBadOptions(t *testing.T) {
	for _, o := range []handlers.RetvalOptions{{Every: 2, Probability: 0.5}, {Probability: 1.5}, {Probability: -1}} {
		if _, err := handlers.NewRetval(0, &o); err == nil {
			t.Errorf("NewRetval with %+v: no error", o)
		}
	}
}

// TestLatencies: the returns of a function with known sleeps fall in the
// right log2 buckets: 3 ms, 12 ms and 40 ms, twice each. A sleep never
// returns early, but a busy machine may return it late: the buckets are
// checked from below only.
func TestLatencies(t *testing.T) {
	prog := testprog.Build(t, t.TempDir(), "sleeper", testprog.PIE...)
	lat := handlers.NewLatencies()
	spec := parse(t, "r "+prog+":sleeper")
	out, _ := run(t, []string{prog}, []backend.Probe{{Spec: spec}}, lat.Add)
	if out != "done\n" {
		t.Errorf("program output %q", out)
	}
	h := lat.Histogram(spec.Probe())
	if h == nil {
		t.Fatalf("no histogram of %s", spec.Probe())
	}
	atLeast := func(ns uint64) (n uint64) {
		for k, c := range h.Buckets {
			if k > 0 && uint64(1)<<(k-1) >= ns {
				n += c
			}
		}
		return n
	}
	if h.Count != 6 || atLeast(2<<20) != 6 || atLeast(8<<20) < 4 || atLeast(32<<20) < 2 {
		t.Errorf("count %d, from 2M up %d (want 6), from 8M %d (want 4 or more), from 32M %d (want 2 or more): %v",
			h.Count, atLeast(2<<20), atLeast(8<<20), atLeast(32<<20), h.Buckets)
	}
	if h.Min < 3e6 || h.Max < 40e6 || h.Sum < 2*(3+12+40)*1e6 {
		t.Errorf("min %d, max %d, sum %d ns", h.Min, h.Max, h.Sum)
	}
	if lat.Histogram("ptprobe/nothing") != nil {
		t.Errorf("a histogram of a probe with no returns")
	}
}

// TestLatenciesText: bpftrace's layout, from events of known durations:
// a row per bucket from the lowest to the highest used, powers of 1024
// as K and M, bars scaled to the fullest bucket.
func TestLatenciesText(t *testing.T) {
	lat := handlers.NewLatencies()
	spec := parse(t, "r /bin/true:main")
	for _, d := range []uint64{1, 3, 3, 1500, 0} { // 0: no known entry, not counted
		lat.Add(&uprobe.Event{Group: spec.Group, Name: spec.Event, Kind: uprobe.Return, DurationNS: d})
	}
	lat.Add(&uprobe.Event{Group: spec.Group, Name: spec.Event, Kind: uprobe.Entry, DurationNS: 5}) // not a return
	bar := func(n int) string { return "|" + strings.Repeat("@", n) + strings.Repeat(" ", 52-n) + "|\n" }
	want := "@" + spec.Probe() + " (ns):\n" +
		"[1]                         1 " + bar(26) +
		"[2, 4)                      2 " + bar(52) +
		"[4, 8)                      0 " + bar(0) +
		"[8, 16)                     0 " + bar(0) +
		"[16, 32)                    0 " + bar(0) +
		"[32, 64)                    0 " + bar(0) +
		"[64, 128)                   0 " + bar(0) +
		"[128, 256)                  0 " + bar(0) +
		"[256, 512)                  0 " + bar(0) +
		"[512, 1K)                   0 " + bar(0) +
		"[1K, 2K)                    1 " + bar(26) +
		"count 4, min 1ns, mean 376ns, max 1.5µs\n\n"
	if got := string(lat.AppendText(nil, spec.Probe())); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(lat.AppendText(nil, "g/none")); got != "@g/none (ns):\nno return with a known entry\n\n" {
		t.Errorf("no returns: %q", got)
	}
}
