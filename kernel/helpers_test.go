package kernel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/internal/launch"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// requireTracefs opens this machine's tracefs for the tests that use the
// real kernel, or skips them saying why they cannot run.
func requireTracefs(t *testing.T) *tracefs.Tracefs {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the kernel backend tests define uprobes in tracefs, which needs root (run `go test ./kernel/` as root)")
	}
	tfs, err := tracefs.Open()
	if err != nil {
		t.Skipf("skipped: no tracefs on this machine: %v", err)
	}
	if !tfs.Features.UprobeEvents {
		t.Skipf("skipped: this kernel has no uprobe_events in %s (CONFIG_UPROBE_EVENTS is off)", tfs.Root)
	}
	if !tfs.Features.Instances {
		t.Skipf("skipped: %s has no instances directory", tfs.Root)
	}
	return tfs
}

// newTestSession makes a session whose warnings fail the test, and which
// is closed when the test ends, however it ends; the cleanup also checks
// that nothing of the session is left in tracefs.
func newTestSession(t *testing.T, tfs *tracefs.Tracefs, opts *Options) *Session {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Warn == nil {
		o.Warn = func(err error) { t.Errorf("session warning: %v", err) }
	}
	s, err := newSession(tfs, &o)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(s.inst.Dir)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkClosed(t, tfs, s, ino)
	})
	return s
}

// inode is the inode number of path, 0 if it does not exist.
func inode(path string) uint64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// checkClosed fails the test if tracefs still has an event definition of
// the closed session s or its instance (ino). Parallel tests make new
// sessions that may reuse the name at once: what was s's is recognized by
// its lines (which hold each test's own program path) and the instance
// directory's inode.
func checkClosed(t *testing.T, tfs *tracefs.Tracefs, s *Session, ino uint64) {
	t.Helper()
	data, err := os.ReadFile(tfs.Path(tracefs.UprobeEvents))
	if err != nil {
		t.Fatal(err)
	}
	var kdata []byte
	// uprobe_events shows offsets as 0x%016x: compare the names and
	// paths.
	for _, p := range s.probes {
		_, name, _ := strings.Cut(strings.Fields(p.line)[0], ":")
		if p.file == tracefs.KprobeEvents {
			// Kernel probes have no path of the test's own: the name
			// (only the VM tests define them, one at a time).
			if kdata == nil {
				if kdata, err = os.ReadFile(tfs.Path(tracefs.KprobeEvents)); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range strings.Split(string(kdata), "\n") {
				if w := strings.Fields(l); len(w) > 1 && strings.HasSuffix(w[0], ":"+name) {
					t.Errorf("kprobe_events still has %q", l)
				}
			}
			continue
		}
		path := strings.Fields(p.line)[1]
		path = path[:strings.LastIndexByte(path, ':')]
		for _, l := range strings.Split(string(data), "\n") {
			if w := strings.Fields(l); len(w) > 1 && strings.HasSuffix(w[0], ":"+name) && strings.HasPrefix(w[1], path+":") {
				t.Errorf("uprobe_events still has %q", l)
			}
		}
	}
	if ino != 0 && inode(s.inst.Dir) == ino {
		t.Errorf("instance %s is still there", s.inst.Dir)
	}
}

// collector gathers the events of a run, safe for the reader goroutine.
type collector struct {
	mu  sync.Mutex
	evs []*uprobe.Event
}

func (c *collector) add(ev *uprobe.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
	return nil
}

func (c *collector) byProbe(name string) []*uprobe.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r []*uprobe.Event
	for _, ev := range c.evs {
		if ev.Probe() == name {
			r = append(r, ev)
		}
	}
	return r
}

func mustParse(t testing.TB, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		if e, ok := err.(*uprobe.Error); ok {
			t.Fatalf("parse %q:\n%s", text, e.Caret())
		}
		t.Fatalf("parse %q: %v", text, err)
	}
	return s
}

// addSpecs parses and adds uprobe specs, failing the test on an error.
func addSpecs(t *testing.T, s *Session, specs ...string) {
	t.Helper()
	for _, text := range specs {
		if err := s.AddUprobe(mustParse(t, text)); err != nil {
			var ke *KernelError
			if errors.As(err, &ke) {
				t.Fatalf("AddUprobe(%q): %v\n%s", text, err, ke.Caret())
			}
			t.Fatalf("AddUprobe(%q): %v", text, err)
		}
	}
}

// runArgv runs argv under the session as Backend.Run does (forks
// followed), with its standard output to out.
func runArgv(s *Session, argv []string, out *os.File, fn func(*uprobe.Event) error) (runResult, error) {
	path, err := launch.LookPath(argv[0])
	if err != nil {
		return runResult{}, err
	}
	return s.run(context.Background(), path, argv, &backend.Process{Stdout: out}, true, nil, fn)
}

// runCollect runs argv under the session and returns its events, its
// output and exit code.
func runCollect(t *testing.T, s *Session, argv ...string) (*collector, string, int, int) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c := &collector{}
	r, err := runArgv(s, argv, out, c.add)
	if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	if r.exit.Signal != 0 {
		t.Fatalf("run %v: killed by %v", argv, r.exit.Signal)
	}
	code := r.exit.Code
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	if len(c.evs) > 0 {
		pid = c.evs[0].PID
	}
	return c, string(b), code, pid
}

// buildC compiles a C file of testdata/ with gcc into dir.
func buildC(t *testing.T, dir, name string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipped: gcc is not installed: cannot build the C targets")
	}
	out := filepath.Join(dir, name)
	args := append(append([]string{}, flags...), "-o", out, filepath.Join("testdata", name+".c"))
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds.
func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// devNull is /dev/null opened for writing, closed when the test ends.
func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
