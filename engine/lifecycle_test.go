package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestFork: 200 children call the probed function; followed, every call
// is a hit; not followed, no child dies of a stray int3 and only the
// parent's hit is seen.
func TestFork(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "forker", testprog.PIE...)
	want, _ := testprog.Run(t, prog, "200", "10")
	if want != "children=200 bad=0\n" {
		t.Fatalf("untraced forker printed %q", want)
	}
	tr := runTraced(t, specs(t, "p:t/probed "+prog+":probed", "r:t/ret "+prog+":probed"), false, prog, "200", "10")
	if tr.out != want {
		t.Errorf("followed: output %q, want %q", tr.out, want)
	}
	if a, b := tr.probe(t, "t/probed").Hits(), tr.probe(t, "t/ret").Hits(); a != 2001 || b != 2001 {
		t.Errorf("followed: %d hits, %d returns; want 2001 each", a, b)
	}

	cfg := engine.Options{NoFollowFork: true}
	tr = runTracedCfg(t, cfg, specs(t, "p:t/probed "+prog+":probed", "r:t/ret "+prog+":probed"), prog, "200", "10")
	if tr.out != want {
		t.Errorf("not followed: output %q, want %q (children died?)", tr.out, want)
	}
	if a, b := tr.probe(t, "t/probed").Hits(), tr.probe(t, "t/ret").Hits(); a != 1 || b != 1 {
		t.Errorf("not followed: %d hits, %d returns; want only the parent's 1", a, b)
	}
}

// TestSpawn: vfork+exec, a chain of three execs and posix_spawn; each new
// image is armed again.
func TestSpawn(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "spawner", testprog.PIE...)
	for _, c := range []struct {
		args     []string
		hits     uint64
		noFollow bool
	}{
		{[]string{"vfork"}, 2, false},
		{[]string{"vfork"}, 1, true},
		{[]string{"chain", "3"}, 4, false},
		{[]string{"spawn"}, 2, false},
		{[]string{"spawn"}, 1, true},
	} {
		t.Run(fmt.Sprintf("%s/nofollow=%v", strings.Join(c.args, "-"), c.noFollow), func(t *testing.T) {
			argv := append([]string{prog}, c.args...)
			want, _ := testprog.Run(t, argv...)
			tr := runTracedCfg(t, engine.Options{NoFollowFork: c.noFollow}, specs(t, "p:t/stage "+prog+":stage"), argv...)
			if tr.out != want {
				t.Errorf("output %q, untraced %q", tr.out, want)
			}
			if got := tr.probe(t, "t/stage").Hits(); got != c.hits {
				t.Errorf("%d hits, want %d", got, c.hits)
			}
		})
	}
}

// TestDlopen: probes on a library loaded a second after start, named by
// path and by library name, are armed before its code runs. The name is
// found through the program's LD_LIBRARY_PATH: a library found nowhere
// is refused.
func TestDlopen(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "dlopener", testprog.PIE...)
	lib := filepath.Join(dir, "libplugin.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	argv := []string{prog, lib, "50", "1000"}
	want, _ := testprog.Run(t, argv...)
	tr := launchTraced(t, engine.Options{Process: backend.Process{Env: append(os.Environ(), "LD_LIBRARY_PATH="+dir)}},
		specs(t, "p:t/bypath "+lib+":plugin_func x=%di:s64", "p:t/byname libplugin:plugin_func"), true, argv)
	if tr.out != want {
		t.Errorf("output %q, untraced %q", tr.out, want)
	}
	hits := tr.byProbe("t/bypath")
	if len(hits) != 50 || tr.probe(t, "t/byname").Hits() != 50 {
		t.Fatalf("%d and %d hits, want 50 each", len(hits), tr.probe(t, "t/byname").Hits())
	}
	for i, h := range hits {
		if h.args[0].U != uint64(i) {
			t.Fatalf("hit %d: x=%d", i, h.args[0].U)
		}
	}
}

// TestDlopenRounds: a library loaded and closed again and again (the
// dynamic linker maps it, often at another address, and unmaps it) has
// its probe armed before each round's calls, on both paths: every call
// is a hit. On the no-stop path the linker's hook is a patched jmp whose
// thread waits for the rescan (docs/DESIGN.md §8).
func TestDlopenRounds(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "dlopener", testprog.PIE...)
	lib := filepath.Join(dir, "libplugin.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	const rounds, calls = 100, 10
	argv := []string{prog, lib, fmt.Sprint(calls), "0", fmt.Sprint(rounds)}
	want, _ := testprog.Run(t, argv...)
	for _, stopPath := range []bool{false, true} {
		t.Run(fmt.Sprintf("StopPath=%v", stopPath), func(t *testing.T) {
			start := time.Now()
			tr := launchTraced(t, engine.Options{StopPath: stopPath}, specs(t, "p:t/plugin "+lib+":plugin_func x=%di:s64"), true, argv)
			if tr.out != want {
				t.Errorf("output %q, untraced %q", tr.out, want)
			}
			hits := tr.byProbe("t/plugin")
			if len(hits) != rounds*calls {
				t.Fatalf("%d hits, want %d", len(hits), rounds*calls)
			}
			for i, h := range hits {
				if h.args[0].U != uint64(i%calls) {
					t.Fatalf("hit %d: x=%d, want %d", i, h.args[0].U, i%calls)
				}
			}
			noStop, stop, _ := tr.probe(t, "t/plugin").Path()
			t.Logf("%d rounds in %v; the probe armed %d times on the no-stop path, %d on the stop path", rounds, time.Since(start), noStop, stop)
		})
	}
}

// TestSignals: a program that stops itself, one with its own SIGTRAP
// handler, and a read interrupted by an interval timer with and without
// SA_RESTART behave as untraced.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "signals", testprog.PIE...)
	for _, args := range [][]string{{"trap", "7"}, {"itimer", "1"}, {"itimer", "0"}} {
		t.Run(strings.Join(args, "-"), func(t *testing.T) {
			argv := append([]string{prog}, args...)
			want, _ := testprog.Run(t, argv...)
			tr := runTraced(t, specs(t, "p:t/probed "+prog+":probed", "r:t/ret "+prog+":probed"), false, argv...)
			if tr.out != want {
				t.Errorf("output %q, untraced %q", tr.out, want)
			}
			if a, b := tr.probe(t, "t/probed").Hits(), tr.probe(t, "t/ret").Hits(); a != 10 || b != 10 {
				t.Errorf("%d hits and %d returns, want 10 each", a, b)
			}
		})
	}
	t.Run("stop", func(t *testing.T) {
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		sess, err := engine.Launch([]string{prog, "stop"}, &engine.Options{Probes: specs(t, "p:t/probed "+prog+":probed"), Process: backend.Process{Stdout: out}})
		if err != nil {
			t.Fatal(err)
		}
		// It must stay stopped, as without ptprobe, until continued.
		stopped := false
		for i := 0; i < 200 && !stopped; i++ {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sess.Pid()))
			f := strings.Fields(string(b))
			stopped = len(f) > 2 && (f[2] == "t" || f[2] == "T")
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if b, _ := os.ReadFile(out.Name()); len(b) != 0 {
			t.Errorf("the program went on before SIGCONT: %q", b)
		}
		if !stopped {
			t.Error("the program never stopped")
		}
		unix.Kill(sess.Pid(), unix.SIGCONT)
		res, err := sess.Wait()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out.Name())
		if string(b) != "continued\nsum=45\n" || res.ExitCode != 0 || sess.Probes()[0].Hits() != 10 {
			t.Errorf("after SIGCONT: output %q, status %d, %d hits", b, res.ExitCode, sess.Probes()[0].Hits())
		}
	})
}

// runTracedCfg is runTraced with more of the Config set.
func runTracedCfg(t *testing.T, cfg engine.Options, probes []backend.Probe, argv ...string) *traced {
	t.Helper()
	return launchTraced(t, cfg, probes, false, argv)
}

// TestOtherChildren: the process embedding the engine has children of
// its own. One outlives the session: the session still ends with its
// program. One exits during the session: its exit status is left for its
// own Wait.
func TestOtherChildren(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	long := exec.Command("sleep", "60")
	short := exec.Command("sh", "-c", "sleep 0.2; exit 7")
	for _, c := range []*exec.Cmd{long, short} {
		if err := c.Start(); err != nil {
			t.Skipf("skipped: cannot start %s: %v", c.Path, err)
		}
	}
	defer func() {
		long.Process.Kill()
		long.Wait()
	}()
	// Were the session to wait for every child, killing the long one
	// would end it: after 20 s, and the test fails.
	start := time.Now()
	watchdog := time.AfterFunc(20*time.Second, func() { long.Process.Kill() })
	tr := runTraced(t, specs(t, "p:t/push "+prog+":push_func", "p:t/sleep libc:nanosleep"), false, "sh", "-c", "sleep 0.5; exec "+prog+" 10")
	if !watchdog.Stop() {
		t.Fatalf("the session ended only when the other child was killed, after %v", time.Since(start))
	}
	if got := tr.probe(t, "t/push").Hits(); got != 10 {
		t.Errorf("%d hits, want 10", got)
	}
	err := short.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("the child that exited during the session: Wait says %v, want exit status 7", err)
	}
	if err := unix.Kill(long.Process.Pid, 0); err != nil {
		t.Errorf("the other child: %v", err)
	}
}

// TestVforkWindow: while a vfork child sleeps in the parent's memory,
// another thread of the parent dlopens a library and calls into it and the
// program (testdata/c/vforkdl.c). Its hits are its own, not the child's
// (the records carry the child's generation), also when children are not
// followed; and the library loaded meanwhile is armed before its first
// call: the dynamic linker's hook rescans with the forking thread waiting
// in vfork, which cannot be held (found by the red-team review: the
// library was never armed, then the rescan hung).
func TestVforkWindow(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "vforkdl", append(testprog.PIE, "-pthread")...)
	lib := filepath.Join(dir, "libplugin.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", lib, filepath.Join(testprog.Root(), "testdata", "c", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	want, _ := testprog.Run(t, prog, lib)
	for _, c := range []struct {
		name string
		opts engine.Options
	}{{"no-stop", engine.Options{}}, {"no-stop, children not followed", engine.Options{NoFollowFork: true}}, {"stop path", engine.Options{StopPath: true}}} {
		t.Run(c.name, func(t *testing.T) {
			tr := launchTraced(t, c.opts, specs(t, "p:t/plugin "+lib+":plugin_func x=%di:s64", "p:t/probed "+prog+":probed i=%di:s64"), true, []string{prog, lib})
			if tr.out != want || tr.result.ExitCode != 0 {
				t.Fatalf("traced: %q, status %d; untraced %q", tr.out, tr.result.ExitCode, want)
			}
			plugin, probed := tr.byProbe("t/plugin"), tr.byProbe("t/probed")
			if len(plugin) != 10 || len(probed) != 3 {
				t.Fatalf("%d plugin_func and %d probed hits, want 10 and 3", len(plugin), len(probed))
			}
			// The main thread (tid = pid) makes the last five calls,
			// the second thread the others, all in the parent.
			pid := plugin[9].tid
			second := plugin[0].tid
			for i, h := range append(plugin, probed...) {
				wantTID := second
				if i >= 5 && i < 10 {
					wantTID = pid
				}
				if h.pid != pid || h.tid != wantTID || second == pid {
					t.Errorf("hit %d (%s %v) of %d/%d, want %d/%d", i, h.probe, h.args[0].U, h.pid, h.tid, pid, wantTID)
				}
			}
		})
	}
}

// TestForkWithoutRing: a fork child that cannot get a ring of its own
// (no file descriptor left for memfd_create, testdata/c/forklimit.c) gets
// its text back and records nothing, and the parent's no-stop probes go
// on: every one of the parent's calls is there (found by the red-team
// review: the parent's probes fell silent with the child's).
func TestForkWithoutRing(t *testing.T) {
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "forklimit", testprog.PIE...)
	cfg := engine.Options{}
	var warned []error
	cfg.Warn = func(err error) { warned = append(warned, err) }
	tr := launchTraced(t, cfg, specs(t, "p:t/probed "+prog+":probed i=%di:s64"), true, []string{prog})
	if tr.out != "ok\n" || tr.result.ExitCode != 0 {
		t.Fatalf("traced: %q, status %d", tr.out, tr.result.ExitCode)
	}
	hits := tr.byProbe("t/probed")
	var got []uint64
	for _, h := range hits {
		got = append(got, h.args[0].U)
	}
	if !slices.Equal(got, []uint64{0, 1, 2, 10, 11, 12}) {
		t.Fatalf("probed(i) for i = %v, want 0 1 2 10 11 12", got)
	}
	if len(warned) != 1 || !strings.Contains(warned[0].Error(), "record nothing") {
		t.Errorf("warnings %v, want the child's", warned)
	}
}
