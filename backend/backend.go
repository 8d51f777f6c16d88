// Package backend is what ptprobe's two backends have in common: the
// ptrace engine (package engine) and the kernel's tracefs (package kernel)
// each run a program with probes and report its hits as uprobe.Events,
// behind the one interface Backend, so that a front end (the ptprobe
// command, package compare, a Go program) drives either the same way
// (docs/DESIGN.md §1).
//
// backend imports uprobe and nothing else of this module.
package backend

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Backend runs a program, or traces a running one, with probes.
type Backend interface {
	// Name is the backend's name: "ptrace" or "kernel".
	Name() string
	// Run arms req's probes, runs the program (or attaches to
	// req.PID) and reports each hit to req.OnEvent until the program
	// exits. When ctx is done first, the backend takes its probes out
	// and lets the program run on untraced; the Result then says
	// Detached. Errors in the probes are returned before the program
	// starts.
	Run(ctx context.Context, req *Request) (*Result, error)
}

// Request is one run of a Backend.
type Request struct {
	// Probes are the user-space probes, with their Go handlers (the
	// kernel backend refuses handlers).
	Probes []Probe
	// MaxProbes bounds how many probes one spec of Probes may expand
	// to (a glob, a USDT probe, a C++ name); 0 is the resolver's default
	// (10000).
	MaxProbes int
	// Kprobes are kernel probes (kprobe_events specs), for the kernel
	// backend only.
	Kprobes []*uprobe.Spec
	// Argv is the program to launch, or PID the running process to
	// attach to: exactly one of them.
	Argv []string
	PID  int
	// Process says how a launched program starts.
	Process Process
	// NoFollowFork: children of fork are not traced.
	NoFollowFork bool
	// OnEvent receives the event of each hit. The event and its Args
	// are reused once it returns. Which goroutine it runs on is the
	// backend's to say; calls are never concurrent. nil: hit counts
	// only.
	OnEvent func(*uprobe.Event)
	// Started, if set, is called with the program's process ID once
	// it runs (or is attached to), from the goroutine that called Run.
	Started func(pid int)
	// Warn receives problems that do not stop the run; nil discards
	// them.
	Warn func(error)
}

// Probe is a probe spec with its Go handlers.
type Probe struct {
	Spec     *uprobe.Spec
	Handlers uprobe.Handlers
}

// Process says how a launched program starts. The zero value is
// ptprobe's own standard files, environment and directory, with address
// space randomization as the system has it.
type Process struct {
	// Stdin, Stdout and Stderr of the program; nil means ptprobe's own.
	Stdin, Stdout, Stderr *os.File
	// Env of the program; nil means ptprobe's environment.
	Env []string
	// Dir is the program's working directory; "" means ptprobe's.
	Dir string
	// NoASLR starts the program with address space randomization off
	// (personality ADDR_NO_RANDOMIZE, as setarch -R does): two runs of a
	// program then see the same addresses, which comparing pointer
	// arguments between backends needs.
	NoASLR bool
}

// Result is how a run ended.
type Result struct {
	// PID is the launched or attached program's.
	PID int
	// ExitCode is the program's exit status, or -1 when a signal
	// (Signal, CoreDumped) killed it. Meaningless when Detached.
	ExitCode   int
	Signal     syscall.Signal
	CoreDumped bool
	// Wall is how long the program ran under the probes, from its first
	// instruction (or the attach) to its exit or the detach.
	Wall time.Duration
	// Detached: the run ended (ctx done) before the program did; the
	// program runs on, untraced.
	Detached bool
	// Probes are the probes of the run: those of Request.Probes, then
	// those of Request.Kprobes, in order.
	Probes []ProbeResult
}

// ProbeResult is what one probe of a run saw.
type ProbeResult struct {
	Spec *uprobe.Spec
	// Hits is the number of times the probe fired (return probes:
	// returns).
	Hits uint64
	// Missed counts the hits the backend could not report (the
	// kernel's nmissed; 0 on the ptrace stop path).
	Missed uint64
	// Armed: the probe was armed in at least one mapping.
	Armed bool
	// NoStopSites and StopSites count the sites the probe was armed on
	// without a ptrace stop per hit (the engine's no-stop path) and with
	// one; StopWhy says why a site took the stop path (the first reason
	// found), "" when none did. The kernel backend leaves them zero.
	NoStopSites, StopSites int
	StopWhy                string
}

// Strategy says in words how the probe took its hits: "no-stop",
// "stop (WHY)", both with their site counts, or "" when the backend does
// not say (the kernel's).
func (p *ProbeResult) Strategy() string {
	why := p.StopWhy
	if why == "" {
		why = "asked for"
	}
	switch {
	case p.NoStopSites == 0 && p.StopSites == 0:
		return ""
	case p.StopSites == 0:
		return fmt.Sprintf("no-stop (%d sites)", p.NoStopSites)
	case p.NoStopSites == 0:
		return fmt.Sprintf("stop (%d sites): %s", p.StopSites, why)
	}
	return fmt.Sprintf("no-stop on %d sites, stop on %d: %s", p.NoStopSites, p.StopSites, why)
}

// Status is the exit status ptprobe gives for the run, as a shell gives
// for a command: the exit code, 128+N when signal N killed it, 0 when the
// run detached.
func (r *Result) Status() int {
	switch {
	case r.Detached:
		return 0
	case r.ExitCode < 0:
		return 128 + int(r.Signal)
	}
	return r.ExitCode
}
