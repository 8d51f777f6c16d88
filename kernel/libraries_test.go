package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestResolveLibraryNames: the kernel backend finds library names as the
// ptrace engine does: a library of the program's own DT_RUNPATH (given
// Options.Resolve), and refuses unknown libraries and symbols with the
// closest names.
func TestResolveLibraryNames(t *testing.T) {
	dir := t.TempDir()
	prog, lib := testprog.BuildRunpath(t, dir, false)
	res := resolve.New(&resolve.Options{Program: prog})
	defer res.Close()
	loc, err := resolveUprobe(res, mustParse(t, "libptplugin:plugin_func"))
	if err != nil || loc.Path != lib || loc.Function != "plugin_func" {
		t.Errorf("resolveUprobe(libptplugin:plugin_func) = %+v, %v; want %s", loc, err, lib)
	}
	if _, err := resolveUprobe(resolve.New(nil), mustParse(t, "libptplugin:plugin_func")); !errors.Is(err, elfsym.ErrNoLibrary) {
		t.Errorf("without the program: %v, want ErrNoLibrary", err)
	}
	for _, tc := range []struct {
		spec string
		is   error
		want string
	}{
		{"libcc:malloc", elfsym.ErrNoLibrary, "(did you mean libc"},
		{"libc:mallocc", elfsym.ErrUnknownSymbol, "(did you mean malloc"},
		{"libptplugin:plugin_fnuc", elfsym.ErrUnknownSymbol, "(did you mean plugin_func?)"},
	} {
		_, err := resolveUprobe(res, mustParse(t, tc.spec))
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.spec) {
			t.Errorf("resolveUprobe(%q) = %v; want %v with %q", tc.spec, err, tc.is, tc.want)
		}
	}
}

// TestSpecMutationsKernel: the random spec mutations of the engine's
// test, resolved as AddUprobe resolves them: none is taken for a library
// that does not exist, none naming an existing one is refused for it.
func TestSpecMutationsKernel(t *testing.T) {
	res := resolve.New(&resolve.Options{Program: "/bin/true"})
	defer res.Close()
	dirs := elfsym.LibraryDirs()
	var accepted, noLib int
	for _, text := range testprog.MutateSpecs(12, 300, testprog.ValidSpecs) {
		spec, err := uprobe.Parse(text)
		if err != nil || !spec.IsLibrary() {
			continue
		}
		_, err = resolveUprobe(res, spec)
		exists := testprog.LibraryExists(t, spec.Path, dirs)
		switch {
		case err == nil:
			accepted++
			if !exists {
				t.Errorf("%q accepted: library %q does not exist", text, spec.Path)
			}
		case errors.Is(err, elfsym.ErrNoLibrary):
			noLib++
			if exists {
				t.Errorf("%q: library %q exists, but: %v", text, spec.Path, err)
			}
		case !exists:
			t.Errorf("%q: library %q does not exist, but the error is not ErrNoLibrary: %v", text, spec.Path, err)
		}
	}
	t.Logf("300 mutations: %d accepted, %d refused for their library", accepted, noLib)
	if accepted == 0 || noLib == 0 {
		t.Errorf("the mutations tried no accepted (%d) or no unknown (%d) library", accepted, noLib)
	}
}

// TestRunpathLibraryKernel: a kernel uprobe on a library the program finds
// through its DT_RUNPATH only sees every call, and refused library
// names leave nothing in tracefs.
func TestRunpathLibraryKernel(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog, _ := testprog.BuildRunpath(t, t.TempDir(), false)
	s := newTestSession(t, tfs, &Options{Resolve: &resolve.Options{Program: prog}})
	addSpecs(t, s, "p:t/plug libptplugin:plugin_func x=%di:s64")
	for _, bad := range []string{"p:t/cc libcc:malloc", "p:t/mm libc:mallocc"} {
		if err := s.AddUprobe(mustParse(t, bad)); err == nil {
			t.Errorf("AddUprobe(%q) accepted", bad)
		}
	}
	c, out, code, _ := runCollect(t, s, prog, "7")
	if code != 0 || out != "sum=147\n" {
		t.Errorf("exit %d, output %q", code, out)
	}
	evs := c.byProbe("t/plug")
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7", len(evs))
	}
	for i, ev := range evs {
		if ev.Args[0].U != uint64(i) {
			t.Errorf("event %d: x=%d", i, ev.Args[0].U)
		}
	}
	if n := len(s.definitions()); n != 1 {
		t.Errorf("%d definitions, want 1: %+v", n, s.definitions())
	}
}
