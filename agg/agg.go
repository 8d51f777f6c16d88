// Package agg aggregates events in the tracer, as bpftrace's maps do:
// counts, sums, averages, least and greatest values and histograms of an
// expression over the event's fields, keyed by other expressions, printed
// in bpftrace's layout or as JSON lines (docs/DESIGN.md §11).
//
// agg imports query and uprobe.
package agg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Op is what a map keeps of each key's values.
type Op int

const (
	Count Op = iota // number of events
	Sum             // sum of Value
	Avg             // integer mean of Value
	Min             // least Value
	Max             // greatest Value
	Hist            // power-of-two histogram of Value (bpftrace's hist)
	LHist           // linear histogram of Value (bpftrace's lhist)
)

var opNames = [...]string{"count", "sum", "avg", "min", "max", "hist", "lhist"}

func (o Op) String() string { return opNames[o] }

// Spec says what a map aggregates.
type Spec struct {
	Op Op
	// Value is the aggregated expression (not for Count); it must be a
	// number.
	Value *query.Expr
	// By are the key expressions; none: one value for all events.
	By []*query.Expr
	// Lo, Hi and Step are LHist's range and bucket width.
	Lo, Hi, Step int64
	// Name is the map's name as printed, "@" + Op when "".
	Name string
	// Latency prints each key's histogram as --latency does: titled
	// "@KEY (ns):" with count, min, mean and max as durations, leaves
	// out values of 0 (a return whose entry the backend did not see),
	// and says so for a key seeded (Seed) that got none.
	Latency bool
}

// Map is a map of a run: keys to aggregated values. Add may be called
// from the tracer while another goroutine prints (Append*, Reset).
type Map struct {
	spec  Spec
	value *query.Set
	by    []*query.Set

	mu      sync.Mutex
	entries map[string]*entry
	key     []byte // the encoded key of the event being added
}

type entry struct {
	key   []query.Value // decoded, strings copied
	stats Stats
	hist  *Log2
	lhist *Linear
}

// New makes a map for the events of specs' probes. A probe that has not
// every field the expressions use is left out (its events are not
// aggregated); an expression that fits no probe, or a Value that is not
// a number, is an error.
func New(spec Spec, specs []*uprobe.Spec) (*Map, error) {
	m := &Map{spec: spec, entries: make(map[string]*entry)}
	if m.spec.Name == "" {
		m.spec.Name = "@" + spec.Op.String()
	}
	if spec.Op == LHist && (spec.Step <= 0 || spec.Hi <= spec.Lo) {
		return nil, fmt.Errorf("lhist %s: want MIN < MAX and STEP > 0, not %d:%d:%d", spec.Value, spec.Lo, spec.Hi, spec.Step)
	}
	if spec.Op != Count {
		if spec.Value == nil {
			return nil, fmt.Errorf("%s needs a value", spec.Op)
		}
		set, err := query.BindAll(spec.Value, specs)
		if err != nil {
			return nil, err
		}
		for _, s := range specs {
			if p := set.Program(&uprobe.Event{Group: s.Group, Name: s.Event}); p != nil && p.Kind() == query.Str {
				return nil, &query.Error{Text: spec.Value.Text, Msg: fmt.Sprintf("%s takes a number, and %s is a string", spec.Op, spec.Value)}
			}
		}
		m.value = set
	}
	for _, e := range spec.By {
		set, err := query.BindAll(e, specs)
		if err != nil {
			return nil, err
		}
		m.by = append(m.by, set)
	}
	return m, nil
}

// Spec is what the map aggregates.
func (m *Map) Spec() Spec { return m.spec }

// Add aggregates ev. It allocates only for a key not seen before.
func (m *Map) Add(ev *uprobe.Event) {
	var v query.Value
	if m.value != nil {
		p := m.value.Program(ev)
		if p == nil {
			return
		}
		var ok bool
		if v, ok = p.Eval(ev); !ok {
			return
		}
		if m.spec.Latency && v.N == 0 {
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.key[:0]
	for _, set := range m.by {
		p := set.Program(ev)
		if p == nil {
			m.key = k
			return
		}
		kv, ok := p.Eval(ev)
		if !ok {
			m.key = k
			return
		}
		k = appendKey(k, kv)
	}
	m.key = k
	e := m.entries[string(k)]
	if e == nil {
		e = m.newEntry(string(k))
		m.entries[string(k)] = e
	}
	m.addTo(e, v.Int64())
}

func (m *Map) addTo(e *entry, v int64) {
	switch m.spec.Op {
	case Count:
		e.stats.Count++
	case Hist:
		e.hist.Add(v)
	case LHist:
		e.lhist.Add(v)
	default:
		e.stats.add(v)
	}
}

func (m *Map) newEntry(k string) *entry {
	e := &entry{key: decodeKey(k)}
	switch m.spec.Op {
	case Hist:
		e.hist = new(Log2)
	case LHist:
		e.lhist = NewLinear(m.spec.Lo, m.spec.Hi, m.spec.Step)
	}
	return e
}

// Seed makes an empty entry for key (one value per By expression), so
// that it is printed even if no event comes for it.
func (m *Map) Seed(key ...query.Value) error {
	if len(key) != len(m.by) {
		return errors.New("agg: Seed: one value per key expression")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var k []byte
	for _, v := range key {
		k = appendKey(k, v)
	}
	if m.entries[string(k)] == nil {
		m.entries[string(k)] = m.newEntry(string(k))
	}
	return nil
}

// Reset empties the map (for --interval).
func (m *Map) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.entries)
}

// Len is the number of keys.
func (m *Map) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// appendKey encodes a key value: its kind, then 8 bytes or the string's
// length and bytes.
func appendKey(b []byte, v query.Value) []byte {
	b = append(b, byte(v.Kind))
	if v.Kind == query.Str {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v.S)))
		return append(b, v.S...)
	}
	return binary.LittleEndian.AppendUint64(b, v.N)
}

func decodeKey(k string) []query.Value {
	var out []query.Value
	for len(k) > 0 {
		kind := query.Kind(k[0])
		k = k[1:]
		if kind == query.Str {
			n := binary.LittleEndian.Uint32([]byte(k[:4]))
			out = append(out, query.Value{Kind: kind, S: strings.Clone(k[4 : 4+n])})
			k = k[4+n:]
			continue
		}
		out = append(out, query.Value{Kind: kind, N: binary.LittleEndian.Uint64([]byte(k[:8]))})
		k = k[8:]
	}
	return out
}

// weight is what --top and the printing order sort by.
func (m *Map) weight(e *entry) int64 {
	switch m.spec.Op {
	case Count:
		return int64(e.stats.Count)
	case Sum:
		return e.stats.Sum
	case Avg:
		return e.stats.Mean()
	case Min:
		return e.stats.Min
	case Max:
		return e.stats.Max
	case Hist:
		return int64(e.hist.Count)
	}
	return int64(e.lhist.Count)
}

// sorted are the entries in bpftrace's printing order, smallest value
// first (ties by key), the top largest only when top > 0. Histograms are
// printed in key order.
func (m *Map) sorted(top int) []*entry {
	es := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		es = append(es, e)
	}
	byKey := func(a, b *entry) bool {
		for i := range a.key {
			if c := query.Compare(a.key[i], b.key[i]); c != 0 {
				return c < 0
			}
		}
		return false
	}
	sort.Slice(es, func(i, j int) bool {
		wi, wj := m.weight(es[i]), m.weight(es[j])
		if wi != wj {
			return wi < wj
		}
		return byKey(es[i], es[j])
	})
	if top > 0 && len(es) > top {
		es = es[len(es)-top:]
	}
	if m.spec.Op == Hist || m.spec.Op == LHist {
		sort.Slice(es, func(i, j int) bool { return byKey(es[i], es[j]) })
	}
	return es
}

func appendKeyText(b []byte, key []query.Value) []byte {
	for i, v := range key {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendValueText(b, v)
	}
	return b
}

func appendValueText(b []byte, v query.Value) []byte {
	switch v.Kind {
	case query.Str:
		return append(b, v.S...)
	case query.Int:
		return strconv.AppendInt(b, int64(v.N), 10)
	case query.Bool:
		return strconv.AppendBool(b, v.N != 0)
	}
	return strconv.AppendUint(b, v.N, 10)
}

// AppendText appends the map in bpftrace's layout:
//
//	@count[ls, 56]: 26
//
// or, for histograms, "@hist[KEY]:" and the buckets, then an empty line.
func (m *Map) AppendText(b []byte, top int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.sorted(top) {
		if m.spec.Latency {
			b = m.appendLatency(b, e)
			continue
		}
		b = append(b, m.spec.Name...)
		if len(e.key) > 0 {
			b = append(b, '[')
			b = appendKeyText(b, e.key)
			b = append(b, ']')
		}
		b = append(b, ':')
		switch m.spec.Op {
		case Hist:
			b = append(b, '\n')
			b = e.hist.AppendText(b)
			b = append(b, '\n')
		case LHist:
			b = append(b, '\n')
			b = e.lhist.AppendText(b)
			b = append(b, '\n')
		default:
			b = append(b, ' ')
			b = strconv.AppendInt(b, m.weight(e), 10)
			b = append(b, '\n')
		}
	}
	return b
}

// appendLatency is --latency's layout of one key's histogram.
func (m *Map) appendLatency(b []byte, e *entry) []byte {
	b = append(b, '@')
	b = appendKeyText(b, e.key)
	b = append(b, " (ns):\n"...)
	h := e.hist
	if h.Count == 0 {
		return append(b, "no return with a known entry\n\n"...)
	}
	b = h.AppendText(b)
	return fmt.Appendf(b, "count %d, min %s, mean %s, max %s\n\n", h.Count,
		time.Duration(h.Min), time.Duration(h.Mean()), time.Duration(h.Max))
}

// AppendJSON appends one JSON object a line per key:
//
//	{"map":"@count","key":{"comm":"ls","size":56},"value":26}
//
// with the key fields named by their expressions; histograms have
// "count", "sum", "min", "max" and "buckets" instead of "value".
func (m *Map) AppendJSON(b []byte, top int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.sorted(top) {
		b = append(b, `{"map":`...)
		b = uprobe.AppendJSONString(b, m.spec.Name)
		if m.spec.Value != nil {
			b = append(b, `,"of":`...)
			b = uprobe.AppendJSONString(b, m.spec.Value.Text)
		}
		b = append(b, `,"key":{`...)
		for i, v := range e.key {
			if i > 0 {
				b = append(b, ',')
			}
			b = uprobe.AppendJSONString(b, m.spec.By[i].Text)
			b = append(b, ':')
			switch v.Kind {
			case query.Str:
				b = uprobe.AppendJSONString(b, v.S)
			default:
				b = appendValueText(b, v)
			}
		}
		b = append(b, '}')
		switch m.spec.Op {
		case Hist, LHist:
			var st Stats
			var rows []row
			if e.hist != nil {
				st, rows = e.hist.Stats, e.hist.rows()
			} else {
				st, rows = e.lhist.Stats, e.lhist.rows()
			}
			b = fmt.Appendf(b, `,"count":%d,"sum":%d,"min":%d,"max":%d,`, st.Count, st.Sum, st.Min, st.Max)
			b = appendJSONRows(b, rows)
		default:
			b = append(b, `,"value":`...)
			b = strconv.AppendInt(b, m.weight(e), 10)
		}
		b = append(b, "}\n"...)
	}
	return b
}
