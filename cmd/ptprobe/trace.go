package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/handlers"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// traceOptions are the flags of ptprobe trace. A new trace flag is a
// field here and its line in addFlags; then its checks go in check, and
// its use in request (what the backend is asked: probes, handlers),
// newBackend (the backend and its own options) or openOutput and
// traceOutput (what ptprobe prints of the events and at the end).
type traceOptions struct {
	specs, kspecs []string // -e, -k
	format        string
	count         bool
	output        string
	backend       string
	// The tracer thread's scheduling (ptrace backend).
	noPin    bool
	priority string
	sameCPU  bool
	cpu      int
	// Handlers on return probes (ptrace backend).
	latency     bool
	setRetval   string
	retvalSet   bool // --set-retval was given (its value may be "0")
	every       uint64
	probability float64
	seed        int64
	// What is traced, for how long.
	pid          int
	duration     time.Duration
	noFollow     bool
	detachOnExit bool
	pidFilter    []int
	noFast       bool // --no-fast: every probe on the stop path
	drop         bool // --drop: a full ring counts hits missed
	verbose      bool // --verbose: how each probe took its hits
	maxProbes    int  // --max-probes: per spec (docs/DESIGN.md §9)
	// Filters, aggregations, stacks, trace files (questions.go).
	q questionOptions
	// --stack[=DEPTH] (names.go, stack.go).
	stack string
}

// addFlags registers the flags of trace on fs, into o.
func (o *traceOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.specs, "event", "e", nil, "probe `SPEC` (repeatable)")
	fs.StringVar(&o.format, "format", "text", "output format: text (trace_pipe lines), json (one object per line), chrome (Chrome trace-event JSON for Perfetto and chrome://tracing) or folded (with --stack: folded stacks for flame graphs)")
	fs.BoolVar(&o.count, "count", false, "print only the number of hits of each probe, at exit")
	fs.StringVarP(&o.output, "output", "o", "", "write events to `FILE` instead of standard output")
	fs.BoolVar(&o.noPin, "no-pin", false, "let the tracer thread run anywhere at normal priority instead of following the program's threads from CPU to CPU (slower stops)")
	fs.StringVar(&o.priority, "tracer-priority", "auto", "scheduling of the tracer thread: auto (SCHED_IDLE while a CPU is free, if it can return to SCHED_OTHER, which needs root or CAP_SYS_NICE), normal (SCHED_OTHER: program threads resumed on other CPUs, slower hits), or idle (SCHED_IDLE for good: fast hits without root, but slow ones while every CPU is busy)")
	fs.BoolVar(&o.sameCPU, "same-cpu", false, "confine the launched program and the tracer to one CPU: the cheapest stops, at the price of the program's parallelism")
	fs.IntVar(&o.cpu, "cpu", -1, "with --same-cpu: the `CPU` (default: the one ptprobe runs on)")
	fs.StringVar(&o.backend, "backend", "ptrace", "ptrace (the engine, no privilege needed) or kernel (tracefs uprobe_events/kprobe_events, needs root)")
	fs.StringArrayVarP(&o.kspecs, "kprobe", "k", nil, "kernel probe `KSPEC` in kprobe_events grammar (--backend kernel)")
	fs.BoolVar(&o.latency, "latency", false, "print, per return probe, a log2 histogram of the time from entry to return, at exit")
	fs.StringVar(&o.setRetval, "set-retval", "", "make the functions of the return probes return `VALUE` to their callers (fault injection)")
	fs.Uint64Var(&o.every, "every", 0, "with --set-retval: only every `N`th return of each probe")
	fs.Float64Var(&o.probability, "probability", 0, "with --set-retval: each return with probability `P` (0 < P <= 1)")
	fs.Int64Var(&o.seed, "seed", 0, "with --probability: random seed (0: from the clock)")
	fs.IntVarP(&o.pid, "pid", "p", 0, "attach to the running process `PID` instead of launching CMD; Ctrl-C, SIGTERM, SIGHUP or --duration detach cleanly, if ptprobe is killed (SIGKILL, the OOM killer), no-stop probes stop recording and the program runs on, but the int3s of stop-path probes (return probes, --stack, --no-fast) stay in the program, which dies of SIGTRAP at its next hit there (as with gdb or ltrace)")
	fs.DurationVar(&o.duration, "duration", 0, "stop tracing after `D` (e.g. 10s) and detach; the program runs on")
	fs.BoolVar(&o.noFollow, "no-follow-fork", false, "do not trace children of fork: remove the probes from each child before it runs")
	fs.BoolVar(&o.detachOnExit, "detach-on-exit", false, "when ptprobe is interrupted (Ctrl-C, SIGTERM, SIGHUP), detach from the launched program and let it run on, instead of passing the signal to it and tracing it to the end")
	fs.IntSliceVar(&o.pidFilter, "pid-filter", nil, "report only hits of these `PIDS` (processes of the traced tree)")
	fs.IntVar(&o.maxProbes, "max-probes", resolve.DefaultMaxProbes, "the most probes one SPEC may expand to (a glob such as libc:str*, a USDT probe, a C++ name); more is an error")
	fs.BoolVar(&o.noFast, "no-fast", false, "take every hit with a ptrace stop (the int3 path), not on the no-stop path (a jump to an in-process recorder) that probes without Go handlers take where the site allows it")
	fs.BoolVar(&o.drop, "drop", false, "no-stop path: when the event ring is full, count the hit missed instead of making the program thread wait for the tracer")
	fs.BoolVar(&o.verbose, "verbose", false, "say at the end, on stderr, how each probe took its hits (no-stop or stop path, on how many sites, and why not no-stop)")
	o.q.addFlags(fs)
	o.addStackFlag(fs)
}

// traceCmd is ptprobe trace: flags into traceOptions, then traceRun.
func (c *cli) traceCmd() *cobra.Command {
	o := &traceOptions{}
	cmd := &cobra.Command{
		Use:   "trace -e SPEC... [flags] -- CMD [ARGS]",
		Short: "run CMD (or attach to PID) and report each probe hit",
		Long: `Run CMD under the ptrace engine (or, with -p PID, attach to a running
process instead) and report each probe hit, as trace_pipe lines or JSON
objects. With --backend kernel, the same through the kernel's tracefs
(uprobes, and kprobes with -k; needs root). The exit status is the
program's (128+N when signal N killed it), or 2 for an error of ptprobe's
own.`,
		Example: `  ptprobe trace -e 'libc:malloc size=%di:u64' -- ls /usr/bin
  ptprobe trace --latency -e 'r libc:getaddrinfo' -- getent hosts example.org
  ptprobe trace --count -e 'r libc:malloc' --set-retval 0 --every 100 -- ./prog
  ptprobe trace --backend kernel -k 'p:k/open do_sys_openat2' -e libc:open -- cat /etc/hostname`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, argv []string) error {
			o.retvalSet = cmd.Flags().Changed("set-retval")
			status, err := traceRun(cmd.Context(), o, argv, c.stdout, c.stderr)
			c.status = status
			return err
		},
	}
	fs := cmd.Flags()
	// Flags after CMD are CMD's.
	fs.SetInterspersed(false)
	o.addFlags(fs)
	completeWords(cmd, "format", "text", "json", "chrome", "folded")
	completeWords(cmd, "backend", "ptrace", "kernel")
	completeWords(cmd, "tracer-priority", "auto", "normal", "idle")
	return cmd
}

// traceRun is trace: o's checks, the request and the backend o make,
// the run, until the program exits or ctx is done (then the backend
// detaches), and the output. It returns the program's exit status
// (128+N when signal N killed it; 0 when ptprobe detached; 128+N when
// signal N interrupted a kernel run).
func traceRun(ctx context.Context, o *traceOptions, argv []string, stdout, stderr io.Writer) (int, error) {
	if err := o.check(argv); err != nil {
		return 0, err
	}
	req, err := o.request(argv)
	if err != nil {
		return 0, err
	}
	req.Warn = func(err error) { fmt.Fprintf(stderr, "ptprobe: warning: %v\n", err) }
	b, err := o.newBackend()
	if err != nil {
		return 0, err
	}
	out, err := o.openOutput(stdout, stderr, req)
	if err != nil {
		return 0, err
	}
	defer out.close()
	if b.Name() == "ptrace" && len(argv) > 0 {
		// Said before the program runs: its output may differ.
		if path, err := exec.LookPath(argv[0]); err == nil {
			if warning := setIDWarning(path); warning != "" {
				req.Warn(errors.New(warning))
			}
		}
	}
	if o.pid != 0 || o.detachOnExit {
		// A reader gone (`ptprobe trace -p PID | head`) or a full disk:
		// detach rather than trace on with nowhere to write.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		out.w.mu.Lock()
		out.w.onFail = cancel
		out.w.mu.Unlock()
	}
	res, interrupted, err := o.run(ctx, b, req)
	if err != nil {
		return 0, err
	}
	for _, p := range res.Probes {
		if !p.Armed {
			fmt.Fprintf(stderr, "ptprobe: probe %s (%s) was never armed: no mapping of %s was executed\n", p.Spec.Probe(), p.Spec.Target(), p.Spec.Path)
		}
	}
	out.summary(res)
	switch {
	case res.Detached && interrupted != 0:
		// A kernel run ptprobe was interrupted in: the status a shell
		// gives a command a signal ended.
		return 128 + int(interrupted), nil
	case res.Detached:
		armed := 0
		for _, p := range res.Probes {
			if p.Armed {
				armed++
			}
		}
		what := "breakpoints removed, text checked against the file"
		if b.Name() == "kernel" {
			what = "the kernel's probes removed"
		}
		fmt.Fprintf(stderr, "ptprobe: detached from %d: %s (probes armed: %d of %d)\n", res.PID, what, armed, len(res.Probes))
	}
	return res.Status(), nil
}

// check refuses flags that do not go together, before anything is
// parsed or opened.
func (o *traceOptions) check(argv []string) error {
	switch {
	case len(argv) == 0 && o.pid == 0:
		return errors.New("trace: no program given (ptprobe trace -e SPEC -- CMD [ARGS], or -p PID)")
	case len(argv) > 0 && o.pid != 0:
		return errors.New("trace: give a program to launch or -p PID, not both")
	case len(o.specs) == 0 && len(o.kspecs) == 0:
		return errors.New("trace: no probe given (-e SPEC or, with --backend kernel, -k KSPEC)")
	case o.backend != "ptrace" && o.backend != "kernel":
		return fmt.Errorf("trace: --backend must be ptrace or kernel, not %q", o.backend)
	case len(o.kspecs) > 0 && o.backend != "kernel":
		return errors.New("trace: kernel probes (-k) need --backend kernel")
	case o.format != "text" && o.format != "json" && o.format != "chrome" && o.format != "folded":
		return fmt.Errorf("trace: --format must be text, json, chrome or folded, not %q", o.format)
	case !o.retvalSet && (o.every != 0 || o.probability != 0):
		return errors.New("trace: --every and --probability go with --set-retval")
	case o.retvalSet && o.every != 0 && o.probability != 0:
		return errors.New("trace: give --every or --probability, not both")
	case o.retvalSet && (o.probability < 0 || o.probability > 1 || math.IsNaN(o.probability)):
		return fmt.Errorf("trace: --probability %v is not in (0, 1]", o.probability)
	case (o.latency || o.retvalSet) && o.backend == "kernel":
		return errors.New("trace: --latency and --set-retval work with the ptrace backend only")
	case o.sameCPU && (o.noPin || o.pid != 0):
		return errors.New("trace: --same-cpu confines a launched program; it goes with neither --no-pin nor -p")
	case o.maxProbes < 1:
		return fmt.Errorf("trace: --max-probes must be at least 1, not %d", o.maxProbes)
	}
	return nil
}

// request parses the specs (-e, -k) into the request of the run, with
// the handlers of --set-retval.
func (o *traceOptions) request(argv []string) (*backend.Request, error) {
	req := &backend.Request{Argv: argv, PID: o.pid, NoFollowFork: o.noFollow, MaxProbes: o.maxProbes}
	var retval *handlers.Retval
	if o.retvalSet {
		v, err := strconv.ParseInt(o.setRetval, 0, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(o.setRetval, 0, 64)
			if uerr != nil {
				return nil, fmt.Errorf("trace: --set-retval %q is not an integer", o.setRetval)
			}
			v = int64(u)
		}
		retval, err = handlers.NewRetval(uint64(v), &handlers.RetvalOptions{Every: o.every, Probability: o.probability, Seed: o.seed})
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
	}
	// Each probe's name is its own, across -e and -k: its events and
	// counts go by it.
	seen := make(map[string]string)
	named := func(spec *uprobe.Spec, text string) error {
		if prev, dup := seen[spec.Probe()]; dup {
			return fmt.Errorf("trace: probes %q and %q have the same name %s; name one with p:GROUP/EVENT", prev, text, spec.Probe())
		}
		seen[spec.Probe()] = text
		return nil
	}
	for _, text := range o.specs {
		spec, err := uprobe.Parse(text)
		if err != nil {
			return nil, err
		}
		if err := named(spec, text); err != nil {
			return nil, err
		}
		if (o.latency || retval != nil) && spec.Kind != uprobe.Return {
			return nil, fmt.Errorf("trace: %q is an entry probe, and --latency and --set-retval take return probes (r ... or ...%%return)", text)
		}
		p := backend.Probe{Spec: spec}
		if retval != nil {
			p.Handlers = retval.Handlers()
		}
		req.Probes = append(req.Probes, p)
	}
	if err := expandProbes(req, argv, o.pid); err != nil {
		return nil, err
	}
	for _, text := range o.kspecs {
		k, err := uprobe.ParseKprobe(text)
		if err != nil {
			return nil, err
		}
		if err := named(k, text); err != nil {
			return nil, err
		}
		req.Kprobes = append(req.Kprobes, k)
	}
	return req, nil
}

// newBackend is the backend --backend names, with its options.
func (o *traceOptions) newBackend() (backend.Backend, error) {
	if o.backend == "kernel" {
		return kernel.Backend{}, nil
	}
	b := engine.Backend{Sched: engine.SchedOptions{NoFollow: o.noPin, SameCPU: o.sameCPU}, StopPath: o.noFast, DropWhenFull: o.drop}
	switch o.priority {
	case "auto":
		b.Sched.Priority = engine.PriorityAuto
	case "normal":
		b.Sched.Priority = engine.PriorityNormal
	case "idle":
		b.Sched.Priority = engine.PriorityIdle
	default:
		return nil, fmt.Errorf("trace: --tracer-priority %q: want auto, normal or idle", o.priority)
	}
	if o.cpu >= 0 {
		cpu := o.cpu
		b.Sched.CPU = &cpu
	}
	return b, nil
}

// traceOutput is where trace's output goes, and what it prints at the
// end of the run.
type traceOutput struct {
	o      *traceOptions
	w      *lineWriter
	file   *os.File // -o FILE, or nil
	stderr io.Writer
	qs     *questions     // --filter, the aggregations (--latency among them), --stack, chrome and folded
	stacks *stackRecorder // --stack (stack.go)
}

// openOutput opens trace's output and sets req's OnEvent: events as text or
// JSON lines, or into the aggregations (--latency's histograms among
// them) or a trace file, after --filter, filtered by --pid-filter; none
// with a plain --count. It may change req's probes (questions.go).
func (o *traceOptions) openOutput(stdout, stderr io.Writer, req *backend.Request) (*traceOutput, error) {
	t := &traceOutput{o: o, stderr: stderr}
	out := stdout
	if o.output != "" {
		// Write-only: opened read-write, a pipe or FIFO (-o /dev/stderr) would
		// have ptprobe as a reader of its own output and never report EPIPE.
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		t.file, out = f, f
	}
	// Events, --count and --latency output go out in whole lines (the
	// program may share the stream).
	t.w = newLineWriter(out, flushEvery)
	stacks, err := o.newStackRecorder(req)
	if err != nil {
		t.close()
		return nil, err
	}
	t.stacks = stacks
	// Filters and aggregations (--latency among them) run on the events
	// (questions.go, docs/DESIGN.md §11).
	probes, qs, err := o.q.prepare(o, req.Probes, req.Kprobes, t.w)
	if err != nil {
		t.close()
		return nil, err
	}
	req.Probes, t.qs = probes, qs
	if !o.count || qs.needsEvents() {
		var buf []byte
		json := o.format == "json"
		req.OnEvent = qs.onEvent(func(ev *uprobe.Event) {
			if json {
				buf = ev.AppendJSON(buf[:0])
			} else {
				buf = ev.AppendText(buf[:0])
			}
			buf = t.stacks.appendTo(buf, ev, json)
			t.w.Write(buf)
		})
	}
	qs.start()
	if len(o.pidFilter) > 0 && req.OnEvent != nil {
		keep := make(map[int]bool)
		for _, pid := range o.pidFilter {
			keep[pid] = true
		}
		report := req.OnEvent
		req.OnEvent = func(ev *uprobe.Event) {
			if keep[ev.PID] {
				report(ev)
			}
		}
	}
	return t, nil
}

// summary prints what trace prints at the end of a run: the
// aggregations (--latency's histograms among them), the end of a trace
// file, --count's counts.
func (t *traceOutput) summary(res *backend.Result) {
	if err := t.qs.finish(); err != nil {
		fmt.Fprintf(t.stderr, "ptprobe: warning: %v\n", err)
	}
	if t.o.verbose {
		for _, p := range res.Probes {
			if s := p.Strategy(); s != "" {
				fmt.Fprintf(t.stderr, "ptprobe: %s: %s", p.Spec.Probe(), s)
				if p.Missed > 0 {
					fmt.Fprintf(t.stderr, ", %d hits missed", p.Missed)
				}
				fmt.Fprintln(t.stderr)
			}
		}
	}
	if !t.o.count || len(t.o.q.by) > 0 {
		return
	}
	var buf []byte
	for _, p := range res.Probes {
		if t.o.format == "json" {
			buf = append(buf, `{"probe":`...)
			buf = strconv.AppendQuote(buf, p.Spec.Probe())
			buf = append(buf, `,"hits":`...)
			buf = strconv.AppendUint(buf, t.qs.hits(p.Spec, p.Hits), 10)
			if p.Missed > 0 {
				buf = append(buf, `,"missed":`...)
				buf = strconv.AppendUint(buf, p.Missed, 10)
			}
			if s := p.Strategy(); s != "" {
				buf = append(buf, `,"strategy":`...)
				buf = strconv.AppendQuote(buf, s)
			}
			buf = append(buf, "}\n"...)
		} else {
			buf = append(buf, p.Spec.Probe()...)
			buf = append(buf, ' ')
			buf = strconv.AppendUint(buf, t.qs.hits(p.Spec, p.Hits), 10)
			buf = append(buf, '\n')
		}
	}
	t.w.Write(buf)
}

func (t *traceOutput) close() {
	if t.qs != nil {
		t.qs.stopTicker()
	}
	// The program's status stays the exit status; a lost output (full
	// disk, a reader gone) is said, not silent.
	if err := t.w.Close(); err != nil {
		fmt.Fprintf(t.stderr, "ptprobe: warning: output lost from the first failed write on: %v\n", err)
	}
	if t.file != nil {
		t.file.Close()
	}
	t.stacks.Close()
}

// run runs req on b until the program exits, or until ctx is done, the
// --duration is over, or a signal ends the run: then b detaches and the
// program runs on. ptprobe's signals (SIGINT, SIGTERM, SIGHUP; SIGQUIT
// is ignored, as the terminal sends it to the program too):
//   - kernel backend: the run ends (its events are removed), and
//     interrupted is the signal;
//   - -p or --detach-on-exit: ptrace detaches;
//   - else SIGINT is left to the program, which a terminal's Ctrl-C
//     reached as well (the program is in ptprobe's process group), and
//     SIGTERM and SIGHUP are passed on to it: ptprobe traces it to its end.
func (o *traceOptions) run(ctx context.Context, b backend.Backend, req *backend.Request) (res *backend.Result, interrupted syscall.Signal, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, o.duration)
		defer stop()
	}
	// pid is the launched program's, once started; pending, the signals
	// to pass on to it that came before it was.
	var mu sync.Mutex
	var pid int
	var pending []syscall.Signal
	started := req.Started
	req.Started = func(p int) {
		mu.Lock()
		pid = p
		for _, sig := range pending {
			syscall.Kill(p, sig)
		}
		pending = nil
		mu.Unlock()
		if started != nil {
			started(p)
		}
	}
	var caught atomic.Int32
	running := false // b.Run is called (under mu)
	kernelRun := b.Name() == "kernel"
	stop := watchSignals(ctx, func(sig syscall.Signal) {
		if sig == syscall.SIGQUIT {
			return
		}
		mu.Lock()
		early := !running
		mu.Unlock()
		if early {
			// Before anything was started or attached to: nothing
			// will be.
			caught.CompareAndSwap(0, int32(sig))
			cancel()
			return
		}
		switch {
		case kernelRun && o.pid == 0:
			caught.CompareAndSwap(0, int32(sig))
			cancel()
		case o.pid != 0 || o.detachOnExit:
			cancel()
		default:
			mu.Lock()
			switch {
			case pid == 0:
				// Launching: the program gets it when it exists
				// (SIGINT too: a terminal's Ctrl-C missed it).
				pending = append(pending, sig)
			case sig != syscall.SIGINT:
				// A terminal's Ctrl-C reached the program itself
				// (it is in ptprobe's process group).
				syscall.Kill(pid, sig)
			}
			mu.Unlock()
		}
	})
	defer stop()
	mu.Lock()
	if sig := caught.Load(); sig != 0 {
		mu.Unlock()
		// A signal ended ptprobe before the run began: the program is
		// not started (or attached to), and the status is the one a
		// shell gives a command the signal ended.
		return &backend.Result{Detached: true}, syscall.Signal(sig), nil
	}
	running = true
	mu.Unlock()
	res, err = b.Run(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	return res, syscall.Signal(caught.Load()), nil
}
