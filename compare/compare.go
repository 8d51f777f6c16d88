// Package compare runs a program under two backends with the same probes
// and tells whether they agree: the hits of each probe, their fetched
// arguments thread by thread, the program's output and exit status; and
// what a hit costs under each, against runs of the program with no probe
// (docs/DESIGN.md §1, §7). The ptprobe command's compare is Run and the
// Report's text or JSON.
package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/internal/launch"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

// Options say how Run compares. nil and the zero value are the defaults.
type Options struct {
	// Runs is the number of rounds: each runs the program unprobed,
	// under Kernel and under Ptrace, in that order, so that a slow
	// spell of the machine falls on every backend alike. Hits and
	// arguments are compared in the first round; the cost per hit is
	// the median over the rounds. 0 is 5.
	Runs int
	// Kernel and Ptrace are the two backends, named "kernel" and
	// "ptrace" in the Report whatever they are. nil: kernel.Backend
	// with 16 MiB per-CPU buffers (a lost event would be a false
	// difference), and engine.Backend with the default scheduling.
	Kernel, Ptrace backend.Backend
	// Stdout and Stderr, when set, receive the program's output, which
	// is then not compared. nil: the output of each run is collected,
	// compared between the runs, and discarded.
	Stdout, Stderr *os.File
	// Warn receives problems that do not stop a run (the backends'
	// Request.Warn); nil discards them.
	Warn func(error)
	// MaxProbes is the most probes one spec may expand to (a glob, a
	// USDT probe, a C++ name: resolve.Expand); 0 is
	// resolve.DefaultMaxProbes.
	MaxProbes int
	// Unordered compares each probe's events of a run as one multiset,
	// whichever thread had them: for a program whose threads share its
	// work differently from run to run (xz -T2's workers), where the
	// default, each thread's sequence in order, would differ. The hit
	// counts are compared either way.
	Unordered bool
}

// defaultRuns is Options.Runs when 0.
const defaultRuns = 5

// Run compares specs on argv (argv[0] found in PATH if it has no '/')
// between opts' two backends. Every spec is resolved in the program before
// anything runs, so that a bad probe is an error and the program never
// starts. When ctx is done, the run in progress ends (its backend
// detaches) and Run returns ctx's error.
func Run(ctx context.Context, specs []*uprobe.Spec, argv []string, opts *Options) (*Report, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case len(argv) == 0:
		return nil, errors.New("compare: no program given")
	case len(specs) == 0:
		return nil, errors.New("compare: no probe given")
	case o.Runs < 0:
		return nil, fmt.Errorf("compare: Runs must be at least 1, not %d", o.Runs)
	case o.Runs == 0:
		o.Runs = defaultRuns
	}
	if o.Kernel == nil {
		o.Kernel = kernel.Backend{BufferKB: 16 << 10}
	}
	if o.Ptrace == nil {
		o.Ptrace = engine.Backend{}
	}
	path, err := launch.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	argv = append([]string{path}, argv[1:]...)
	specs, err = o.checkSpecs(specs, path)
	if err != nil {
		return nil, err
	}

	// Interleaved; each cost is taken against the unprobed run just
	// before it.
	var base, kern, ptr []*runResult
	for i := 0; i < o.Runs; i++ {
		b, err := o.baseline(ctx, path, argv)
		if err != nil {
			return nil, err
		}
		k, err := o.recorded(ctx, "kernel", o.Kernel, specs, argv)
		if err != nil {
			return nil, err
		}
		p, err := o.recorded(ctx, "ptrace", o.Ptrace, specs, argv)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			// Only the first round is compared; the others are timed.
			k.events, p.events = nil, nil
		}
		base, kern, ptr = append(base, b), append(kern, k), append(ptr, p)
	}
	return buildReport(specs, argv, base, kern, ptr, opts.Unordered), nil
}

// checkSpecs expands the specs that name several probe points (globs,
// USDT probes, C++ names: resolve.Expand) and resolves every probe the
// way the backends will for the program at path, so that a bad probe is
// an error before any run; it returns the probes, which both backends
// then run alike (docs/DESIGN.md §9).
func (o *Options) checkSpecs(specs []*uprobe.Spec, path string) ([]*uprobe.Spec, error) {
	res := resolve.New(&resolve.Options{Program: path})
	defer res.Close()
	specs, err := res.ExpandAll(specs, &resolve.ExpandOptions{MaxProbes: o.MaxProbes, Warn: o.Warn})
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

// runResult is what one run of the program gave.
type runResult struct {
	wall   time.Duration
	status int
	output []byte // stdout+stderr, unless passed through
	nhits  int    // events of all probes
	// events per probe, each rendered as "name=value ..." with the
	// thread that hit it.
	events map[string][]recorded
}

type recorded struct {
	tid  int
	args string
}

// outputFiles returns where a run's output goes: o's files, or a
// temporary file kept for comparison, which collect reads and closes.
func (o *Options) outputFiles() (out, errOut *os.File, collect func() []byte, err error) {
	if o.Stdout != nil || o.Stderr != nil {
		out, errOut = o.Stdout, o.Stderr
		if out == nil {
			out = os.Stdout
		}
		if errOut == nil {
			errOut = os.Stderr
		}
		return out, errOut, func() []byte { return nil }, nil
	}
	f, err := os.CreateTemp("", "ptprobe-compare-")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("compare: %w", err)
	}
	os.Remove(f.Name())
	return f, f, func() []byte {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
		f.Close()
		return b
	}, nil
}

func (o *Options) baseline(ctx context.Context, path string, argv []string) (*runResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, errOut, collect, err := o.outputFiles()
	if err != nil {
		return nil, err
	}
	r := &runResult{}
	r.status, r.wall, err = runUnprobed(path, argv, &backend.Process{Stdout: out, Stderr: errOut, NoASLR: true})
	r.output = collect()
	if err != nil {
		return nil, fmt.Errorf("compare: unprobed run of %s: %w", path, err)
	}
	return r, nil
}

// runUnprobed runs argv with no probe and times it the way the backends
// time their runs: from its first instruction to its exit. It starts the
// program as both backends do (internal/launch: stopped after its
// execve, with address space randomization off) and starts the clock as
// it detaches, as the kernel backend does. Timed from fork, the unprobed
// run would include the fork, exec and wait the probed runs leave out,
// and a program with few hits would show a negative cost.
func runUnprobed(path string, argv []string, proc *backend.Process) (status int, wall time.Duration, err error) {
	type result struct {
		status int
		wall   time.Duration
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// ptrace requests must come from the thread that started the
		// program (launch.Start); the thread is never unlocked, so Go
		// retires it.
		runtime.LockOSThread()
		p, err := launch.Start(path, argv, proc, nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		// Should ptprobe die before the detach, the program dies too
		// rather than stay stopped.
		unix.PtraceSetOptions(p.Pid, unix.PTRACE_O_EXITKILL)
		t0 := time.Now()
		if err := unix.PtraceDetach(p.Pid); err != nil {
			p.Kill()
			done <- result{err: fmt.Errorf("detach from %d: %w", p.Pid, err)}
			return
		}
		exit, err := p.Wait()
		wall := time.Since(t0)
		if err != nil {
			done <- result{err: err}
			return
		}
		status := exit.Code
		if exit.Code < 0 {
			status = 128 + int(exit.Signal)
		}
		done <- result{status: status, wall: wall}
	}()
	r := <-done
	return r.status, r.wall, r.err
}

func (o *Options) recorded(ctx context.Context, name string, b backend.Backend, specs []*uprobe.Spec, argv []string) (*runResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, errOut, collect, err := o.outputFiles()
	if err != nil {
		return nil, err
	}
	r := &runResult{events: make(map[string][]recorded)}
	var buf []byte
	req := &backend.Request{Argv: argv, Process: backend.Process{Stdout: out, Stderr: errOut, NoASLR: true}, Warn: o.Warn,
		OnEvent: func(ev *uprobe.Event) {
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
		}}
	for _, s := range specs {
		req.Probes = append(req.Probes, backend.Probe{Spec: s})
	}
	res, err := b.Run(ctx, req)
	r.output = collect()
	if err != nil {
		return nil, fmt.Errorf("compare: %s run: %w", name, err)
	}
	if res.Detached {
		// Only a done ctx ends a run before the program.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("compare: %s run: detached before the program ended", name)
	}
	r.status, r.wall = res.Status(), res.Wall
	return r, nil
}
