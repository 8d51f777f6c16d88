package compare

import (
	"testing"
	"time"
)

// TestCostStatistics: the cost per hit of each round is taken against the
// unprobed run of that round; the median is reported with the spread,
// or "below noise" when not above the unprobed runs' spread per hit, and
// no cost below 0 is ever shown.
func TestCostStatistics(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	round := func(walls ...float64) []*runResult {
		var rs []*runResult
		for _, w := range walls {
			rs = append(rs, &runResult{wall: ms(w), nhits: 1000})
		}
		return rs
	}
	base := round(10, 12, 11)  // spread 2 ms: 2 µs/hit of noise
	slow := round(40, 43, 31)  // costs 30, 31, 20 µs/hit
	quick := round(11, 11, 12) // costs 1, -1, 1: below the noise
	noise := int64(ms(2))
	br := backendCosts(slow, base, noise)
	if br.UsPerHit == nil || *br.UsPerHit != 30 || br.UsPerHitMin != 20 || br.UsPerHitMax != 31 || br.NoiseUsPerHit != 2 || br.BelowNoise {
		t.Errorf("slow backend: %+v (cost %v)", br, br.UsPerHit)
	}
	if br.WallNS != int64(ms(40)) || br.WallMinNS != int64(ms(31)) || br.WallMaxNS != int64(ms(43)) {
		t.Errorf("slow backend walls: %+v", br)
	}
	if got := br.costText(3); got != "30.00 [20.00-31.00], noise 2.00" {
		t.Errorf("slow backend text %q", got)
	}
	br = backendCosts(quick, base, noise)
	if br.UsPerHit != nil || !br.BelowNoise || br.UsPerHitMin != 0 || br.UsPerHitMax != 1 {
		t.Errorf("quick backend: %+v", br)
	}
	if got := br.costText(3); got != "below noise (the unprobed runs spread 2.00 µs/hit)" {
		t.Errorf("quick backend text %q", got)
	}
	// One round: no spread to go by; a cost not above 0 is below noise.
	br = backendCosts(round(9), round(10), 0)
	if br.UsPerHit != nil || !br.BelowNoise || br.costText(1) != "below noise (one run: no cost above 0)" {
		t.Errorf("one round, faster than unprobed: %+v %q", br, br.costText(1))
	}
	if br = backendCosts(round(12), round(10), 0); br.UsPerHit == nil || *br.UsPerHit != 2 || br.costText(1) != "2.00" {
		t.Errorf("one round: %+v", br)
	}
}

// TestMultisets: compareMultisets ignores threads and order, and names
// the least arguments each side has more often than the other.
func TestMultisets(t *testing.T) {
	ev := func(tid int, args string) recorded { return recorded{tid: tid, args: args} }
	a := []recorded{ev(1, "x=1"), ev(2, "x=2"), ev(1, "x=3")}
	b := []recorded{ev(7, "x=3"), ev(7, "x=1"), ev(8, "x=2")}
	if eq, _, _ := compareMultisets(a, b); !eq {
		t.Errorf("the same events in other threads and order differ")
	}
	if eq, _, _ := compareSequences(a, b); eq {
		t.Errorf("compareSequences found other per-thread sequences equal")
	}
	b = append(b, ev(8, "x=2"), ev(8, "x=0"))
	eq, fa, fb := compareMultisets(append(a, ev(1, "x=9")), b)
	if eq || fa != "1 more of: x=9" || fb != "1 more of: x=0" {
		t.Errorf("got %v %q %q", eq, fa, fb)
	}
}
