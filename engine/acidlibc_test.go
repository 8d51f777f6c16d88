package engine_test

import (
	"fmt"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// libcSteps single-steps argv from its first instruction to its exit and
// counts, per file offset of libc, how often each instruction ran. It also
// returns the path and identity of the libc that was mapped.
func libcSteps(t *testing.T, argv []string) (map[uint64]int, string, string) {
	t.Helper()
	counts := make(map[uint64]int)
	var libc *elfsym.Mapping
	var known []elfsym.Mapping // executable mappings seen so far
	steps := 0
	out := singleStep(t, argv, func(pid int, regs *unix.PtraceRegs) {
		steps++
		if libc == nil {
			inKnown := false
			for _, m := range known {
				inKnown = inKnown || (regs.Rip >= m.Start && regs.Rip < m.End)
			}
			if !inKnown {
				// New code: libc is mapped by the dynamic linker
				// after the first steps.
				maps, _ := elfsym.ReadMaps(pid)
				known = known[:0]
				for i := range maps {
					m := maps[i]
					if !m.Exec() {
						continue
					}
					known = append(known, m)
					if regs.Rip >= m.Start && regs.Rip < m.End && elfsym.MatchLibrary("libc", m.Path, "") {
						libc = &m
					}
				}
			}
		}
		if libc != nil {
			if off, ok := libc.FileOffsetOf(regs.Rip); ok {
				counts[off]++
			}
		}
	})
	if libc == nil {
		t.Fatal("libc was never executed")
	}
	t.Logf("%d instructions single-stepped, %d distinct in libc", steps, len(counts))
	return counts, libc.Path, out
}

// TestAcidLibc is the acid test on real compiler output: every instruction
// boundary of the libc functions a program runs most (string functions
// with AVX2, strtol, printf internals) gets a probe, all at once, and each
// site's hit count must equal the count from single-stepping.
func TestAcidLibc(t *testing.T) {
	testprog.SystemProbes(t, false)
	if testing.Short() {
		t.Skip("single-steps a whole program: skipped in -short mode")
	}
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "libcalls", testprog.PIE...)
	argv := []string{prog, "30"}
	want, libcPath, wantOut := libcSteps(t, argv)

	f, err := elfsym.Open(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Executed instructions per function (by unwind bounds).
	type fn struct {
		start, end uint64
		name       string
		ran        int
	}
	funcs := map[uint64]*fn{}
	for off, n := range want {
		va, err := f.Vaddr(off)
		if err != nil {
			continue
		}
		start, end, name, ok := f.Function(va)
		if !ok {
			continue
		}
		if funcs[start] == nil {
			funcs[start] = &fn{start: start, end: end, name: name}
		}
		funcs[start].ran += n
	}
	var list []*fn
	for _, x := range funcs {
		list = append(list, x)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ran > list[j].ran })
	if len(list) > 12 {
		list = list[:12]
	}

	var pcs []backend.Probe
	var offs []uint64
	refused := 0
	for _, x := range list {
		startOff, _ := f.FileOffset(x.start)
		code := make([]byte, x.end-x.start)
		f.ReadAt(code, int64(startOff))
		for pos := 0; pos < len(code); {
			inst, err := arch.Decode(code[pos:])
			if err != nil {
				t.Fatalf("%s+0x%x: %v", x.name, pos, err)
			}
			off := startOff + uint64(pos)
			pos += inst.Len
			if inst.Class == arch.ClassRefuse {
				refused++
				continue
			}
			offs = append(offs, off)
			pcs = append(pcs, backend.Probe{Spec: mustParse(t, fmt.Sprintf("p:libc/at_0x%x %s:0x%x", off, libcPath, off))})
		}
		t.Logf("%-28s 0x%x-0x%x ran %d instructions", x.name, x.start, x.end, x.ran)
	}
	tr := runTraced(t, pcs, false, argv...)
	if tr.out != wantOut {
		t.Errorf("traced output %q, single-stepped %q", tr.out, wantOut)
	}
	bad, total := 0, 0
	for i, p := range tr.sess.Probes() {
		total += int(p.Hits())
		if int(p.Hits()) != want[offs[i]] {
			bad++
			if bad <= 10 {
				t.Errorf("libc file offset 0x%x: %d hits, single-stepping counted %d", offs[i], p.Hits(), want[offs[i]])
			}
		}
	}
	t.Logf("%d sites in %d functions (%d refused instructions left out), %d hits", len(offs), len(list), refused, total)
}
