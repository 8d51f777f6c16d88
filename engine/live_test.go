package engine_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// waitHits waits until p has more than n hits, at most 5 s.
func waitHits(t *testing.T, p *engine.Probe, n uint64) uint64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if h := p.Hits(); h > n {
			return h
		}
	}
	t.Fatalf("probe %s: no hit past %d in 5 s", p.Spec.Probe(), n)
	return 0
}

// stillHits reports whether p fires during 100 ms.
func stillHits(p *engine.Probe) bool {
	n := p.Hits()
	time.Sleep(100 * time.Millisecond)
	return p.Hits() != n
}

// TestLiveProbes: probes added to a running program (launched with no
// probe at all, dynamic and static), disabled, enabled again and closed,
// each taking effect at once; a return probe's Entry handler gives its
// data to the matching return; the text is the file's after each removal,
// and the program's output is as untraced.
func TestLiveProbes(t *testing.T) {
	for _, build := range []struct {
		name  string
		flags []string
	}{{"pie", testprog.PIE}, {"static", []string{"-O2", "-static", "-pthread"}}} {
		t.Run(build.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := testprog.Build(t, dir, "loop", build.flags...)
			out, err := os.Create(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			tr, err := engine.Launch([]string{prog, "1.5"}, &engine.Options{
				Process: backend.Process{Stdout: out},
				Warn:    func(err error) { t.Errorf("engine warning: %v", err) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			exe := tr.Executable(prog)
			tick, err := exe.Uprobe("tick", uprobe.Handlers{}, &engine.UprobeOptions{Args: []string{"i=%di:s64"}})
			if err != nil {
				t.Fatalf("add a probe: %v", err)
			}
			waitHits(t, tick, 3)
			checkText(t, tr.Pid(), prog, "tick", false)

			var entries, returns, mismatched int
			tock, err := exe.Uretprobe("tock", uprobe.Handlers{
				Entry: func(ctx uprobe.Context) (uint64, bool) {
					entries++
					return ctx.Regs().Rdi, true
				},
				Return: func(ctx uprobe.Context) {
					returns++
					if ctx.EntryData() != ctx.Regs().Rax { // tock(i) returns i
						mismatched++
					}
				},
			}, nil)
			if err != nil {
				t.Fatalf("add a return probe: %v", err)
			}
			waitHits(t, tock, 3)

			if err := tick.Disable(); err != nil {
				t.Fatal(err)
			}
			if stillHits(tick) || tick.Enabled() {
				t.Errorf("disabled probe still fires")
			}
			checkText(t, tr.Pid(), prog, "tick", true)
			if err := tick.Enable(); err != nil {
				t.Fatal(err)
			}
			waitHits(t, tick, tick.Hits())
			if err := tick.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tick.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("second Close: %v, want os.ErrClosed", err)
			}
			if stillHits(tick) {
				t.Errorf("closed probe still fires")
			}
			checkText(t, tr.Pid(), prog, "tick", true)
			if len(tr.Probes()) != 1 || tr.Probes()[0] != tock {
				t.Errorf("Probes() = %v, want the return probe alone", tr.Probes())
			}
			res, err := tr.Wait()
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("program ended with %+v, %v", res, err)
			}
			if entries == 0 || returns == 0 || mismatched != 0 || uint64(returns) != tock.Hits() {
				t.Errorf("return probe: %d entries, %d returns (%d hits), %d with EntryData not the entry's argument", entries, returns, tock.Hits(), mismatched)
			}
			if _, err := exe.Uprobe("tick", uprobe.Handlers{}, nil); err == nil {
				t.Errorf("a probe added to a Tracer that ended: no error")
			}
			b, _ := os.ReadFile(out.Name())
			if !bytes.HasPrefix(b, []byte("ticks=")) {
				t.Errorf("program output %q", b)
			}
		})
	}
}

// TestLiveProbeErrors: a bad probe added to a running program is refused
// and harms nothing; a name already taken is ErrDuplicateName.
func TestLiveProbeErrors(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	tr, err := engine.Launch([]string{prog, "0.5"}, &engine.Options{Probes: specs(t, "p:t/tick "+prog+":tick"),
		Process: backend.Process{Stdout: devNull(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Executable(prog).Uprobe("tick", uprobe.Handlers{}, &engine.UprobeOptions{Group: "t", Event: "tick"}); !errors.Is(err, engine.ErrDuplicateName) {
		t.Errorf("same name: %v, want ErrDuplicateName", err)
	}
	if _, err := tr.Executable(prog).Uprobe("tikc", uprobe.Handlers{}, nil); !errors.Is(err, elfsym.ErrUnknownSymbol) {
		t.Errorf("unknown symbol: %v, want ErrUnknownSymbol", err)
	}
	if _, err := tr.Executable(prog).Uprobe("tick", uprobe.Handlers{}, &engine.UprobeOptions{Args: []string{"%zz"}}); err == nil {
		t.Errorf("bad fetch-arg: no error")
	}
	res, err := tr.Wait()
	if err != nil || res.ExitCode != 0 || tr.Probes()[0].Hits() == 0 {
		t.Errorf("program: %+v, %v, %d hits", res, err, tr.Probes()[0].Hits())
	}
}

// checkText compares fn of prog in process pid with the file: with
// restored, byte for byte; else the first byte must be the int3 of the
// stop path or the jmp of the no-stop path.
func checkText(t *testing.T, pid int, prog, fn string, restored bool) {
	t.Helper()
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sym, err := f.Lookup(fn)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, sym.Size)
	f.ReadAt(want, int64(sym.Offset))
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/" + itoa(pid) + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, m := range maps {
		addr, ok := m.Addr(sym.Offset)
		if !ok || !m.Exec() || m.ID() != f.ID {
			continue
		}
		got := make([]byte, sym.Size)
		if _, err := mem.ReadAt(got, int64(addr)); err != nil {
			t.Fatal(err)
		}
		switch {
		case restored && !bytes.Equal(got, want):
			t.Errorf("%s after the probe went: % x, file % x", fn, got, want)
		case !restored && got[0] != 0xcc && got[0] != 0xe9:
			t.Errorf("%s with a probe: % x, neither an int3 nor the no-stop path's jmp", fn, got)
		}
		return
	}
	t.Fatalf("%s is not mapped in %d", fn, pid)
}

func itoa(n int) string { return strconv.Itoa(n) }

func devNull(t *testing.T) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
