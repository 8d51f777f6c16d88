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
	opts := []string{"--bounding-set=-all"}
	if nnp {
		opts = append(opts, "--no-new-privs")
	}
	return asNobodyWith(t, dir, opts, args...)
}

// asNobodyWith is asNobody with setpriv's options opts (besides the user
// and no inheritable capability).
func asNobodyWith(t *testing.T, dir string, opts []string, args ...string) result {
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
	argv := append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, opts...)
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

// copyProg copies the program at src to dst, mode 0755 plus extra.
func copyProg(t *testing.T, src, dst string, extra os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755|extra); err != nil {
		t.Fatal(err)
	}
}

// setcap gives the file at path the capabilities caps (setcap(8) syntax),
// or skips the test saying why it cannot.
func setcap(t *testing.T, path, caps string) {
	t.Helper()
	bin, err := exec.LookPath("setcap")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/setcap"); err != nil {
			t.Skip("skipped: setcap (libcap2-bin) is missing: cannot give a file capabilities")
		}
	}
	if out, err := exec.Command(bin, caps, path).CombinedOutput(); err != nil {
		t.Skipf("skipped: setcap %s %s: %v: %s (the file system of t.TempDir may not take security.capability)", caps, path, err, out)
	}
}

// TestFileCapsWarning: a program with file capabilities launched by an
// unprivileged ptprobe runs without them (the kernel ignores them under
// ptrace, as it ignores set-user-ID), and ptprobe says so before it runs,
// naming them; not as root (CAP_SYS_PTRACE: the kernel grants them).
func TestFileCapsWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to give a file capabilities and run ptprobe as nobody")
	}
	dir := t.TempDir()
	plain := testprog.Build(t, dir, "probes", testprog.PIE...)
	capped := filepath.Join(dir, "probes-caps")
	copyProg(t, plain, capped, 0)
	setcap(t, capped, "cap_net_raw,cap_net_bind_service+ep")
	trace := []string{"trace", "--count", "-e", capped + ":push_func", "--", capped, "3"}
	// The bounding set kept: an exec may get file capabilities (without
	// them, one of a file with the effective bit fails with EPERM).
	r := asNobodyWith(t, dir, nil, trace...)
	if r.status != 3 || !strings.HasSuffix(r.stdout, "ptprobe/push_func 3\n") {
		t.Fatalf("status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	if want := "ptprobe: warning: " + capped + " has file capabilities (CAP_NET_BIND_SERVICE, CAP_NET_RAW): the kernel ignores file capabilities on exec under ptrace by a tracer without CAP_SYS_PTRACE, so it runs without them here"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q does not start with %q", r.stderr, want)
	}
	if r := ptprobe(t, trace...); r.status != 3 || strings.Contains(r.stderr, "capabilities") {
		t.Errorf("as root: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestSetIDWarningAtExec: a set-user-ID program, and one with file
// capabilities, exec'd later by the traced program (here by a shell)
// lose what their files give just as a launched one does, and ptprobe
// warns at the exec, naming the process; a plain program's exec is not
// warned about.
func TestSetIDWarningAtExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to make set-user-ID files and run ptprobe as nobody")
	}
	dir := t.TempDir()
	plain := testprog.Build(t, dir, "probes", testprog.PIE...)
	setid := filepath.Join(dir, "probes-setid")
	copyProg(t, plain, setid, os.ModeSetuid)
	capped := filepath.Join(dir, "probes-caps")
	copyProg(t, plain, capped, 0)
	setcap(t, capped, "cap_net_raw+ep")
	for _, c := range []struct{ prog, want string }{
		{setid, " exec'd " + setid + " is set-user-ID (owner uid 0), mode -rwsr-xr-x (4755): the kernel ignores set-user-ID and set-group-ID on exec under ptrace"},
		{capped, " exec'd " + capped + " has file capabilities (CAP_NET_RAW): the kernel ignores file capabilities on exec under ptrace"},
		{plain, ""},
	} {
		r := asNobodyWith(t, dir, nil, "trace", "--count", "-e", c.prog+":push_func", "--", "/bin/sh", "-c", "exec "+c.prog+" 3")
		if r.status != 3 || !strings.HasSuffix(r.stdout, "ptprobe/push_func 3\n") {
			t.Fatalf("%s: status %d, stdout %q, stderr %q", c.prog, r.status, r.stdout, r.stderr)
		}
		if c.want == "" {
			if strings.Contains(r.stderr, "warning") {
				t.Errorf("%s: stderr %q", c.prog, r.stderr)
			}
			continue
		}
		if !strings.HasPrefix(r.stderr, "ptprobe: warning: process ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: stderr %q does not say %q", c.prog, r.stderr, c.want)
		}
	}
}
