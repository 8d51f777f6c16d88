package engine_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/stress"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// detachCycles is how many attach/detach cycles TestDetachUnderLoad runs;
// ptprobe-bench runs more (its reliability section).
var detachCycles = flag.Int("detach-cycles", 50, "attach/detach cycles of TestDetachUnderLoad")

// TestDetachUnderLoad attaches to and detaches from an 8-thread hot loop
// over and over (stress.DetachCycles), with events formatted, with return
// probes and with post handlers: no detach may kill the program, leave
// text that differs from the file, or upset its sums.
func TestDetachUnderLoad(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "hot", testprog.PIE...)
	rep, err := stress.DetachCycles(prog, dir, 8, *detachCycles)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Deaths {
		t.Errorf("the program died after a detach: %s", d)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	if rep.Cycles != *detachCycles {
		t.Errorf("%d cycles made, want %d", rep.Cycles, *detachCycles)
	}
	t.Logf("%d attach/detach cycles, %d hits, %d deaths", rep.Cycles, rep.Hits, len(rep.Deaths))
}

// TestAttachAlreadyTraced: attaching to a process that a session already
// traces is refused with the reason, naming the tracer.
func TestAttachAlreadyTraced(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cfg := engine.Options{Probes: specs(t, "p:t/tick "+prog+":tick"), Process: backend.Process{Stdout: out}, Warn: func(err error) { t.Errorf("engine warning: %v", err) }}
	first, err := engine.Launch([]string{prog, "2"}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	_, err = engine.Attach(first.Pid(), &cfg)
	if !errors.Is(err, engine.ErrPermission) || !strings.Contains(err.Error(), fmt.Sprintf("of process %d (", os.Getpid())) {
		t.Fatalf("second attach: %v, want ErrPermission naming this process as the tracer", err)
	}
	first.Detach()
}
