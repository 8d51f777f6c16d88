package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// traceOptions are the flags of ptprobe trace. A new trace flag is a
// field here, its line in addFlags, its checks in check, and its use in
// runTrace (or in a handler of package handlers it configures).
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
	// Names (docs/DESIGN.md §9).
	maxProbes int
}

// addFlags registers the flags of trace on fs, into o.
func (o *traceOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.specs, "event", "e", nil, "probe `SPEC` (repeatable)")
	fs.StringVar(&o.format, "format", "text", "output format: text (trace_pipe lines) or json (one object per line)")
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
	fs.IntVarP(&o.pid, "pid", "p", 0, "attach to the running process `PID` instead of launching CMD; Ctrl-C, SIGTERM, SIGHUP or --duration detach cleanly, but if ptprobe is killed (SIGKILL, the OOM killer) its int3s stay in the program, which dies of SIGTRAP at its next hit (as with gdb or ltrace)")
	fs.DurationVar(&o.duration, "duration", 0, "stop tracing after `D` (e.g. 10s) and detach; the program runs on")
	fs.BoolVar(&o.noFollow, "no-follow-fork", false, "do not trace children of fork: remove the probes from each child before it runs")
	fs.BoolVar(&o.detachOnExit, "detach-on-exit", false, "when ptprobe is interrupted (Ctrl-C, SIGTERM, SIGHUP), detach from the launched program and let it run on, instead of passing the signal to it and tracing it to the end")
	fs.IntSliceVar(&o.pidFilter, "pid-filter", nil, "report only hits of these `PIDS` (processes of the traced tree)")
	fs.IntVar(&o.maxProbes, "max-probes", resolve.DefaultMaxProbes, "the most probes one SPEC may expand to (a glob such as libc:str*, a USDT probe, a C++ name); more is an error")
}

// traceCmd is ptprobe trace: flags into traceOptions, then runTrace.
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
			status, err := traceRun(o, argv, c.stdout, c.stderr)
			c.status = status
			return err
		},
	}
	fs := cmd.Flags()
	// Flags after CMD are CMD's.
	fs.SetInterspersed(false)
	o.addFlags(fs)
	completeWords(cmd, "format", "text", "json")
	completeWords(cmd, "backend", "ptrace", "kernel")
	completeWords(cmd, "tracer-priority", "auto", "normal", "idle")
	return cmd
}

// traceRun runs a program under the ptrace engine. It returns the
// program's exit status (128+signal when a signal killed it).
func traceRun(o *traceOptions, argv []string, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 && o.pid == 0 {
		return 0, errors.New("trace: no program given (ptprobe trace -e SPEC -- CMD [ARGS], or -p PID)")
	}
	if len(argv) > 0 && o.pid != 0 {
		return 0, errors.New("trace: give a program to launch or -p PID, not both")
	}
	if o.pid != 0 && o.backend == "kernel" {
		return 0, errors.New("trace: -p works with the ptrace backend only")
	}
	if len(o.specs) == 0 && len(o.kspecs) == 0 {
		return 0, errors.New("trace: no probe given (-e SPEC or, with --backend kernel, -k KSPEC)")
	}
	if o.backend != "ptrace" && o.backend != "kernel" {
		return 0, fmt.Errorf("trace: --backend must be ptrace or kernel, not %q", o.backend)
	}
	if len(o.kspecs) > 0 && o.backend != "kernel" {
		return 0, errors.New("trace: kernel probes (-k) need --backend kernel")
	}
	if o.format != "text" && o.format != "json" {
		return 0, fmt.Errorf("trace: --format must be text or json, not %q", o.format)
	}

	override, err := newRetvalOverride(o.setRetval, o.retvalSet, o.every, o.probability, o.seed)
	if err != nil {
		return 0, err
	}
	if (o.latency || override != nil) && o.backend == "kernel" {
		return 0, errors.New("trace: --latency and --set-retval work with the ptrace backend only")
	}

	if o.maxProbes < 1 {
		return 0, fmt.Errorf("trace: --max-probes must be at least 1, not %d", o.maxProbes)
	}
	cfg := engine.Options{MaxProbes: o.maxProbes}
	seen := make(map[string]string)
	for _, text := range o.specs {
		spec, err := uprobe.Parse(text)
		if err != nil {
			return 0, err
		}
		if prev, dup := seen[spec.Probe()]; dup {
			return 0, fmt.Errorf("trace: probes %q and %q have the same name %s; name one with p:GROUP/EVENT", prev, text, spec.Probe())
		}
		seen[spec.Probe()] = text
		if (o.latency || override != nil) && spec.Kind != uprobe.Return {
			return 0, fmt.Errorf("trace: %q is an entry probe, and --latency and --set-retval take return probes (r ... or ...%%return)", text)
		}
		pc := backend.Probe{Spec: spec}
		if override != nil {
			pc.Handlers.Return = override.handler()
		}
		cfg.Probes = append(cfg.Probes, pc)
	}
	var kprobes []*uprobe.Spec
	for _, text := range o.kspecs {
		k, err := uprobe.ParseKprobe(text)
		if err != nil {
			return 0, err
		}
		if prev, dup := seen[k.Probe()]; dup {
			return 0, fmt.Errorf("trace: probes %q and %q have the same name %s; name one with p:GROUP/EVENT", prev, text, k.Probe())
		}
		seen[k.Probe()] = text
		kprobes = append(kprobes, k)
	}

	out := stdout
	if o.output != "" {
		// Write-only: opened read-write, a pipe or FIFO (-o /dev/stderr) would
		// have ptprobe as a reader of its own output and never report EPIPE.
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("trace: %w", err)
		}
		defer f.Close()
		out = f
	}
	// Events, --count and --latency output go out in whole lines (the
	// program may share the stream); the kernel backend's events too,
	// through cfg.OnEvent.
	w := newLineWriter(out, flushEvery)
	defer func() {
		// The program's status stays the exit status; a lost output
		// (full disk, a reader gone) is said, not silent.
		if err := w.Close(); err != nil {
			fmt.Fprintf(stderr, "ptprobe: warning: output lost from the first failed write on: %v\n", err)
		}
	}()
	var hists *latencies
	switch {
	case o.latency:
		hists = newLatencies()
		cfg.OnEvent = hists.add
	case !o.count:
		var buf []byte
		json := o.format == "json"
		cfg.OnEvent = func(ev *uprobe.Event) {
			if json {
				buf = ev.AppendJSON(buf[:0])
			} else {
				buf = ev.AppendText(buf[:0])
			}
			w.Write(buf)
		}
	}
	if len(o.pidFilter) > 0 && cfg.OnEvent != nil {
		keep := make(map[int]bool)
		for _, pid := range o.pidFilter {
			keep[pid] = true
		}
		report := cfg.OnEvent
		cfg.OnEvent = func(ev *uprobe.Event) {
			if keep[ev.PID] {
				report(ev)
			}
		}
	}
	cfg.Warn = func(err error) { fmt.Fprintf(stderr, "ptprobe: warning: %v\n", err) }
	cfg.Sched.NoFollow = o.noPin
	switch o.priority {
	case "auto":
		cfg.Sched.Priority = engine.PriorityAuto
	case "normal":
		cfg.Sched.Priority = engine.PriorityNormal
	case "idle":
		cfg.Sched.Priority = engine.PriorityIdle
	default:
		return 0, fmt.Errorf("trace: --tracer-priority %q: want auto, normal or idle", o.priority)
	}
	cfg.Sched.SameCPU = o.sameCPU
	if o.cpu >= 0 {
		cfg.Sched.CPU = &o.cpu
	}
	if o.sameCPU && (o.noPin || o.pid != 0) {
		return 0, errors.New("trace: --same-cpu confines a launched program; it goes with neither --no-pin nor -p")
	}
	cfg.NoFollowFork = o.noFollow

	// The program is in ptprobe's process group: a terminal's Ctrl-C
	// (and Ctrl-\\) reaches it directly; ptprobe decides what it does
	// itself (ptraceRun, kernelRun) and otherwise goes on tracing.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	type probeCount struct {
		name string
		hits uint64
	}
	var counts []probeCount
	var status int
	if o.backend == "kernel" {
		var specList []*uprobe.Spec
		for _, pc := range cfg.Probes {
			specList = append(specList, pc.Spec)
		}
		// Count from the events read back: the kernel's profile counts
		// hits of every process, before the pid filter.
		byProbe := make(map[string]uint64)
		onEvent := cfg.OnEvent
		st, _, err := kernelRun(specList, kprobes, argv, kernel.Options{Warn: cfg.Warn, MaxProbes: o.maxProbes}, nil, nil, func(ev *uprobe.Event) {
			byProbe[ev.Probe()]++
			if onEvent != nil {
				onEvent(ev)
			}
		})
		if err != nil {
			return 0, err
		}
		status = st
		for _, s := range specList {
			counts = append(counts, probeCount{s.Probe(), byProbe[s.Probe()]})
		}
		for _, k := range kprobes {
			counts = append(counts, probeCount{k.Probe(), byProbe[k.Probe()]})
		}
	} else {
		if len(argv) > 0 {
			// Said before the program runs: its output may differ.
			if path, err := exec.LookPath(argv[0]); err == nil {
				if warning := setIDWarning(path); warning != "" {
					cfg.Warn(errors.New(warning))
				}
			}
		}
		st, probes, err := ptraceRun(cfg, argv, runOptions{pid: o.pid, duration: o.duration, detachOnExit: o.detachOnExit}, stderr)
		if err != nil {
			return 0, err
		}
		status = st
		for _, p := range probes {
			counts = append(counts, probeCount{p.Spec.Probe(), p.Hits()})
		}
	}
	if hists != nil {
		for _, c := range counts {
			w.Write(hists.render(c.name))
		}
	}
	if o.count {
		var buf []byte
		for _, p := range counts {
			if o.format == "json" {
				buf = append(buf, `{"probe":`...)
				buf = strconv.AppendQuote(buf, p.name)
				buf = append(buf, `,"hits":`...)
				buf = strconv.AppendUint(buf, p.hits, 10)
				buf = append(buf, "}\n"...)
			} else {
				buf = append(buf, p.name...)
				buf = append(buf, ' ')
				buf = strconv.AppendUint(buf, p.hits, 10)
				buf = append(buf, '\n')
			}
		}
		w.Write(buf)
	}
	return status, nil
}

// runOptions say how ptraceRun starts and stops.
type runOptions struct {
	pid          int           // attach to it instead of launching
	duration     time.Duration // detach after it, if not 0
	detachOnExit bool          // detach on SIGINT/SIGTERM/SIGHUP
}

// ptraceRun runs argv (or attaches to opts.pid) under the ptrace engine and
// returns the exit status of the program (128+N when signal N killed it;
// 0 when ptprobe detached first) and the session's probes.
func ptraceRun(cfg engine.Options, argv []string, opts runOptions, stderr io.Writer) (int, []*engine.Probe, error) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var sess *engine.Tracer
	var err error
	if opts.pid != 0 {
		sess, err = engine.Attach(opts.pid, &cfg)
	} else {
		sess, err = engine.Launch(argv, &cfg)
	}
	if err != nil {
		return 0, nil, err
	}
	done := make(chan struct{})
	defer close(done)
	var timeout <-chan time.Time
	if opts.duration > 0 {
		timer := time.NewTimer(opts.duration)
		defer timer.Stop()
		timeout = timer.C
	}
	go func() {
		for {
			select {
			case sig := <-sigs:
				switch {
				case opts.pid != 0 || opts.detachOnExit:
					sess.Detach()
				case sig == syscall.SIGINT:
					// The terminal sent it to the program too.
				default:
					syscall.Kill(sess.Pid(), sig.(syscall.Signal))
				}
			case <-timeout:
				sess.Detach()
			case <-done:
				return
			}
		}
	}()
	res, err := sess.Wait()
	if err != nil {
		return 0, nil, err
	}
	for _, p := range sess.Probes() {
		if !p.Armed() {
			fmt.Fprintf(stderr, "ptprobe: probe %s (%s) was never armed: no mapping of %s was executed\n", p.Spec.Probe(), p.Spec.Target(), p.Spec.Path)
		}
	}
	if res.Detached {
		if len(res.TextMismatches) > 0 {
			return 0, nil, fmt.Errorf("detached from %d, but its text differs from the file at:\n  %s", sess.Pid(), strings.Join(res.TextMismatches, "\n  "))
		}
		fmt.Fprintf(stderr, "ptprobe: detached from %d: %d breakpoints removed, text checked against the file\n", sess.Pid(), res.SitesRestored)
		return 0, sess.Probes(), nil
	}
	if res.ExitCode < 0 {
		return 128 + int(res.Signal), sess.Probes(), nil
	}
	return res.ExitCode, sess.Probes(), nil
}
