package testprog

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// NSLibSoname is the soname of the library StartInMountNS's program
// loads.
const NSLibSoname = "libnsplug.so.1"

// NSProcess is testdata/c/nswait.c running in a mount namespace of its
// own, as in a container: there Box/nswait is the program and Box/lib
// holds NSLibSoname (bind mounts of Prog and LibDir), while in the test's
// namespace Box/nswait is another program (a copy of true(1)) and Box/lib
// is empty. The program finds the library through LD_LIBRARY_PATH=Box/lib,
// or (mode "cache") through its own /etc/ld.so.cache, one built there by
// ldconfig with Box/lib in it and bind-mounted over the system's.
type NSProcess struct {
	Cmd        *exec.Cmd
	Pid        int
	Prog, Lib  string // the real files, as the test sees them
	Box        string
	TargetProg string // Box/nswait: the program's path as it sees it
	in         io.WriteCloser
	out        *bufio.Reader
	waited     bool
}

// StartInMountNS builds nswait and the library into dir and starts
// "nswait LIB n mode" (mode "early" or "late"; "cache" is "late" with the
// library found through the namespace's own ld.so.cache) in a new mount namespace
// (unshare -m, private propagation: its mounts stay its own), and waits
// for its "ready". It skips the test unless run as root with unshare(1)
// and mount(8) (util-linux, mount), and kills the process when the test
// ends.
func StartInMountNS(t testing.TB, dir string, n int, mode string) *NSProcess {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a process in a mount namespace of its own needs root (unshare -m and bind mounts): run the tests as root (CI does)")
	}
	for _, c := range []string{"unshare", "mount", "true", "ldconfig"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is not installed (util-linux, mount, coreutils): cannot start a process in a mount namespace", c)
		}
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed: cannot build the C targets of testdata/c")
	}
	real := filepath.Join(dir, "real")
	p := &NSProcess{Box: filepath.Join(dir, "box")}
	p.TargetProg = filepath.Join(p.Box, "nswait")
	libDir := filepath.Join(real, "lib")
	for _, d := range []string{libDir, filepath.Join(p.Box, "lib")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.Prog = Build(t, real, "nswait", append(PIE, "-ldl")...)
	p.Lib = filepath.Join(libDir, NSLibSoname)
	args := []string{"-O2", "-shared", "-fPIC", "-Wl,-soname," + NSLibSoname, "-o", p.Lib, filepath.Join(Root(), "testdata", "c", "plugin.c")}
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	truePath, _ := exec.LookPath("true")
	decoy, err := os.ReadFile(truePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.TargetProg, decoy, 0o755); err != nil {
		t.Fatal(err)
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	// A machine (a container) may refuse new mount namespaces or bind
	// mounts even to root: tried once, on the decoy itself.
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", "mount --bind "+q(p.TargetProg)+" "+q(p.TargetProg)).CombinedOutput(); err != nil {
		t.Skipf("this machine refuses a mount namespace with a bind mount (unshare -m; mount --bind): %v: %s", err, out)
	}
	boxLib := filepath.Join(p.Box, "lib")
	script := "mount --bind " + q(p.Prog) + " " + q(p.TargetProg) + " && mount --bind " + q(libDir) + " " + q(boxLib)
	if mode == "cache" {
		// A cache that knows Box/lib, built where Box/lib has the
		// library: in the namespace.
		conf, cache := filepath.Join(dir, "ld.so.conf"), filepath.Join(dir, "ld.so.cache")
		if err := os.WriteFile(conf, []byte(boxLib+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script += " && ldconfig -X -C " + q(cache) + " -f " + q(conf) + " && mount --bind " + q(cache) + " /etc/ld.so.cache && exec "
		mode = "late"
	} else {
		script += " && LD_LIBRARY_PATH=" + q(boxLib) + " exec "
	}
	script += q(p.TargetProg) + " " + NSLibSoname + " " + strconv.Itoa(n) + " " + mode
	p.start(t, exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script))
	return p
}

// StartNSWait starts "prog LIB n mode" (testdata/c/nswait.c) in the
// test's own namespace and waits for its "ready"; it is killed when the
// test ends.
func StartNSWait(t testing.TB, prog, lib string, n int, mode string) *NSProcess {
	t.Helper()
	p := &NSProcess{Prog: prog, Lib: lib, TargetProg: prog}
	p.start(t, exec.Command(prog, lib, strconv.Itoa(n), mode))
	return p
}

func (p *NSProcess) start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	p.Cmd = cmd
	p.Cmd.Stderr = os.Stderr
	var err error
	if p.in, err = p.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	outp, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", p.Cmd.Args, err)
	}
	p.Pid = p.Cmd.Process.Pid
	t.Cleanup(func() {
		if !p.waited {
			p.Cmd.Process.Kill()
			p.Cmd.Wait()
		}
	})
	p.out = bufio.NewReader(outp)
	if l, err := p.out.ReadString('\n'); err != nil || l != "ready\n" {
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
		p.waited = true
		t.Fatalf("%v: %q %v", p.Cmd.Args, l, err)
	}
}

// Run lets the program make its calls and returns its "done" line.
func (p *NSProcess) Run(t testing.TB) string {
	t.Helper()
	if _, err := io.WriteString(p.in, "go\n"); err != nil {
		t.Fatal(err)
	}
	l, err := p.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "done ") {
		t.Fatalf("nswait: %q %v", l, err)
	}
	return strings.TrimSpace(l)
}

// Exit lets the program exit and returns its exit status.
func (p *NSProcess) Exit(t testing.TB) int {
	t.Helper()
	io.WriteString(p.in, "end\n")
	p.in.Close()
	err := p.Cmd.Wait()
	p.waited = true
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}
