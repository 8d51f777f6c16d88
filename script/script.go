// Package script runs Starlark scripts at probe hits, ktap's scripts done
// with go.starlark.net: Python-like, deterministic, and with a per-call
// step limit, so that a handler can never hang what it traces
// (docs/DESIGN.md §11).
//
//	counts = {}
//	def on_work(ev):
//	    counts[ev.args["a"]] = counts.get(ev.args["a"], 0) + 1
//	probe("./prog:work a=%di:s32", on_work)
//	at_exit(lambda: print(counts))
//
// Load runs the script's top level, which declares probes with probe(),
// and fails before anything is traced; the front end then runs the probes
// on a backend with OnEvent and Handlers, and calls Exit at the end.
//
// script imports agg, backend, uprobe and ustack.
package script

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/uprobe"
	"github.com/ptprobe/ptprobe/ustack"
)

// DefaultMaxSteps is the step limit of one handler call when
// Options.MaxSteps is 0: about 10 ms of Starlark here.
const DefaultMaxSteps = 1_000_000

// Options of a script. nil: DefaultMaxSteps, print to io.Discard,
// warnings dropped.
type Options struct {
	// MaxSteps bounds each call of a handler (and of the top level);
	// a call that takes more is stopped.
	MaxSteps uint64
	// Stdout receives print()'s lines.
	Stdout io.Writer
	// Warn receives the errors of handlers, each of which disables its
	// handler; the traced program runs on.
	Warn func(error)
}

// Script is a loaded script: its probes and handlers.
type Script struct {
	file   string
	opts   Options
	mu     sync.Mutex // one Starlark thread: calls never overlap
	thread *starlark.Thread

	probes    []*Probe
	byProbe   map[probeKey]*Probe
	atExit    []starlark.Callable
	intervals []Interval
	loading   bool

	// regs are the registers of the thread whose return is being
	// reported, from the Return handler to the end of OnEvent (the
	// engine calls OnEvent right after the handler, while the thread is
	// stopped, and writes its registers back when it resumes), for
	// set_retval.
	regs    *uprobe.Regs
	regsTID int

	// stacks and sym record and name the stacks of probe(..., stack=True).
	stacks *ustack.Recorder
	sym    *ustack.Symbolizer
}

type probeKey struct{ group, event string }

// Probe is a probe() of the script.
type Probe struct {
	Spec *uprobe.Spec
	fn   starlark.Callable
	// stack: record the call stack of each hit (ev.stack).
	stack bool
	// Failed is set once its handler failed; it is called no more.
	Failed error
	// Calls counts the handler's calls.
	Calls uint64
}

// Interval is an interval(seconds, fn) of the script.
type Interval struct {
	Every time.Duration
	fn    starlark.Callable
}

// Error is an error of the script: where in it and what.
type Error struct {
	File  string
	Line  int
	Probe string // the probe whose handler failed, "" at load time
	Func  string // the script's function that failed, when known
	Msg   string
	Err   error // the cause (a *uprobe.Error for a bad spec)
}

func (e *Error) Error() string {
	where := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Probe != "" {
		fn := ""
		if e.Func != "" {
			fn = " " + e.Func + "()"
		}
		return fmt.Sprintf("script %s: handler%s of probe %s: %s", where, fn, e.Probe, e.Msg)
	}
	return fmt.Sprintf("script %s: %s", where, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Load compiles and runs the top level of the script file (src, or the
// file's contents when src is nil). Errors (syntax, a bad spec given to
// probe(), a failing top level, a script with no probe) are *Errors.
func Load(file string, src []byte, opts *Options) (*Script, error) {
	s := &Script{file: file, byProbe: make(map[probeKey]*Probe)}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.MaxSteps == 0 {
		s.opts.MaxSteps = DefaultMaxSteps
	}
	if s.opts.Stdout == nil {
		s.opts.Stdout = io.Discard
	}
	s.thread = &starlark.Thread{
		Name: file,
		Print: func(_ *starlark.Thread, msg string) {
			io.WriteString(s.opts.Stdout, msg+"\n")
		},
	}
	fileOpts := &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
	var srcArg any
	if src != nil {
		srcArg = src
	}
	_, prog, err := starlark.SourceProgramOptions(fileOpts, file, srcArg, s.predeclared().Has)
	if err != nil {
		return nil, s.loadError(err)
	}
	s.loading = true
	s.thread.SetMaxExecutionSteps(s.thread.ExecutionSteps() + s.opts.MaxSteps)
	// Init leaves the globals unfrozen, unlike ExecFile: handlers
	// update the script's dicts and lists.
	_, err = prog.Init(s.thread, s.predeclared())
	s.loading = false
	if err != nil {
		return nil, s.loadError(err)
	}
	if len(s.probes) == 0 {
		return nil, &Error{File: file, Line: 1, Msg: "no probe: call probe(SPEC, fn) at the top level"}
	}
	return s, nil
}

// loadError turns a Starlark error of the load into an *Error.
func (s *Script) loadError(err error) error {
	e := &Error{File: s.file, Line: 1, Msg: err.Error(), Err: err}
	var se syntax.Error
	var ee *starlark.EvalError
	switch {
	case errors.As(err, &se):
		e.Line, e.Msg = int(se.Pos.Line), se.Msg
	case errors.As(err, &ee):
		e.Line, e.Msg = errorLine(ee), ee.Msg
		if ue := (*uprobe.Error)(nil); errors.As(ee, &ue) {
			e.Msg, e.Err = "bad probe spec: "+ue.Caret(), ue
		}
	}
	return e
}

// errorLine is the line of the script where ee happened: its innermost
// frame in the script's file (not in a builtin).
func errorLine(ee *starlark.EvalError) int {
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if pos := ee.CallStack[i].Pos; pos.Filename() != "<builtin>" && pos.Line > 0 {
			return int(pos.Line)
		}
	}
	return 0
}

// Probes are the probes of the script, in the order of its probe()
// calls.
func (s *Script) Probes() []*Probe { return s.probes }

// Specs are the probes' specs.
func (s *Script) Specs() []*uprobe.Spec {
	out := make([]*uprobe.Spec, len(s.probes))
	for i, p := range s.probes {
		out[i] = p.Spec
	}
	return out
}

// Intervals are the script's interval() calls.
func (s *Script) Intervals() []Interval { return s.intervals }

// MaxSteps is the step limit of a call.
func (s *Script) MaxSteps() uint64 { return s.opts.MaxSteps }

// Handlers are the Go handlers of probe p for a backend that runs them
// (the ptrace engine): a return probe's Return handler keeps the
// registers for ev.set_retval.
func (s *Script) Handlers(p *Probe) uprobe.Handlers {
	var h uprobe.Handlers
	if p.stack {
		h = s.stacks.Handlers(p.Spec.Kind)
	}
	if p.Spec.Kind != uprobe.Return {
		return h
	}
	record := h.Return
	h.Return = func(ctx uprobe.Context) {
		if record != nil {
			record(ctx)
		}
		s.mu.Lock()
		s.regs, s.regsTID = ctx.Regs(), ctx.TID()
		s.mu.Unlock()
	}
	return h
}

// OnEvent calls the handler of ev's probe with the event.
func (s *Script) OnEvent(ev *uprobe.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The drain of the no-stop path may report an entry between a
	// return's handler and its event: only a return of the same thread
	// takes the registers.
	var regs *uprobe.Regs
	if ev.Kind == uprobe.Return && s.regs != nil && s.regsTID == ev.TID {
		regs, s.regs = s.regs, nil
	}
	p := s.byProbe[probeKey{ev.Group, ev.Name}]
	if p == nil || p.Failed != nil {
		return
	}
	p.Calls++
	e := newEvent(ev, p.Spec, regs)
	if p.stack {
		if pcs := s.stacks.Take(ev.TID); pcs != nil {
			e.stack = s.sym.Names(nil, ev.PID, pcs)
		}
	}
	s.call(p.fn, starlark.Tuple{e}, p.Spec.Probe())
	e.regs = nil // set_retval only during the call
}

// call runs fn under the step limit; a failure is reported to Warn and,
// for a probe's handler, disables it.
func (s *Script) call(fn starlark.Callable, args starlark.Tuple, probe string) {
	s.thread.Uncancel()
	s.thread.SetMaxExecutionSteps(s.thread.ExecutionSteps() + s.opts.MaxSteps)
	_, err := starlark.Call(s.thread, fn, args, nil)
	if err == nil {
		return
	}
	e := &Error{File: s.file, Probe: probe, Msg: err.Error(), Err: err}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		e.Line, e.Msg = errorLine(ee), ee.Msg
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if ee.CallStack[i].Pos.Filename() != "<builtin>" {
				e.Func = ee.CallStack[i].Name
				break
			}
		}
		if ee.Msg == "Starlark computation cancelled: too many steps" {
			e.Msg = fmt.Sprintf("stopped after %d steps (--max-steps)", s.opts.MaxSteps)
		}
	}
	if probe != "" {
		if p := s.byName(probe); p != nil {
			p.Failed = e
			e.Msg += "; its handler is called no more"
		}
	} else {
		e.Probe = ""
		e.Msg = fn.Name() + ": " + e.Msg
	}
	if s.opts.Warn != nil {
		s.opts.Warn(e)
	}
}

func (s *Script) byName(probe string) *Probe {
	for _, p := range s.probes {
		if p.Spec.Probe() == probe {
			return p
		}
	}
	return nil
}

// Tick runs the function of interval i once.
func (s *Script) Tick(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call(s.intervals[i].fn, nil, "")
}

// Exit runs the at_exit functions, in order.
func (s *Script) Exit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.atExit {
		s.call(fn, nil, "")
	}
	if s.sym != nil {
		s.sym.Close()
	}
}

// BackendProbes are the script's probes for a backend.Request; with
// handlers (a backend that runs Go handlers: the ptrace engine), return
// probes get the handler that set_retval needs.
func (s *Script) BackendProbes(handlers bool) []backend.Probe {
	out := make([]backend.Probe, len(s.probes))
	for i, p := range s.probes {
		out[i].Spec = p.Spec
		if handlers {
			out[i].Handlers = s.Handlers(p)
		}
	}
	return out
}
