package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// asNobody runs ptprobe with args as the user nobody, without any
// capability (and with no_new_privs if nnp). dir (a t.TempDir) is made
// reachable by nobody.
func asNobody(t *testing.T, dir string, nnp bool, args ...string) result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to run ptprobe as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipped: setpriv (util-linux) is missing: cannot drop to an ordinary user")
	}
	// t.TempDir makes its directories 0700.
	for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(ptprobeBin)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	argv := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}
	if nnp {
		argv = append(argv, "--no-new-privs")
	}
	cmd := exec.Command(argv[0], append(append(argv[1:], ptprobeBin), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSetIDWarning: a set-user-ID or set-group-ID program launched by an
// unprivileged ptprobe runs without its privileges (the kernel ignores
// the bits under ptrace), and ptprobe says so before it runs, with the
// file's mode; not where the kernel would honour or ignore the bits
// anyway (root's CAP_SYS_PTRACE, no_new_privs) nor for a plain program.
func TestSetIDWarning(t *testing.T) {
	dir := t.TempDir()
	plain := testprog.Build(t, dir, "probes", testprog.PIE...)
	setid := filepath.Join(dir, "probes-setid")
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(setid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// Owned by root (the test runs as root), so both bits matter to nobody.
	if err := os.Chmod(setid, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	trace := func(prog string) []string {
		return []string{"trace", "--count", "-e", prog + ":push_func", "--", prog, "3"}
	}

	r := asNobody(t, dir, false, trace(setid)...)
	if r.status != 3 || !strings.HasSuffix(r.stdout, "ptprobe/push_func 3\n") {
		t.Fatalf("status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	for _, want := range []string{"ptprobe: warning: " + setid + " is set-user-ID (owner uid 0) and set-group-ID (group gid 0), mode -rwsr-sr-x (6755)",
		"the kernel ignores set-user-ID and set-group-ID on exec under ptrace", "runs as uid 65534 gid 65534"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not say %q", r.stderr, want)
		}
	}
	// Before the program runs: ahead of anything the run reports.
	if !strings.HasPrefix(r.stderr, "ptprobe: warning: "+setid) {
		t.Errorf("the warning is not the first thing said: %q", r.stderr)
	}

	if r := asNobody(t, dir, false, trace(plain)...); r.status != 3 || strings.Contains(r.stderr, "set-user-ID") {
		t.Errorf("plain program: status %d, stderr %q", r.status, r.stderr)
	}
	// no_new_privs: the kernel ignores the bits untraced too.
	if r := asNobody(t, dir, true, trace(setid)...); r.status != 3 || strings.Contains(r.stderr, "set-user-ID") {
		t.Errorf("no_new_privs: status %d, stderr %q", r.status, r.stderr)
	}
	// Root has CAP_SYS_PTRACE: the kernel keeps the bits under its trace.
	if r := ptprobe(t, trace(setid)...); r.status != 3 || strings.Contains(r.stderr, "set-user-ID") {
		t.Errorf("as root: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestSetIDWarningPasswd: the case the kernel's rule was found with, a
// real setuid-root program of the machine (traced by nobody, passwd -S
// cannot read the shadow file and prints other fields), and ptprobe
// warns that it runs unprivileged.
func TestSetIDWarningPasswd(t *testing.T) {
	testprog.SystemProbes(t, false)
	const passwd = "/usr/bin/passwd"
	if st, err := os.Stat(passwd); err != nil || st.Mode()&os.ModeSetuid == 0 {
		t.Skipf("skipped: %s is not a setuid program here", passwd)
	}
	dir := t.TempDir()
	r := asNobody(t, dir, false, "trace", "--count", "-e", "libc:getuid", "--", passwd, "-S", "nobody")
	if want := "ptprobe: warning: " + passwd + " is set-user-ID (owner uid 0), mode -rwsr-xr-x (4755): the kernel ignores set-user-ID and set-group-ID on exec under ptrace"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q does not start with %q", r.stderr, want)
	}
}
