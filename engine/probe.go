package engine

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Probe is a probe of a Tracer, armed in every mapping of its file in
// every traced process, those to come included. Its methods may be
// called from any goroutine, and from its own handlers; like the kprobes
// API's register/unregister/enable/disable, they take effect at once in
// the running program.
type Probe struct {
	Spec     *uprobe.Spec
	handlers uprobe.Handlers
	tracer   *Tracer
	hits     atomic.Uint64
	// loc is where a path probe is; nil for library probes, resolved
	// per mapped library in byFile.
	loc *resolve.Location
	// byFile caches the resolution of a library probe per file (nil:
	// the file was looked at and is not the library).
	byFile map[elfsym.FileID]*resolve.Location
	armed  atomic.Uint64 // sites armed, over all processes
	missed atomic.Uint64 // hits the no-stop path could not record, Go entries not kept
	// The sites armed on each path, and why the first on the stop path
	// is (see Path).
	pathMu                 sync.Mutex
	noStopSites, stopSites int
	stopWhy                error
	// enabled and closed change on the ptrace thread only; they are
	// atomic for the readers of other goroutines.
	enabled atomic.Bool
	closed  atomic.Bool
}

// Hits is the number of times the probe fired (return probes: returns).
func (p *Probe) Hits() uint64 { return p.hits.Load() }

// Missed is the number of hits the probe could not report (the kernel's
// nmissed): on the no-stop path, hits while the ring was full in drop
// mode, or in a signal handler that interrupted a recording (which must
// not wait for room). On the stop path, only a return probe of Go code
// misses: the calls whose entry could not be kept because more than 1<<22
// of its entries were live in one process (their returns are reported
// without the entry's arguments and duration).
func (p *Probe) Missed() uint64 { return p.missed.Load() }

// Armed reports whether the probe was armed in at least one mapping.
func (p *Probe) Armed() bool { return p.armed.Load() > 0 }

// Enabled reports whether the probe fires (not disabled, not closed).
func (p *Probe) Enabled() bool { return p.active() }

// active is Enabled; nil (the engine's own breaklets) is always active.
func (p *Probe) active() bool {
	return p == nil || (p.enabled.Load() && !p.closed.Load())
}

// Disable takes the probe out of the program: its sites are removed where
// no other probe shares them, and it fires no more until Enable.
func (p *Probe) Disable() error {
	return p.tracer.do(func() error {
		if p.closed.Load() {
			return fmt.Errorf("probe %s: %w", p.Spec.Probe(), os.ErrClosed)
		}
		if !p.enabled.Swap(false) {
			return nil
		}
		return p.tracer.disarmProbe(p)
	})
}

// Enable arms a disabled probe again.
func (p *Probe) Enable() error {
	return p.tracer.do(func() error {
		if p.closed.Load() {
			return fmt.Errorf("probe %s: %w", p.Spec.Probe(), os.ErrClosed)
		}
		if p.enabled.Swap(true) {
			return nil
		}
		return p.tracer.armProbe(p)
	})
}

// Close removes the probe from the program for good. A return probe's
// functions entered before still return normally, unreported. Closing a
// closed probe, or one of a Tracer that has ended, returns
// os.ErrClosed.
func (p *Probe) Close() error {
	err := p.tracer.do(func() error {
		if p.closed.Swap(true) {
			return fmt.Errorf("probe %s: %w", p.Spec.Probe(), os.ErrClosed)
		}
		s := p.tracer
		for i, q := range s.probes {
			if q == p {
				s.probes = append(s.probes[:i], s.probes[i+1:]...)
				break
			}
		}
		return s.disarmProbe(p)
	})
	if errors.Is(err, errTracerDone) {
		p.closed.Store(true)
		return fmt.Errorf("probe %s: %w", p.Spec.Probe(), os.ErrClosed)
	}
	return err
}

// newProbe resolves a probe in its file; library probes are checked
// against the library of that name the program would find, and resolved
// again in each library actually mapped.
func (s *Tracer) newProbe(spec *uprobe.Spec, h uprobe.Handlers) (*Probe, error) {
	p := &Probe{Spec: spec, handlers: h, tracer: s, byFile: make(map[elfsym.FileID]*resolve.Location)}
	p.enabled.Store(true)
	f, err := s.res.File(spec)
	if err != nil {
		return nil, err
	}
	if s.files[f.ID] == nil {
		s.files[f.ID] = f // the mappings of the file are resolved in it
	}
	loc, err := resolve.In(f, spec)
	if err != nil {
		return nil, err
	}
	if loc.IFunc {
		s.warn(fmt.Errorf("probe %q: %s is an indirect function (IFUNC) of %s: the probe is on its resolver, which runs once; probe one of its implementations instead (ptprobe list %s '*%s*')",
			spec.Text, spec.Symbol, f.Path, f.Path, spec.Symbol))
	}
	if spec.IsLibrary() {
		p.byFile[f.ID] = &loc
	} else {
		p.loc = &loc
	}
	return p, nil
}

// Uprobe adds a probe to the running program: it is armed in every
// mapping of its file in every traced process before Uprobe returns, and
// in those mapped later. Errors in the spec are returned, and nothing is
// armed. Handlers run on the ptrace thread (see Options.OnEvent).
func (s *Tracer) Uprobe(spec *uprobe.Spec, h uprobe.Handlers) (*Probe, error) {
	var p *Probe
	err := s.do(func() error {
		for _, q := range s.probes {
			if q.Spec.Probe() == spec.Probe() {
				return fmt.Errorf("probe %q: %w: %s", spec.Text, ErrDuplicateName, spec.Probe())
			}
		}
		// A USDT spec, a glob or a C++ name that names one probe is
		// that probe (docs/DESIGN.md §9).
		specs, err := s.res.Expand(spec, &resolve.ExpandOptions{MaxProbes: 1, Warn: s.warn})
		if err != nil {
			return err
		}
		if p, err = s.newProbe(specs[0], h); err != nil {
			return err
		}
		s.probes = append(s.probes, p)
		s.hijacks = s.hijacks || spec.Kind == uprobe.Return
		return s.armProbe(p)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// armProbe arms p in every traced address space, on the ptrace thread,
// with every thread of the address space held in a stop meanwhile: the
// no-stop path patches several bytes of code the threads may be running,
// and injected system calls need a stopped thread.
func (s *Tracer) armProbe(p *Probe) error {
	var errs []error
	s.eachAddrSpace(func(pr *process, held []*thread) {
		if len(held) == 0 {
			return // no thread to arm from: gone meanwhile
		}
		if err := s.armProbeIn(held[0], p); err != nil {
			errs = append(errs, err)
		}
	}, &errs)
	return errors.Join(errs...)
}

// eachAddrSpace runs fn once per traced address space (but those of
// children not followed) with its threads held (holdAll), then lets them
// go. A thread fn arms from gets its registers put back.
func (s *Tracer) eachAddrSpace(fn func(pr *process, held []*thread), errs *[]error) {
	done := make(map[*addrSpace]bool)
	var todo []*process
	for _, pr := range s.procs {
		if pr.as == nil || done[pr.as] || pr.unfollowed {
			continue
		}
		done[pr.as] = true
		todo = append(todo, pr)
	}
	for _, pr := range todo {
		s.withHeld(pr, fn, errs)
	}
}

// withHeld runs fn with the threads of pr's address space held (holdAll),
// then lets them go. fn gets the held threads that can run an injected
// system call; the first one's registers are read afresh and put back
// after.
func (s *Tracer) withHeld(pr *process, fn func(pr *process, held []*thread), errs *[]error) {
	held, err := s.holdAll(pr.as)
	if err != nil {
		*errs = append(*errs, err)
	}
	var from []*thread
	for _, t := range held {
		if t.proc.as == pr.as && canInject(stopEvent(t.stop)) {
			from = append(from, t)
		}
	}
	if len(from) > 0 {
		t := from[0]
		if err := getRegs(t.tid, &t.regs); err == nil {
			saved := t.regs
			fn(pr, from)
			t.regs, t.regsRead = saved, false
			setRegs(t.tid, &saved)
		}
	}
	if err := s.release(held); err != nil {
		*errs = append(*errs, err)
	}
}

// armProbeIn arms p in the mappings already armed of t's address space.
func (s *Tracer) armProbeIn(t *thread, p *Probe) error {
	maps, err := elfsym.ReadMaps(t.proc.pid)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if _, ok := t.proc.as.armed[keyOf(m)]; !ok || !m.Exec() {
			continue
		}
		if err := s.armMapping(t, m, []*Probe{p}); err != nil {
			return fmt.Errorf("process %d: %w", t.proc.pid, err)
		}
	}
	return nil
}

// disarmProbe takes p's breaklets out of every site, and the sites left
// with none out of the text (retired: a thread that took the trap of one
// just before reports it after). The threads are held meanwhile: the
// no-stop path's patch is several bytes they may be running.
func (s *Tracer) disarmProbe(p *Probe) error {
	var errs []error
	s.eachAddrSpace(func(pr *process, held []*thread) {
		for _, st := range pr.as.sites {
			_, fast := st.strategy.(*fastStrategy)
			if st.remove(p) {
				if fast {
					s.setFastProbes(st)
				}
				continue
			}
			if err := pr.as.disarm(st); err != nil {
				errs = append(errs, err)
				continue
			}
			s.siteGone(pr, st.loc)
		}
	}, &errs)
	p.armed.Store(0)
	clear(p.byFile)
	return errors.Join(errs...)
}

// Executable is a file (or a library name) whose functions a Tracer
// probes, as cilium/ebpf's link.Executable is for kernel uprobes.
type Executable struct {
	tracer *Tracer
	path   string
}

// Executable returns the file at path, or the library named so (no '/':
// "libc", "libz.so.1"), for probes by symbol.
func (s *Tracer) Executable(path string) *Executable {
	return &Executable{tracer: s, path: path}
}

// UprobeOptions say more of a probe made by Executable.Uprobe. The zero
// value (and nil) is a probe at the symbol's first instruction, named and
// typed as Parse would, without fetch-args.
type UprobeOptions struct {
	// Offset is added to the symbol's address.
	Offset uint64
	// Group and Event name the probe ("" for Parse's defaults).
	Group, Event string
	// Args are fetch-args as a spec writes them ("size=%di:u64").
	Args []string
}

// Uprobe adds an entry probe on symbol (see Tracer.Uprobe).
func (e *Executable) Uprobe(symbol string, h uprobe.Handlers, opts *UprobeOptions) (*Probe, error) {
	return e.probe(uprobe.Entry, symbol, h, opts)
}

// Uretprobe adds a return probe on symbol (see Tracer.Uprobe).
func (e *Executable) Uretprobe(symbol string, h uprobe.Handlers, opts *UprobeOptions) (*Probe, error) {
	return e.probe(uprobe.Return, symbol, h, opts)
}

func (e *Executable) probe(kind uprobe.Kind, symbol string, h uprobe.Handlers, opts *UprobeOptions) (*Probe, error) {
	if opts == nil {
		opts = &UprobeOptions{}
	}
	spec, err := uprobe.Build(uprobe.SpecOptions{Kind: kind, Group: opts.Group, Event: opts.Event,
		Path: e.path, Symbol: symbol, Offset: opts.Offset, Args: opts.Args})
	if err != nil {
		return nil, err
	}
	return e.tracer.Uprobe(spec, h)
}

// Path says how the probe takes its hits: on how many sites it was armed
// without a stop (the no-stop path, docs/DESIGN.md §8) and on how many
// with one, over the session, and for the latter why (the first reason
// found).
func (p *Probe) Path() (noStop, stop int, why error) {
	p.pathMu.Lock()
	defer p.pathMu.Unlock()
	return p.noStopSites, p.stopSites, p.stopWhy
}

// armedOn counts a site the probe was armed on.
func (p *Probe) armedOn(st *site) {
	p.pathMu.Lock()
	defer p.pathMu.Unlock()
	if _, fast := st.strategy.(*fastStrategy); fast {
		p.noStopSites++
		return
	}
	p.stopSites++
	if p.stopWhy == nil {
		p.stopWhy = st.why
	}
}
