package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// compareOptions are the flags of ptprobe compare.
type compareOptions struct {
	specs      []string
	format     string
	showOutput bool
	sameCPU    bool
	runs       int
}

// addFlags registers the flags of compare on fs, into o.
func (o *compareOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.specs, "event", "e", nil, "probe `SPEC` (repeatable)")
	fs.StringVar(&o.format, "format", "text", "output format: text or json")
	fs.BoolVar(&o.showOutput, "show-output", false, "let the program's output through (default: compared, then discarded)")
	fs.BoolVar(&o.sameCPU, "same-cpu", false, "run the ptrace backend with the program and the tracer on one CPU (see trace --same-cpu)")
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
			status, err := compareRun(o, argv, c.stdout)
			c.status = status
			return err
		},
	}
	cmd.Flags().SetInterspersed(false)
	o.addFlags(cmd.Flags())
	completeWords(cmd, "format", "text", "json")
	return cmd
}

// compareRun runs the comparison o asks for of argv, and writes its
// report to stdout. It returns 0 when the backends agree and 1 when they
// differ.
func compareRun(o *compareOptions, argv []string, stdout io.Writer) (int, error) {
	switch {
	case len(argv) == 0:
		return 0, errors.New("compare: no program given (ptprobe compare -e SPEC -- CMD [ARGS])")
	case len(o.specs) == 0:
		return 0, errors.New("compare: no probe given (-e SPEC)")
	case o.format != "text" && o.format != "json":
		return 0, fmt.Errorf("compare: --format must be text or json, not %q", o.format)
	case o.runs < 1:
		return 0, fmt.Errorf("compare: --runs must be at least 1, not %d", o.runs)
	}
	var specs []*uprobe.Spec
	for _, text := range o.specs {
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
	specs, err = checkSpecs(specs, path)
	if err != nil {
		return 0, err
	}

	// Interleaved, so that a slow spell of the machine falls on every
	// backend alike rather than on one of them; each cost is taken
	// against the unprobed run just before it.
	var base, kern, ptr []*runResult
	for i := 0; i < o.runs; i++ {
		b, err := runBaseline(argv, o.showOutput)
		if err != nil {
			return 0, err
		}
		k, err := runRecorded("kernel", specs, argv, o.showOutput, runKernel)
		if err != nil {
			return 0, err
		}
		p, err := runRecorded("ptrace", specs, argv, o.showOutput, ptraceBackend(o.sameCPU))
		if err != nil {
			return 0, err
		}
		if i > 0 {
			// Only the first round is compared; the others are timed.
			k.events, p.events = nil, nil
		}
		base, kern, ptr = append(base, b), append(kern, k), append(ptr, p)
	}
	rep := buildReport(specs, argv, base, kern, ptr)
	// Whole lines per write, as trace's output: with --show-output the
	// report shares stdout with what the program left running.
	w := newLineWriter(stdout, flushEvery)
	if o.format == "json" {
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

// checkSpecs expands the specs that name several probe points (globs,
// USDT probes, C++ names: resolve.Expand) and resolves every probe the way
// the engine will for the program at path, so that a bad probe is an
// error before any run; it returns the probes, which both backends then
// run alike (docs/DESIGN.md §9).
func checkSpecs(specs []*uprobe.Spec, path string) ([]*uprobe.Spec, error) {
	res := resolve.New(&resolve.Options{Program: path})
	defer res.Close()
	specs, err := res.ExpandAll(specs, nil)
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		if _, err := res.Resolve(s); err != nil {
			return nil, err
		}
	}
	return specs, nil
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
	nhits   int    // events of all probes
	// events per probe, each rendered as "name=value ..." with the
	// thread that hit it.
	events map[string][]recorded
}

type recorded struct {
	tid  int
	args string
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
	r := &runResult{backend: "none"}
	r.status, r.wall, err = runUnprobed(argv, out, errOut)
	r.output = collect()
	if err != nil {
		return nil, fmt.Errorf("compare: unprobed run of %s: %w", argv[0], err)
	}
	return r, nil
}

// runUnprobed runs argv with no probe and times it the way the backends
// time their runs: from its first instruction to its exit. It starts the
// program under ptrace, which stops it after its execve, and starts the
// clock as it detaches, as the kernel backend does (with address space
// randomization off, as both backends run it). Timed from fork, the
// unprobed run would include the fork, exec and wait the probed runs
// leave out, and a program with few hits would show a negative cost.
func runUnprobed(argv []string, out, errOut *os.File) (status int, wall time.Duration, err error) {
	type result struct {
		status int
		wall   time.Duration
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// ptrace requests must come from the thread that started the
		// program, whose personality the program inherits; the thread
		// is never unlocked, so Go retires it.
		runtime.LockOSThread()
		if old, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0); errno == 0 {
			unix.RawSyscall(unix.SYS_PERSONALITY, old|0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0)
		}
		proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
			Files: []*os.File{os.Stdin, out, errOut},
			Sys:   &syscall.SysProcAttr{Ptrace: true},
		})
		if err != nil {
			done <- result{err: err}
			return
		}
		pid := proc.Pid
		proc.Release()
		var ws unix.WaitStatus
		if err := wait4(pid, &ws); err != nil || !ws.Stopped() {
			unix.Kill(pid, unix.SIGKILL)
			wait4(pid, &ws)
			done <- result{err: fmt.Errorf("%s did not stop after its exec (status 0x%x): %v", argv[0], uint32(ws), err)}
			return
		}
		// Should ptprobe die before the detach, the program dies too
		// rather than stay stopped.
		unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL)
		t0 := time.Now()
		if err := unix.PtraceDetach(pid); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			wait4(pid, &ws)
			done <- result{err: fmt.Errorf("detach from %d: %w", pid, err)}
			return
		}
		for {
			if err := wait4(pid, &ws); err != nil {
				done <- result{err: err}
				return
			}
			if ws.Exited() || ws.Signaled() {
				break
			}
		}
		wall := time.Since(t0)
		if ws.Signaled() {
			done <- result{status: 128 + int(ws.Signal()), wall: wall}
			return
		}
		done <- result{status: ws.ExitStatus(), wall: wall}
	}()
	r := <-done
	return r.status, r.wall, r.err
}

// wait4 waits for pid (any kind of child), retrying on EINTR.
func wait4(pid int, ws *unix.WaitStatus) error {
	for {
		_, err := unix.Wait4(pid, ws, unix.WALL, nil)
		if err != unix.EINTR {
			return err
		}
	}
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
		r.nhits++
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
	cfg := engine.Options{Process: backend.Process{Stdout: out, Stderr: errOut, NoASLR: true}, OnEvent: onEvent, Sched: engine.SchedOptions{SameCPU: sameCPU}}
	for _, s := range specs {
		cfg.Probes = append(cfg.Probes, backend.Probe{Spec: s})
	}
	sess, err := engine.Launch(argv, &cfg)
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
	// Hits and Status are those of the first round's run.
	Hits   int `json:"hits"`
	Status int `json:"exit_status"`
	// The program's run time over the rounds: median, least, most.
	WallNS    int64 `json:"wall_ns"`
	WallMinNS int64 `json:"wall_min_ns"`
	WallMaxNS int64 `json:"wall_max_ns"`
	// The cost per hit of each round, (wall - the round's unprobed wall)
	// / hits, in µs: median, least, most; the two bounds at least 0.
	// UsPerHit is null when BelowNoise.
	UsPerHit    *float64 `json:"us_per_hit"`
	UsPerHitMin float64  `json:"us_per_hit_min"`
	UsPerHitMax float64  `json:"us_per_hit_max"`
	// NoiseUsPerHit is the noise floor: the spread of the unprobed runs
	// (most - least) per hit. BelowNoise: the median cost is not above
	// it (with one round, not above 0), so no cost can be told.
	NoiseUsPerHit float64 `json:"noise_us_per_hit"`
	BelowNoise    bool    `json:"below_noise"`
}

type report struct {
	Program []string `json:"program"`
	Runs    int      `json:"runs"`
	// The unprobed runs' time: median, least, most.
	BaselineNS    int64         `json:"unprobed_wall_ns"`
	BaselineMinNS int64         `json:"unprobed_wall_min_ns"`
	BaselineMaxNS int64         `json:"unprobed_wall_max_ns"`
	Kernel        backendReport `json:"kernel"`
	Ptrace        backendReport `json:"ptrace"`
	Probes        []probeReport `json:"probes"`
	OutputsEqual  bool          `json:"outputs_equal"`
	Agree         bool          `json:"agree"`
}

// buildReport compares the first round's kernel and ptrace runs and times
// every round: base[i], kern[i] and ptr[i] ran in round i.
func buildReport(specs []*uprobe.Spec, argv []string, base, kern, ptr []*runResult) *report {
	baseWalls := walls(base)
	rep := &report{Program: argv, Runs: len(base), Agree: true,
		BaselineNS: median(baseWalls), BaselineMinNS: slices.Min(baseWalls), BaselineMaxNS: slices.Max(baseWalls)}
	noise := rep.BaselineMaxNS - rep.BaselineMinNS
	rep.Kernel, rep.Ptrace = backendCosts(kern, base, noise), backendCosts(ptr, base, noise)
	k0, p0 := kern[0], ptr[0]
	rep.OutputsEqual = bytes.Equal(k0.output, p0.output) && k0.status == p0.status
	for _, s := range specs {
		name := s.Probe()
		k, p := k0.events[name], p0.events[name]
		pr := probeReport{Probe: name, KernelHits: len(k), PtraceHits: len(p)}
		pr.ArgsEqual, pr.KernelFirst, pr.PtraceFirst = compareSequences(k, p)
		if pr.KernelHits != pr.PtraceHits || !pr.ArgsEqual {
			rep.Agree = false
		}
		rep.Probes = append(rep.Probes, pr)
	}
	return rep
}

// backendCosts times one backend's runs against the unprobed run of
// their round; noiseNS is the spread of the unprobed runs.
func backendCosts(runs, base []*runResult, noiseNS int64) backendReport {
	w := walls(runs)
	br := backendReport{Hits: runs[0].nhits, Status: runs[0].status,
		WallNS: median(w), WallMinNS: slices.Min(w), WallMaxNS: slices.Max(w), BelowNoise: true}
	var costs, hits []float64
	for i, r := range runs {
		if r.nhits > 0 {
			costs = append(costs, float64(r.wall-base[i].wall)/float64(r.nhits)/1e3)
			hits = append(hits, float64(r.nhits))
		}
	}
	if len(costs) == 0 {
		return br // no hit: no cost per hit
	}
	br.NoiseUsPerHit = float64(noiseNS) / medianFloat(hits) / 1e3
	m := medianFloat(costs)
	br.UsPerHitMin, br.UsPerHitMax = max(slices.Min(costs), 0), max(slices.Max(costs), 0)
	if m > br.NoiseUsPerHit {
		br.UsPerHit, br.BelowNoise = &m, false
	}
	return br
}

func walls(runs []*runResult) []int64 {
	w := make([]int64, len(runs))
	for i, r := range runs {
		w[i] = r.wall.Nanoseconds()
	}
	return w
}

// median of a non-empty list: the middle value, or the mean of the two
// middle ones.
func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func medianFloat(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
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
	rounds := "1 run each"
	if rep.Runs > 1 {
		rounds = fmt.Sprintf("median of %d runs each, interleaved; least-most in brackets", rep.Runs)
	}
	fmt.Fprintf(&b, "\n%s\n%-10s %26s %10s  %s\n", rounds, "RUN", "WALL ms", "HITS", "µs/hit")
	ms := func(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64) }
	wall := func(m, lo, hi int64) string {
		if rep.Runs == 1 {
			return ms(m)
		}
		return fmt.Sprintf("%s [%s-%s]", ms(m), ms(lo), ms(hi))
	}
	fmt.Fprintf(&b, "%-10s %26s %10s  %s\n", "unprobed", wall(rep.BaselineNS, rep.BaselineMinNS, rep.BaselineMaxNS), "-", "-")
	for _, r := range []struct {
		name string
		br   backendReport
	}{{"kernel", rep.Kernel}, {"ptrace", rep.Ptrace}} {
		fmt.Fprintf(&b, "%-10s %26s %10d  %s\n", r.name, wall(r.br.WallNS, r.br.WallMinNS, r.br.WallMaxNS), r.br.Hits, r.br.costText(rep.Runs))
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

// costText is the µs/hit column: the median cost and its spread, or that
// it is below the noise of the unprobed runs.
func (br backendReport) costText(runs int) string {
	us := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	switch {
	case br.Hits == 0 && br.UsPerHit == nil:
		return "-"
	case br.BelowNoise && runs == 1:
		return "below noise (one run: no cost above 0)"
	case br.BelowNoise:
		return fmt.Sprintf("below noise (the unprobed runs spread %s µs/hit)", us(br.NoiseUsPerHit))
	case runs == 1:
		return us(*br.UsPerHit)
	}
	return fmt.Sprintf("%s [%s-%s], noise %s", us(*br.UsPerHit), us(br.UsPerHitMin), us(br.UsPerHitMax), us(br.NoiseUsPerHit))
}

func (rep *report) json() []byte {
	b, err := json.Marshal(rep)
	if err != nil {
		// Only plain data: cannot happen.
		return []byte(fmt.Sprintf("{\"error\":%q}\n", err.Error()))
	}
	return append(b, '\n')
}
