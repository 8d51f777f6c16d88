package script

import (
	"errors"
	"fmt"

	"go.starlark.net/starlark"

	"github.com/ptprobe/ptprobe/uprobe"
)

// event is the value a handler gets: a copy of the hit's event (the
// backend reuses its own), so that a script may keep it.
type event struct {
	ev    uprobe.Event // Args copied
	probe string
	args  *starlark.Dict // made at the first ev.args
	regs  *uprobe.Regs   // a return's registers during the handler call
	// stack names the frames of the hit's stack, innermost first (probe
	// with stack=True, on a backend that runs Go handlers).
	stack []string
	// retval is the index in ev.Args of the spec's $retval, -1 for none.
	retval int
}

func newEvent(ev *uprobe.Event, spec *uprobe.Spec, regs *uprobe.Regs) *event {
	e := &event{ev: *ev, probe: spec.Probe(), regs: regs, retval: -1}
	for i, a := range spec.Args {
		if a.Expr != nil && a.Expr.Op == uprobe.OpRetval {
			e.retval = i
			break
		}
	}
	e.ev.Args = append([]uprobe.Value(nil), ev.Args...)
	return e
}

var eventAttrs = []string{"args", "comm", "cpu", "duration_ns", "kind", "pid", "probe", "retval", "set_retval", "stack", "tid", "time_ns"}

func (e *event) String() string {
	return fmt.Sprintf("<event %s pid=%d tid=%d>", e.probe, e.ev.PID, e.ev.TID)
}
func (e *event) Type() string          { return "event" }
func (e *event) Freeze()               {}
func (e *event) Truth() starlark.Bool  { return true }
func (e *event) Hash() (uint32, error) { return 0, errors.New("unhashable: event") }
func (e *event) AttrNames() []string   { return eventAttrs }

func (e *event) Attr(name string) (starlark.Value, error) {
	switch name {
	case "args":
		if e.args == nil {
			e.args = starlark.NewDict(len(e.ev.Args))
			for i := range e.ev.Args {
				a := &e.ev.Args[i]
				e.args.SetKey(starlark.String(a.Name), value(a))
			}
		}
		return e.args, nil
	case "pid":
		return starlark.MakeInt(e.ev.PID), nil
	case "tid":
		return starlark.MakeInt(e.ev.TID), nil
	case "cpu":
		return starlark.MakeInt(e.ev.CPU), nil
	case "comm":
		return starlark.String(e.ev.Comm), nil
	case "probe":
		return starlark.String(e.probe), nil
	case "kind":
		return starlark.String(e.ev.Kind.String()), nil
	case "time_ns":
		return starlark.MakeUint64(e.ev.TimeNS), nil
	case "retval":
		if e.ev.Kind != uprobe.Return || e.retval < 0 || e.retval >= len(e.ev.Args) {
			return starlark.None, nil
		}
		return value(&e.ev.Args[e.retval]), nil
	case "duration_ns":
		if e.ev.Kind != uprobe.Return || e.ev.DurationNS == 0 {
			return starlark.None, nil
		}
		return starlark.MakeUint64(e.ev.DurationNS), nil
	case "stack":
		if e.stack == nil {
			return starlark.None, nil
		}
		frames := make([]starlark.Value, len(e.stack))
		for i, f := range e.stack {
			frames[i] = starlark.String(f)
		}
		return starlark.NewList(frames), nil
	case "set_retval":
		return starlark.NewBuiltin("set_retval", e.setRetval), nil
	}
	return nil, nil
}

// value is a fetched argument as a Starlark value: an int, a string, a
// list for an array, a dict {"len": N, "elems": [...]} for a Go slice (as
// --format json writes it), or None for a fetch that faulted.
func value(a *uprobe.Value) starlark.Value {
	switch {
	case a.Fault:
		return starlark.None
	case a.Slice:
		d := starlark.NewDict(2)
		d.SetKey(starlark.String("len"), starlark.MakeUint64(a.Count))
		d.SetKey(starlark.String("elems"), elems(a))
		return d
	case a.Type.Len > 0:
		return elems(a)
	case a.Type.Kind == uprobe.String:
		return starlark.String(a.S)
	case a.Type.Kind == uprobe.Signed:
		return starlark.MakeInt64(int64(a.U))
	}
	return starlark.MakeUint64(a.U)
}

// elems are the elements of an array or a slice.
func elems(a *uprobe.Value) *starlark.List {
	var l []starlark.Value
	for _, s := range a.Strs {
		l = append(l, starlark.String(s))
	}
	for _, u := range a.Elems {
		l = append(l, value(&uprobe.Value{Type: uprobe.Type{Kind: a.Type.Kind, Size: a.Type.Size}, U: u}))
	}
	return starlark.NewList(l)
}

// setRetval makes the function return v to its caller: the fault
// injection of --set-retval, from the script.
func (e *event) setRetval(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "value", &v); err != nil {
		return nil, err
	}
	if e.ev.Kind != uprobe.Return {
		return nil, fmt.Errorf("set_retval: %s is an entry probe; return values are set at returns (r ... or ...%%return)", e.probe)
	}
	if e.regs == nil {
		return nil, errors.New("set_retval: the return has been reported already, or the backend runs no Go handlers (the kernel backend)")
	}
	var u uint64
	if i, ok := v.Int64(); ok {
		u = uint64(i)
	} else if x, ok := v.Uint64(); ok {
		u = x
	} else {
		return nil, fmt.Errorf("set_retval: %s does not fit in 64 bits", v)
	}
	e.regs.Rax = u
	return starlark.None, nil
}
