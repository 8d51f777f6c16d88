package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/ptprobe/ptprobe/kernel"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// kernelRun runs argv with uprobe specs and kprobe specs on the kernel's
// tracefs backend: the probes are defined in a group and instance of this
// run's own, filtered to the program's process tree, and removed when the
// run ends, also when ptprobe is interrupted. It returns the program's
// exit status and how long it ran.
func kernelRun(specs []*uprobe.Spec, kspecs []*uprobe.Spec, argv []string, opts kernel.Options,
	out, errOut *os.File, onEvent func(*uprobe.Event)) (status int, wall time.Duration, err error) {
	tfs, err := kernel.OpenTracefs()
	if err != nil {
		return 0, 0, err
	}
	if len(kspecs) > 0 && !tfs.Features.KprobeEvents {
		return 0, 0, fmt.Errorf("%w (no %s/kprobe_events)", kernel.ErrKprobesUnsupported, tfs.Root)
	}
	if opts.Libraries == nil && len(argv) > 0 {
		// Library names are found as the program finds its libraries,
		// its own DT_RUNPATH included, as the ptrace engine finds them.
		if path, err := exec.LookPath(argv[0]); err == nil {
			opts.Libraries = resolve.New(&resolve.Options{Program: path}).Libraries()
		}
	}
	sess, err := kernel.NewSession(tfs, &opts)
	if err != nil {
		return 0, 0, err
	}
	defer sess.Close()

	// Interrupted, ptprobe stops tracing and removes its events. The
	// program runs untraced by ptprobe (the kernel does the probing), so
	// it is left alone: a terminal's Ctrl-C reaches it by itself.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			sess.Close()
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	}()

	for _, s := range specs {
		if err := sess.AddUprobe(s); err != nil {
			return 0, 0, err
		}
	}
	for _, k := range kspecs {
		if err := sess.AddKprobe(k); err != nil {
			return 0, 0, err
		}
	}
	code, sig, err := kernel.Run(sess, argv, os.Stdin, out, errOut, nil, func(ev *uprobe.Event) error {
		if onEvent != nil {
			onEvent(ev)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if code < 0 {
		return 128 + int(sig), sess.RunWall(), nil
	}
	return code, sess.RunWall(), nil
}

// runKernel is the kernel uprobe backend of compare.
func runKernel(specs []*uprobe.Spec, argv []string, out, errOut *os.File, onEvent func(*uprobe.Event)) (int, time.Duration, error) {
	// Large per-CPU buffers: a lost event would be a false difference.
	opts := kernel.Options{NoASLR: true, BufferKB: 16 << 10, Warn: func(err error) { fmt.Fprintf(os.Stderr, "ptprobe: warning: %v\n", err) }}
	return kernelRun(specs, nil, argv, opts, out, errOut, onEvent)
}
