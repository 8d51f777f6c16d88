package main

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand"
	"strconv"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/uprobe"
)

// retvalOverride makes probed functions return another value to their
// callers: fault injection on unmodified binaries.
type retvalOverride struct {
	value       uint64
	every       uint64  // every Nth return of each probe; 0: see probability
	probability float64 // each return with this probability; 0: always
	rng         *rand.Rand
}

func newRetvalOverride(value string, set bool, every uint64, probability float64, seed int64) (*retvalOverride, error) {
	if !set {
		if every != 0 || probability != 0 {
			return nil, errors.New("trace: --every and --probability go with --set-retval")
		}
		return nil, nil
	}
	v, err := strconv.ParseInt(value, 0, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(value, 0, 64)
		if uerr != nil {
			return nil, fmt.Errorf("trace: --set-retval %q is not an integer", value)
		}
		v = int64(u)
	}
	if every != 0 && probability != 0 {
		return nil, errors.New("trace: give --every or --probability, not both")
	}
	if probability < 0 || probability > 1 || math.IsNaN(probability) {
		return nil, fmt.Errorf("trace: --probability %v is not in (0, 1]", probability)
	}
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &retvalOverride{value: uint64(v), every: every, probability: probability, rng: rand.New(rand.NewSource(seed))}, nil
}

// handler is the return handler of one probe: it has its own count of
// returns, so --every N is every Nth return of that probe.
func (o *retvalOverride) handler() func(uprobe.Context) {
	var n uint64
	return func(ctx uprobe.Context) {
		n++
		switch {
		case o.every != 0 && n%o.every != 0:
			return
		case o.probability != 0 && o.rng.Float64() >= o.probability:
			return
		}
		ctx.Regs().Rax = o.value
	}
}

// latencies collects, per return probe, the time from entry to return.
type latencies struct {
	byProbe map[string]*histogram
}

// histogram is a log2 histogram of durations in nanoseconds, as
// bpftrace's hist(): bucket 0 holds 0, bucket k >= 1 holds [2^(k-1), 2^k).
type histogram struct {
	buckets       [65]uint64
	count         uint64
	sum, min, max uint64
}

func newLatencies() *latencies { return &latencies{byProbe: make(map[string]*histogram)} }

func (l *latencies) add(ev *uprobe.Event) {
	if ev.Kind != uprobe.Return || ev.DurationNS == 0 {
		return
	}
	h := l.byProbe[ev.Probe()]
	if h == nil {
		h = &histogram{min: math.MaxUint64}
		l.byProbe[ev.Probe()] = h
	}
	d := ev.DurationNS
	h.buckets[bits.Len64(d)]++
	h.count++
	h.sum += d
	h.min = min(h.min, d)
	h.max = max(h.max, d)
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

// render prints the histogram of a probe the way bpftrace prints hist().
func (l *latencies) render(probe string) []byte {
	var b strings.Builder
	h := l.byProbe[probe]
	fmt.Fprintf(&b, "@%s (ns):\n", probe)
	if h == nil {
		b.WriteString("no return with a known entry\n\n")
		return []byte(b.String())
	}
	lo, hi := -1, 0
	var top uint64
	for i, n := range h.buckets {
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
		bar := int(h.buckets[i] * width / top)
		fmt.Fprintf(&b, "%-20s %8d |%s%s|\n", label, h.buckets[i], strings.Repeat("@", bar), strings.Repeat(" ", width-bar))
	}
	fmt.Fprintf(&b, "count %d, min %s, mean %s, max %s\n\n", h.count,
		time.Duration(h.min), time.Duration(h.sum/h.count), time.Duration(h.max))
	return []byte(b.String())
}
