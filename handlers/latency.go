package handlers

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Latencies collects, per return probe, the time from each entry to its
// return (uprobe.Event.DurationNS) in log2 histograms, as bpftrace's
// hist() of a return probe's duration. Its Add is an OnEvent.
type Latencies struct {
	byProbe map[string]*Histogram
}

// NewLatencies returns empty histograms.
func NewLatencies() *Latencies { return &Latencies{byProbe: make(map[string]*Histogram)} }

// Add counts ev's duration in the histogram of its probe, if ev is a
// return with a known entry; other events are ignored. It is an
// OnEvent of a backend.Request.
func (l *Latencies) Add(ev *uprobe.Event) {
	if ev.Kind != uprobe.Return || ev.DurationNS == 0 {
		return
	}
	h := l.byProbe[ev.Probe()]
	if h == nil {
		h = &Histogram{Min: math.MaxUint64}
		l.byProbe[ev.Probe()] = h
	}
	h.add(ev.DurationNS)
}

// Histogram returns the histogram of probe (uprobe.Spec.Probe, "GROUP/EVENT"),
// or nil when none of its returns was added.
func (l *Latencies) Histogram(probe string) *Histogram { return l.byProbe[probe] }

// Histogram is a log2 histogram of durations in nanoseconds, as
// bpftrace's hist(): bucket 0 holds 0, bucket k >= 1 holds [2^(k-1), 2^k).
type Histogram struct {
	Buckets       [65]uint64
	Count         uint64
	Sum, Min, Max uint64 // in ns
}

func (h *Histogram) add(d uint64) {
	h.Buckets[bits.Len64(d)]++
	h.Count++
	h.Sum += d
	h.Min = min(h.Min, d)
	h.Max = max(h.Max, d)
}

// bucketLabel is bpftrace's label for the lower bound of a bucket:
// 0, 1, 2, ..., 512, 1K, 2K, ..., 1M, ... (powers of 1024).
func bucketLabel(v uint64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"E", 60}, {"P", 50}, {"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if v >= 1<<u.shift && v%(1<<u.shift) == 0 {
			return strconv.FormatUint(v>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10)
}

// AppendText appends the histogram of probe to b the way bpftrace prints
// hist(): a title, a row per bucket from the lowest to the highest one
// used, with a bar, and a summary line.
func (l *Latencies) AppendText(b []byte, probe string) []byte {
	var s strings.Builder
	h := l.byProbe[probe]
	fmt.Fprintf(&s, "@%s (ns):\n", probe)
	if h == nil {
		s.WriteString("no return with a known entry\n\n")
		return append(b, s.String()...)
	}
	lo, hi := -1, 0
	var top uint64
	for i, n := range h.Buckets {
		if n > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
			top = max(top, n)
		}
	}
	const width = 52
	for i := lo; i <= hi; i++ {
		var label string
		switch i {
		case 0:
			label = "[0]"
		case 1:
			label = "[1]"
		default:
			label = fmt.Sprintf("[%s, %s)", bucketLabel(1<<(i-1)), bucketLabel(1<<i))
		}
		bar := int(h.Buckets[i] * width / top)
		fmt.Fprintf(&s, "%-20s %8d |%s%s|\n", label, h.Buckets[i], strings.Repeat("@", bar), strings.Repeat(" ", width-bar))
	}
	fmt.Fprintf(&s, "count %d, min %s, mean %s, max %s\n\n", h.Count,
		time.Duration(h.Min), time.Duration(h.Sum/h.Count), time.Duration(h.Max))
	return append(b, s.String()...)
}
