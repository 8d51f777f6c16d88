// Package tracefile writes events as files for viewers: Chrome's
// trace-event JSON, which Perfetto's UI and chrome://tracing open, and
// folded stacks for flame graphs (flamegraph.pl, speedscope)
// (docs/DESIGN.md §11).
//
// tracefile imports uprobe.
package tracefile

import (
	"io"
	"strconv"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Chrome writes Chrome trace-event JSON ("JSON Object Format"): a
// complete event (ph "X", ts and dur in µs) per return, with the args of
// its entry when an entry probe is on the same function; an instant event
// (ph "i") per hit of an entry-only probe; process_name and thread_name
// metadata (ph "M") at each process and thread first seen.
type Chrome struct {
	w   io.Writer
	buf []byte
	n   int // events written
	err error

	pids, tids map[int]bool
	// paired: entry probes whose function has a return probe too, by
	// probe; their hits wait on a per-thread stack for the return.
	paired  map[probeKey]string
	returns map[probeKey]string // return probe → its function's target
	names   map[probeKey]string // probe → the event name shown
	cats    map[probeKey]string // probe → "GROUP/EVENT", the category
	open    map[openKey][]entry
}

type probeKey struct{ group, event string }

type openKey struct {
	tid    int
	target string
}

// entry is an entry hit waiting for its return.
type entry struct {
	pid    int
	timeNS uint64
	args   []uprobe.Value
}

// NewChrome starts a trace file on w for the probes of specs. Close ends
// it.
func NewChrome(w io.Writer, specs []*uprobe.Spec) *Chrome {
	c := &Chrome{w: w, pids: map[int]bool{}, tids: map[int]bool{},
		paired: map[probeKey]string{}, returns: map[probeKey]string{}, names: map[probeKey]string{}, cats: map[probeKey]string{}, open: map[openKey][]entry{}}
	hasReturn := map[string]bool{}
	for _, s := range specs {
		k := probeKey{s.Group, s.Event}
		c.names[k], c.cats[k] = s.Event, s.Probe()
		if s.Symbol != "" && s.Offset == 0 {
			c.names[k] = s.Symbol
		}
		if s.Kind == uprobe.Return {
			c.returns[k] = s.Target()
			hasReturn[s.Target()] = true
		}
	}
	for _, s := range specs {
		if s.Kind == uprobe.Entry && hasReturn[s.Target()] {
			c.paired[probeKey{s.Group, s.Event}] = s.Target()
		}
	}
	c.buf = append(c.buf, `{"displayTimeUnit":"ns","traceEvents":[`...)
	return c
}

// Add writes the trace events of ev.
func (c *Chrome) Add(ev *uprobe.Event) {
	k := probeKey{ev.Group, ev.Name}
	c.meta(ev)
	if target, ok := c.paired[k]; ok {
		ok := openKey{ev.TID, target}
		c.open[ok] = append(c.open[ok], entry{ev.PID, ev.TimeNS, append([]uprobe.Value(nil), ev.Args...)})
		return
	}
	start, dur := ev.TimeNS, uint64(0)
	var entryArgs []uprobe.Value
	complete := false
	if target, ok := c.returns[k]; ev.Kind == uprobe.Return && ok {
		ok := openKey{ev.TID, target}
		if st := c.open[ok]; len(st) > 0 {
			e := st[len(st)-1]
			c.open[ok] = st[:len(st)-1]
			start, dur, entryArgs, complete = e.timeNS, ev.TimeNS-e.timeNS, e.args, true
		}
		if ev.DurationNS != 0 {
			// The backend timed the call itself (the ptrace engine, from
			// the hijacked return): the better figure.
			start, dur, complete = ev.TimeNS-ev.DurationNS, ev.DurationNS, true
		}
	}
	c.begin()
	c.buf = append(c.buf, `{"name":`...)
	c.buf = uprobe.AppendJSONString(c.buf, c.names[k])
	c.buf = append(c.buf, `,"cat":`...)
	c.buf = uprobe.AppendJSONString(c.buf, c.cats[k])
	if complete {
		c.buf = append(c.buf, `,"ph":"X","ts":`...)
		c.buf = appendMicros(c.buf, start)
		c.buf = append(c.buf, `,"dur":`...)
		c.buf = appendMicros(c.buf, dur)
	} else {
		c.buf = append(c.buf, `,"ph":"i","s":"t","ts":`...)
		c.buf = appendMicros(c.buf, start)
	}
	c.buf = append(c.buf, `,"pid":`...)
	c.buf = strconv.AppendInt(c.buf, int64(ev.PID), 10)
	c.buf = append(c.buf, `,"tid":`...)
	c.buf = strconv.AppendInt(c.buf, int64(ev.TID), 10)
	c.buf = append(c.buf, `,"args":{`...)
	first := true
	for _, args := range [][]uprobe.Value{entryArgs, ev.Args} {
		for i := range args {
			if !first {
				c.buf = append(c.buf, ',')
			}
			first = false
			c.buf = uprobe.AppendJSONString(c.buf, args[i].Name)
			c.buf = append(c.buf, ':')
			c.buf = args[i].AppendJSON(c.buf)
		}
	}
	c.buf = append(c.buf, "}}"...)
	c.flush(false)
}

// meta writes the process and thread names of ev's process and thread
// the first time they are seen.
func (c *Chrome) meta(ev *uprobe.Event) {
	if !c.pids[ev.PID] {
		c.pids[ev.PID] = true
		c.metaEvent("process_name", ev.PID, ev.PID, ev.Comm)
	}
	if !c.tids[ev.TID] {
		c.tids[ev.TID] = true
		c.metaEvent("thread_name", ev.PID, ev.TID, ev.Comm)
	}
}

func (c *Chrome) metaEvent(name string, pid, tid int, value string) {
	c.begin()
	c.buf = append(c.buf, `{"name":"`...)
	c.buf = append(c.buf, name...)
	c.buf = append(c.buf, `","ph":"M","pid":`...)
	c.buf = strconv.AppendInt(c.buf, int64(pid), 10)
	c.buf = append(c.buf, `,"tid":`...)
	c.buf = strconv.AppendInt(c.buf, int64(tid), 10)
	c.buf = append(c.buf, `,"args":{"name":`...)
	c.buf = uprobe.AppendJSONString(c.buf, value)
	c.buf = append(c.buf, "}}"...)
}

func (c *Chrome) begin() {
	if c.n > 0 {
		c.buf = append(c.buf, ',')
	}
	c.buf = append(c.buf, '\n')
	c.n++
}

// appendMicros appends ns as microseconds with three decimals.
func appendMicros(b []byte, ns uint64) []byte {
	b = strconv.AppendUint(b, ns/1000, 10)
	b = append(b, '.')
	f := ns % 1000
	b = append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
	return b
}

func (c *Chrome) flush(force bool) {
	if c.err != nil {
		c.buf = c.buf[:0]
		return
	}
	if len(c.buf) >= 32<<10 || force {
		_, c.err = c.w.Write(c.buf)
		c.buf = c.buf[:0]
	}
}

// Close writes the entries still waiting for their return (a thread
// that exited or was detached in the call) as instant events, ends the
// JSON and returns the first write error.
func (c *Chrome) Close() error {
	for k, st := range c.open {
		for _, e := range st {
			c.begin()
			c.buf = append(c.buf, `{"name":`...)
			c.buf = uprobe.AppendJSONString(c.buf, k.target+" (no return)")
			c.buf = append(c.buf, `,"ph":"i","s":"t","ts":`...)
			c.buf = appendMicros(c.buf, e.timeNS)
			c.buf = append(c.buf, `,"pid":`...)
			c.buf = strconv.AppendInt(c.buf, int64(e.pid), 10)
			c.buf = append(c.buf, `,"tid":`...)
			c.buf = strconv.AppendInt(c.buf, int64(k.tid), 10)
			c.buf = append(c.buf, '}')
		}
	}
	clear(c.open)
	c.buf = append(c.buf, "\n]}\n"...)
	c.flush(true)
	return c.err
}
