package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ptprobe/ptprobe/backend"
)

// Backend is the ptrace engine as a backend.Backend: Run launches (or
// attaches to) the program with a Tracer and waits for it. The zero value
// is the default scheduling.
type Backend struct {
	Sched SchedOptions
	// StopPath and DropWhenFull are Options' (docs/DESIGN.md §8).
	StopPath, DropWhenFull bool
}

// Name is "ptrace".
func (Backend) Name() string { return "ptrace" }

// Run runs req under a Tracer until the program exits, or until ctx is
// done: the Tracer then detaches, checking the text it leaves against the
// files (a difference is an error wrapping ErrTextMismatch). OnEvent,
// Warn and the handlers run on the ptrace thread.
func (b Backend) Run(ctx context.Context, req *backend.Request) (*backend.Result, error) {
	opts := &Options{Probes: req.Probes, MaxProbes: req.MaxProbes, OnEvent: req.OnEvent, Warn: req.Warn, Process: req.Process,
		NoFollowFork: req.NoFollowFork, Sched: b.Sched, StopPath: b.StopPath, DropWhenFull: b.DropWhenFull}
	var tr *Tracer
	var err error
	switch {
	case req.PID != 0 && len(req.Argv) > 0:
		return nil, errors.New("give a program to launch or a process to attach to, not both")
	case req.PID != 0:
		tr, err = Attach(req.PID, opts)
	default:
		tr, err = Launch(req.Argv, opts)
	}
	if err != nil {
		return nil, err
	}
	if req.Started != nil {
		req.Started(tr.Pid())
	}
	ended := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			tr.Detach()
		case <-ended:
		}
	}()
	res, err := tr.Wait()
	close(ended)
	if err != nil {
		return nil, err
	}
	if res.Detached && len(res.TextMismatches) > 0 {
		return nil, fmt.Errorf("detached from %d, but %w at:\n  %s", tr.Pid(), ErrTextMismatch, strings.Join(res.TextMismatches, "\n  "))
	}
	out := &backend.Result{PID: tr.Pid(), ExitCode: res.ExitCode, Signal: res.Signal, CoreDumped: res.CoreDumped,
		Wall: res.Wall, Detached: res.Detached}
	// The ptrace thread has ended: its probes are no one else's now.
	for _, p := range tr.probes {
		r := backend.ProbeResult{Spec: p.Spec, Hits: p.Hits(), Missed: p.Missed(), Armed: p.Armed()}
		var why error
		r.NoStopSites, r.StopSites, why = p.Path()
		if why != nil {
			r.StopWhy = why.Error()
		}
		out.Probes = append(out.Probes, r)
	}
	return out, nil
}
