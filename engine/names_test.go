package engine_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestNames traces testdata/c/names.cpp by C++ names and globs: each
// function a name or a pattern matches is a probe of its own, hit as
// often as the program calls it.
func TestNames(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ is not installed: cannot build testdata/c/names.cpp")
	}
	prog := filepath.Join(t.TempDir(), "names")
	if out, err := exec.Command("g++", "-O2", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "names.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	const n = 5
	untraced, code := testprog.Run(t, prog, fmt.Sprint(n))
	tr := runTraced(t, specs(t,
		prog+":ns::Foo::bar x=%si:s32",
		"p:c/over "+prog+":over",
		prog+":twice<long>",
		prog+":parse_*",
	), true, prog, fmt.Sprint(n))
	if tr.out != untraced || tr.result.ExitCode != code {
		t.Fatalf("traced %q exit %d, untraced %q exit %d", tr.out, tr.result.ExitCode, untraced, code)
	}
	want := map[string]uint64{
		"ptprobe/ns__Foo__bar": n, "c/over": n, "c/over_2": 2 * n, "ptprobe/twice_long": 2 * n,
		"ptprobe/parse_a": n, "ptprobe/parse_b": 2 * n, "ptprobe/parse_c": 3 * n,
	}
	if got := len(tr.sess.Probes()); got != len(want) {
		t.Errorf("%d probes, want %d", got, len(want))
	}
	for name, hits := range want {
		if h := tr.probe(t, name).Hits(); h != hits {
			t.Errorf("%s: %d hits, want %d", name, h, hits)
		}
	}
	for i, h := range tr.byProbe("ptprobe/ns__Foo__bar") {
		if h.args[0].U != uint64(i) {
			t.Errorf("bar call %d: x=%d", i, h.args[0].U)
		}
	}
}
