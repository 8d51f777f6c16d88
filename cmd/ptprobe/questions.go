package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ptprobe/ptprobe/agg"
	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/script"
	"github.com/ptprobe/ptprobe/tracefile"
	"github.com/ptprobe/ptprobe/uprobe"
	"github.com/ptprobe/ptprobe/ustack"
)

// questionOptions are trace's flags that ask questions of the hits in the
// tracer: a filter, aggregations, stacks and trace files
// (docs/DESIGN.md §11).
type questionOptions struct {
	filter                          string
	by                              []string
	hist, lhist, sum, avg, min, max string
	top                             int
	interval                        time.Duration
	stack                           bool
}

func (q *questionOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&q.filter, "filter", "", "report and aggregate only the hits for which `EXPR` is true: fetch-arg names, pid, tid, cpu, comm, probe, time_ns, retval, duration_ns; == != < <= > >= && || ! + - * / % & | ^ << >> contains() startswith() endswith(); strings in double quotes")
	fs.StringArrayVar(&q.by, "by", nil, "with an aggregation (--count, --hist, ...): keep one value per key `EXPR[,EXPR...]` (repeatable)")
	fs.StringVar(&q.hist, "hist", "", "print a log2 histogram of `EXPR` (as bpftrace's hist), per --by key")
	fs.StringVar(&q.lhist, "lhist", "", "print a linear histogram `EXPR:MIN:MAX:STEP` (as bpftrace's lhist), per --by key")
	fs.StringVar(&q.sum, "sum", "", "print the sum of `EXPR`, per --by key")
	fs.StringVar(&q.avg, "avg", "", "print the integer mean of `EXPR`, per --by key")
	fs.StringVar(&q.min, "min", "", "print the least value of `EXPR`, per --by key")
	fs.StringVar(&q.max, "max", "", "print the greatest value of `EXPR`, per --by key")
	fs.IntVar(&q.top, "top", 0, "print only the `N` keys of greatest value of each aggregation")
	fs.DurationVar(&q.interval, "interval", 0, "print the aggregations every `D` (e.g. 1s) and start them again, while the program runs")
}

// questions are the filter, maps, stacks and trace file of one run.
type questions struct {
	filter   *query.Set
	maps     []*agg.Map
	json     bool
	top      int
	interval time.Duration
	w        *lineWriter

	// counted: --count with --filter counts the matching hits, by probe.
	counted map[probeName]uint64
	counts  bool

	stacks *ustack.Recorder
	sym    *ustack.Symbolizer
	names  []string
	chrome *tracefile.Chrome
	folded *tracefile.Folded

	stop, done chan struct{}
}

// splitTop splits s at the commas that are outside parentheses and
// strings: "comm, contains(name, \"x\")" is two expressions.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// prepare parses and binds the questions of o to its probes, and returns
// the probes as they must run: return probes get a $retval fetch-arg
// when an expression asks for retval, and --stack's handlers.
func (q *questionOptions) prepare(o *traceOptions, probes []backend.Probe, kprobes []*uprobe.Spec, w *lineWriter) ([]backend.Probe, *questions, error) {
	qs := &questions{json: o.format == "json", top: q.top, interval: q.interval, w: w, counts: o.count}
	// --stack (stack.go) prints stacks under events; for --format folded
	// they are recorded here, by frame pointers (ustack).
	q.stack = o.stack != "" && o.format == "folded"
	var exprs []*query.Expr
	parse := func(flag, text string) (*query.Expr, error) {
		e, err := query.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("trace: --%s: %w", flag, err)
		}
		exprs = append(exprs, e)
		return e, nil
	}
	var filter *query.Expr
	if q.filter != "" {
		var err error
		if filter, err = parse("filter", q.filter); err != nil {
			return nil, nil, err
		}
	}
	var by []*query.Expr
	for _, group := range q.by {
		for _, text := range splitTop(group) {
			e, err := parse("by", text)
			if err != nil {
				return nil, nil, err
			}
			by = append(by, e)
		}
	}
	type aggFlag struct {
		flag, text string
		op         agg.Op
	}
	var specs []agg.Spec
	if o.count && len(by) > 0 {
		specs = append(specs, agg.Spec{Op: agg.Count, By: by})
	}
	for _, f := range []aggFlag{{"hist", q.hist, agg.Hist}, {"lhist", q.lhist, agg.LHist}, {"sum", q.sum, agg.Sum}, {"avg", q.avg, agg.Avg}, {"min", q.min, agg.Min}, {"max", q.max, agg.Max}} {
		if f.text == "" {
			continue
		}
		s := agg.Spec{Op: f.op, By: by}
		text := f.text
		if f.op == agg.LHist {
			parts := strings.Split(text, ":")
			if len(parts) < 4 {
				return nil, nil, fmt.Errorf("trace: --lhist %q: want EXPR:MIN:MAX:STEP", text)
			}
			n := len(parts)
			var nums [3]int64
			for i, p := range parts[n-3:] {
				v, err := strconv.ParseInt(strings.TrimSpace(p), 0, 64)
				if err != nil {
					return nil, nil, fmt.Errorf("trace: --lhist %q: %q is not an integer", text, p)
				}
				nums[i] = v
			}
			s.Lo, s.Hi, s.Step = nums[0], nums[1], nums[2]
			text = strings.Join(parts[:n-3], ":")
		}
		e, err := parse(f.flag, text)
		if err != nil {
			return nil, nil, err
		}
		s.Value = e
		specs = append(specs, s)
	}
	if o.latency {
		if len(specs) > 0 {
			return nil, nil, errors.New("trace: --latency is an aggregation of its own: give it alone, or --hist duration_ns --by probe")
		}
		d, _ := query.Parse("duration_ns")
		p, _ := query.Parse("probe")
		specs = append(specs, agg.Spec{Op: agg.Hist, Value: d, By: []*query.Expr{p}, Latency: true})
	}
	if len(by) > 0 && len(specs) == 0 {
		return nil, nil, errors.New("trace: --by keys an aggregation: give --count, --hist, --lhist, --sum, --avg, --min or --max with it")
	}
	if (q.top != 0 || q.interval != 0) && len(specs) == 0 {
		return nil, nil, errors.New("trace: --top and --interval go with an aggregation (--count --by, --hist, ...)")
	}
	if q.top < 0 || q.interval < 0 {
		return nil, nil, errors.New("trace: --top and --interval must not be negative")
	}
	switch o.format {
	case "chrome", "folded":
		if len(specs) > 0 || o.count {
			return nil, nil, fmt.Errorf("trace: --format %s writes events, not aggregations", o.format)
		}
	}
	if o.format == "folded" && !q.stack {
		return nil, nil, errors.New("trace: --format folded writes call stacks: give --stack")
	}
	if q.stack && o.backend == "kernel" {
		return nil, nil, errors.New("trace: --stack works with the ptrace backend only")
	}

	// retval is a fetch-arg: add $retval to return probes that lack it
	// when an expression reads it.
	wantsRetval := false
	for _, e := range exprs {
		for _, n := range e.Names() {
			wantsRetval = wantsRetval || n == "retval"
		}
	}
	out := append([]backend.Probe(nil), probes...)
	specList := make([]*uprobe.Spec, len(out))
	for i := range out {
		if wantsRetval {
			s, err := script.WithRetval(out[i].Spec)
			if err != nil {
				return nil, nil, err
			}
			out[i].Spec = s
		}
		specList[i] = out[i].Spec
	}
	specList = append(specList, kprobes...)
	if filter != nil {
		set, err := query.BindAll(filter, specList)
		if err != nil {
			return nil, nil, fmt.Errorf("trace: --filter: %w", err)
		}
		qs.filter = set
		if o.count && len(by) == 0 {
			qs.counted = make(map[probeName]uint64)
		}
	}
	for _, s := range specs {
		m, err := agg.New(s, specList)
		if err != nil {
			return nil, nil, fmt.Errorf("trace: %w", err)
		}
		if s.Latency {
			for _, spec := range specList {
				if spec.Kind == uprobe.Return {
					m.Seed(query.Value{Kind: query.Str, S: spec.Probe()})
				}
			}
		}
		qs.maps = append(qs.maps, m)
	}
	if q.stack {
		qs.stacks = ustack.NewRecorder()
		qs.sym = ustack.NewSymbolizer()
		for i := range out {
			out[i].Handlers = chainHandlers(out[i].Handlers, qs.stacks.Handlers(out[i].Spec.Kind))
		}
	}
	switch o.format {
	case "chrome":
		qs.chrome = tracefile.NewChrome(lineWriterIO{w}, specList)
	case "folded":
		qs.folded = tracefile.NewFolded()
	}
	return out, qs, nil
}

// chainHandlers runs a's handlers, then b's (a handler set by both: both,
// in that order).
func chainHandlers(a, b uprobe.Handlers) uprobe.Handlers {
	two := func(x, y func(uprobe.Context)) func(uprobe.Context) {
		switch {
		case x == nil:
			return y
		case y == nil:
			return x
		}
		return func(ctx uprobe.Context) { x(ctx); y(ctx) }
	}
	a.Pre = two(a.Pre, b.Pre)
	a.Return = two(a.Return, b.Return)
	return a
}

// lineWriterIO is a lineWriter as an io.Writer.
type lineWriterIO struct{ w *lineWriter }

func (l lineWriterIO) Write(p []byte) (int, error) {
	l.w.Write(p)
	return len(p), nil
}

// onEvent is the OnEvent of the run: the filter, then the maps, the trace
// file, or print (nil: nothing printed per event).
func (qs *questions) onEvent(print func(*uprobe.Event)) func(*uprobe.Event) {
	var buf []byte
	return func(ev *uprobe.Event) {
		if qs.filter != nil && !qs.filter.Match(ev) {
			return
		}
		if qs.counted != nil {
			qs.counted[probeName{ev.Group, ev.Name}]++
		}
		var frames []string
		if qs.stacks != nil {
			pcs := qs.stacks.Take(ev.TID)
			frames = qs.sym.Names(qs.names[:0], ev.PID, pcs)
			qs.names = frames
		}
		for _, m := range qs.maps {
			m.Add(ev)
		}
		switch {
		case qs.chrome != nil:
			qs.chrome.Add(ev)
		case qs.folded != nil:
			qs.folded.Add(frames)
		case print != nil && len(qs.maps) == 0 && !qs.counts:
			if qs.stacks == nil {
				print(ev)
				return
			}
			if qs.json {
				buf = ev.AppendJSON(buf[:0])
				buf = buf[:len(buf)-2] // "}\n"
				buf = append(buf, `,"stack":[`...)
				for i, f := range frames {
					if i > 0 {
						buf = append(buf, ',')
					}
					buf = uprobe.AppendJSONString(buf, f)
				}
				buf = append(buf, "]}\n"...)
			} else {
				buf = ev.AppendText(buf[:0])
				for _, f := range frames {
					buf = append(buf, '\t')
					buf = append(buf, f...)
					buf = append(buf, '\n')
				}
			}
			qs.w.Write(buf)
		}
	}
}

// needsEvents reports whether the run needs OnEvent even with --count.
func (qs *questions) needsEvents() bool {
	return qs.filter != nil || len(qs.maps) > 0 || qs.chrome != nil || qs.folded != nil
}

// start begins the --interval printing.
func (qs *questions) start() {
	if qs.interval == 0 || len(qs.maps) == 0 {
		return
	}
	qs.stop, qs.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(qs.done)
		t := time.NewTicker(qs.interval)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				qs.print(now, true)
			case <-qs.stop:
				return
			}
		}
	}()
}

// print writes the maps, headed with the time when periodic (as
// bpftrace's time() prints it), and empties them when reset.
func (qs *questions) print(now time.Time, periodic bool) {
	var b []byte
	if periodic && !qs.json {
		b = now.AppendFormat(b, "15:04:05\n")
	}
	for _, m := range qs.maps {
		if qs.json {
			b = m.AppendJSON(b, qs.top)
		} else {
			b = m.AppendText(b, qs.top)
			if op := m.Spec().Op; op != agg.Hist && op != agg.LHist {
				b = append(b, '\n') // histograms end in one already
			}
		}
		if periodic {
			m.Reset()
		}
	}
	qs.w.Write(b)
}

// stopTicker stops the interval printing, once.
func (qs *questions) stopTicker() {
	if qs.stop != nil {
		close(qs.stop)
		<-qs.done
		qs.stop = nil
	}
}

// finish stops the interval printing and writes the maps and files at
// the end of the run.
func (qs *questions) finish() error {
	qs.stopTicker()
	if len(qs.maps) > 0 && (qs.interval == 0 || qs.anyLeft()) {
		qs.print(time.Now(), false)
	}
	if qs.sym != nil {
		qs.sym.Close()
	}
	if qs.chrome != nil {
		return qs.chrome.Close()
	}
	if qs.folded != nil {
		_, err := qs.folded.WriteTo(lineWriterIO{qs.w})
		return err
	}
	return nil
}

func (qs *questions) anyLeft() bool {
	for _, m := range qs.maps {
		if m.Len() > 0 {
			return true
		}
	}
	return false
}

// hits is the number of hits --count prints for probe: with --filter,
// those that matched.
func (qs *questions) hits(spec *uprobe.Spec, all uint64) uint64 {
	if qs.counted != nil {
		return qs.counted[probeName{spec.Group, spec.Event}]
	}
	return all
}

// probeName is a probe's GROUP and EVENT, a map key that costs no
// allocation per event.
type probeName struct{ group, event string }
