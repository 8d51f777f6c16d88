package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestUprobeAndRetprobe: exact hit counts and the arguments the program
// passed, for an entry probe, a return probe and a probe inside a
// function.
func TestUprobeAndRetprobe(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s,
		"p:t/push "+prog+":push_func a=%di:s64 b=%si:s64",
		"r:t/mid "+prog+":mid_func v=$retval:s64",
		"p:t/midpt "+prog+":mid_func+8 rbx=%bx:s64 arg=%di:u32",
	)
	const n = 1000
	start := time.Now()
	c, out, code, pid := runCollect(t, s, prog, strconv.Itoa(n))
	elapsed := time.Since(start)
	t.Logf("%d hits of 3 probes: %v (%.2f µs per hit, program start and reading included)", 3*n, elapsed, float64(elapsed.Microseconds())/(3*n))
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if !strings.HasPrefix(out, "push=") {
		t.Errorf("output %q", out)
	}

	push, mid, midpt := c.byProbe("t/push"), c.byProbe("t/mid"), c.byProbe("t/midpt")
	if len(push) != n || len(mid) != n || len(midpt) != n {
		t.Fatalf("events: push %d, mid %d, midpt %d, want %d each", len(push), len(mid), len(midpt), n)
	}
	f, err := elfsym.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pushSym, _ := f.Lookup("push_func")
	midSym, _ := f.Lookup("mid_func")
	var base uint64 // load address of the PIE
	for i := 0; i < n; i++ {
		ev := push[i]
		if ev.PID != pid || ev.TID != pid || ev.Comm != "probes" || ev.Kind != uprobe.Entry {
			t.Fatalf("push event %d: %+v", i, ev)
		}
		if i == 0 {
			base = ev.IP - pushSym.Value
		}
		if ev.IP != base+pushSym.Value {
			t.Fatalf("push event %d at 0x%x, want 0x%x", i, ev.IP, base+pushSym.Value)
		}
		if a, b := int64(ev.Args[0].U), int64(ev.Args[1].U); a != int64(i) || b != 2*int64(i) {
			t.Fatalf("push event %d: a=%d b=%d, want %d %d", i, a, b, i, 2*i)
		}
		ev = mid[i]
		if ev.Kind != uprobe.Return || ev.IP != base+midSym.Value || ev.RetIP < base || ev.RetIP == ev.IP {
			t.Fatalf("mid event %d: %+v (mid_func at 0x%x)", i, ev, base+midSym.Value)
		}
		if v := int64(ev.Args[0].U); v != 3*int64(i)+1 {
			t.Fatalf("mid event %d: v=%d, want %d", i, v, 3*i+1)
		}
		ev = midpt[i]
		if ev.IP != base+midSym.Value+8 || int64(ev.Args[0].U) != 3*int64(i) || ev.Args[1].U != uint64(i) {
			t.Fatalf("midpt event %d: %+v", i, ev)
		}
	}
	// Time order, in CLOCK_MONOTONIC.
	nowNS := monotonicNow()
	for i := 1; i < n; i++ {
		if push[i].TimeNS < push[i-1].TimeNS {
			t.Fatalf("push events out of time order at %d", i)
		}
	}
	if !s.mono || push[0].TimeNS > nowNS || nowNS-push[0].TimeNS > uint64(time.Minute) {
		t.Errorf("first event at %d ns, now is %d ns (CLOCK_MONOTONIC)", push[0].TimeNS, nowNS)
	}

	hits, err := s.Hits()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"t/push", "t/mid", "t/midpt"} {
		if hits[p] != n {
			t.Errorf("Hits[%s] = %d, want %d (all: %v)", p, hits[p], n, hits)
		}
	}
	if lost, err := s.Lost(); err != nil || lost != 0 {
		t.Errorf("Lost = %d, %v", lost, err)
	}
}

// TestStrings: string fetches from the program's memory, through a
// library probe, and strings that are awkward to print.
func TestStrings(t *testing.T) {
	testprog.SystemProbes(t, true)
	t.Parallel()
	tfs := requireTracefs(t)
	dir := t.TempDir()
	libcalls := testprog.Build(t, dir, "libcalls", testprog.PIE...)
	strs := buildC(t, dir, "strings", "-O2")
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s,
		"p:t/strtol libc:strtol s=+0(%di):string base=%dx:s32",
		"p:t/main "+libcalls+":main argc=%di:s32 arg1=+0(+8(%si)):string c=$comm",
		"p:t/take "+strs+":take_str i=%di:s64 s=+0(%si):string after=%si:x64",
		"p:t/int "+strs+":take_int i=%di:s8 x=%di:x16 u=%di:u32",
	)
	const n = 25
	c, out, code, pid := runCollect(t, s, libcalls, strconv.Itoa(n))
	if code != 0 || !strings.HasPrefix(out, "sum=") {
		t.Fatalf("libcalls: exit %d, output %q", code, out)
	}
	main := c.byProbe("t/main")
	if len(main) != 1 || main[0].Args[0].U != 2 || main[0].Args[1].S != strconv.Itoa(n) || main[0].Args[2].S != "libcalls" {
		t.Fatalf("main events %+v", main)
	}
	strtol := c.byProbe("t/strtol")
	if len(strtol) != n {
		t.Fatalf("%d strtol events, want %d", len(strtol), n)
	}
	for i, ev := range strtol {
		if ev.PID != pid || ev.Args[0].S != strconv.Itoa(7*i) || ev.Args[1].U != 10 {
			t.Fatalf("strtol event %d: %+v", i, ev)
		}
	}

	c, _, code, _ = runCollect(t, s, strs)
	if code != 0 {
		t.Fatalf("strings: exit %d", code)
	}
	take := c.byProbe("t/take")
	want := []struct {
		s     string
		fault bool
	}{
		{"plain", false}, {"with space", false}, {`quote" x="y`, false},
		{"new\nline", false}, {"", false}, {"tab\there", false},
		// 5000 bytes: beyond the kernel's MAX_STRING_SIZE, which
		// makes it a fault, not a cut string.
		{"", true},
		{"", true}, // at address 8
	}
	if len(take) != len(want) {
		t.Fatalf("%d take_str events, want %d: %+v", len(take), len(want), take)
	}
	for i, w := range want {
		a := take[i].Args
		if a[1].S != w.s || a[1].Fault != w.fault || int64(a[0].U) != int64(i) && i < 7 {
			t.Errorf("take_str event %d: %+v, want %q fault=%v", i, a, w.s, w.fault)
		}
	}
	ints := c.byProbe("t/int")
	if len(ints) != 5 {
		t.Fatalf("%d take_int events", len(ints))
	}
	for i, ev := range ints {
		v := int64(i - 2)
		if int64(ev.Args[0].U) != v || ev.Args[1].U != uint64(v)&0xffff || ev.Args[2].U != uint64(v)&0xffffffff {
			t.Errorf("take_int(%d) event: %+v", v, ev.Args)
		}
	}
	if s.badLines.Load() != 0 {
		t.Errorf("%d bad lines", s.badLines.Load())
	}
}

// TestKernelRefuses: a fetch-arg ptprobe's parser accepts and the kernel
// does not returns the kernel's error_log message and caret; offsets
// outside the code are refused before the kernel sees them; nothing is
// left defined.
func TestKernelRefuses(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	s := newTestSession(t, tfs, nil)

	// %fs_base is a register of ptrace's user_regs_struct, not of the
	// kernel's pt_regs.
	err := s.AddUprobe(mustParse(t, "p:t/bad "+prog+":push_func a=%di:s64 fsb=%fs_base"))
	var ke *KernelError
	if !errors.As(err, &ke) {
		t.Fatalf("AddUprobe = %v, want a *KernelError", err)
	}
	t.Logf("%v\n%s", err, ke.Caret())
	if ke.Msg != "Invalid register name" || ke.Pos < 0 || !strings.HasPrefix(ke.Line[ke.Pos:], "%fs_base") {
		t.Errorf("kernel error %+v", ke)
	}
	lines := strings.Split(ke.Caret(), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "Invalid register name") || !strings.HasSuffix(lines[1], ke.Line) || strings.TrimSpace(lines[2]) != "^" {
		t.Errorf("caret lines %q", lines)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("%v does not wrap EINVAL", err)
	}

	// File offset 0 is in the ELF header, not in code.
	err = s.AddUprobe(mustParse(t, "p:t/hdr "+prog+":0x0"))
	if !errors.Is(err, elfsym.ErrNotExecutable) {
		t.Errorf("offset 0: %v, want ErrNotExecutable", err)
	}
	// Inside an instruction: mid_func+2 is in "mov %rdi,%rbx".
	if err := s.AddUprobe(mustParse(t, "p:t/mid2 "+prog+":mid_func+2")); err == nil || !strings.Contains(err.Error(), "boundary") {
		t.Errorf("mid-instruction probe: %v", err)
	}
	if err := s.AddUprobe(mustParse(t, "p:t/nosym "+prog+":no_such_function")); !errors.Is(err, elfsym.ErrUnknownSymbol) {
		t.Errorf("unknown symbol: %v", err)
	}
	if err := s.AddUprobe(mustParse(t, "p:t/nolib libnosuchlib:f")); err == nil {
		t.Errorf("unknown library accepted")
	}
	data, _ := os.ReadFile(tfs.Path(tracefs.UprobeEvents))
	if strings.Contains(string(data), s.inst.Name+"/") {
		t.Errorf("uprobe_events has a definition of the session after refusals:\n%s", data)
	}
	// The session still works.
	addSpecs(t, s, "p:t/push "+prog+":push_func")
	if err := s.AddUprobe(mustParse(t, "p:t/push "+prog+":push_func")); err == nil {
		t.Errorf("a probe defined twice was accepted")
	}
	c, _, _, _ := runCollect(t, s, prog, "5")
	if n := len(c.byProbe("t/push")); n != 5 {
		t.Errorf("%d events after refusals, want 5", n)
	}
}

// TestParallelSessions: sessions of one process on the same probes of the
// same file, running at once, each see exactly their own program's events.
func TestParallelSessions(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	counts := []int{300, 500, 700}
	var wg sync.WaitGroup
	type result struct {
		c   *collector
		pid int
		err error
	}
	results := make([]result, len(counts))
	sessions := make([]*Session, len(counts))
	for i := range counts {
		sessions[i] = newTestSession(t, tfs, nil)
		addSpecs(t, sessions[i], "p:t/push "+prog+":push_func a=%di:s64", "r:t/mid "+prog+":mid_func v=$retval:s64")
	}
	names := map[string]bool{}
	for _, s := range sessions {
		names[s.inst.Name] = true
	}
	if len(names) != len(sessions) {
		t.Fatalf("sessions share names: %v", names)
	}
	for i, n := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &collector{}
			r, err := runArgv(sessions[i], []string{prog, strconv.Itoa(n)}, devNull(t), c.add)
			if err == nil && r.exit.Code != 3 {
				err = fmt.Errorf("exit code %d", r.exit.Code)
			}
			pid := 0
			if len(c.evs) > 0 {
				pid = c.evs[0].PID
			}
			results[i] = result{c: c, pid: pid, err: err}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("session %d: %v", i, r.err)
		}
		for _, p := range []string{"t/push", "t/mid"} {
			evs := r.c.byProbe(p)
			if len(evs) != counts[i] {
				t.Errorf("session %d: %d %s events, want %d", i, len(evs), p, counts[i])
			}
			for _, ev := range evs {
				if ev.PID != r.pid {
					t.Fatalf("session %d: event of pid %d, its program is %d", i, ev.PID, r.pid)
				}
			}
		}
		// The kernel counts the hits of every process before its pid
		// filter: each session's counters saw the other programs too.
		hits, err := sessions[i].Hits()
		if err != nil {
			t.Fatal(err)
		}
		if hits["t/push"] < uint64(counts[i]) {
			t.Errorf("session %d: Hits %v below its own %d", i, hits, counts[i])
		}
		t.Logf("session %d (%s): %d events, Hits %v", i, sessions[i].inst.Name, counts[i], hits)
	}
}

// TestThreads: events of every thread, with the program's pid, thanks to
// event-fork and the tgid column.
func TestThreads(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "threads", testprog.PIE...)
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s, "p:t/probed "+prog+":probed thread=%di:s64 i=%si:s64")
	const threads, calls = 4, 300
	c := &collector{}
	r, err := runArgv(s, []string{prog, strconv.Itoa(threads), strconv.Itoa(calls)}, devNull(t), c.add)
	if err != nil || r.exit.Code != 0 {
		t.Fatalf("run: exit %+v, %v", r.exit, err)
	}
	evs := c.byProbe("t/probed")
	if len(evs) != threads*calls {
		t.Fatalf("%d events, want %d", len(evs), threads*calls)
	}
	pid := evs[0].PID
	tids := map[int]int64{} // tid -> thread argument
	next := map[int64]int64{}
	for _, ev := range evs {
		if ev.PID != pid || ev.TID == pid {
			t.Fatalf("event of pid %d tid %d (program %d): only the threads call probed", ev.PID, ev.TID, pid)
		}
		th := int64(ev.Args[0].U)
		if old, ok := tids[ev.TID]; ok && old != th {
			t.Fatalf("tid %d calls as thread %d and %d", ev.TID, old, th)
		}
		tids[ev.TID] = th
		if i := int64(ev.Args[1].U); i != next[th] {
			t.Fatalf("thread %d: call %d after %d", th, i, next[th]-1)
		}
		next[th]++
	}
	if len(tids) != threads {
		t.Errorf("%d threads seen, want %d", len(tids), threads)
	}
}

// TestCloseRemovesEverything: Close is idempotent, concurrent-safe, stops
// a running Events and leaves nothing behind.
func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	s, err := newSession(tfs, &Options{Warn: func(err error) { t.Errorf("warning: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(s.inst.Dir)
	t.Cleanup(func() { s.Close(); checkClosed(t, tfs, s, ino) })
	addSpecs(t, s, "p:t/push "+prog+":push_func", "r:t/mid "+prog+":mid_func")
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Events(context.Background(), func(*uprobe.Event) error { return nil }) }()
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	start := time.Now()
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Close() }()
	}
	wg.Wait()
	// One of them did the work; the others waited for it and say the
	// session was closed already.
	closed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			closed++
		case !errors.Is(err, os.ErrClosed):
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if closed != 1 {
		t.Errorf("Close returned nil %d times, want once: %v", closed, errs)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Events did not return after Close")
	}
	t.Logf("Close with a reader running: %v", time.Since(start))
	checkClosed(t, tfs, s, ino)
	for what, err := range map[string]error{
		"AddUprobe": s.AddUprobe(mustParse(t, "p:t/x "+prog+":push_func")),
		"Enable":    s.Enable(),
		"SetPIDs":   s.SetPIDs(1),
		"Events":    s.Events(context.Background(), func(*uprobe.Event) error { return nil }),
		"Close":     s.Close(),
	} {
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s after Close: %v, want os.ErrClosed", what, err)
		}
	}
}

// TestEventsStopsOnCancel: an idle Events returns at once when its
// context is cancelled.
func TestEventsStopsOnCancel(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	s := newTestSession(t, tfs, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Events(ctx, func(*uprobe.Event) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events: %v", err)
		}
		// Alone it takes ~0.2 ms; closing trace_pipe waits for the
		// kernel's trace_types_lock, which the removal of another
		// instance (parallel tests) holds for ~50 ms.
		t.Logf("stopped in %v", time.Since(start))
		if d := time.Since(start); d > time.Second {
			t.Errorf("Events took %v to stop", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Events did not stop")
	}
}

// TestEventsFnError: fn's error stops Events and is returned by run,
// with the program's exit status.
func TestEventsFnError(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s, "p:t/push "+prog+":push_func")
	stop := errors.New("enough")
	n := 0
	r, err := runArgv(s, []string{prog, "100"}, devNull(t), func(*uprobe.Event) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || r.exit.Code != 3 || n != 10 {
		t.Errorf("run = %+v, %v after %d events", r.exit, err, n)
	}
}

// TestKprobesUnsupported: on a kernel without kprobe_events, AddKprobe
// says so plainly.
func TestKprobesUnsupported(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	if tfs.Features.KprobeEvents {
		t.Skip("skipped: this kernel has kprobe_events")
	}
	s := newTestSession(t, tfs, nil)
	k, err := uprobe.ParseKprobe("p:k/read vfs_read fd=%di:s32")
	if err != nil {
		t.Fatal(err)
	}
	err = s.AddKprobe(k)
	if !errors.Is(err, ErrKprobesUnsupported) || !strings.Contains(err.Error(), "CONFIG_KPROBE_EVENTS") {
		t.Errorf("AddKprobe = %v", err)
	}
	t.Logf("%v", err)
}

// TestFork: the events of a child the program forks are traced too
// (event-fork), with the child's pid.
func TestFork(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := buildC(t, t.TempDir(), "fork", "-O2")
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s, "p:t/probed "+prog+":probed who=%di:s64 i=%si:s64")
	const n = 50
	c, out, code, _ := runCollect(t, s, prog, strconv.Itoa(n))
	if code != 0 || !strings.Contains(out, "child=0") {
		t.Fatalf("exit %d, output %q", code, out)
	}
	evs := c.byProbe("t/probed")
	if len(evs) != 2*n {
		t.Fatalf("%d events, want %d", len(evs), 2*n)
	}
	pids := map[int64]int{} // who -> pid
	for _, ev := range evs {
		who := int64(ev.Args[0].U)
		if p, ok := pids[who]; ok && p != ev.PID {
			t.Fatalf("who %d in pids %d and %d", who, p, ev.PID)
		}
		pids[who] = ev.PID
		if ev.Comm != "fork" {
			t.Errorf("event of comm %q, want fork (the child execs true after its calls)", ev.Comm)
		}
		if ev.TID != ev.PID {
			t.Errorf("event of tid %d in process %d", ev.TID, ev.PID)
		}
	}
	if len(pids) != 2 || pids[0] == pids[1] {
		t.Errorf("pids %v, want the parent's and the child's", pids)
	}
}

// TestDefinitions: what the session wrote, under which names.
func TestDefinitions(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	prog := testprog.Build(t, t.TempDir(), "probes", testprog.PIE...)
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s, "p:a__b/c "+prog+":push_func x=$arg2:s64", "p:a/b__c "+prog+":push_func", "r "+prog+":mid_func")
	defs := s.definitions()
	if len(defs) != 3 {
		t.Fatalf("%+v", defs)
	}
	seen := map[string]bool{}
	for _, d := range defs {
		if seen[d.event] || !strings.HasPrefix(d.event, s.inst.Name+"/") || d.file != tracefs.UprobeEvents {
			t.Errorf("%+v", d)
		}
		seen[d.event] = true
		if p := s.byUser[d.probe]; p == nil || p.kname != strings.TrimPrefix(d.event, s.inst.Name+"/") {
			t.Errorf("probe %s: %+v", d.probe, p)
		}
		t.Logf("%s -> %s", d.probe, d.line)
	}
	if !strings.Contains(defs[0].line, " x=%si:s64") || defs[2].probe != "ptprobe/mid_func__return" || !strings.HasPrefix(defs[2].line, "r:") {
		t.Errorf("%+v", defs)
	}
}
