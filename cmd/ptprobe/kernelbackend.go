package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/uprobe"
)

// kernelRun runs argv with uprobe specs and kprobe specs on the kernel's
// tracefs backend (kernel.Backend, with opts' buffer size, stale-session
// cleanup and warnings): the probes are defined in a group and instance
// of this run's own, filtered to the program's process tree, and removed
// when the run ends, also when ptprobe is interrupted. It returns the
// program's exit status and how long it ran.
func kernelRun(specs []*uprobe.Spec, kspecs []*uprobe.Spec, argv []string, opts kernel.Options,
	out, errOut *os.File, onEvent func(*uprobe.Event)) (status int, wall time.Duration, err error) {
	b := kernel.Backend{BufferKB: opts.BufferKB, KeepStale: opts.KeepStale}
	return runKernelBackend(b, specs, kspecs, argv, backend.Process{Stdout: out, Stderr: errOut}, opts.MaxProbes, opts.Warn, onEvent)
}

// runKernelBackend runs req on b until the program exits. Interrupted
// (SIGINT, SIGTERM, SIGHUP), ptprobe stops tracing and removes its
// events, and exits with 128+N for signal N. The program runs untraced
// by ptprobe (the kernel does the probing), so it is left alone: a
// terminal's Ctrl-C reaches it by itself.
func runKernelBackend(b kernel.Backend, specs, kspecs []*uprobe.Spec, argv []string, proc backend.Process, maxProbes int,
	warn func(error), onEvent func(*uprobe.Event)) (int, time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	caught := make(chan syscall.Signal, 1)
	go func() {
		select {
		case sig := <-sigs:
			caught <- sig.(syscall.Signal)
			cancel()
		case <-ctx.Done():
		}
	}()

	req := &backend.Request{Kprobes: kspecs, Argv: argv, Process: proc, OnEvent: onEvent, Warn: warn, MaxProbes: maxProbes}
	for _, s := range specs {
		req.Probes = append(req.Probes, backend.Probe{Spec: s})
	}
	res, err := b.Run(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	if res.Detached {
		select {
		case sig := <-caught:
			return 128 + int(sig), res.Wall, nil
		default:
		}
	}
	return res.Status(), res.Wall, nil
}

// runKernel is the kernel uprobe backend of compare.
func runKernel(specs []*uprobe.Spec, argv []string, out, errOut *os.File, onEvent func(*uprobe.Event)) (int, time.Duration, error) {
	// Large per-CPU buffers: a lost event would be a false difference.
	b := kernel.Backend{BufferKB: 16 << 10}
	warn := func(err error) { fmt.Fprintf(os.Stderr, "ptprobe: warning: %v\n", err) }
	return runKernelBackend(b, specs, nil, argv, backend.Process{Stdout: out, Stderr: errOut, NoASLR: true}, 0, warn, onEvent)
}
