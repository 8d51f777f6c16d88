package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/compare"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// compareOptions are the flags of ptprobe compare.
type compareOptions struct {
	specs      []string
	format     string
	showOutput bool
	sameCPU    bool
	unordered  bool
	runs       int
	maxProbes  int // --max-probes: per spec, as trace's
}

// addFlags registers the flags of compare on fs, into o.
func (o *compareOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.specs, "event", "e", nil, "probe `SPEC` (repeatable)")
	fs.StringVar(&o.format, "format", "text", "output format: text or json")
	fs.BoolVar(&o.showOutput, "show-output", false, "let the program's output through (default: compared, then discarded)")
	fs.BoolVar(&o.sameCPU, "same-cpu", false, "run the ptrace backend with the program and the tracer on one CPU (see trace --same-cpu)")
	fs.BoolVar(&o.unordered, "unordered", false, "compare each probe's events as one multiset, whichever thread had them (for programs whose threads share the work differently from run to run, as xz -T2's workers do); the default compares each thread's events in order")
	fs.IntVar(&o.maxProbes, "max-probes", resolve.DefaultMaxProbes, "the most probes one SPEC may expand to (a glob such as libc:str*, a USDT probe, a C++ name); more is an error")
	fs.IntVar(&o.runs, "runs", 5, "rounds of runs: each round runs the program unprobed, under kernel uprobes and under ptrace, in that order; the cost per hit is the median over the rounds, with its spread, and hits and arguments are compared in the first round")
}

// compareCmd is ptprobe compare.
func (c *cli) compareCmd() *cobra.Command {
	o := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare -e SPEC... [flags] -- CMD [ARGS]",
		Short: "run CMD under kernel uprobes and under ptrace and compare hits, arguments and cost",
		Long: `Run CMD under kernel uprobes and under the ptrace engine with the same
probes, and report, per probe, whether hits and fetched arguments agree
(in the first round of runs), and the cost per hit of each backend over
all rounds. Needs root (the kernel's tracefs). The exit status is 0 when
the backends agree, 1 when they differ, 2 for an error.`,
		Example: `  ptprobe compare -e 'libc:strlen s=+0(%di):string' -- sort /etc/services`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, argv []string) error {
			status, err := compareRun(cmd.Context(), o, argv, c.stdout, c.stderr)
			c.status = status
			return err
		},
	}
	cmd.Flags().SetInterspersed(false)
	o.addFlags(cmd.Flags())
	completeWords(cmd, "format", "text", "json")
	return cmd
}

// compareRun runs the comparison o asks for of argv (compare.Run), and
// writes its report to stdout. It returns 0 when the backends agree and
// 1 when they differ; 128+N when signal N (SIGINT, SIGTERM, SIGHUP)
// interrupted it: the run in progress ends, its probes are removed.
func compareRun(ctx context.Context, o *compareOptions, argv []string, stdout, stderr io.Writer) (int, error) {
	switch {
	case len(argv) == 0:
		return 0, errors.New("compare: no program given (ptprobe compare -e SPEC -- CMD [ARGS])")
	case len(o.specs) == 0:
		return 0, errors.New("compare: no probe given (-e SPEC)")
	case o.format != "text" && o.format != "json":
		return 0, fmt.Errorf("compare: --format must be text or json, not %q", o.format)
	case o.runs < 1:
		return 0, fmt.Errorf("compare: --runs must be at least 1, not %d", o.runs)
	case o.maxProbes < 1:
		return 0, fmt.Errorf("compare: --max-probes must be at least 1, not %d", o.maxProbes)
	}
	var specs []*uprobe.Spec
	for _, text := range o.specs {
		spec, err := uprobe.Parse(text)
		if err != nil {
			return 0, err
		}
		specs = append(specs, spec)
	}
	warn := func(err error) { fmt.Fprintf(stderr, "ptprobe: warning: %v\n", err) }
	specs, err := expandSpecs(specs, argv, 0, o.maxProbes, warn)
	if err != nil {
		return 0, err
	}
	opts := &compare.Options{Runs: o.runs, Unordered: o.unordered, Ptrace: engine.Backend{Sched: engine.SchedOptions{SameCPU: o.sameCPU}},
		MaxProbes: o.maxProbes, Warn: warn}
	if o.showOutput {
		opts.Stdout, opts.Stderr = os.Stdout, os.Stderr
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var caught atomic.Int32
	stop := watchSignals(ctx, func(sig syscall.Signal) {
		if sig == syscall.SIGQUIT {
			return
		}
		caught.CompareAndSwap(0, int32(sig))
		cancel()
	})
	rep, err := compare.Run(ctx, specs, argv, opts)
	stop()
	if sig := syscall.Signal(caught.Load()); sig != 0 && errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "ptprobe: compare: interrupted by %v: no report\n", sig)
		return 128 + int(sig), nil
	}
	if err != nil {
		return 0, err
	}
	// Whole lines per write, as trace's output: with --show-output the
	// report shares stdout with what the program left running.
	w := newLineWriter(stdout, flushEvery)
	if o.format == "json" {
		w.Write(rep.AppendJSON(nil))
	} else {
		w.Write(rep.AppendText(nil))
	}
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("compare: write the report: %w", err)
	}
	if rep.Agree {
		return 0, nil
	}
	return 1, nil
}
