package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// ptprobeBin is the ptprobe binary built for these tests.
var ptprobeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ptprobe-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ptprobeBin = filepath.Join(dir, "ptprobe")
	build := exec.Command("go", "build", "-o", ptprobeBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ptprobe:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	status         int
}

func ptprobe(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(ptprobeBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

var textLine = regexp.MustCompile(`^ *probes-(\d+) +\[\d{3}\] \d+\.\d{6}: push_func: \(0x[0-9a-f]+\) a=(\d+) b=0x([0-9a-f]+)$`)

func TestTraceText(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	events := filepath.Join(dir, "events")
	r := ptprobe(t, "trace", "-e", prog+":push_func a=%di:u32 b=%si", "-o", events, "--", prog, "5")
	if r.status != 3 {
		t.Fatalf("status %d, want the program's 3; stderr:\n%s", r.status, r.stderr)
	}
	want, _ := testprog.Run(t, prog, "5")
	if r.stdout != want {
		t.Errorf("program output %q, untraced %q", r.stdout, want)
	}
	b, _ := os.ReadFile(events)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d event lines, want 5:\n%s", len(lines), b)
	}
	for i, l := range lines {
		m := textLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q does not look like a trace_pipe line", l)
		}
		if m[2] != fmt.Sprint(i) || m[3] != fmt.Sprintf("%x", 2*i) {
			t.Errorf("line %d: a=%s b=0x%s, want a=%d b=0x%x", i, m[2], m[3], i, 2*i)
		}
	}
}

func TestTraceJSONAndCount(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	r := ptprobe(t, "trace", "--format", "json", "-o", filepath.Join(dir, "ev.json"),
		"-e", "p:my/push "+prog+":push_func a=%di:s64", "-e", "r "+prog+":mid_func v=$retval:u64", "--", prog, "3")
	if r.status != 3 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ev.json"))
	var push, ret int
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct {
			TimeNS uint64         `json:"time_ns"`
			PID    int            `json:"pid"`
			TID    int            `json:"tid"`
			Comm   string         `json:"comm"`
			Probe  string         `json:"probe"`
			IP     string         `json:"ip"`
			Args   map[string]any `json:"args"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if ev.PID == 0 || ev.TID == 0 || ev.Comm != "probes" || ev.TimeNS == 0 || !strings.HasPrefix(ev.IP, "0x") {
			t.Errorf("incomplete event %q", l)
		}
		switch ev.Probe {
		case "my/push":
			if ev.Args["a"] != float64(push) {
				t.Errorf("my/push event %d: a=%v", push, ev.Args["a"])
			}
			push++
		case "ptprobe/mid_func__return":
			if ev.Args["v"] != float64(3*ret+1) {
				t.Errorf("return event %d: v=%v, want %d", ret, ev.Args["v"], 3*ret+1)
			}
			ret++
		default:
			t.Errorf("unexpected probe %q", ev.Probe)
		}
	}
	if push != 3 || ret != 3 {
		t.Errorf("%d push and %d return events, want 3 each", push, ret)
	}

	r = ptprobe(t, "trace", "--count", "-e", "p:my/push "+prog+":push_func", "-e", prog+":call_func", "--", prog, "7")
	if want := "my/push 7\nptprobe/call_func 7\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("--count printed %q, want it to end in %q", r.stdout, want)
	}
	// (The strategy: call_func's first instruction can take the jmp.)
	r = ptprobe(t, "trace", "--count", "--format", "json", "-e", prog+":call_func", "--", prog, "4")
	if want := `{"probe":"ptprobe/call_func","hits":4,"strategy":"no-stop (1 sites)"}` + "\n"; !strings.HasSuffix(r.stdout, want) {
		t.Errorf("--count --format json printed %q, want it to end in %q", r.stdout, want)
	}
}

// TestBadInput: each bad probe is reported with what and where, exits 2,
// and the program never starts.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	notELF := filepath.Join(dir, "notelf.txt")
	os.WriteFile(notELF, []byte("just text\n"), 0o644)
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"missing file", "/nonexistent/prog:main", []string{"/nonexistent/prog", "no such file"}},
		{"not ELF", notELF + ":main", []string{notELF, "not an ELF"}},
		{"unknown symbol", prog + ":no_such_function", []string{"no_such_function", "unknown symbol"}},
		{"not a boundary", prog + ":push_func+2", []string{"push_func+0x2", "not an instruction boundary"}},
		{"outside exec segment", prog + ":0x10", []string{"0x10", "outside any executable segment"}},
		{"refused instruction", prog + ":hlt_func", []string{"hlt_func", "hlt", "cannot be probed"}},
		{"malformed fetch-arg", prog + ":push_func x=%zz", []string{"Command: " + prog + ":push_func x=%zz", "^"}},
		{"unknown type", prog + ":push_func x=%di:u9", []string{"u9", "^"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			r := ptprobe(t, "trace", "-e", c.spec, "--", "/bin/sh", "-c", "touch "+marker)
			if r.status != 2 {
				t.Errorf("status %d, want 2", r.status)
			}
			if !strings.HasPrefix(r.stderr, "ptprobe: ") {
				t.Errorf("stderr %q does not start with \"ptprobe: \"", r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
					t.Errorf("stderr %q does not mention %q", r.stderr, w)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the program was started despite the bad probe")
			}
		})
	}
	// The caret stands under the bad fetch-arg.
	r := ptprobe(t, "trace", "-e", prog+":push_func x=%zz", "--", "true")
	lines := strings.Split(r.stderr, "\n")
	for i, l := range lines {
		if strings.Contains(l, "Command: ") && i+1 < len(lines) {
			col := strings.Index(lines[i+1], "^")
			if got := l[col:]; !strings.HasPrefix(got, "%zz") && !strings.HasPrefix(got, "zz") && !strings.HasPrefix(got, "x=%zz") {
				t.Errorf("caret points at %q:\n%s", got, r.stderr)
			}
		}
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	r := ptprobe(t, "list", prog, "*_func")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for _, fn := range []string{"push_func", "rip_func", "mid_func", "call_func", "jcc_func", "icall_func", "refused_func"} {
		if !regexp.MustCompile(`(?m)^0x[0-9a-f]{16} 0x[0-9a-f]{8} +\d+  ` + fn + `$`).MatchString(r.stdout) {
			t.Errorf("list does not show %s:\n%s", fn, r.stdout)
		}
	}
	if strings.Contains(r.stdout, " main\n") {
		t.Errorf("list with glob *_func shows main")
	}
	r = ptprobe(t, "list", "libc", "malloc")
	if !strings.Contains(r.stdout, " malloc@GLIBC") && !strings.Contains(r.stdout, " malloc\n") {
		t.Errorf("list libc malloc: %q %q", r.stdout, r.stderr)
	}
}

// TestUnprivileged runs ptprobe as an ordinary user (nobody), without any
// capability, tracing a program it launches.
func TestUnprivileged(t *testing.T) {
	testprog.SystemProbes(t, false)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	var argv []string
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and setpriv (util-linux) is missing: cannot drop to an ordinary user")
		}
		// Files must be reachable by nobody: t.TempDir makes its
		// directories 0700.
		for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(ptprobeBin)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		argv = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"}
	}
	argv = append(argv, ptprobeBin, "trace", "--count", "-e", prog+":push_func", "-e", "libc:malloc", "--", prog, "100")
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("unprivileged ptprobe: %v; stderr:\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "ptprobe/push_func 100\n") {
		t.Errorf("unprivileged count output %q", out.String())
	}
}

// TestSameCPU: --same-cpu confines the program to one CPU, exactly traced.
func TestSameCPU(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	r := ptprobe(t, "trace", "--same-cpu", "--cpu", "0", "--count", "-e", prog+":push_func", "--", "/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status; exec "+prog+" 25")
	if r.status != 3 || !strings.HasSuffix(r.stdout, "ptprobe/push_func 25\n") {
		t.Fatalf("status %d, output %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Cpus_allowed_list:\t0\n") {
		t.Errorf("the program was not confined to CPU 0: %q", r.stdout)
	}
}

// TestOutputToClosedPipe: events written with -o to a pipe whose reader
// goes away (| head) must not hang ptprobe: it must not hold the pipe open
// for reading itself.
func TestOutputToClosedPipe(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ptprobeBin, "trace", "-o", "/dev/fd/3", "-e", prog+":push_func", "--", prog, "20000")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	buf := make([]byte, 100)
	r.Read(buf) // one read, then the reader is gone
	r.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("ptprobe hung writing to a pipe nobody reads")
	}
}

// TestTraceHelpSaysKillLeavesBreakpoints: -p's help says what a killed
// ptprobe leaves in the program it attached to.
func TestTraceHelpSaysKillLeavesBreakpoints(t *testing.T) {
	r := ptprobe(t, "trace", "--help")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "-p, --pid") {
			if !strings.Contains(l, "SIGKILL") || !strings.Contains(l, "stay in the program") || !strings.Contains(l, "no-stop probes stop recording") {
				t.Errorf("-p's help does not say that a killed ptprobe leaves its int3s: %q", l)
			}
			return
		}
	}
	t.Errorf("no -p in trace --help:\n%s", r.stdout)
}
