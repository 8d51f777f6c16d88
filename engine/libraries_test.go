package engine_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestLibraryNames: a library named in a spec must exist, for the
// program: one it finds only through its own DT_RUNPATH is probed (every
// call seen, with its argument); an unknown library or symbol is refused
// before the program starts, with the closest names; an existing library
// the program never loads is accepted and stays unarmed.
func TestLibraryNames(t *testing.T) {
	dir := t.TempDir()
	prog, _ := testprog.BuildRunpath(t, dir, false)
	want, _ := testprog.Run(t, prog, "40")
	tr := runTraced(t, specs(t, "p:t/plug libptplugin:plugin_func x=%di:s64"), true, prog, "40")
	if tr.out != want {
		t.Errorf("output %q, untraced %q", tr.out, want)
	}
	hits := tr.byProbe("t/plug")
	if len(hits) != 40 {
		t.Fatalf("%d hits, want 40", len(hits))
	}
	for i, h := range hits {
		if h.args[0].U != uint64(i) {
			t.Fatalf("hit %d: x=%d", i, h.args[0].U)
		}
	}

	res := resolve.New(&resolve.Options{Program: prog, Env: []string{}})
	defer res.Close()
	for _, tc := range []struct {
		spec string
		is   error
		want string
	}{
		{"libcc:malloc", elfsym.ErrNoLibrary, "(did you mean libc"},
		{"libptplugn:plugin_func", elfsym.ErrNoLibrary, "(did you mean libptplugin?)"},
		{"libc:mallocc", elfsym.ErrUnknownSymbol, "(did you mean malloc"},
		{"libptplugin:plugin_fnuc", elfsym.ErrUnknownSymbol, "(did you mean plugin_func?)"},
	} {
		_, err := res.Resolve(mustParse(t, tc.spec))
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.spec) {
			t.Errorf("Resolve(%q) = %v; want %v with %q", tc.spec, err, tc.is, tc.want)
		}
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = engine.Launch([]string{prog, "1"}, &engine.Options{Probes: specs(t, tc.spec), Process: backend.Process{Stdout: out}})
		if !errors.Is(err, tc.is) {
			t.Errorf("Launch with %q = %v, want %v", tc.spec, err, tc.is)
		}
		if b, _ := os.ReadFile(out.Name()); len(b) > 0 {
			t.Errorf("%q: the program ran and printed %q", tc.spec, b)
		}
		out.Close()
	}
	// Found only through the program's RUNPATH: a resolver that knows no
	// program refuses it.
	if _, err := resolve.New(nil).Resolve(mustParse(t, "libptplugin:plugin_func")); !errors.Is(err, elfsym.ErrNoLibrary) {
		t.Errorf("Resolve(libptplugin:plugin_func) without the program = %v, want ErrNoLibrary", err)
	}

	// The program's libc exists but it never loads the plugin library:
	// it runs, and the probe is never armed.
	tr = launchTraced(t, engine.Options{Process: backend.Process{Env: []string{"LD_LIBRARY_PATH=" + filepath.Dir(filepath.Join(dir, "lib", testprog.PluginSoname))}}},
		specs(t, "p:t/unused libptplugin:plugin_func"), false, []string{"/bin/true"})
	if tr.result.ExitCode != 0 || tr.probe(t, "t/unused").Armed() {
		t.Errorf("/bin/true: exit %d, armed %v", tr.result.ExitCode, tr.probe(t, "t/unused").Armed())
	}
}

// TestAttachMappedLibrary: for -p PID, a library the process loaded from
// a directory no search path has (dlopen by path) is found in its
// mappings.
func TestAttachMappedLibrary(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "dlopener", testprog.PIE...)
	lib := filepath.Join(dir, "libptmapped.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	// It loads the library at once, then calls plugin_func for seconds.
	cmd := exec.Command(prog, lib, "4000000000", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if strings.Contains(string(b), lib) {
			break
		}
		if i == 200 {
			t.Fatalf("%s never mapped %s", prog, lib)
		}
		time.Sleep(10 * time.Millisecond)
	}
	spec := mustParse(t, "p:t/mapped libptmapped:plugin_func")
	if _, err := resolve.New(nil).Resolve(spec); !errors.Is(err, elfsym.ErrNoLibrary) {
		t.Fatalf("Resolve = %v: the library is in a search path after all", err)
	}
	sess, err := engine.Attach(pid, &engine.Options{Probes: []backend.Probe{{Spec: spec}}, Warn: func(err error) { t.Errorf("warning: %v", err) }})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	sess.Detach()
	res, err := sess.Wait()
	if err != nil || !res.Detached {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
	if n := sess.Probes()[0].Hits(); n == 0 {
		t.Errorf("no hit of the mapped library's function")
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the program died: %v", err)
	}
}

// TestSpecMutations: a few hundred random mutations of valid library
// specs, parsed and resolved as Launch resolves them (no program runs):
// none is taken for a library that does not exist, and none that names
// an existing library is refused for its name.
func TestSpecMutations(t *testing.T) {
	res := resolve.New(&resolve.Options{Program: "/bin/true", Env: []string{}})
	defer res.Close()
	dirs := elfsym.LibraryDirs()
	var parsed, accepted, noLib int
	for _, text := range testprog.MutateSpecs(11, 400, testprog.ValidSpecs) {
		spec, err := uprobe.Parse(text)
		if err != nil {
			var se *uprobe.Error
			if !errors.As(err, &se) {
				t.Errorf("Parse(%q): %T %v, want *uprobe.Error", text, err, err)
			}
			continue
		}
		parsed++
		if !spec.IsLibrary() {
			continue
		}
		_, err = res.Resolve(spec)
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
	t.Logf("400 mutations: %d parsed, %d accepted, %d refused for their library", parsed, accepted, noLib)
	if accepted == 0 || noLib == 0 {
		t.Errorf("the mutations tried no accepted (%d) or no unknown (%d) library", accepted, noLib)
	}
}
