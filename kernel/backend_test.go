package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
)

// checkNoSessions fails the test if tracefs has an instance or an event
// group of a session of this process. Called by tests that do not run in
// parallel, so no other session of the process is alive.
func checkNoSessions(t *testing.T, tfs *tracefs.Tracefs) {
	t.Helper()
	own := SessionPrefix + strconv.Itoa(os.Getpid())
	for _, dir := range []string{"instances", "events"} {
		ents, err := os.ReadDir(tfs.Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() == own || strings.HasPrefix(e.Name(), own+"_") {
				t.Errorf("%s/%s is left in tracefs", dir, e.Name())
			}
		}
	}
	data, err := os.ReadFile(tfs.Path(tracefs.UprobeEvents))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, ":"+own+"/") || strings.Contains(l, ":"+own+"_") {
			t.Errorf("uprobe_events still has %q", l)
		}
	}
}

// probes parses uprobe specs into a Request's probes.
func probes(t *testing.T, texts ...string) []backend.Probe {
	t.Helper()
	var ps []backend.Probe
	for _, text := range texts {
		ps = append(ps, backend.Probe{Spec: mustParse(t, text)})
	}
	return ps
}

// TestBackendRun: Run starts the program with the Process asked for,
// reports every hit of its process to OnEvent, counts them per probe in
// the order of the Request, says how the program ended, and leaves
// nothing in tracefs.
func TestBackendRun(t *testing.T) {
	tfs := requireTracefs(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var mu sync.Mutex
	var evs []*uprobe.Event
	startedPID := 0
	const n = 300
	req := &backend.Request{
		Probes:  probes(t, "p:t/push "+prog+":push_func a=%di:s64", "r:t/mid "+prog+":mid_func v=$retval:s64"),
		Argv:    []string{prog, strconv.Itoa(n)},
		Process: backend.Process{Stdout: out, NoASLR: true},
		OnEvent: func(ev *uprobe.Event) {
			mu.Lock()
			evs = append(evs, ev)
			mu.Unlock()
		},
		Started: func(pid int) { startedPID = pid },
		Warn:    func(err error) { t.Errorf("warning: %v", err) },
	}
	var b backend.Backend = Backend{}
	res, err := b.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s backend: %+v", b.Name(), res)
	if res.PID == 0 || res.PID != startedPID || res.ExitCode != 3 || res.Signal != 0 || res.Detached || res.Status() != 3 || res.Wall <= 0 {
		t.Errorf("result %+v (Started with %d), want exit 3 of the started program", res, startedPID)
	}
	if len(res.Probes) != 2 || res.Probes[0].Spec != req.Probes[0].Spec || res.Probes[1].Spec != req.Probes[1].Spec {
		t.Fatalf("result probes %+v, want the request's two", res.Probes)
	}
	for _, p := range res.Probes {
		if p.Hits != n || !p.Armed || p.Missed != 0 {
			t.Errorf("probe %s: %+v, want %d hits", p.Spec.Probe(), p, n)
		}
	}
	if len(evs) != 2*n {
		t.Fatalf("%d events, want %d", len(evs), 2*n)
	}
	for _, ev := range evs {
		if ev.PID != res.PID {
			t.Fatalf("event of pid %d, the program is %d", ev.PID, res.PID)
		}
	}
	if b, _ := os.ReadFile(out.Name()); !strings.HasPrefix(string(b), "push=") {
		t.Errorf("the program's output %q did not go to Process.Stdout", b)
	}
	checkNoSessions(t, tfs)
}

// TestBackendLibraryEnv: a library name of a spec is found as the program
// finds its libraries, here through the LD_LIBRARY_PATH of the program's
// own environment only.
func TestBackendLibraryEnv(t *testing.T) {
	tfs := requireTracefs(t)
	dir := t.TempDir()
	prog, _ := testprog.BuildRunpath(t, dir, false)
	// Out of the program's DT_RUNPATH: only LD_LIBRARY_PATH finds it.
	libDir := filepath.Join(dir, "elsewhere")
	if err := os.Rename(filepath.Join(dir, "lib"), libDir); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "LD_LIBRARY_PATH="+libDir)
	req := &backend.Request{Probes: probes(t, "p:t/plug libptplugin:plugin_func x=%di:s64"), Argv: []string{prog, "7"}, Process: backend.Process{Env: env, Stdout: devNull(t)}}
	res, err := Backend{}.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Probes[0].Hits != 7 {
		t.Errorf("result %+v, probes %+v: want exit 0 and 7 hits", res, res.Probes)
	}
	req.Process.Env = nil
	started := false
	req.Started = func(int) { started = true }
	if _, err := (Backend{}).Run(context.Background(), req); !errors.Is(err, elfsym.ErrNoLibrary) || started {
		t.Errorf("without the program's LD_LIBRARY_PATH: %v (started: %v), want ErrNoLibrary before the program starts", err, started)
	}
	checkNoSessions(t, tfs)
}

// TestBackendRefuses: what the kernel backend cannot do is refused before
// the program starts, leaving nothing in tracefs.
func TestBackendRefuses(t *testing.T) {
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	withHandler := probes(t, "p:t/push "+prog+":push_func")
	withHandler[0].Handlers.Pre = func(uprobe.Context) {}
	kprobe, err := uprobe.ParseKprobe("p:k/read vfs_read fd=%di:s32")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		req  backend.Request
		want string
		is   error
	}{
		{"attach and launch", backend.Request{Probes: probes(t, "p:t/push "+prog+":push_func"), PID: os.Getpid(), Argv: []string{prog, "1"}}, "not both", nil},
		{"attach to no process", backend.Request{Probes: probes(t, "p:t/push "+prog+":push_func"), PID: 1 << 30}, "no such process", nil},
		{"no program", backend.Request{Probes: probes(t, "p:t/push "+prog+":push_func")}, "no program", nil},
		{"handlers", backend.Request{Probes: withHandler, Argv: []string{prog, "1"}}, "Go handlers", nil},
		{"unknown symbol", backend.Request{Probes: probes(t, "p:t/x "+prog+":no_such_func"), Argv: []string{prog, "1"}}, "no_such_func", elfsym.ErrUnknownSymbol},
		{"refused", backend.Request{Probes: probes(t, "p:t/x "+prog+":push_func fsb=%fs_base"), Argv: []string{prog, "1"}}, "Invalid register name", syscall.EINVAL},
		{"uprobe as kprobe", backend.Request{Kprobes: []*uprobe.Spec{mustParse(t, "p:t/x "+prog+":push_func")}, Argv: []string{prog, "1"}}, "is a uprobe spec", nil},
		{"no program file", backend.Request{Argv: []string{"ptprobe-no-such-program"}}, "ptprobe-no-such-program", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			started := false
			c.req.Started = func(int) { started = true }
			_, err := Backend{}.Run(context.Background(), &c.req)
			if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) || started {
				t.Errorf("Run = %v (started: %v), want an error saying %q before the program starts", err, started, c.want)
			}
			t.Logf("%v", err)
		})
	}
	if !tfs.Features.KprobeEvents {
		req := &backend.Request{Kprobes: []*uprobe.Spec{kprobe}, Argv: []string{prog, "1"}}
		if _, err := (Backend{}).Run(context.Background(), req); !errors.Is(err, ErrKprobesUnsupported) {
			t.Errorf("kprobe on a kernel without kprobe_events: %v", err)
		}
	}
	checkNoSessions(t, tfs)
}

// TestBackendCancel: when the context is done while the program runs,
// Run removes the probes and returns Detached at once; the program runs
// on untraced (no more events), and once killed it is reaped by the
// backend, not left a zombie.
func TestBackendCancel(t *testing.T) {
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "loop", append([]string{"-pthread"}, testprog.PIE...)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	events := 0
	pid := 0
	req := &backend.Request{
		Probes:  probes(t, "p:t/tick "+prog+":tick i=%di:s64"),
		Argv:    []string{prog},
		Process: backend.Process{Stdout: devNull(t)},
		Started: func(p int) { pid = p },
		OnEvent: func(*uprobe.Event) {
			mu.Lock()
			events++
			if events == 20 {
				cancel()
			}
			mu.Unlock()
		},
	}
	start := time.Now()
	res, err := Backend{}.Run(ctx, req)
	if pid > 0 {
		defer syscall.Kill(pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cancelled after %v: %+v", time.Since(start), res)
	if !res.Detached || res.PID != pid || res.Status() != 0 {
		t.Errorf("result %+v, want Detached from pid %d", res, pid)
	}
	if res.Probes[0].Hits < 20 {
		t.Errorf("probe hits %d, want at least the 20 events before the cancel", res.Probes[0].Hits)
	}
	checkNoSessions(t, tfs)
	mu.Lock()
	atReturn := events
	mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the program did not run on: %v", err)
	}
	mu.Lock()
	after := events
	mu.Unlock()
	if after != atReturn {
		t.Errorf("%d events after Run returned", after-atReturn)
	}
	// Killed, the program is waited for by the backend: gone, not a
	// zombie (a zombie still takes signal 0).
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the killed program %d was not reaped", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
