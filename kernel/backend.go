package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/internal/launch"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Backend is the kernel's tracefs as a backend.Backend (docs/DESIGN.md
// §7): Run defines the probes in a Session, runs the program with the
// session's events limited to its process tree, and reads its hits back
// from trace_pipe. It needs root. The zero value is the default.
type Backend struct {
	// BufferKB is the size of each per-CPU ring buffer of the run in
	// KiB (Options.BufferKB); 0 keeps the kernel's default. A run that
	// loses events says so through Request.Warn.
	BufferKB int
	// KeepStale: see Options.KeepStale.
	KeepStale bool
}

// Name is "kernel".
func (Backend) Name() string { return "kernel" }

// Run runs req's program under kernel uprobes (req.Probes, whose library
// names are found as the program finds its libraries) and kprobes
// (req.Kprobes), until the program exits, and reports each hit read back
// to req.OnEvent, on a goroutine of its own. Probe errors, and what the
// kernel backend cannot do, are returned before the program starts:
// handlers (the kernel takes the hits, no Go code runs on them).
//
// With req.PID, Run traces that running process instead, its paths and
// library names as it sees them (resolve.ProcessOptions: a process in a
// container too), until it exits or ctx is done; nothing of it is
// stopped, and its exit status, its parent's to read, is reported as 0.
//
// A probe's Hits in the Result count the events read back for it: the
// kernel's own counters (Session.Hits) count the hits of every process.
// Missed is the kernel's nmissed of a kprobe.
//
// When ctx is done before the program exits, Run removes the probes and
// returns with the Result's Detached set: the program runs on untraced,
// and is waited for in the background (it stays a child of this process).
func (b Backend) Run(ctx context.Context, req *backend.Request) (*backend.Result, error) {
	switch {
	case req.PID != 0 && len(req.Argv) > 0:
		return nil, errors.New("kernel: a program to run or a process to attach to, not both")
	case req.PID == 0 && len(req.Argv) == 0:
		return nil, errors.New("kernel: no program to run")
	}
	for _, p := range req.Probes {
		// reflect: whatever handler fields Handlers gains.
		if !reflect.ValueOf(p.Handlers).IsZero() {
			return nil, fmt.Errorf("kernel: probe %q has Go handlers, which the kernel backend cannot run: the kernel takes its hits (use the ptrace backend)", p.Spec.Text)
		}
	}
	var path string
	var ropts *resolve.Options
	if req.PID == 0 {
		var err error
		if path, err = launch.LookPath(req.Argv[0]); err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		ropts = &resolve.Options{Program: path, Env: req.Process.Env}
	} else {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", req.PID)); err != nil {
			return nil, fmt.Errorf("kernel: attach to %d: no such process", req.PID)
		}
		// Its own paths and libraries, in a container too.
		ropts = resolve.ProcessOptions(req.PID)
	}
	s, err := NewSession(&Options{BufferKB: b.BufferKB, KeepStale: b.KeepStale, Warn: req.Warn,
		Resolve: ropts, MaxProbes: req.MaxProbes})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for _, p := range req.Probes {
		if err := s.AddUprobe(p.Spec); err != nil {
			return nil, err
		}
	}
	for _, k := range req.Kprobes {
		if err := s.AddKprobe(k); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	onEvent := func(ev *uprobe.Event) error {
		if req.OnEvent != nil {
			req.OnEvent(ev)
		}
		return nil
	}
	var r runResult
	if req.PID != 0 {
		r, err = s.attach(ctx, req.PID, !req.NoFollowFork, req.Started, onEvent)
	} else {
		r, err = s.run(ctx, path, req.Argv, &req.Process, !req.NoFollowFork, req.Started, onEvent)
	}
	if err != nil {
		return nil, err
	}
	res := &backend.Result{PID: r.pid, ExitCode: r.exit.Code, Signal: r.exit.Signal, CoreDumped: r.exit.CoreDumped,
		Wall: r.wall, Detached: r.detached}
	var counts map[*probe]tracefs.Count
	if !r.detached {
		if counts, err = s.counts(); err != nil {
			s.warn(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.probes {
		// Armed: the kernel took the probe and enabled it.
		res.Probes = append(res.Probes, backend.ProbeResult{Spec: p.spec, Hits: p.info.Events.Load(), Missed: counts[p].Missed, Armed: true})
	}
	return res, nil
}
