// Package handlers holds ready-made probe handlers and event consumers
// for either front end, the ptprobe command and a Go program: fault
// injection on return probes (Retval) and latency histograms of return
// probes (Latencies). They run where the backend runs its handlers and
// OnEvent (for the ptrace engine: its ptrace thread, one call at a time;
// docs/DESIGN.md §4), so they take no locks and are not for concurrent
// use from elsewhere.
//
// handlers imports uprobe and nothing else of this module.
package handlers

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/ptprobe/ptprobe/uprobe"
)

// RetvalOptions say which returns a Retval changes. The zero value (and
// nil) is every return.
type RetvalOptions struct {
	// Every changes only every Every-th return of each probe; 0 is
	// every return (or as Probability says). Not with Probability.
	Every uint64
	// Probability changes each return with this probability,
	// 0 < P <= 1; 0 is every return (or as Every says).
	Probability float64
	// Seed seeds the random choices of Probability; 0 takes one from the
	// clock.
	Seed int64
}

// Retval makes probed functions return another value to their callers:
// fault injection on unmodified binaries (the kernel's
// bpf_override_return, or a kretprobe handler writing regs->ax). Its
// Return handlers set rax as the function returns; they go on return
// probes (uprobe.Return) of functions whose result is in rax (integers,
// pointers).
type Retval struct {
	value uint64
	opts  RetvalOptions
	rng   *rand.Rand
}

// NewRetval returns fault injection of value, on the returns opts choose.
func NewRetval(value uint64, opts *RetvalOptions) (*Retval, error) {
	var o RetvalOptions
	if opts != nil {
		o = *opts
	}
	if o.Every != 0 && o.Probability != 0 {
		return nil, errors.New("handlers: Every or Probability, not both")
	}
	if o.Probability < 0 || o.Probability > 1 || math.IsNaN(o.Probability) {
		return nil, fmt.Errorf("handlers: probability %v is not in (0, 1]", o.Probability)
	}
	seed := o.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &Retval{value: value, opts: o, rng: rand.New(rand.NewSource(seed))}, nil
}

// Handlers are the handlers of one probe: each probe has its own count of
// returns, so that Every N is every Nth return of that probe; the random
// choices of Probability are drawn from one source for all of r's probes.
func (r *Retval) Handlers() uprobe.Handlers {
	var n uint64
	return uprobe.Handlers{Return: func(ctx uprobe.Context) {
		n++
		switch {
		case r.opts.Every != 0 && n%r.opts.Every != 0:
			return
		case r.opts.Probability != 0 && r.rng.Float64() >= r.opts.Probability:
			return
		}
		ctx.Regs().Rax = r.value
	}}
}
