package script

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.starlark.net/starlark"

	"github.com/ptprobe/ptprobe/agg"
	"github.com/ptprobe/ptprobe/uprobe"
	"github.com/ptprobe/ptprobe/ustack"
)

// predeclared are the script's builtins besides Starlark's own (print
// among them).
func (s *Script) predeclared() starlark.StringDict {
	return starlark.StringDict{
		"probe":    starlark.NewBuiltin("probe", s.probeBuiltin),
		"at_exit":  starlark.NewBuiltin("at_exit", s.atExitBuiltin),
		"interval": starlark.NewBuiltin("interval", s.intervalBuiltin),
		"hist":     starlark.NewBuiltin("hist", histBuiltin),
		"lhist":    starlark.NewBuiltin("lhist", lhistBuiltin),
	}
}

// probe(SPEC, fn, stack=False): fn(event) runs at each hit of SPEC;
// with stack, ev.stack names the frames of the hit's call stack.
func (s *Script) probeBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var text string
	var fn starlark.Callable
	var stack bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "spec", &text, "fn", &fn, "stack?", &stack); err != nil {
		return nil, err
	}
	if !s.loading {
		return nil, errors.New("probe() declares probes at the top level only, before anything is traced")
	}
	spec, err := uprobe.Parse(text)
	if err != nil {
		return nil, err
	}
	if spec.Kind == uprobe.Return {
		// ev.retval on both backends: the kernel's $retval too.
		if spec, err = withRetval(spec); err != nil {
			return nil, err
		}
	}
	k := probeKey{spec.Group, spec.Event}
	if prev := s.byProbe[k]; prev != nil {
		return nil, fmt.Errorf("probes %q and %q have the same name %s; name one with p:GROUP/EVENT", prev.Spec.Text, text, spec.Probe())
	}
	p := &Probe{Spec: spec, fn: fn, stack: stack}
	if stack && s.stacks == nil {
		s.stacks, s.sym = ustack.NewRecorder(), ustack.NewSymbolizer()
	}
	s.probes = append(s.probes, p)
	s.byProbe[k] = p
	return starlark.None, nil
}

// withRetval is spec with a fetch-arg retval=$retval:s64 when it has no
// $retval of its own.
func withRetval(spec *uprobe.Spec) (*uprobe.Spec, error) {
	for _, a := range spec.Args {
		if a.Expr != nil && a.Expr.Op == uprobe.OpRetval {
			return spec, nil
		}
	}
	name := "retval"
	for _, a := range spec.Args {
		if a.Name == name {
			name = "__retval"
		}
	}
	return uprobe.Parse(spec.Text + " " + name + "=$retval:s64")
}

// WithRetval is spec with a fetch-arg retval=$retval:s64 when it is a
// return probe with no $retval of its own: what a filter or an
// aggregation over retval needs on either backend.
func WithRetval(spec *uprobe.Spec) (*uprobe.Spec, error) {
	if spec.Kind != uprobe.Return {
		return spec, nil
	}
	return withRetval(spec)
}

func (s *Script) atExitBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn); err != nil {
		return nil, err
	}
	s.atExit = append(s.atExit, fn)
	return starlark.None, nil
}

func (s *Script) intervalBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var secs starlark.Value
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "seconds", &secs, "fn", &fn); err != nil {
		return nil, err
	}
	if !s.loading {
		return nil, errors.New("interval() is declared at the top level only")
	}
	f, ok := starlark.AsFloat(secs)
	if !ok || f < 0.001 || math.IsInf(f, 0) {
		return nil, fmt.Errorf("interval: want a number of seconds of at least 0.001, not %s", secs)
	}
	s.intervals = append(s.intervals, Interval{Every: time.Duration(f * float64(time.Second)), fn: fn})
	return starlark.None, nil
}

// histValue is hist() or lhist(): h.add(v), h.count, str(h) in bpftrace's
// layout.
type histValue struct {
	log2   *agg.Log2
	linear *agg.Linear
	frozen bool
}

func histBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return &histValue{log2: new(agg.Log2)}, nil
}

func lhistBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var lo, hi, step int64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "min", &lo, "max", &hi, "step", &step); err != nil {
		return nil, err
	}
	if step <= 0 || hi <= lo {
		return nil, fmt.Errorf("lhist: want min < max and step > 0, not %d, %d, %d", lo, hi, step)
	}
	return &histValue{linear: agg.NewLinear(lo, hi, step)}, nil
}

func (h *histValue) stats() *agg.Stats {
	if h.log2 != nil {
		return &h.log2.Stats
	}
	return &h.linear.Stats
}

func (h *histValue) String() string {
	if h.log2 != nil {
		return string(h.log2.AppendText(nil))
	}
	return string(h.linear.AppendText(nil))
}
func (h *histValue) Type() string {
	if h.log2 != nil {
		return "hist"
	}
	return "lhist"
}
func (h *histValue) Freeze()               { h.frozen = true }
func (h *histValue) Truth() starlark.Bool  { return h.stats().Count > 0 }
func (h *histValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", h.Type()) }
func (h *histValue) AttrNames() []string {
	return []string{"add", "count", "sum", "min", "max", "mean"}
}

func (h *histValue) Attr(name string) (starlark.Value, error) {
	st := h.stats()
	switch name {
	case "add":
		return starlark.NewBuiltin("add", h.add), nil
	case "count":
		return starlark.MakeUint64(st.Count), nil
	case "sum":
		return starlark.MakeInt64(st.Sum), nil
	case "min":
		return starlark.MakeInt64(st.Min), nil
	case "max":
		return starlark.MakeInt64(st.Max), nil
	case "mean":
		return starlark.MakeInt64(st.Mean()), nil
	}
	return nil, nil
}

func (h *histValue) add(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v int64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v); err != nil {
		return nil, err
	}
	if h.frozen {
		return nil, fmt.Errorf("add to a frozen %s", h.Type())
	}
	if h.log2 != nil {
		h.log2.Add(v)
	} else {
		h.linear.Add(v)
	}
	return starlark.None, nil
}
