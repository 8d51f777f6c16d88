package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/script"
)

// runCmdOptions are the flags of ptprobe run.
type runCmdOptions struct {
	maxSteps uint64
	output   string
	backend  string
	pid      int
	duration time.Duration
}

// runCmd is ptprobe run: a Starlark script's probes and handlers
// (package script, docs/DESIGN.md §11).
func (c *cli) runCmd() *cobra.Command {
	o := &runCmdOptions{}
	cmd := &cobra.Command{
		Use:   "run FILE.star [flags] [-- CMD [ARGS] | -p PID]",
		Short: "run a Starlark script's handlers at its probes' hits",
		Long: `Run CMD (or attach to PID) with the probes a Starlark script declares,
calling its functions at each hit, in the tracer:

  counts = {}
  def on_malloc(ev):
      counts[ev.args["size"]] = counts.get(ev.args["size"], 0) + 1
  probe("libc:malloc size=%di:u64", on_malloc)
  at_exit(lambda: print(counts))

Builtins: probe(SPEC, fn[, stack=True]), at_exit(fn), interval(seconds, fn), print,
hist() and lhist(min, max, step) (h.add(v), print(h) in bpftrace's layout).
The event has args (a dict by fetch-arg name), pid, tid, comm, cpu, probe,
kind, time_ns, stack (with stack=True), and on returns retval, duration_ns and set_retval(v) (the
function returns v to its caller; ptrace backend). Each call of a
function may take --max-steps steps: one that takes more, or fails, is
stopped with its probe and line named and is called no more, and the
program runs on. A script that fails to load exits 2 before the program
starts.`,
		Example: `  ptprobe run sizes.star -- ls /usr/bin
  ptprobe run --max-steps 10000 faults.star -p 1234`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			status, err := scriptRun(cmd.Context(), o, args[0], args[1:], c.stdout, c.stderr)
			c.status = status
			return err
		},
	}
	fs := cmd.Flags()
	fs.Uint64Var(&o.maxSteps, "max-steps", script.DefaultMaxSteps, "the most Starlark steps one call of a script's function may take")
	fs.StringVarP(&o.output, "output", "o", "", "write what the script prints to `FILE` instead of standard output")
	fs.StringVar(&o.backend, "backend", "ptrace", "ptrace (the engine) or kernel (tracefs; needs root; no set_retval)")
	fs.IntVarP(&o.pid, "pid", "p", 0, "attach to the running process `PID` instead of launching CMD")
	fs.DurationVar(&o.duration, "duration", 0, "stop tracing after `D` and detach; the program runs on")
	completeWords(cmd, "backend", "ptrace", "kernel")
	return cmd
}

// scriptRun loads the script, then runs the program under its probes.
func scriptRun(ctx context.Context, o *runCmdOptions, file string, argv []string, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 && o.pid == 0 {
		return 0, errors.New("run: no program given (ptprobe run FILE.star -- CMD [ARGS], or -p PID)")
	}
	if len(argv) > 0 && o.pid != 0 {
		return 0, errors.New("run: give a program to launch or -p PID, not both")
	}
	if o.backend != "ptrace" && o.backend != "kernel" {
		return 0, fmt.Errorf("run: --backend must be ptrace or kernel, not %q", o.backend)
	}
	if o.maxSteps == 0 {
		return 0, errors.New("run: --max-steps must be at least 1")
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("run: %w", err)
	}
	out := stdout
	if o.output != "" {
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("run: %w", err)
		}
		defer f.Close()
		out = f
	}
	w := newLineWriter(out, flushEvery)
	defer func() {
		if err := w.Close(); err != nil {
			fmt.Fprintf(stderr, "ptprobe: warning: output lost from the first failed write on: %v\n", err)
		}
	}()
	warn := func(err error) { fmt.Fprintf(stderr, "ptprobe: %v\n", err) }
	s, err := script.Load(file, src, &script.Options{MaxSteps: o.maxSteps, Stdout: lineWriterIO{w}, Warn: warn})
	if err != nil {
		return 0, err
	}

	stop := make(chan struct{})
	for i, iv := range s.Intervals() {
		go func() {
			t := time.NewTicker(iv.Every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.Tick(i)
				case <-stop:
					return
				}
			}
		}()
	}
	// The run is trace's: the same backends, signals and detach.
	t := &traceOptions{pid: o.pid, duration: o.duration, backend: o.backend}
	req := &backend.Request{Argv: argv, PID: o.pid, OnEvent: s.OnEvent,
		Probes: s.BackendProbes(o.backend == "ptrace"),
		Warn:   func(err error) { fmt.Fprintf(stderr, "ptprobe: warning: %v\n", err) }}
	var b backend.Backend = engine.Backend{}
	if o.backend == "kernel" {
		b = kernel.Backend{}
	}
	res, interrupted, err := t.run(ctx, b, req)
	close(stop)
	if err != nil {
		return 0, err
	}
	for _, p := range res.Probes {
		if !p.Armed {
			fmt.Fprintf(stderr, "ptprobe: probe %s (%s) was never armed: no mapping of %s was executed\n", p.Spec.Probe(), p.Spec.Target(), p.Spec.Path)
		}
	}
	s.Exit()
	switch {
	case res.Detached && interrupted != 0:
		return 128 + int(interrupted), nil
	case res.Detached:
		what := "breakpoints removed, text checked against the file"
		if o.backend == "kernel" {
			what = "the kernel's probes removed"
		}
		fmt.Fprintf(stderr, "ptprobe: detached from %d: %s\n", res.PID, what)
	}
	return res.Status(), nil
}

// reportQuestionError prints the errors of scripts (their file and line;
// a bad spec with its caret) and of --filter and aggregation expressions
// (with a caret), and reports whether err was one.
func reportQuestionError(w io.Writer, err error) bool {
	var se *script.Error
	if errors.As(err, &se) {
		fmt.Fprintf(w, "ptprobe: %v\n", se)
		return true
	}
	var qe *query.Error
	if errors.As(err, &qe) {
		msg := err.Error()
		if i := strings.Index(msg, qe.Error()); i >= 0 {
			msg = msg[:i]
		}
		fmt.Fprintf(w, "ptprobe: %sbad expression: %s\n", msg, qe.Caret())
		return true
	}
	return false
}
