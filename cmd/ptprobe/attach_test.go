package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// startLoop starts testdata/c/loop.c, untraced, as a child of the test
// (optionally as another user), and kills it when the test ends.
func startLoop(t *testing.T, prog string, cred *syscall.Credential) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(prog)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	time.Sleep(200 * time.Millisecond)
	return cmd
}

// checkText compares the text of the named functions in process pid with
// the bytes of the file.
func checkText(t *testing.T, pid int, prog string, funcs ...string) {
	t.Helper()
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, name := range funcs {
		sym, err := f.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, sym.Size)
		f.ReadAt(want, int64(sym.Offset))
		found := false
		for _, m := range maps {
			addr, ok := m.Addr(sym.Offset)
			if !ok || !m.Exec() || m.ID() != f.ID {
				continue
			}
			found = true
			got := make([]byte, sym.Size)
			if _, err := mem.ReadAt(got, int64(addr)); err != nil {
				t.Fatalf("read %s of %d: %v", name, pid, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s in process %d after detach: % x, file: % x", name, pid, got, want)
			}
		}
		if !found {
			t.Errorf("%s is not mapped in %d", name, pid)
		}
	}
}

// consecutive checks that the JSON events of a probe carry consecutive
// values of arg "i": no hit was lost while attached.
func consecutive(t *testing.T, events []byte, probe string) int {
	t.Helper()
	var last float64 = -1
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(events))
	for sc.Scan() {
		var ev struct {
			Probe string             `json:"probe"`
			Args  map[string]float64 `json:"args"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad event %q: %v", sc.Text(), err)
		}
		if ev.Probe != probe {
			continue
		}
		if last >= 0 && ev.Args["i"] != last+1 {
			t.Errorf("%s: i=%v after i=%v: a hit was lost", probe, ev.Args["i"], last)
			return n
		}
		last = ev.Args["i"]
		n++
	}
	return n
}

// TestAttachDetach attaches to a running two-threaded loop, traces it for
// a while, detaches (by --duration, then by SIGINT), and checks that the
// loop runs on with its text equal to the file's, and that a second attach
// counts again.
func TestAttachDetach(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	loop := startLoop(t, prog, nil)
	pid := loop.Process.Pid

	ev := filepath.Join(dir, "ev1")
	r := ptprobe(t, "trace", "-p", fmt.Sprint(pid), "--duration", "1500ms", "--format", "json", "-o", ev,
		"-e", "p:t/tick "+prog+":tick i=%di:s64", "-e", "r:t/tock "+prog+":tock i=$retval:s64")
	if r.status != 0 || !strings.Contains(r.stderr, "breakpoints removed, text checked against the file") {
		t.Fatalf("attach: status %d, stderr %q", r.status, r.stderr)
	}
	b, _ := os.ReadFile(ev)
	if n := consecutive(t, b, "t/tick"); n < 100 {
		t.Errorf("only %d tick hits in 1.5 s", n)
	}
	if n := consecutive(t, b, "t/tock"); n < 100 {
		t.Errorf("only %d tock returns in 1.5 s", n)
	}
	if err := loop.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the loop died: %v", err)
	}
	checkText(t, pid, prog, "tick", "tock")

	// Again, stopped by SIGINT this time.
	cmd := exec.Command(ptprobeBin, "trace", "--count", "-p", fmt.Sprint(pid), "-e", "p:t/tick "+prog+":tick")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second attach: %v: %s", err, errb.String())
	}
	var hits int
	if _, err := fmt.Sscanf(out.String(), "t/tick %d", &hits); err != nil || hits < 50 {
		t.Errorf("second attach counted %q", out.String())
	}
	if err := loop.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the loop died after the second detach: %v", err)
	}
	checkText(t, pid, prog, "tick", "tock")
}

// TestAttachUnprivileged: an ordinary user attaches to a process of its
// own, and gets a clear error for another user's.
func TestAttachUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to run the target and ptprobe as user nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipped: setpriv (util-linux) is missing")
	}
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(ptprobeBin)} {
		os.Chmod(p, 0o755)
	}
	asNobody := func(args ...string) result {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", ptprobeBin}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.status = ee.ExitCode()
		}
		return r
	}
	mine := startLoop(t, prog, &syscall.Credential{Uid: 65534, Gid: 65534})
	r := asNobody("trace", "--count", "-p", fmt.Sprint(mine.Process.Pid), "--duration", "500ms", "-e", "p:t/tick "+prog+":tick")
	if r.status != 0 || !strings.HasPrefix(r.stdout, "t/tick ") {
		t.Errorf("nobody attaching to its own process: status %d, %q %q", r.status, r.stdout, r.stderr)
	}
	roots := startLoop(t, prog, nil)
	r = asNobody("trace", "-p", fmt.Sprint(roots.Process.Pid), "-e", "p:t/tick "+prog+":tick")
	if r.status != 2 || !strings.Contains(r.stderr, "belongs to uid 0") || !strings.Contains(r.stderr, "not permitted") {
		t.Errorf("nobody attaching to root's process: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestAttachReaderGone: `ptprobe trace -p PID | head -1`: when the reader
// of ptprobe's output goes away, ptprobe detaches (no SIGPIPE death that
// would leave its breakpoints in the program) and the program runs on
// with its text equal to the file.
func TestAttachReaderGone(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "loop", testprog.PIE...)
	loop := startLoop(t, prog, nil)
	pid := loop.Process.Pid
	for _, fast := range []bool{false, true} {
		args := []string{"trace", "-p", fmt.Sprint(pid), "-e", "p:t/tick " + prog + ":tick i=%di:s64"}
		if !fast {
			args = append(args, "--no-fast")
		}
		cmd := exec.Command(ptprobeBin, args...)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = w, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		line := make([]byte, 1)
		if _, err := r.Read(line); err != nil {
			t.Fatalf("no output: %v", err)
		}
		r.Close() // the reader goes away, as head's after its lines
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("fast=%v: ptprobe: %v\n%s", fast, err, errb.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("fast=%v: ptprobe went on tracing after its reader went away\n%s", fast, errb.String())
		}
		if !strings.Contains(errb.String(), "text checked against the file") || !strings.Contains(errb.String(), "output lost") {
			t.Errorf("fast=%v: stderr %q", fast, errb.String())
		}
		if err := loop.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("fast=%v: the loop died: %v", fast, err)
		}
		checkText(t, pid, prog, "tick")
	}
}
