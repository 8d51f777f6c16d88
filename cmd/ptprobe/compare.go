package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/uprobe"
)

// compareCmd runs a program once under kernel uprobes and once under the
// ptrace engine with the same specs and reports, per probe, whether hits
// and fetched arguments agree, and the cost per hit of each backend.
// It returns 0 when they agree and 1 when they differ.
func compareCmd(args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("compare", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	specTexts := fs.StringArrayP("event", "e", nil, "probe `SPEC` (repeatable)")
	format := fs.String("format", "text", "output format: text or json")
	showOutput := fs.Bool("show-output", false, "let the program's output through (default: compared, then discarded)")
	sameCPU := fs.Bool("same-cpu", false, "run the ptrace backend with the program and the tracer on one CPU (see trace --same-cpu)")
	fs.SetInterspersed(false)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: ptprobe compare [-e SPEC]... [--format text|json] -- CMD [ARGS]\n\n%s", fs.FlagUsages())
			return 0, nil
		}
		return 0, fmt.Errorf("compare: %w", err)
	}
	argv := fs.Args()
	switch {
	case len(argv) == 0:
		return 0, errors.New("compare: no program given (ptprobe compare -e SPEC -- CMD [ARGS])")
	case len(*specTexts) == 0:
		return 0, errors.New("compare: no probe given (-e SPEC)")
	case *format != "text" && *format != "json":
		return 0, fmt.Errorf("compare: --format must be text or json, not %q", *format)
	}
	var specs []*uprobe.Spec
	for _, text := range *specTexts {
		spec, err := uprobe.Parse(text)
		if err != nil {
			return 0, err
		}
		specs = append(specs, spec)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, fmt.Errorf("compare: program %q: %w", argv[0], err)
	}
	argv = append([]string{path}, argv[1:]...)

	// Fail on bad specs before running anything: the engine checks them
	// without starting the program.
	if err := checkSpecs(specs); err != nil {
		return 0, err
	}

	base, err := runBaseline(argv, *showOutput)
	if err != nil {
		return 0, err
	}
	kern, err := runRecorded("kernel", specs, argv, *showOutput, runKernel)
	if err != nil {
		return 0, err
	}
	ptr, err := runRecorded("ptrace", specs, argv, *showOutput, ptraceBackend(*sameCPU))
	if err != nil {
		return 0, err
	}
	rep := buildReport(specs, argv, base, kern, ptr)
	// Whole lines per write, as trace's output: with --show-output the
	// report shares stdout with what the program left running.
	w := newLineWriter(stdout, flushEvery)
	if *format == "json" {
		w.Write(rep.json())
	} else {
		w.Write(rep.text())
	}
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("compare: write the report: %w", err)
	}
	if rep.Agree {
		return 0, nil
	}
	return 1, nil
}

// checkSpecs resolves every spec the way the engine will, so that a bad
// probe is an error before any run.
func checkSpecs(specs []*uprobe.Spec) error {
	for _, s := range specs {
		if err := engine.Check(s); err != nil {
			return err
		}
	}
	return nil
}

// backendFunc runs argv with the specs under one backend, sending each
// event to onEvent, and returns the program's exit status and how long the
// program ran (from its first instruction to its exit, without the
// backend's set-up and tear-down).
type backendFunc func(specs []*uprobe.Spec, argv []string, out, errOut *os.File, onEvent func(*uprobe.Event)) (int, time.Duration, error)

// runResult is what one run of the program gave.
type runResult struct {
	backend string
	wall    time.Duration
	status  int
	output  []byte // stdout+stderr, unless shown
	// events per probe, each rendered as "name=value ..." with the
	// thread that hit it.
	events map[string][]recorded
}

type recorded struct {
	tid  int
	args string
}

func (r *runResult) hits() (n int) {
	for _, evs := range r.events {
		n += len(evs)
	}
	return n
}

// outputFiles returns where the program's output goes: the terminal, or a
// temporary file kept for comparison.
func outputFiles(show bool) (out, errOut *os.File, collect func() []byte, err error) {
	if show {
		return os.Stdout, os.Stderr, func() []byte { return nil }, nil
	}
	f, err := os.CreateTemp("", "ptprobe-compare-")
	if err != nil {
		return nil, nil, nil, err
	}
	os.Remove(f.Name())
	return f, f, func() []byte {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
		f.Close()
		return b
	}, nil
}

func runBaseline(argv []string, show bool) (*runResult, error) {
	out, errOut, collect, err := outputFiles(show)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, out, errOut
	start := time.Now()
	err = cmd.Run()
	r := &runResult{backend: "none", wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.status = ee.ExitCode()
	case err != nil:
		return nil, fmt.Errorf("compare: unprobed run of %s: %w", argv[0], err)
	}
	r.output = collect()
	return r, nil
}

func runRecorded(name string, specs []*uprobe.Spec, argv []string, show bool, backend backendFunc) (*runResult, error) {
	out, errOut, collect, err := outputFiles(show)
	if err != nil {
		return nil, err
	}
	r := &runResult{backend: name, events: make(map[string][]recorded)}
	var buf []byte
	onEvent := func(ev *uprobe.Event) {
		buf = buf[:0]
		for i, v := range ev.Args {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = v.AppendText(buf)
		}
		p := ev.Probe()
		r.events[p] = append(r.events[p], recorded{tid: ev.TID, args: string(buf)})
	}
	r.status, r.wall, err = backend(specs, argv, out, errOut, onEvent)
	r.output = collect()
	if err != nil {
		return nil, fmt.Errorf("compare: %s run: %w", name, err)
	}
	return r, nil
}

// ptraceBackend is the ptrace engine backend.
func ptraceBackend(sameCPU bool) backendFunc {
	return func(specs []*uprobe.Spec, argv []string, out, errOut *os.File, onEvent func(*uprobe.Event)) (int, time.Duration, error) {
		return runPtrace(specs, argv, out, errOut, onEvent, sameCPU)
	}
}

func runPtrace(specs []*uprobe.Spec, argv []string, out, errOut *os.File, onEvent func(*uprobe.Event), sameCPU bool) (int, time.Duration, error) {
	cfg := engine.Config{Stdout: out, Stderr: errOut, OnEvent: onEvent, NoASLR: true, SameCPU: sameCPU, CPU: -1}
	for _, s := range specs {
		cfg.Probes = append(cfg.Probes, engine.ProbeConfig{Spec: s})
	}
	sess, err := engine.Launch(cfg, argv)
	if err != nil {
		return 0, 0, err
	}
	res, err := sess.Wait()
	if err != nil {
		return 0, 0, err
	}
	if res.ExitCode < 0 {
		return 128 + int(res.Signal), res.Wall, nil
	}
	return res.ExitCode, res.Wall, nil
}

// probeReport is the comparison of one probe.
type probeReport struct {
	Probe       string `json:"probe"`
	KernelHits  int    `json:"kernel_hits"`
	PtraceHits  int    `json:"ptrace_hits"`
	ArgsEqual   bool   `json:"args_equal"`
	KernelFirst string `json:"kernel_first_difference,omitempty"`
	PtraceFirst string `json:"ptrace_first_difference,omitempty"`
}

type backendReport struct {
	WallNS   int64   `json:"wall_ns"`
	Hits     int     `json:"hits"`
	UsPerHit float64 `json:"us_per_hit"` // (wall - unprobed wall) / hits
	Status   int     `json:"exit_status"`
}

type report struct {
	Program      []string      `json:"program"`
	BaselineNS   int64         `json:"unprobed_wall_ns"`
	Kernel       backendReport `json:"kernel"`
	Ptrace       backendReport `json:"ptrace"`
	Probes       []probeReport `json:"probes"`
	OutputsEqual bool          `json:"outputs_equal"`
	Agree        bool          `json:"agree"`
}

func buildReport(specs []*uprobe.Spec, argv []string, base, kern, ptr *runResult) *report {
	rep := &report{Program: argv, BaselineNS: base.wall.Nanoseconds(), Agree: true}
	backend := func(r *runResult) backendReport {
		br := backendReport{WallNS: r.wall.Nanoseconds(), Hits: r.hits(), Status: r.status}
		if br.Hits > 0 {
			br.UsPerHit = float64(r.wall-base.wall) / float64(br.Hits) / 1e3
		}
		return br
	}
	rep.Kernel, rep.Ptrace = backend(kern), backend(ptr)
	rep.OutputsEqual = bytes.Equal(kern.output, ptr.output) && kern.status == ptr.status
	for _, s := range specs {
		name := s.Probe()
		k, p := kern.events[name], ptr.events[name]
		pr := probeReport{Probe: name, KernelHits: len(k), PtraceHits: len(p)}
		pr.ArgsEqual, pr.KernelFirst, pr.PtraceFirst = compareSequences(k, p)
		if pr.KernelHits != pr.PtraceHits || !pr.ArgsEqual {
			rep.Agree = false
		}
		rep.Probes = append(rep.Probes, pr)
	}
	return rep
}

// compareSequences compares the per-thread sequences of fetched arguments
// of two runs. Thread IDs differ between runs and threads interleave
// differently, so each run's threads are compared as a multiset of
// sequences. When they differ it returns the first differing event of
// each side (threads taken in the order they first hit the probe).
func compareSequences(a, b []recorded) (equal bool, firstA, firstB string) {
	sa, sb := perThread(a), perThread(b)
	ka, kb := seqKeys(sa), seqKeys(sb)
	sort.Strings(ka)
	sort.Strings(kb)
	if strings.Join(ka, "\x00") == strings.Join(kb, "\x00") {
		return true, "", ""
	}
	for i := 0; i < max(len(sa), len(sb)); i++ {
		var x, y []recorded
		if i < len(sa) {
			x = sa[i]
		}
		if i < len(sb) {
			y = sb[i]
		}
		for j := 0; j < max(len(x), len(y)); j++ {
			ex, ey := "(none)", "(none)"
			if j < len(x) {
				ex = fmt.Sprintf("thread #%d hit #%d: %s", i+1, j+1, x[j].args)
			}
			if j < len(y) {
				ey = fmt.Sprintf("thread #%d hit #%d: %s", i+1, j+1, y[j].args)
			}
			if j >= len(x) || j >= len(y) || x[j].args != y[j].args {
				return false, ex, ey
			}
		}
	}
	return false, "(same sequences in another thread order)", ""
}

func perThread(evs []recorded) [][]recorded {
	idx := make(map[int]int)
	var seqs [][]recorded
	for _, e := range evs {
		i, ok := idx[e.tid]
		if !ok {
			i = len(seqs)
			idx[e.tid] = i
			seqs = append(seqs, nil)
		}
		seqs[i] = append(seqs[i], e)
	}
	return seqs
}

func seqKeys(seqs [][]recorded) []string {
	keys := make([]string, len(seqs))
	for i, s := range seqs {
		var b strings.Builder
		for _, e := range s {
			b.WriteString(e.args)
			b.WriteByte('\n')
		}
		keys[i] = b.String()
	}
	return keys
}

func (rep *report) text() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "program: %s\n\n", strings.Join(rep.Program, " "))
	fmt.Fprintf(&b, "%-32s %10s %10s  %s\n", "PROBE", "KERNEL", "PTRACE", "ARGS")
	for _, p := range rep.Probes {
		args := "equal"
		if !p.ArgsEqual {
			args = "DIFFER"
		}
		mark := ""
		if p.KernelHits != p.PtraceHits {
			mark = "  <- hits differ"
		}
		fmt.Fprintf(&b, "%-32s %10d %10d  %s%s\n", p.Probe, p.KernelHits, p.PtraceHits, args, mark)
		if !p.ArgsEqual {
			fmt.Fprintf(&b, "    kernel: %s\n    ptrace: %s\n", p.KernelFirst, p.PtraceFirst)
		}
	}
	fmt.Fprintf(&b, "\n%-10s %12s %10s %14s\n", "RUN", "WALL ms", "HITS", "µs/hit")
	fmt.Fprintf(&b, "%-10s %12.3f %10s %14s\n", "unprobed", float64(rep.BaselineNS)/1e6, "-", "-")
	for _, r := range []struct {
		name string
		br   backendReport
	}{{"kernel", rep.Kernel}, {"ptrace", rep.Ptrace}} {
		fmt.Fprintf(&b, "%-10s %12.3f %10d %14s\n", r.name, float64(r.br.WallNS)/1e6, r.br.Hits, strconv.FormatFloat(r.br.UsPerHit, 'f', 2, 64))
	}
	if !rep.OutputsEqual {
		fmt.Fprintf(&b, "\nthe program's output or exit status differed between the runs (kernel %d, ptrace %d)\n", rep.Kernel.Status, rep.Ptrace.Status)
	}
	if rep.Agree {
		b.WriteString("\nhits and arguments agree\n")
	} else {
		b.WriteString("\nthe backends DIFFER\n")
	}
	return b.Bytes()
}

func (rep *report) json() []byte {
	b, err := json.Marshal(rep)
	if err != nil {
		// Only plain data: cannot happen.
		return []byte(fmt.Sprintf("{\"error\":%q}\n", err.Error()))
	}
	return append(b, '\n')
}
