package engine

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// BenchmarkHitDispatch is the engine's own work on a hit, between the
// stop's GETREGS and its SETREGS and CONT: find nothing to do but the
// probe's, run it, and set the registers to go on. The "program" is this
// process: an emulated push writes its stack through /proc/self/mem and
// fetch-args read it with process_vm_readv, as they would a tracee's.
//
// tramp: a site sent through its trampoline, as push %rbp and
// rip-relative loads are (registers only). call: an indirect call,
// emulated (the return address written to the stack). args: tramp with
// an event of two fetch-args, one a string (one memory read), formatted
// as the CLI's text output does.
func BenchmarkHitDispatch(b *testing.B) {
	push := []byte{0x55}
	b.Run("tramp", func(b *testing.B) { benchDispatch(b, push, false, "") })
	b.Run("call", func(b *testing.B) { benchDispatch(b, []byte{0xff, 0xd0}, true, "") }) // call *%rax
	b.Run("args", func(b *testing.B) { benchDispatch(b, push, false, " x=%di:s64 s=+0(%si):string") })
}

func benchDispatch(b *testing.B, code []byte, emulate bool, args string) {
	inst, err := arch.Decode(code)
	if err != nil {
		b.Fatal(err)
	}
	spec, err := uprobe.Parse("p:bench/hit /bench:0x0" + args)
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	events := 0
	s := &Tracer{sched: &cpuFollower{cpu: 0}}
	s.opts.Warn = func(err error) { b.Fatal(err) }
	if args != "" {
		s.opts.OnEvent = func(ev *uprobe.Event) {
			out = ev.AppendText(out[:0])
			events++
		}
	}
	s.initClock()
	as, err := newAddrSpace(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	defer as.mem.close()
	t := &thread{tid: unix.Gettid(), proc: &process{pid: os.Getpid(), as: as}, comm: "bench"}
	probe := &Probe{Spec: spec}
	probe.enabled.Store(true)
	const addr = 0x401000
	ts := &trapStrategy{emulate: emulate}
	st := &site{addr: addr, loc: &resolve.Location{Inst: inst}, strategy: ts,
		breaklets: []breaklet{{kind: entryBreaklet, probeRef: probeRef{Probe: probe, args: spec.Args}}}}
	if !emulate {
		ts.tramp = 0x7f0000
	}

	// Memory Go does not move (a goroutine's stack may be copied).
	page, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(page)
	stack := unsafe.Slice((*uint64)(unsafe.Pointer(&page[0])), 64)
	str := page[1024:]
	copy(str, "/usr/share/locale/locale.alias\x00")
	var start arch.Regs
	start.Rip = addr + 1
	start.Rsp = uint64(uintptr(unsafe.Pointer(&stack[32])))
	start.Rdi = 42
	start.Rax = 0x402000 // the call's target
	start.Rsi = uint64(uintptr(unsafe.Pointer(&str[0])))

	b.ReportAllocs()
	for b.Loop() {
		t.regs = start
		if sig := s.enter(t, st); sig != 0 {
			b.Fatalf("signal %v", sig)
		}
	}
	b.StopTimer()
	want := ts.tramp
	if emulate {
		want = start.Rax
		if t.regs.Rsp != start.Rsp-8 || stack[31] != addr+uint64(inst.Len) {
			b.Fatalf("call: rsp 0x%x (from 0x%x), return address 0x%x", t.regs.Rsp, start.Rsp, stack[31])
		}
	}
	if t.regs.Rip != want || probe.Hits() == 0 {
		b.Fatalf("rip 0x%x after the hit, want 0x%x; %d hits", t.regs.Rip, want, probe.Hits())
	}
	if args != "" && (events == 0 || string(out) == "") {
		b.Fatal("no event")
	}
}
