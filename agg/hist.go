package agg

import (
	"math/bits"
	"strconv"
	"strings"
)

// Log2 is a power-of-two histogram of integers laid out as bpftrace's
// hist(): a bucket for negative values, one for 0, then [1], [2, 4),
// [4, 8), ... [2^62, 2^63).
type Log2 struct {
	Neg     uint64     // values below 0
	Buckets [64]uint64 // 0: the value 0; k >= 1: [2^(k-1), 2^k)
	Stats
}

// Stats are the count, sum, least and greatest of some values.
type Stats struct {
	Count    uint64
	Sum      int64
	Min, Max int64
}

func (s *Stats) add(v int64) {
	if s.Count == 0 || v < s.Min {
		s.Min = v
	}
	if s.Count == 0 || v > s.Max {
		s.Max = v
	}
	s.Count++
	s.Sum += v
}

// Mean is the integer mean (0 with no values), as bpftrace's avg().
func (s *Stats) Mean() int64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / int64(s.Count)
}

// Log2Bucket is the index in Hist.Buckets of v >= 0.
func Log2Bucket(v int64) int { return bits.Len64(uint64(v)) }

// Add counts v.
func (h *Log2) Add(v int64) {
	h.add(v)
	if v < 0 {
		h.Neg++
		return
	}
	h.Buckets[bits.Len64(uint64(v))]++
}

// bucketLabel is bpftrace's label for a bucket bound: 0, 1, ..., 512,
// 1K, 2K, ..., 1M, ... (powers of 1024).
func bucketLabel(v int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"E", 60}, {"P", 50}, {"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if v >= 1<<u.shift && v%(1<<u.shift) == 0 {
			return strconv.FormatInt(v>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

// row is one printed bucket: its label, bounds and count. lowOpen and
// highOpen mark the unbounded ends.
type row struct {
	label             string
	low, high         int64
	lowOpen, highOpen bool
	n                 uint64
}

// rows are the buckets from the first to the last that is not empty.
func (h *Log2) rows() []row {
	var all []row
	if h.Neg > 0 {
		all = append(all, row{label: "(..., 0)", high: 0, lowOpen: true, n: h.Neg})
	}
	for i, n := range h.Buckets {
		var r row
		switch i {
		case 0:
			r = row{label: "[0]", low: 0, high: 1}
		case 1:
			r = row{label: "[1]", low: 1, high: 2}
		default:
			lo, hi := int64(1)<<(i-1), int64(1)<<i
			if i == 63 {
				r = row{label: "[" + bucketLabel(lo) + ", ...)", low: lo, highOpen: true}
			} else {
				r = row{label: "[" + bucketLabel(lo) + ", " + bucketLabel(hi) + ")", low: lo, high: hi}
			}
		}
		r.n = n
		all = append(all, r)
	}
	return trim(all)
}

// trim drops the empty buckets before the first and after the last one
// that is not empty.
func trim(all []row) []row {
	lo, hi := -1, -1
	for i, r := range all {
		if r.n > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo < 0 {
		return nil
	}
	return all[lo : hi+1]
}

// Linear is a linear histogram: [Min, Max) in buckets of Step, with a
// bucket below and one at or above, as bpftrace's lhist().
type Linear struct {
	Lo, Hi, Step int64
	Below, Above uint64
	Buckets      []uint64
	Stats
}

// NewLinear returns an empty linear histogram of [lo, hi) in steps of
// step; the caller has checked step > 0 and hi > lo.
func NewLinear(lo, hi, step int64) *Linear {
	n := (hi - lo + step - 1) / step
	return &Linear{Lo: lo, Hi: hi, Step: step, Buckets: make([]uint64, n)}
}

// Add counts v.
func (h *Linear) Add(v int64) {
	h.add(v)
	switch {
	case v < h.Lo:
		h.Below++
	case v >= h.Hi:
		h.Above++
	default:
		h.Buckets[(v-h.Lo)/h.Step]++
	}
}

func (h *Linear) rows() []row {
	all := []row{{label: "(..., " + strconv.FormatInt(h.Lo, 10) + ")", high: h.Lo, lowOpen: true, n: h.Below}}
	for i, n := range h.Buckets {
		lo := h.Lo + int64(i)*h.Step
		hi := min(lo+h.Step, h.Hi)
		all = append(all, row{label: "[" + strconv.FormatInt(lo, 10) + ", " + strconv.FormatInt(hi, 10) + ")", low: lo, high: hi, n: n})
	}
	all = append(all, row{label: "[" + strconv.FormatInt(h.Hi, 10) + ", ...)", low: h.Hi, highOpen: true, n: h.Above})
	return trim(all)
}

// barWidth is the width of bpftrace's histogram bars.
const barWidth = 52

// appendRows prints rows as bpftrace prints a histogram:
//
//	[4, 8)                 3 |@@@@@@@@@@@@@                                       |
func appendRows(b []byte, rows []row) []byte {
	var top uint64
	for _, r := range rows {
		top = max(top, r.n)
	}
	for _, r := range rows {
		b = append(b, r.label...)
		for i := len(r.label); i < 20; i++ {
			b = append(b, ' ')
		}
		n := strconv.FormatUint(r.n, 10)
		b = append(b, ' ')
		for i := len(n); i < 8; i++ {
			b = append(b, ' ')
		}
		b = append(b, n...)
		bar := int(r.n * barWidth / top)
		b = append(b, " |"...)
		b = append(b, strings.Repeat("@", bar)...)
		b = append(b, strings.Repeat(" ", barWidth-bar)...)
		b = append(b, "|\n"...)
	}
	return b
}

// AppendText appends the histogram in bpftrace's layout.
func (h *Log2) AppendText(b []byte) []byte { return appendRows(b, h.rows()) }

// AppendText appends the histogram in bpftrace's layout.
func (h *Linear) AppendText(b []byte) []byte { return appendRows(b, h.rows()) }

// appendJSONRows appends "buckets":[{"low":L,"high":H,"count":N},...],
// leaving out the bound of an unbounded end.
func appendJSONRows(b []byte, rows []row) []byte {
	b = append(b, `"buckets":[`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if !r.lowOpen {
			b = append(b, `"low":`...)
			b = strconv.AppendInt(b, r.low, 10)
			b = append(b, ',')
		}
		if !r.highOpen {
			b = append(b, `"high":`...)
			b = strconv.AppendInt(b, r.high, 10)
			b = append(b, ',')
		}
		b = append(b, `"count":`...)
		b = strconv.AppendUint(b, r.n, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}
