package engine_test

import (
	"testing"

	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestSigtrapDisposition: a hit of an int3 in a thread with SIGTRAP
// blocked, or in a process that ignores SIGTRAP, makes the kernel reset
// the action to SIG_DFL and unblock SIGTRAP in the thread before the
// engine sees the stop (force_sig). The program has a SIGTRAP handler (or
// ignores SIGTRAP), its worker blocks SIGTRAP (or every signal) and calls
// the probed function; afterwards it checks its mask and action, unblocks
// SIGTRAP and raises it; or it execs itself with SIGTRAP ignored, which
// the new image inherits (the engine's step out of execve must not reset
// it). Traced on the stop path, its output and exit
// status must be as untraced, and every call counted.
func TestSigtrapDisposition(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "sigtrap", testprog.PIE...)
	for _, mode := range []string{"handler", "full", "ignore", "exec"} {
		t.Run(mode, func(t *testing.T) {
			wantOut, wantCode := testprog.Run(t, prog, mode, "50")
			tr := launchTraced(t, engine.Options{StopPath: true}, specs(t, "p:t/probed "+prog+":probed"), false, []string{prog, mode, "50"})
			if tr.out != wantOut || tr.result.ExitCode != wantCode || tr.result.Signal != 0 {
				t.Errorf("traced: status %d (signal %v), output\n%s\nuntraced: status %d, output\n%s", tr.result.ExitCode, tr.result.Signal, tr.out, wantCode, wantOut)
			}
			want := uint64(50)
			if mode == "exec" {
				want = 100 // two rounds in the new image
			}
			if n := tr.probe(t, "t/probed").Hits(); n != want {
				t.Errorf("%d hits, want %d", n, want)
			}
		})
	}
}
