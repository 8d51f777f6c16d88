// Command ptprobe-bench measures the cost per probe hit of ptprobe's
// engine beside the kernel's uprobes and the other tracers of this
// machine, in one run, and writes the report to BENCH.md.
//
//	go run ./cmd/ptprobe-bench [-runs 5] [-calls 20000] [-o BENCH.md]
//
// Each measurement runs testdata/c/bench.c, which calls a probed function
// CALLS times and times its own loop, so start-up, arming and tear-down
// are not counted: µs/hit is the loop's time divided by the calls. Every
// run's hit count is checked against the calls. The figure is the median
// of -runs runs. Peers that are missing (bpftrace, ltrace, gdb, the kernel
// backend without root) are installed when possible, else skipped with a
// note in the report.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

func main() {
	runs := flag.Int("runs", 5, "runs per measurement (the median is reported)")
	calls := flag.Int("calls", 20000, "probed calls per run (slow tracers get calls/10)")
	out := flag.String("o", "BENCH.md", "report file")
	install := flag.Bool("install", true, "apt-get install missing peers (bpftrace, ltrace, gdb, uftrace) when root")
	detaches := flag.Int("detach-cycles", 200, "attach/detach cycles of the reliability section")
	flag.Parse()
	b, err := newBench(*runs, *calls, *install)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ptprobe-bench:", err)
		os.Exit(2)
	}
	defer os.RemoveAll(b.dir)
	b.detaches = *detaches
	report := b.run()
	if err := os.WriteFile(*out, report, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "ptprobe-bench:", err)
		os.Exit(2)
	}
	os.Stdout.Write(report)
}

// bench holds the built targets and the results.
type bench struct {
	runs, calls int
	dir         string
	prog        string // testdata/c/bench.c built
	floor       string // testdata/c/floor.c built
	threads     string // testdata/c/threads.c built
	hot         string // testdata/c/hot.c built
	cli         string // cmd/ptprobe built, for the unprivileged rows
	detaches    int    // attach/detach cycles of the reliability section
	offs        map[string]uint64
	notes       []string
	log         *bufio.Writer
	emptyRun    float64 // ms, launch to exit of a run with no call and one probe
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func newBench(runs, calls int, install bool) (*bench, error) {
	dir, err := os.MkdirTemp("", "ptprobe-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{runs: runs, calls: calls, dir: dir, offs: map[string]uint64{}, log: bufio.NewWriter(os.Stderr)}
	for name, flags := range map[string][]string{"bench": {"-O2"}, "floor": {"-O2"}, "threads": {"-O2", "-pthread"}, "hot": {"-O2", "-pthread"}} {
		outp := filepath.Join(dir, name)
		args := append(flags, "-o", outp, filepath.Join(root(), "testdata", "c", name+".c"))
		if o, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gcc %s: %v\n%s", name, err, o)
		}
	}
	b.prog, b.floor, b.threads, b.hot = filepath.Join(dir, "bench"), filepath.Join(dir, "floor"), filepath.Join(dir, "threads"), filepath.Join(dir, "hot")
	b.cli = filepath.Join(dir, "ptprobe")
	build := exec.Command("go", "build", "-o", b.cli, "./cmd/ptprobe")
	build.Dir = root()
	if o, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/ptprobe: %v\n%s", err, o)
	}
	// The unprivileged rows run as nobody: the built tools and the
	// bench program must be reachable by that user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := elfsym.Open(b.prog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, s := range []string{"bench_push", "bench_rip", "bench_push_ool", "bench_rip_ool"} {
		sym, err := f.Lookup(s)
		if err != nil {
			return nil, err
		}
		b.offs[s] = sym.Offset
	}
	if install && os.Geteuid() == 0 {
		var need []string
		for _, p := range []string{"bpftrace", "ltrace", "gdb", "uftrace"} {
			if _, err := exec.LookPath(p); err != nil {
				need = append(need, p)
			}
		}
		if len(need) > 0 {
			cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, need...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if o, err := cmd.CombinedOutput(); err != nil {
				b.notes = append(b.notes, fmt.Sprintf("apt-get install %s failed: %v (%s)", strings.Join(need, " "), err, lastLine(o)))
			}
		}
	}
	return b, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// measurement is one mechanism on one function.
type measurement struct {
	name, fn string
	us       []float64 // per run
	err      error
}

func (m *measurement) median() float64 { return medianOf(m.us) }

// runner runs the bench program once with n calls of fn and returns the
// loop time in ns and the hits the tracer counted (-1: not counted).
type runner func(fn string, n int) (loopNS int64, hits int64, err error)

var loopRe = regexp.MustCompile(`loop_ns=(\d+) calls=(\d+)`)

func parseLoop(out []byte) (int64, error) {
	m := loopRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no loop_ns in output %q", lastLine(out))
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func (b *bench) measure(name, fn string, slow bool, r runner) *measurement {
	return b.interleaved(fn, slow, []string{name}, []runner{r})[0]
}

// interleaved measures several mechanisms on fn taking turns, one run of
// each per round, so that a slow spell of the machine falls on all of
// them rather than on whichever was running: the ratios between them
// are then fair.
func (b *bench) interleaved(fn string, slow bool, names []string, rs []runner) []*measurement {
	n := b.calls
	if slow {
		n = max(b.calls/10, 100)
	}
	ms := make([]*measurement, len(rs))
	for j := range rs {
		ms[j] = &measurement{name: names[j], fn: fn}
	}
	for i := 0; i < b.runs; i++ {
		for j, r := range rs {
			m := ms[j]
			if m.err != nil {
				continue
			}
			ns, hits, err := r(fn, n)
			if err == nil && hits >= 0 && hits != int64(n) {
				err = fmt.Errorf("%d hits for %d calls", hits, n)
			}
			if err != nil {
				m.err = err
				continue
			}
			m.us = append(m.us, float64(ns)/float64(n)/1000)
		}
	}
	for _, m := range ms {
		fmt.Fprintf(b.log, "%-34s %-5s %8.3f µs/hit %v\n", m.name, fn, m.median(), errString(m.err))
	}
	b.log.Flush()
	return ms
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

func (b *bench) argv(fn string, n int) []string { return []string{b.prog, fn, strconv.Itoa(n)} }

// floorRun runs the bench program under the C floor tracer
// (testdata/c/floor.c), tracer and program on the first online CPU.
func (b *bench) floorRun() runner {
	cpu := strconv.Itoa(firstCPU())
	return commandRun(func(fn string, n int) []string {
		return append([]string{b.floor, cpu, "0x" + strconv.FormatUint(b.offs["bench_"+fn], 16), "0x" + strconv.FormatUint(b.offs["bench_"+fn+"_ool"], 16)}, b.argv(fn, n)...)
	}, func(out []byte, fn string) (int64, error) { return intAfter(regexp.MustCompile(`hits=(\d+)`), out) })
}

// engineRun runs the bench program under ptprobe's engine, on the stop
// path (engineNoStop: the no-stop path where the probe allows it).
func (b *bench) engineRun(specText string, h uprobe.Handlers, format bool, extra []backend.Probe) runner {
	return b.engineRunCfg(specText, h, format, extra, engine.Options{StopPath: true})
}

func (b *bench) engineNoStop(specText string, format bool) runner {
	return b.engineRunCfg(specText, uprobe.Handlers{}, format, nil, engine.Options{})
}

// cliRun runs the bench program under the ptprobe command as user nobody
// (setpriv): an ordinary user's cost, with the command's own output.
func (b *bench) cliRun(args ...string) runner {
	return commandRun(func(fn string, n int) []string {
		a := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", b.cli, "trace", "--count"} // the count on stdout: nobody may not open a root-owned /dev/stderr
		for _, x := range args {
			a = append(a, strings.ReplaceAll(x, "FN", "bench_"+fn))
		}
		return append(append(a, "--"), b.argv(fn, n)...)
	}, func(out []byte, fn string) (int64, error) {
		return intAfter(regexp.MustCompile(`bench/hit (\d+)`), out)
	})
}

// uftraceRun runs the bench program under uftrace's dynamic patching of
// one function (-P), then counts its calls in the report.
func (b *bench) uftraceRun() runner {
	return commandRun(func(fn string, n int) []string {
		d := filepath.Join(b.dir, "uftrace-"+fn)
		os.RemoveAll(d)
		cmd := fmt.Sprintf("uftrace record -d %s -P '^bench_%s$' %s && uftrace report -d %s", d, fn, strings.Join(b.argv(fn, n), " "), d)
		return []string{"sh", "-c", cmd}
	}, func(out []byte, fn string) (int64, error) {
		return intAfter(regexp.MustCompile(`(\d+)\s+bench_`+fn+`\n`), out)
	})
}

func (b *bench) engineRunCfg(specText string, h uprobe.Handlers, format bool, extra []backend.Probe, cfg engine.Options) runner {
	return func(fn string, n int) (int64, int64, error) {
		spec, err := uprobe.Parse(strings.ReplaceAll(specText, "FN", "bench_"+fn))
		if err != nil {
			return 0, 0, err
		}
		outf, err := os.CreateTemp(b.dir, "out")
		if err != nil {
			return 0, 0, err
		}
		defer os.Remove(outf.Name())
		defer outf.Close()
		cfg.Probes, cfg.Process.Stdout = append([]backend.Probe{{Spec: spec, Handlers: h}}, extra...), outf
		if format {
			var buf []byte
			cfg.OnEvent = func(ev *uprobe.Event) { buf = ev.AppendText(buf[:0]) }
		}
		sess, err := engine.Launch(b.argv(fn, n), &cfg)
		if err != nil {
			return 0, 0, err
		}
		if _, err := sess.Wait(); err != nil {
			return 0, 0, err
		}
		o, _ := os.ReadFile(outf.Name())
		ns, err := parseLoop(o)
		return ns, int64(sess.Probes()[0].Hits()), err
	}
}

// commandRun runs a command line and parses the loop time from its
// output; count extracts the hits from the output (nil: not counted).
func commandRun(argv func(fn string, n int) []string, count func(out []byte, fn string) (int64, error)) runner {
	return func(fn string, n int) (int64, int64, error) {
		a := argv(fn, n)
		o, err := exec.Command(a[0], a[1:]...).CombinedOutput()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %v: %s", a[0], err, lastLine(o))
		}
		ns, err := parseLoop(o)
		if err != nil {
			return 0, 0, err
		}
		if count == nil {
			return ns, -1, nil
		}
		hits, err := count(o, fn)
		return ns, hits, err
	}
}

func intAfter(re *regexp.Regexp, out []byte) (int64, error) {
	m := re.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no count in output %q", lastLine(out))
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func (b *bench) kernelRun(ret bool) runner {
	return func(fn string, n int) (int64, int64, error) {
		text := "p:bench/hit " + b.prog + ":bench_" + fn
		if ret {
			text = "r:bench/hit " + b.prog + ":bench_" + fn
		}
		spec, err := uprobe.Parse(text)
		if err != nil {
			return 0, 0, err
		}
		outf, err := os.CreateTemp(b.dir, "out")
		if err != nil {
			return 0, 0, err
		}
		defer os.Remove(outf.Name())
		defer outf.Close()
		req := &backend.Request{Probes: []backend.Probe{{Spec: spec}}, Argv: b.argv(fn, n), Process: backend.Process{Stdout: outf}}
		res, err := kernel.Backend{BufferKB: 16 << 10}.Run(context.Background(), req)
		if err != nil {
			return 0, 0, err
		}
		o, _ := os.ReadFile(outf.Name())
		ns, err := parseLoop(o)
		return ns, int64(res.Probes[0].Hits), err
	}
}

func (b *bench) run() []byte {
	type row struct{ push, rip *measurement }
	var rows []row
	both := func(name string, slow bool, r runner) row {
		return row{b.measure(name, "push", slow, r), b.measure(name, "rip", slow, r)}
	}
	none := both("no probe", false, commandRun(func(fn string, n int) []string { return b.argv(fn, n) }, nil))
	cpu := firstCPU()
	sameCfg := engine.Options{StopPath: true, Sched: engine.SchedOptions{SameCPU: true, CPU: &cpu}}
	normalCfg := engine.Options{StopPath: true, Sched: engine.SchedOptions{Priority: engine.PriorityNormal}}
	probe := "p:bench/hit " + b.prog + ":FN"
	// The floor and ptprobe's one-stop variants take turns, run by run:
	// their ratios are the report's point.
	names := []string{"C ptrace tracer, 1 stop/hit, same CPU (floor)", "ptprobe one-stop", "ptprobe one-stop, --tracer-priority normal", "ptprobe one-stop, --same-cpu"}
	runners := []runner{b.floorRun(), b.engineRun(probe, uprobe.Handlers{}, false, nil), b.engineRunCfg(probe, uprobe.Handlers{}, false, nil, normalCfg), b.engineRunCfg(probe, uprobe.Handlers{}, false, nil, sameCfg)}
	pushes, rips := b.interleaved("push", false, names, runners), b.interleaved("rip", false, names, runners)
	floor, one, normal, same := row{pushes[0], rips[0]}, row{pushes[1], rips[1]}, row{pushes[2], rips[2]}, row{pushes[3], rips[3]}
	post := both("ptprobe with a post handler", false, b.engineRun(probe, uprobe.Handlers{Post: func(uprobe.Context) {}}, false, nil))
	args := both("ptprobe, 2 fetch-args (one a string)", false, b.engineRun(probe+" x=%di:s64 s=+0(%si):string", uprobe.Handlers{}, true, nil))
	ret := both("ptprobe return probe", false, b.engineRun("r:bench/hit "+b.prog+":FN", uprobe.Handlers{}, false, nil))
	rows = append(rows, none, floor, one, normal, same, post, args, ret)
	// The no-stop path and its peers take turns too: the ratio to the
	// kernel uprobe is the no-stop path's target.
	names = []string{"ptprobe no-stop"}
	runners = []runner{b.engineNoStop(probe, false)}
	isRoot := os.Geteuid() == 0
	if isRoot {
		names = append(names, "kernel uprobe (tracefs)")
		runners = append(runners, b.kernelRun(false))
	} else {
		b.notes = append(b.notes, "kernel uprobes, bpftrace and the unprivileged rows: skipped, not root")
	}
	_, errSetpriv := exec.LookPath("setpriv")
	user := isRoot && errSetpriv == nil
	if user {
		names = append(names, "ptprobe no-stop, unprivileged (ptprobe trace as nobody)")
		runners = append(runners, b.cliRun("-e", probe))
	}
	if _, err := exec.LookPath("bpftrace"); err == nil && isRoot {
		names = append(names, "bpftrace uprobe { @ = count() }")
		runners = append(runners, commandRun(func(fn string, n int) []string {
			return []string{"bpftrace", "-q", "-e", fmt.Sprintf("uprobe:%s:bench_%s { @ = count(); }", b.prog, fn), "-c", strings.Join(b.argv(fn, n), " ")}
		}, func(out []byte, fn string) (int64, error) { return intAfter(regexp.MustCompile(`@: (\d+)`), out) }))
	} else if isRoot {
		b.notes = append(b.notes, "bpftrace: skipped, not installed")
	}
	if _, err := exec.LookPath("uftrace"); err == nil {
		names = append(names, "uftrace record -P (entry and exit)")
		runners = append(runners, b.uftraceRun())
		b.notes = append(b.notes, "uftrace records each call's entry and its exit (it has no entry-only mode): its row is two events a call, its hits are read from `uftrace report`")
	} else {
		b.notes = append(b.notes, "uftrace: skipped, not installed")
	}
	pushes, rips = b.interleaved("push", false, names, runners), b.interleaved("rip", false, names, runners)
	peer := func(name string) row {
		for i, n := range names {
			if n == name {
				return row{pushes[i], rips[i]}
			}
		}
		return row{}
	}
	noStop, kern, noStopUser := peer(names[0]), peer("kernel uprobe (tracefs)"), peer("ptprobe no-stop, unprivileged (ptprobe trace as nobody)")
	for i := range names {
		rows = append(rows, row{pushes[i], rips[i]})
	}
	noStopArgs := both("ptprobe no-stop, 2 fetch-args (one a string in .rodata)", false, b.engineNoStop(probe+" x=%di:s64 s=+0(%si):string", true))
	heapEnv := engine.Options{Process: backend.Process{Env: append(os.Environ(), "BENCH_STRING=heap")}}
	noStopHeap := both("ptprobe no-stop, 2 fetch-args (one a string on the heap)", false, b.engineRunCfg(probe+" x=%di:s64 s=+0(%si):string", uprobe.Handlers{}, true, nil, heapEnv))
	rows = append(rows, noStopArgs, noStopHeap)
	var stopUser, kret row
	if user {
		stopUser = both("ptprobe one-stop, unprivileged (ptprobe trace --no-fast as nobody)", false, b.cliRun("--no-fast", "-e", probe))
		rows = append(rows, stopUser)
	}
	if isRoot {
		kret = both("kernel uretprobe (tracefs)", false, b.kernelRun(true))
		rows = append(rows, kret)
	}
	var ltrace, gdb row
	if _, err := exec.LookPath("ltrace"); err == nil {
		ltrace = both("ltrace -x", true, commandRun(func(fn string, n int) []string {
			return append([]string{"ltrace", "-x", "bench_" + fn, "-o", "/dev/null"}, b.argv(fn, n)...)
		}, nil))
		rows = append(rows, ltrace)
		b.notes = append(b.notes, "ltrace's hits are not counted (its -c summary omits -x symbols); it gets calls/10")
	} else {
		b.notes = append(b.notes, "ltrace: skipped, not installed")
	}
	if _, err := exec.LookPath("gdb"); err == nil {
		gdb = both("gdb break + silent; continue", true, commandRun(func(fn string, n int) []string {
			script := filepath.Join(b.dir, "gdb-"+fn)
			os.WriteFile(script, []byte("set pagination off\nbreak bench_"+fn+"\ncommands\nsilent\ncontinue\nend\nrun\ninfo breakpoints\n"), 0o644)
			return append([]string{"gdb", "-batch", "-nx", "-x", script, "--args"}, b.argv(fn, n)...)
		}, func(out []byte, fn string) (int64, error) {
			return intAfter(regexp.MustCompile(`already hit (\d+) time`), out)
		}))
		rows = append(rows, gdb)
	} else {
		b.notes = append(b.notes, "gdb: skipped, not installed")
	}

	var rep bytes.Buffer
	host, _ := os.Hostname()
	fmt.Fprintf(&rep, "# ptprobe benchmark\n\nRun %s on %s: %s, %d CPUs, kernel %s, %s.\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, cpuModel(), runtime.NumCPU(), kernelRelease(), runtime.Version())
	fmt.Fprintf(&rep, "Command: `go run ./cmd/ptprobe-bench -runs %d -calls %d`. µs per hit, median of %d runs; each run's hits checked against its calls (ltrace and gdb: calls/10). The C floor and the ptprobe one-stop rows take turns run by run, so that a slow spell of the machine falls on all of them.\n\n", b.runs, b.calls, b.runs)
	fmt.Fprintf(&rep, "| mechanism | `push %%rbp` first | rip-relative load first |\n|---|---:|---:|\n")
	cell := func(m *measurement) string {
		if m == nil {
			return "skipped"
		}
		if m.err != nil {
			return "failed: " + m.err.Error()
		}
		return fmt.Sprintf("%.3f", m.median())
	}
	for _, r := range rows {
		fmt.Fprintf(&rep, "| %s | %s | %s |\n", r.push.name, cell(r.push), cell(r.rip))
	}
	ratio := func(a, c *measurement) string {
		if a == nil || c == nil || a.err != nil || c.err != nil || c.median() == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f×", a.median()/c.median())
	}
	fmt.Fprintf(&rep, "\n## Ratios\n\n| ratio | push | rip |\n|---|---:|---:|\n")
	fmt.Fprintf(&rep, "| ptprobe one-stop / C floor (target ≤ 1.15×) | %s | %s |\n", ratio(one.push, floor.push), ratio(one.rip, floor.rip))
	fmt.Fprintf(&rep, "| ptprobe one-stop --tracer-priority normal / C floor | %s | %s |\n", ratio(normal.push, floor.push), ratio(normal.rip, floor.rip))
	fmt.Fprintf(&rep, "| ptprobe one-stop --same-cpu / C floor | %s | %s |\n", ratio(same.push, floor.push), ratio(same.rip, floor.rip))
	if kern.push != nil {
		fmt.Fprintf(&rep, "| ptprobe one-stop / kernel uprobe (target on rip ≤ 1.1×) | %s | %s |\n", ratio(one.push, kern.push), ratio(one.rip, kern.rip))
	}
	fmt.Fprintf(&rep, "| ptprobe no-stop, µs a hit (target ≤ 0.2) | %s | %s |\n", cell(noStop.push), cell(noStop.rip))
	if kern.push != nil {
		fmt.Fprintf(&rep, "| ptprobe no-stop / kernel uprobe (target ≤ 0.25×) | %s | %s |\n", ratio(noStop.push, kern.push), ratio(noStop.rip, kern.rip))
	}
	if noStopUser.push != nil && kern.push != nil {
		fmt.Fprintf(&rep, "| ptprobe no-stop unprivileged / kernel uprobe (target ≤ 0.25×) | %s | %s |\n", ratio(noStopUser.push, kern.push), ratio(noStopUser.rip, kern.rip))
	}
	if stopUser.push != nil && noStopUser.push != nil {
		fmt.Fprintf(&rep, "| ptprobe unprivileged: one-stop / no-stop | %s | %s |\n", ratio(stopUser.push, noStopUser.push), ratio(stopUser.rip, noStopUser.rip))
	}
	if ltrace.push != nil {
		fmt.Fprintf(&rep, "| ltrace / ptprobe one-stop (target ≥ 15×) | %s | %s |\n", ratio(ltrace.push, one.push), ratio(ltrace.rip, one.rip))
	}
	if gdb.push != nil {
		fmt.Fprintf(&rep, "| gdb / ptprobe one-stop (target ≥ 15×) | %s | %s |\n", ratio(gdb.push, one.push), ratio(gdb.rip, one.rip))
	}
	fmt.Fprintf(&rep, "\n`ptprobe one-stop` is the default: the tracer thread follows the program thread from CPU to CPU and, while a CPU is free, runs as SCHED_IDLE so that the program thread it resumes is woken on its CPU (engine/sched.go). It needs to be able to return to SCHED_OTHER, so as root or with CAP_SYS_NICE; an unprivileged tracer gets `--tracer-priority normal` unless it asks for `idle`. `--same-cpu` confines the program to the tracer's CPU instead, as the C floor does.\n")
	rep.Write(b.busy())
	rep.Write(b.scaling())
	rep.Write(b.reliability())
	rep.Write(b.questions())
	if len(b.notes) > 0 {
		fmt.Fprintf(&rep, "\n## Notes\n\n")
		for _, n := range b.notes {
			fmt.Fprintf(&rep, "- %s\n", n)
		}
	}
	return rep.Bytes()
}

func firstCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.FieldsFunc(strings.TrimSpace(string(b)), func(r rune) bool { return r == '-' || r == ',' })[0])
	return n
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			return strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
		}
	}
	return "unknown CPU"
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
