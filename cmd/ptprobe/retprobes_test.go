package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

func TestSetRetval(t *testing.T) {
	testprog.SystemProbes(t, false)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "oom", testprog.PIE...)
	r := ptprobe(t, "trace", "--count", "-e", "r libc:malloc", "--set-retval", "0", "--every", "3", "--", prog, "9")
	want := "ok 1\nok 2\nout of memory at allocation 3\nok 4\nok 5\nout of memory at allocation 6\nok 7\nok 8\nout of memory at allocation 9\nptprobe/malloc__return 9\n"
	if r.status != 0 || r.stdout != want {
		t.Errorf("status %d, output %q; want %q (stderr %q)", r.status, r.stdout, want, r.stderr)
	}
	r = ptprobe(t, "trace", "--count", "-e", "r libc:malloc", "--set-retval", "0", "--", prog, "4")
	if strings.Count(r.stdout, "out of memory") != 4 {
		t.Errorf("--set-retval 0 without --every: %q", r.stdout)
	}
	r = ptprobe(t, "trace", "-e", "libc:malloc", "--set-retval", "0", "--", prog, "1")
	if r.status != 2 || !strings.Contains(r.stderr, "return probes") {
		t.Errorf("--set-retval on an entry probe: status %d, %q", r.status, r.stderr)
	}
}

// TestLatency: the time a function with known sleeps takes falls in the
// right log2 buckets (nanoseconds, powers of 1024 as bpftrace labels them).
func TestLatency(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "sleeper", testprog.PIE...)
	r := ptprobe(t, "trace", "--latency", "-e", "r "+prog+":sleeper", "--", prog)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	// 3 ms, 12 ms, 40 ms twice each: at least [2M, 4M), [8M, 16M),
	// [32M, 64M). A sleep never returns early, but a busy machine may
	// return it late: the buckets are checked from below only.
	rows := regexp.MustCompile(`(?m)^\[(\d+)([KMG]?), [^\]\n]+[\])] +(\d+) \|`).FindAllStringSubmatch(r.stdout, -1)
	unit := map[string]int64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
	atLeast := func(ns int64) int {
		n := 0
		for _, row := range rows {
			lo, _ := strconv.ParseInt(row[1], 10, 64)
			if c, _ := strconv.Atoi(row[3]); lo*unit[row[2]] >= ns {
				n += c
			}
		}
		return n
	}
	if a, b, c := atLeast(2<<20), atLeast(8<<20), atLeast(32<<20); a != 6 || b < 4 || c < 2 {
		t.Errorf("returns in buckets from 2M up: %d (want 6), from 8M: %d (want 4 or more), from 32M: %d (want 2 or more):\n%s", a, b, c, r.stdout)
	}
	if !strings.Contains(r.stdout, "@ptprobe/sleeper__return (ns):") || !strings.Contains(r.stdout, "count 6, min ") {
		t.Errorf("missing title or summary:\n%s", r.stdout)
	}
}
