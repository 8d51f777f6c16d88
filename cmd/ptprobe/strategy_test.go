package main

import (
	"encoding/json"
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
