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

	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

// traceCmd runs a program under the ptrace engine. It returns the
// program's exit status (128+signal when a signal killed it).
func traceCmd(args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("trace", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	specs := fs.StringArrayP("event", "e", nil, "probe `SPEC` (repeatable)")
	format := fs.String("format", "text", "output format: text (trace_pipe lines) or json (one object per line)")
	count := fs.Bool("count", false, "print only the number of hits of each probe, at exit")
	output := fs.StringP("output", "o", "", "write events to `FILE` instead of standard output")
	noPin := fs.Bool("no-pin", false, "let the tracer thread run anywhere at normal priority instead of following the program's threads from CPU to CPU (slower stops)")
	prio := fs.String("tracer-priority", "auto", "scheduling of the tracer thread: auto (SCHED_IDLE while a CPU is free, if it can return to SCHED_OTHER, which needs root or CAP_SYS_NICE), normal (SCHED_OTHER: program threads resumed on other CPUs, slower hits), or idle (SCHED_IDLE for good: fast hits without root, but slow ones while every CPU is busy)")
	sameCPU := fs.Bool("same-cpu", false, "confine the launched program and the tracer to one CPU: the cheapest stops, at the price of the program's parallelism")
	cpu := fs.Int("cpu", -1, "with --same-cpu: the `CPU` (default: the one ptprobe runs on)")
	backendName := fs.String("backend", "ptrace", "ptrace (the engine, no privilege needed) or kernel (tracefs uprobe_events/kprobe_events, needs root)")
	kspecs := fs.StringArrayP("kprobe", "k", nil, "kernel probe `KSPEC` in kprobe_events grammar (--backend kernel)")
	latency := fs.Bool("latency", false, "print, per return probe, a log2 histogram of the time from entry to return, at exit")
	setRetval := fs.String("set-retval", "", "make the functions of the return probes return `VALUE` to their callers (fault injection)")
	every := fs.Uint64("every", 0, "with --set-retval: only every `N`th return of each probe")
	probability := fs.Float64("probability", 0, "with --set-retval: each return with probability `P` (0 < P <= 1)")
	seed := fs.Int64("seed", 0, "with --probability: random seed (0: from the clock)")
	attachPID := fs.IntP("pid", "p", 0, "attach to the running process `PID` instead of launching CMD; Ctrl-C, SIGTERM, SIGHUP or --duration detach cleanly, but if ptprobe is killed (SIGKILL, the OOM killer) its int3s stay in the program, which dies of SIGTRAP at its next hit (as with gdb or ltrace)")
	duration := fs.Duration("duration", 0, "stop tracing after `D` (e.g. 10s) and detach; the program runs on")
	noFollow := fs.Bool("no-follow-fork", false, "do not trace children of fork: remove the probes from each child before it runs")
	detachOnExit := fs.Bool("detach-on-exit", false, "when ptprobe is interrupted (Ctrl-C, SIGTERM, SIGHUP), detach from the launched program and let it run on, instead of passing the signal to it and tracing it to the end")
	pidFilter := fs.IntSlice("pid-filter", nil, "report only hits of these `PIDS` (processes of the traced tree)")
	stackFlag := fs.String("stack", "", "record the user stack of each hit, at most `DEPTH` frames (--stack alone: 64), symbolized, under the event (text) or as its \"stack\" array (json); ptrace backend")
	fs.Lookup("stack").NoOptDefVal = strconv.Itoa(engine.DefaultStackDepth)
	fs.SetInterspersed(false)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: ptprobe trace [-e SPEC]... [FLAGS] -- CMD [ARGS]\n\n%s", fs.FlagUsages())
			return 0, nil
		}
		return 0, fmt.Errorf("trace: %w", err)
	}
	argv := fs.Args()
	if len(argv) == 0 && *attachPID == 0 {
		return 0, errors.New("trace: no program given (ptprobe trace -e SPEC -- CMD [ARGS], or -p PID)")
	}
	if len(argv) > 0 && *attachPID != 0 {
		return 0, errors.New("trace: give a program to launch or -p PID, not both")
	}
	if *attachPID != 0 && *backendName == "kernel" {
		return 0, errors.New("trace: -p works with the ptrace backend only")
	}
	if len(*specs) == 0 && len(*kspecs) == 0 {
		return 0, errors.New("trace: no probe given (-e SPEC or, with --backend kernel, -k KSPEC)")
	}
	if *backendName != "ptrace" && *backendName != "kernel" {
		return 0, fmt.Errorf("trace: --backend must be ptrace or kernel, not %q", *backendName)
	}
	if len(*kspecs) > 0 && *backendName != "kernel" {
		return 0, errors.New("trace: kernel probes (-k) need --backend kernel")
	}
	if *format != "text" && *format != "json" {
		return 0, fmt.Errorf("trace: --format must be text or json, not %q", *format)
	}

	override, err := newRetvalOverride(*setRetval, fs.Changed("set-retval"), *every, *probability, *seed)
	if err != nil {
		return 0, err
	}
	if (*latency || override != nil) && *backendName == "kernel" {
		return 0, errors.New("trace: --latency and --set-retval work with the ptrace backend only")
	}

	var cfg engine.Options
	seen := make(map[string]string)
	for _, text := range *specs {
		spec, err := uprobe.Parse(text)
		if err != nil {
			return 0, err
		}
		if prev, dup := seen[spec.Probe()]; dup {
			return 0, fmt.Errorf("trace: probes %q and %q have the same name %s; name one with p:GROUP/EVENT", prev, text, spec.Probe())
		}
		seen[spec.Probe()] = text
		if (*latency || override != nil) && spec.Kind != uprobe.Return {
			return 0, fmt.Errorf("trace: %q is an entry probe, and --latency and --set-retval take return probes (r ... or ...%%return)", text)
		}
		pc := backend.Probe{Spec: spec}
		if override != nil {
			pc.Handlers.Return = override.handler()
		}
		cfg.Probes = append(cfg.Probes, pc)
	}
	if err := expandProbes(&cfg, argv, *attachPID); err != nil {
		return 0, err
	}
	var kprobes []*uprobe.Spec
	for _, text := range *kspecs {
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
	if *output != "" {
		// Write-only: opened read-write, a pipe or FIFO (-o /dev/stderr) would
		// have ptprobe as a reader of its own output and never report EPIPE.
		f, err := os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
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
	depth, err := parseStackDepth(*stackFlag)
	if err != nil {
		return 0, err
	}
	stacks, err := newStackRecorder(&cfg, depth, *backendName == "kernel")
	if err != nil {
		return 0, err
	}
	defer stacks.Close()
	var hists *latencies
	switch {
	case *latency:
		hists = newLatencies()
		cfg.OnEvent = hists.add
	case !*count:
		var buf []byte
		json := *format == "json"
		cfg.OnEvent = func(ev *uprobe.Event) {
			if json {
				buf = ev.AppendJSON(buf[:0])
			} else {
				buf = ev.AppendText(buf[:0])
			}
			buf = stacks.appendTo(buf, ev, json)
			w.Write(buf)
		}
	}
	if len(*pidFilter) > 0 && cfg.OnEvent != nil {
		keep := make(map[int]bool)
		for _, pid := range *pidFilter {
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
	cfg.Sched.NoFollow = *noPin
	switch *prio {
	case "auto":
		cfg.Sched.Priority = engine.PriorityAuto
	case "normal":
		cfg.Sched.Priority = engine.PriorityNormal
	case "idle":
		cfg.Sched.Priority = engine.PriorityIdle
	default:
		return 0, fmt.Errorf("trace: --tracer-priority %q: want auto, normal or idle", *prio)
	}
	cfg.Sched.SameCPU = *sameCPU
	if *cpu >= 0 {
		cfg.Sched.CPU = cpu
	}
	if *sameCPU && (*noPin || *attachPID != 0) {
		return 0, errors.New("trace: --same-cpu confines a launched program; it goes with neither --no-pin nor -p")
	}
	cfg.NoFollowFork = *noFollow

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
	if *backendName == "kernel" {
		var specList []*uprobe.Spec
		for _, pc := range cfg.Probes {
			specList = append(specList, pc.Spec)
		}
		// Count from the events read back: the kernel's profile counts
		// hits of every process, before the pid filter.
		byProbe := make(map[string]uint64)
		onEvent := cfg.OnEvent
		st, _, err := kernelRun(specList, kprobes, argv, kernel.Options{Warn: cfg.Warn}, nil, nil, func(ev *uprobe.Event) {
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
		st, probes, err := ptraceRun(cfg, argv, runOptions{pid: *attachPID, duration: *duration, detachOnExit: *detachOnExit}, stderr)
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
	if *count {
		var buf []byte
		for _, p := range counts {
			if *format == "json" {
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
