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
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed: cannot build the C targets of testdata/c")
	}
	out := filepath.Join(dir, name)
	args := append(append([]string{}, flags...), "-o", out, filepath.Join(Root(), "testdata", "c", name+".c"))
	if name == "threads" || name == "hot" {
		args = append(args, "-pthread")
	}
	cmd := exec.Command(gcc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
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
