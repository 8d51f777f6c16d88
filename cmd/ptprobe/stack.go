package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/uprobe"
)

// stackRecorder records the user stack of each hit of a probe (--stack):
// a handler unwinds it while the thread is stopped, and the event printed
// next for that thread carries it (docs/DESIGN.md §10). Both run on the
// ptrace thread, the handler just before the event.
type stackRecorder struct {
	depth  int
	stacks *engine.Stacks
	last   map[int][]engine.Frame // by thread
}

// addStackFlag registers --stack[=DEPTH] on fs.
func (o *traceOptions) addStackFlag(fs *pflag.FlagSet) {
	fs.StringVar(&o.stack, "stack", "", "record the user stack of each hit, at most `DEPTH` frames (--stack alone: 64), symbolized func+0xoff and file:line, under the event (text) or as its \"stack\" array (json); ptrace backend")
	fs.Lookup("stack").NoOptDefVal = strconv.Itoa(engine.DefaultStackDepth)
}

// newStackRecorder adds an unwinding handler to every probe of req; nil
// without --stack.
func (o *traceOptions) newStackRecorder(req *backend.Request) (*stackRecorder, error) {
	if o.stack == "" || o.format == "folded" {
		return nil, nil // (folded stacks: questions.go)
	}
	depth, err := strconv.Atoi(o.stack)
	if err != nil || depth < 1 {
		return nil, fmt.Errorf("trace: --stack=%s: the depth must be a positive number of frames", o.stack)
	}
	if o.backend == "kernel" {
		return nil, errors.New("trace: --stack works with the ptrace backend only")
	}
	r := &stackRecorder{depth: depth, stacks: engine.NewStacks(), last: make(map[int][]engine.Frame)}
	record := func(ctx uprobe.Context) { r.last[ctx.TID()] = r.stacks.Unwind(ctx, r.depth) }
	for i := range req.Probes {
		h := &req.Probes[i].Handlers
		if req.Probes[i].Spec.Kind == uprobe.Return {
			prev := h.Return
			h.Return = func(ctx uprobe.Context) {
				if prev != nil {
					prev(ctx)
				}
				record(ctx)
			}
			continue
		}
		prev := h.Pre
		h.Pre = func(ctx uprobe.Context) {
			record(ctx)
			if prev != nil {
				prev(ctx)
			}
		}
	}
	return r, nil
}

// appendTo appends the stack of ev's hit to its formatted event b: lines
// under a text event, a "stack" array in a JSON one.
func (r *stackRecorder) appendTo(b []byte, ev *uprobe.Event, json bool) []byte {
	if r == nil {
		return b
	}
	frames, ok := r.last[ev.TID]
	if !ok {
		return b
	}
	delete(r.last, ev.TID)
	if !json {
		return engine.AppendStackText(b, frames)
	}
	end := bytes.LastIndexByte(b, '}')
	if end < 0 {
		return b
	}
	tail := append([]byte(nil), b[end:]...)
	b = append(b[:end], `,"stack":`...)
	b = engine.AppendStackJSON(b, frames)
	return append(b, tail...)
}

// Close closes the files the unwinder opened.
func (r *stackRecorder) Close() error {
	if r == nil {
		return nil
	}
	return r.stacks.Close()
}
