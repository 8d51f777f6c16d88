package kernel

// The tests of this file run only inside the throwaway VM of
// scripts/kernel-vm-test.sh: Debian's cloud kernel (6.1, with
// CONFIG_KPROBE_EVENTS, which this machine's 6.18 lacks) booted in qemu
// with a static Go /init (scripts/vminit) that mounts tracefs and sets
// PTPROBE_IN_VM=1. Everywhere else they skip. Inside the VM a missing
// feature is a failure, not a skip: the VM is there to test it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// readTestdata reads a tracefs README of internal/tracefs/testdata.
func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("internal", "tracefs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vmEnv is set to 1 by the VM's /init (scripts/vminit).
const vmEnv = "PTPROBE_IN_VM"

// vmProbesEnv names the static build of testdata/c/probes.c in the VM.
const vmProbesEnv = "PTPROBE_VM_PROBES"

// requireVM skips the test outside the VM, and inside it opens tracefs,
// failing the test when the kernel lacks what the VM tests are for.
func requireVM(t *testing.T) *tracefs.Tracefs {
	t.Helper()
	if os.Getenv(vmEnv) != "1" {
		t.Skipf("skipped: runs only inside the qemu VM of scripts/kernel-vm-test.sh, whose /init sets %s=1", vmEnv)
	}
	tfs, err := tracefs.Open()
	if err != nil {
		t.Fatalf("tracefs.Open in the VM: %v", err)
	}
	f := tfs.Features
	if !f.KprobeEvents || !f.UprobeEvents || !f.Instances || !f.ErrorLog {
		t.Fatalf("the VM's kernel lacks a feature the tests need: %+v", f)
	}
	return tfs
}

func kernelRelease() string {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return "?"
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// kallsyms returns the address of the text symbol name of vmlinux from
// /proc/kallsyms (Debian's System.map is a stub), 0 when there is none.
func kallsyms(t *testing.T, name string) uint64 {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff8130d2a0 T do_sys_openat2", module symbols with "\t[mod]".
		w := strings.Fields(sc.Text())
		if len(w) != 3 || w[2] != name || (w[1] != "t" && w[1] != "T") {
			continue
		}
		addr, err := strconv.ParseUint(w[0], 16, 64)
		if err != nil {
			t.Fatalf("/proc/kallsyms: %q", sc.Text())
		}
		return addr
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}

// eventLog collects a session's events from Events running in the
// background, and lets a test wait for the ones it wants.
type eventLog struct {
	mu     sync.Mutex
	evs    []*uprobe.Event
	added  chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func startEvents(t *testing.T, s *Session) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{added: make(chan struct{}, 1), cancel: cancel, done: make(chan error, 1)}
	go func() {
		l.done <- s.Events(ctx, func(ev *uprobe.Event) error {
			l.mu.Lock()
			l.evs = append(l.evs, ev)
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() { l.stop(t) })
	return l
}

func (l *eventLog) stop(t *testing.T) {
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	if err := <-l.done; err != nil {
		t.Errorf("Events: %v", err)
	}
}

// wait waits until match returns true for the events so far, at most d.
func (l *eventLog) wait(d time.Duration, match func([]*uprobe.Event) bool) bool {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		ok := match(l.evs)
		l.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-l.added:
		case <-deadline:
			return false
		}
	}
}

// evText is the event as ptprobe prints it, trace_pipe's layout.
func evText(ev *uprobe.Event) string {
	return strings.TrimSuffix(string(ev.AppendText(nil)), "\n")
}

// TestVM runs in the VM: kprobes and kretprobes on a real kernel
// function, a kprobe the kernel refuses, uprobes on a static program, and
// the feature detection of the kernel's README against this project's
// development kernel (6.18, uprobes only); at the end nothing of the
// sessions may be left in tracefs.
func TestVM(t *testing.T) {
	tfs := requireVM(t)
	t.Logf("kernel %s, tracefs at %s", kernelRelease(), tfs.Root)
	t.Run("Features", func(t *testing.T) { vmFeatures(t, tfs) })
	t.Run("Kprobe", func(t *testing.T) { vmKprobe(t, tfs) })
	t.Run("KprobeRefused", func(t *testing.T) { vmKprobeRefused(t, tfs) })
	t.Run("Uprobe", func(t *testing.T) { vmUprobe(t, tfs) })
	t.Run("Backend", func(t *testing.T) { vmBackend(t) })
	t.Run("NoLeftovers", func(t *testing.T) { vmNoLeftovers(t, tfs) })
}

// vmFeatures: what the VM kernel's README says it supports, and how that
// differs from the 6.18 README of the development machine
// (internal/tracefs/testdata/README-6.18-uprobes-only.txt).
func vmFeatures(t *testing.T, tfs *tracefs.Tracefs) {
	readme, err := os.ReadFile(tfs.Path("README"))
	if err != nil {
		t.Fatal(err)
	}
	vm := tracefs.ParseFeatures(string(readme))
	dev := tracefs.ParseFeatures(readTestdata(t, "README-6.18-uprobes-only.txt"))
	t.Logf("features of %s (README and files): %+v", kernelRelease(), tfs.Features)

	// Both kinds of probe, both return forms, the fetch-args the tests
	// use.
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"kprobe_events", vm.KprobeEvents},
		{"uprobe_events", vm.UprobeEvents},
		{"dynamic_events", vm.DynamicEvents},
		{"KSYM%return", vm.KprobeReturnSuffix},
		{"PATH:OFFSET%return", vm.UprobeReturnSuffix},
		{"r[MAXACTIVE]", vm.MaxActive},
		{"(REF_CTR_OFFSET)", vm.RefCtrOffset},
		{"$arg<N>", vm.ArgN},
		{"$comm", vm.Comm},
		{"+u<offset>", vm.UserDeref},
		{`\imm`, vm.Immediates},
		{"type string", vm.HasType("string")},
		{"type ustring", vm.HasType("ustring")},
		{"type symbol", vm.HasType("symbol")},
	} {
		if !c.ok {
			t.Errorf("the README of %s does not list %s", kernelRelease(), c.what)
		}
	}
	// The files agree with the README.
	if !tfs.Features.KprobeEvents || !tracefs.Exists(tfs.Path(tracefs.KprobeProfile)) {
		t.Errorf("%s has no kprobe_events or kprobe_profile", tfs.Root)
	}

	// 6.1 has what the development kernel lacks: kernel probes.
	if !vm.KprobeEvents || dev.KprobeEvents {
		t.Errorf("kprobe_events: %v in the VM, %v on 6.18: want true, false", vm.KprobeEvents, dev.KprobeEvents)
	}
	if !vm.KprobeReturnSuffix || dev.KprobeReturnSuffix {
		t.Errorf("KSYM%%return: %v in the VM, %v on 6.18: want true, false", vm.KprobeReturnSuffix, dev.KprobeReturnSuffix)
	}
	// And the reverse: fetch types 6.18 lists and 6.1 does not.
	onlyVM, onlyDev := diff(vm.Types, dev.Types)
	t.Logf("fetch types only in %s: %q; only in 6.18: %q", kernelRelease(), onlyVM, onlyDev)
	argsVM, argsDev := diff(vm.FetchArgs, dev.FetchArgs)
	t.Logf("fetch-args only in %s: %q; only in 6.18: %q", kernelRelease(), argsVM, argsDev)
	for _, ty := range []string{"char", "%pd", "%pD"} {
		if !dev.HasType(ty) || vm.HasType(ty) {
			t.Errorf("type %s: listed on 6.18 %v, in the VM %v: want true, false", ty, dev.HasType(ty), vm.HasType(ty))
		}
	}
	if len(onlyVM) != 0 {
		t.Errorf("types listed by %s and not by 6.18: %q", kernelRelease(), onlyVM)
	}
	// What both say alike.
	same := func(what string, a, b bool) {
		if a != b {
			t.Errorf("%s: %v in the VM, %v on 6.18", what, a, b)
		}
	}
	same("uprobe_events", vm.UprobeEvents, dev.UprobeEvents)
	same("PATH:OFFSET%return", vm.UprobeReturnSuffix, dev.UprobeReturnSuffix)
	same("$comm", vm.Comm, dev.Comm)
	same("+u<offset>", vm.UserDeref, dev.UserDeref)
}

// diff returns the items only in a and those only in b.
func diff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// vmKprobe: a kprobe and a kretprobe on do_sys_openat2 (6.1: int dfd,
// const char __user *filename, struct open_how *how), read back through
// the session's trace_pipe: the path of an open this test makes, as a
// user string fetched two ways, the flags and mode of the open_how, and
// the fd the open returned, or its error; and a kprobe whose fetch-args
// are kernel data symbols (@SYM, @SYM+OFFS: the kernel's linux_banner,
// which /proc/version prints).
func vmKprobe(t *testing.T, tfs *tracefs.Tracefs) {
	const fn = "do_sys_openat2"
	addr := kallsyms(t, fn)
	if addr == 0 {
		t.Fatalf("/proc/kallsyms has no %s", fn)
	}
	s := newTestSession(t, tfs, nil)
	for _, text := range []string{
		"p:vm/open " + fn + " dfd=$arg1:s32 path=+0(%si):ustring upath=+u0(%si):string flags=+0(%dx):x64 mode=+8(%dx):u64",
		"p:vm/openret " + fn + "%return ret=$retval:s64",
		"p:vm/banner " + fn + " b=@linux_banner:string v=@linux_banner+6:string",
	} {
		k, err := uprobe.ParseKprobe(text)
		if err != nil {
			t.Fatalf("uprobe.ParseKprobe(%q): %v", text, err)
		}
		if err := s.AddKprobe(k); err != nil {
			var ke *KernelError
			if errors.As(err, &ke) {
				t.Fatalf("AddKprobe(%q): %v\n%s", text, err, ke.Caret())
			}
			t.Fatalf("AddKprobe(%q): %v", text, err)
		}
	}
	for _, d := range s.definitions() {
		t.Logf("%s: %s", d.file, d.line)
	}
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	events := startEvents(t, s)

	// One thread makes the opens, so that the return events can be
	// told apart by their thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	dir := t.TempDir()
	path := filepath.Join(dir, fmt.Sprintf("ptprobe-vm-%d-%d", os.Getpid(), time.Now().UnixNano()))
	const flags = unix.O_CREAT | unix.O_WRONLY | unix.O_CLOEXEC
	const mode = 0o640
	fd, err := unix.Open(path, flags, mode)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	missing := filepath.Join(dir, "no-such-dir", "ptprobe-vm-missing")
	if _, err := unix.Open(missing, unix.O_RDONLY, 0); err != unix.ENOENT {
		t.Fatalf("open %s: %v, want ENOENT", missing, err)
	}

	// The entry event of each open, and the return event of the same
	// thread after it.
	type pair struct{ entry, ret *uprobe.Event }
	find := func(evs []*uprobe.Event, p string) (pr pair) {
		for _, ev := range evs {
			switch {
			case pr.entry == nil && ev.Probe() == "vm/open" && len(ev.Args) == 5 && ev.Args[1].S == p:
				pr.entry = ev
			case pr.entry != nil && ev.Probe() == "vm/openret" && ev.TID == pr.entry.TID && ev.TimeNS >= pr.entry.TimeNS:
				return pair{pr.entry, ev}
			}
		}
		return pair{}
	}
	var opened, failed pair
	var banner *uprobe.Event
	ok := events.wait(30*time.Second, func(evs []*uprobe.Event) bool {
		opened, failed = find(evs, path), find(evs, missing)
		for _, ev := range evs {
			if ev.Probe() == "vm/banner" {
				banner = ev
			}
		}
		return opened.ret != nil && failed.ret != nil && banner != nil
	})
	events.stop(t)
	if !ok {
		events.mu.Lock()
		for _, ev := range events.evs {
			t.Logf("event: %s", evText(ev))
		}
		events.mu.Unlock()
		t.Fatalf("no kprobe and kretprobe events of the opens of %s and %s (tid %d) within 30 s", path, missing, tid)
	}
	t.Logf("kprobe hit:    %s", evText(opened.entry))
	t.Logf("kretprobe hit: %s", evText(opened.ret))
	t.Logf("kprobe hit:    %s", evText(failed.entry))
	t.Logf("kretprobe hit: %s", evText(failed.ret))
	t.Logf("open(%q) = %d in thread %d; %s at 0x%x in /proc/kallsyms", path, fd, tid, fn, addr)

	for _, c := range []struct {
		pr         pair
		path       string
		flags      uint64
		mode, want int64
	}{
		{opened, path, flags, mode, int64(fd)},
		{failed, missing, unix.O_RDONLY, 0, -int64(unix.ENOENT)},
	} {
		e, r := c.pr.entry, c.pr.ret
		if e.Kind != uprobe.Entry || e.TID != tid || e.PID != os.Getpid() || e.Comm != "kernel.test" || e.IP != addr {
			t.Errorf("kprobe event %+v: want an entry of thread %d of process %d (kernel.test) at 0x%x", e, tid, os.Getpid(), addr)
		}
		a := e.Args
		if int32(a[0].U) != unix.AT_FDCWD || a[1].S != c.path || a[2].S != c.path || a[1].Fault || a[2].Fault {
			t.Errorf("kprobe args dfd=%d path=%q upath=%q, want %d and %q twice", int32(a[0].U), a[1].S, a[2].S, unix.AT_FDCWD, c.path)
		}
		// The kernel adds O_LARGEFILE on 64-bit (x/sys's O_LARGEFILE
		// is 0 on amd64: the kernel's is 0100000).
		const oLargefile = 0o100000
		if a[3].U != c.flags|oLargefile || int64(a[4].U) != c.mode {
			t.Errorf("kprobe args flags=0x%x mode=0%o, want 0x%x (O_LARGEFILE added) 0%o", a[3].U, a[4].U, c.flags|oLargefile, c.mode)
		}
		if r.Kind != uprobe.Return || r.TID != tid || r.IP != addr || r.RetIP < 0xffffffff80000000 || r.RetIP == r.IP {
			t.Errorf("kretprobe event %+v: want a return of thread %d from 0x%x to kernel text", r, tid, addr)
		}
		if got := int64(r.Args[0].U); got != c.want {
			t.Errorf("kretprobe ret=%d, want %d (open of %s)", got, c.want, c.path)
		}
	}

	t.Logf("kprobe hit:    %s", evText(banner))
	if b, v := banner.Args[0], banner.Args[1]; b.Fault || v.Fault || !strings.HasPrefix(b.S, "Linux version "+kernelRelease()+" ") || v.S != b.S[6:] {
		t.Errorf("kprobe args b=%q v=%q: want linux_banner (\"Linux version %s ...\") and it from byte 6", b.S, v.S, kernelRelease())
	}

	hits, err := s.Hits()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kprobe_profile: %v", hits)
	if hits["vm/open"] < 2 || hits["vm/openret"] < 2 {
		t.Errorf("Hits = %v, want at least 2 of each", hits)
	}
	if s.badLines.Load() != 0 {
		t.Errorf("%d trace_pipe lines could not be parsed", s.badLines.Load())
	}
}

// vmKprobeRefused: kprobe specs ptprobe's parser takes and the kernel
// refuses come back with the kernel's error_log message and its caret,
// and leave nothing defined.
func vmKprobeRefused(t *testing.T, tfs *tracefs.Tracefs) {
	s := newTestSession(t, tfs, nil)
	for _, c := range []struct {
		text string
		at   string // what the caret must point at in the line written
	}{
		{"p:vm/nosym ptprobe_no_such_function x=%di:u64", "ptprobe_no_such_function"},
		{"p:vm/badreg do_sys_openat2 dfd=%di:s32 fsb=%fs_base:u64", "%fs_base"},
	} {
		k, err := uprobe.ParseKprobe(c.text)
		if err != nil {
			t.Fatalf("uprobe.ParseKprobe(%q): %v", c.text, err)
		}
		err = s.AddKprobe(k)
		var ke *KernelError
		if !errors.As(err, &ke) {
			t.Fatalf("AddKprobe(%q) = %v, want a *KernelError", c.text, err)
		}
		t.Logf("AddKprobe(%q): %v\n%s", c.text, err, ke.Caret())
		if ke.File != tracefs.KprobeEvents || ke.Msg == "" || ke.Pos < 0 || ke.Log == "" {
			t.Errorf("KernelError %+v: want the error_log entry of kprobe_events", ke)
			continue
		}
		if !strings.HasPrefix(ke.Line[ke.Pos:], c.at) {
			t.Errorf("caret at %d (%q), want it at %q", ke.Pos, ke.Line[ke.Pos:], c.at)
		}
		caret := ke.Caret()
		if !strings.Contains(caret, "trace_kprobe: error: "+ke.Msg) || !strings.Contains(caret, "Command: "+ke.Line) || !strings.HasSuffix(caret, "^") {
			t.Errorf("Caret() = %q", caret)
		}
	}
	if defs := s.definitions(); len(defs) != 0 {
		t.Errorf("refused probes are defined: %+v", defs)
	}
	data, err := os.ReadFile(tfs.Path(tracefs.KprobeEvents))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), s.inst.Name+"/") {
		t.Errorf("kprobe_events has probes of %s: %q", s.inst.Name, data)
	}
}

// vmUprobe: kernel uprobes of the 6.1 kernel on the static build of
// testdata/c/probes.c, through a run: exact counts and arguments.
func vmUprobe(t *testing.T, tfs *tracefs.Tracefs) {
	prog := os.Getenv(vmProbesEnv)
	if prog == "" {
		t.Fatalf("%s is not set", vmProbesEnv)
	}
	s := newTestSession(t, tfs, nil)
	addSpecs(t, s,
		"p:vm/push "+prog+":push_func a=%di:s64 b=%si:s64",
		"r:vm/mid "+prog+":mid_func v=$retval:s64",
		"p:vm/midpt "+prog+":mid_func+8 rbx=%bx:s64 arg=%di:u32",
	)
	for _, d := range s.definitions() {
		t.Logf("%s: %s", d.file, d.line)
	}
	const n = 200
	start := time.Now()
	c, out, code, pid := runCollect(t, s, prog, strconv.Itoa(n))
	t.Logf("%s %d: exit %d, %d events in %v, output %q", prog, n, code, len(c.evs), time.Since(start), out)
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	push, mid, midpt := c.byProbe("vm/push"), c.byProbe("vm/mid"), c.byProbe("vm/midpt")
	if len(push) != n || len(mid) != n || len(midpt) != n {
		t.Fatalf("events: push %d, mid %d, midpt %d, want %d each", len(push), len(mid), len(midpt), n)
	}
	t.Logf("first uprobe hits:\n%s\n%s\n%s", evText(push[0]), evText(mid[0]), evText(midpt[0]))
	for i := 0; i < n; i++ {
		p, m, mp := push[i], mid[i], midpt[i]
		if p.PID != pid || p.TID != pid || p.Comm != "probes" || p.Kind != uprobe.Entry {
			t.Fatalf("push event %d: %+v", i, p)
		}
		if int64(p.Args[0].U) != int64(i) || int64(p.Args[1].U) != 2*int64(i) {
			t.Fatalf("push event %d: %s, want a=%d b=%d", i, evText(p), i, 2*i)
		}
		if m.Kind != uprobe.Return || int64(m.Args[0].U) != 3*int64(i)+1 {
			t.Fatalf("mid event %d: %s, want v=%d", i, evText(m), 3*i+1)
		}
		if mp.IP != m.IP+8 || int64(mp.Args[0].U) != 3*int64(i) || mp.Args[1].U != uint64(i) {
			t.Fatalf("midpt event %d: %s", i, evText(mp))
		}
	}
	hits, err := s.Hits()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"vm/push", "vm/mid", "vm/midpt"} {
		if hits[p] != n {
			t.Errorf("Hits[%s] = %d, want %d", p, hits[p], n)
		}
	}
}

// vmBackend: Backend.Run with a uprobe and a kprobe (vfs_write, which the
// program's printf ends in): the kprobe sees the program's writes only
// (the pid filter), with the count it wrote, and both are counted in the
// Result.
func vmBackend(t *testing.T) {
	prog := os.Getenv(vmProbesEnv)
	if prog == "" {
		t.Fatalf("%s is not set", vmProbesEnv)
	}
	if kallsyms(t, "vfs_write") == 0 {
		t.Fatal("/proc/kallsyms has no vfs_write")
	}
	k, err := uprobe.ParseKprobe("p:vm/write vfs_write count=%dx:u64")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var evs []*uprobe.Event
	const n = 50
	req := &backend.Request{
		Probes:  []backend.Probe{{Spec: mustParse(t, "p:vm/push "+prog+":push_func a=%di:s64")}},
		Kprobes: []*uprobe.Spec{k},
		Argv:    []string{prog, strconv.Itoa(n)},
		Process: backend.Process{Stdout: out},
		OnEvent: func(ev *uprobe.Event) { evs = append(evs, ev) },
		Warn:    func(err error) { t.Errorf("warning: %v", err) },
	}
	res, err := Backend{}.Run(context.Background(), req)
	if err != nil {
		var ke *KernelError
		if errors.As(err, &ke) {
			t.Fatalf("Run: %v\n%s", err, ke.Caret())
		}
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	written, _ := os.ReadFile(out.Name())
	if res.ExitCode != 3 || len(res.Probes) != 2 || res.Probes[0].Hits != n || res.Probes[1].Hits == 0 || res.Probes[1].Spec != k {
		t.Fatalf("result %+v, probes %+v: want exit 3, %d push hits and the writes", res, res.Probes, n)
	}
	var total uint64
	for _, ev := range evs {
		if ev.PID != res.PID {
			t.Errorf("event of process %d, the program is %d: %s", ev.PID, res.PID, evText(ev))
		}
		if ev.Probe() == "vm/write" {
			total += ev.Args[0].U
		}
	}
	t.Logf("%d writes of %d bytes in all; the program wrote %d bytes", res.Probes[1].Hits, total, len(written))
	if total != uint64(len(written)) {
		t.Errorf("the kprobe saw writes of %d bytes, the program wrote %d", total, len(written))
	}
}

// vmNoLeftovers: the sessions removed everything they defined. The VM
// has no other tracing user, so the *_events files must be empty and no
// instance left.
func vmNoLeftovers(t *testing.T, tfs *tracefs.Tracefs) {
	for _, file := range []string{tracefs.KprobeEvents, tracefs.UprobeEvents, "dynamic_events"} {
		data, err := os.ReadFile(tfs.Path(file))
		if err != nil {
			t.Fatal(err)
		}
		if len(strings.TrimSpace(string(data))) != 0 {
			t.Errorf("%s is not empty:\n%s", file, data)
		}
	}
	ents, err := os.ReadDir(tfs.Path("instances"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("instance %s is left", e.Name())
	}
	ents, err = os.ReadDir(tfs.Path("events"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), SessionPrefix) {
			t.Errorf("event group %s is left", e.Name())
		}
	}
	t.Logf("kprobe_events, uprobe_events and dynamic_events are empty, instances/ too")
}
