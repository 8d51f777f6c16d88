// Package testprog builds the C targets of testdata/ for tests, and runs
// programs the way tests compare them: output and exit status.
package testprog

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Root is the repository's root directory, found from this file.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Flags for common kinds of build.
var (
	// PIE is how Debian's gcc builds by default.
	PIE = []string{"-O2", "-pie", "-fpie"}
	// NoLibc is a static program without libc, at a fixed address.
	NoLibc = []string{"-O2", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-fno-stack-protector", "-fcf-protection=none"}
	// NoLibcPIE is a static-pie program without libc (no relocations).
	NoLibcPIE = []string{"-O2", "-fpie", "-static-pie", "-nostdlib", "-fno-stack-protector", "-fcf-protection=none"}
)

// Build compiles testdata/c/NAME.c with gcc into dir and returns the
// program's path. It skips the test when gcc is missing.
func Build(t testing.TB, dir, name string, flags ...string) string {
	t.Helper()
	return BuildAs(t, dir, name, name, flags...)
}

// BuildAs compiles testdata/c/SRC.c with gcc into dir/out (one source
// built several ways in one directory) and returns the program's path. It
// skips the test when gcc is missing.
func BuildAs(t testing.TB, dir, out, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed: cannot build the C targets of testdata/c")
	}
	out = filepath.Join(dir, out)
	args := append(append([]string{}, flags...), "-o", out, filepath.Join(Root(), "testdata", "c", src+".c"))
	if src == "threads" || src == "hot" || src == "named" {
		args = append(args, "-pthread")
	}
	cmd := exec.Command(gcc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
}

// PluginSoname is the soname (and file name) of the library BuildRunpath
// builds: a name no system has, so that only the program's DT_RUNPATH
// finds it.
const PluginSoname = "libptplugin.so.1"

// BuildRunpath builds testdata/c/plugin.c as dir/lib/PluginSoname and
// testdata/c/usesplugin.c as dir/usesplugin linked against it, with
// "$ORIGIN/lib" as its DT_RUNPATH (as its DT_RPATH with rpath), and
// returns the paths of the program and of the library.
func BuildRunpath(t testing.TB, dir string, rpath bool) (prog, lib string) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed: cannot build the C targets of testdata/c")
	}
	libDir := filepath.Join(dir, "lib")
	if err := os.MkdirAll(libDir, 0o755); err != nil {
		t.Fatal(err)
	}
	lib = filepath.Join(libDir, PluginSoname)
	prog = filepath.Join(dir, "usesplugin")
	tags := "-Wl,--enable-new-dtags"
	if rpath {
		tags = "-Wl,--disable-new-dtags"
	}
	for _, args := range [][]string{
		{"-O2", "-shared", "-fPIC", "-Wl,-soname," + PluginSoname, "-o", lib, filepath.Join(Root(), "testdata", "c", "plugin.c")},
		append(append([]string{}, PIE...), "-o", prog, filepath.Join(Root(), "testdata", "c", "usesplugin.c"), lib, tags, "-Wl,-rpath,$ORIGIN/lib"),
	} {
		if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
	}
	return prog, lib
}

// Run runs argv untraced and returns its standard output and exit status.
func Run(t testing.TB, argv ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	return out.String(), 0
}

// BuildGo builds the Go program testdata/go/NAME into dir and returns its
// path. It skips the test when the go command is not on PATH.
func BuildGo(t testing.TB, dir, name string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build testdata/go/" + name)
	}
	prog := filepath.Join(dir, name)
	build := exec.Command(gobin, "build", "-o", prog, ".")
	build.Dir = filepath.Join(Root(), "testdata", "go", name)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/go/%s: %v\n%s", name, err, out)
	}
	return prog
}
