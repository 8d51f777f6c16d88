package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestResolveLibraryNames: the kernel backend finds library names as the
// ptrace engine does: a library of the program's own DT_RUNPATH (given
// Options.Libraries), and refuses unknown libraries and symbols with the
// closest names.
func TestResolveLibraryNames(t *testing.T) {
	dir := t.TempDir()
	prog, lib := testprog.BuildRunpath(t, dir, false)
	libs := elfsym.NewLibraries(elfsym.LibraryEnv{Program: prog})
	loc, err := resolveUprobe(mustParse(t, "libptplugin:plugin_func"), libs)
	if err != nil || loc.Path != lib || loc.Function != "plugin_func" {
		t.Errorf("resolveUprobe(libptplugin:plugin_func) = %+v, %v; want %s", loc, err, lib)
	}
	if _, err := ResolveUprobe(mustParse(t, "libptplugin:plugin_func")); !errors.Is(err, elfsym.ErrNoLibrary) {
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
		_, err := resolveUprobe(mustParse(t, tc.spec), libs)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.spec) {
			t.Errorf("resolveUprobe(%q) = %v; want %v with %q", tc.spec, err, tc.is, tc.want)
		}
	}
}

// TestSpecMutationsKernel: the random spec mutations of the engine's
// test, resolved as AddUprobe resolves them: none is taken for a library
// that does not exist, none naming an existing one is refused for it.
func TestSpecMutationsKernel(t *testing.T) {
	libs := elfsym.NewLibraries(elfsym.LibraryEnv{Program: "/bin/true"})
	dirs := elfsym.LibraryDirs()
	var accepted, noLib int
	for _, text := range testprog.MutateSpecs(12, 300, testprog.ValidSpecs) {
		spec, err := uprobe.Parse(text)
		if err != nil || !spec.IsLibrary() {
			continue
		}
		_, err = resolveUprobe(spec, libs)
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
	s := newTestSession(t, tfs, &Options{Libraries: elfsym.NewLibraries(elfsym.LibraryEnv{Program: prog})})
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
	if n := len(s.Definitions()); n != 1 {
		t.Errorf("%d definitions, want 1: %+v", n, s.Definitions())
	}
}

// TestKernelEventNames cross-checks Parse against this machine's
// uprobe_events: "GRP/" without an event name is accepted (not refused
// with "Event name is not specified", as 4.19 did) and named as Parse
// names it, for entry and return probes; a path is split from its offset
// at the last ':'.
func TestKernelEventNames(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	group := "ptprobetest" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() {
		if err := removeGroupEvents(tfs, group); err != nil {
			t.Error(err)
		}
		checkNoLeftovers(t, tfs, group)
	})
	dir := t.TempDir()
	colon := filepath.Join(dir, "a:b")
	if err := os.WriteFile(colon, []byte("any regular file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line, event string // event: the kernel's name for it
	}{
		{"p:" + group + "/ /bin/true:0", "p_true_0x0"},
		{"r:" + group + "/ /bin/true:0x10", "p_true_0x10"},
		// The kernel keeps the ':' of the file name in the event name;
		// Parse makes names C identifiers ("p_a_b_0x20").
		{"p:" + group + "/ " + colon + ":0x20", "p_a:b_0x20"},
	} {
		spec := mustParse(t, tc.line)
		if err := writeFile(tfs.path(uprobeEvents), tc.line+"\n", os.O_APPEND); err != nil {
			t.Errorf("the kernel refused %q: %v\n%s", tc.line, err, tfs.kernelError(uprobeEvents, tc.line, err).Caret())
			continue
		}
		if !strings.Contains(tc.event, ":") && spec.Event != tc.event {
			t.Errorf("Parse(%q).Event = %q, the kernel's %q", tc.line, spec.Event, tc.event)
		}
		data, _ := os.ReadFile(tfs.path(uprobeEvents))
		if !strings.Contains(string(data), ":"+group+"/"+tc.event+" "+spec.Path+":0x") {
			t.Errorf("%q: no %s/%s on path %q in uprobe_events:\n%s", tc.line, group, tc.event, spec.Path, data)
		}
		if err := tfs.removeEvent(uprobeEvents, group, tc.event); err != nil {
			t.Error(err)
		}
	}
}
