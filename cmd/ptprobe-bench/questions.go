package main

import (
	"bytes"
	"fmt"

	"github.com/ptprobe/ptprobe/agg"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/script"
	"github.com/ptprobe/ptprobe/uprobe"
)

// questions measures the end-to-end cost per hit of asking questions in
// the tracer (docs/DESIGN.md §11): the same probe with one fetch-arg
// and its events delivered, then with a --filter, a keyed count and a
// small Starlark handler on them, taking turns run by run.
func (b *bench) questions() []byte {
	probe := "p:bench/hit " + b.prog + ":FN x=%di:s64"
	spec, err := uprobe.Parse("p:bench/hit " + b.prog + ":bench_push x=%di:s64")
	if err != nil {
		return []byte(fmt.Sprintf("\n## Questions in the tracer\n\nfailed: %v\n", err))
	}
	filter, _ := query.Parse("x % 3 == 1 && comm == \"bench\"")
	set, err := query.BindAll(filter, []*uprobe.Spec{spec})
	if err != nil {
		return []byte(fmt.Sprintf("\n## Questions in the tracer\n\nfailed: %v\n", err))
	}
	key, _ := query.Parse("x % 64")
	m, err := agg.New(agg.Spec{Op: agg.Count, By: []*query.Expr{key}}, []*uprobe.Spec{spec})
	if err != nil {
		return []byte(fmt.Sprintf("\n## Questions in the tracer\n\nfailed: %v\n", err))
	}
	s, err := script.Load("bench.star", []byte(`
counts = {}
def on(ev):
    k = ev.args["x"] % 64
    counts[k] = counts.get(k, 0) + 1
probe("p:bench/hit `+b.prog+`:bench_push x=%di:s64", on)
`), nil)
	if err != nil {
		return []byte(fmt.Sprintf("\n## Questions in the tracer\n\nfailed: %v\n", err))
	}
	matched := 0
	handlers := []func(*uprobe.Event){
		func(*uprobe.Event) {},
		func(ev *uprobe.Event) {
			if set.Match(ev) {
				matched++
			}
		},
		m.Add,
		s.OnEvent,
	}
	names := []string{"events delivered, nothing done", "--filter 'x % 3 == 1 && comm == \"bench\"'", "--count --by 'x % 64'", "Starlark handler (dict count by x % 64)"}
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "\n## Questions in the tracer\n\nThe `push` function with `x=%%di:s64`, its events given to each handler; the rows of a table take turns run by run. On the stop path (`engine.Options.StopPath`) the handler runs on the ptrace thread while the program thread is stopped, so its cost is in the hit's; on the no-stop path (the default) it runs in the drain, beside the program, which waits only when the ring is full. The in-tracer work alone is in the Go benchmarks (`go test -bench . ./query/ ./agg/ ./script/`).\n")
	for _, stop := range []bool{true, false} {
		var runners []runner
		var rowNames []string
		for i, h := range handlers {
			runners = append(runners, b.engineRunCfg(probe, uprobe.Handlers{}, false, nil, engine.Options{OnEvent: h, StopPath: stop}))
			path := "no-stop"
			if stop {
				path = "stop"
			}
			rowNames = append(rowNames, path+": "+names[i])
		}
		ms := b.interleaved("push", false, rowNames, runners)
		rep.Write(questionsTable(ms))
	}
	if p := s.Probes()[0]; p.Failed != nil {
		fmt.Fprintf(&rep, "\nThe Starlark handler failed: %v\n", p.Failed)
	}
	return rep.Bytes()
}

// questionsTable is one table of the questions section.
func questionsTable(ms []*measurement) []byte {
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "\n| handler | µs/hit | vs events only |\n|---|---:|---:|\n")
	for _, mm := range ms {
		var cell string
		delta := "n/a"
		if mm.err != nil {
			cell = "failed: " + mm.err.Error()
		} else {
			cell = fmt.Sprintf("%.3f", mm.median())
			if ms[0].err == nil {
				delta = fmt.Sprintf("%+.3f", mm.median()-ms[0].median())
			}
		}
		fmt.Fprintf(&rep, "| %s | %s | %s |\n", mm.name, cell, delta)
	}
	return rep.Bytes()
}
