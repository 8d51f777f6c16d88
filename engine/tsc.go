package engine

import (
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// rdtscp reads the time stamp counter and TSC_AUX (cpu | node<<12).
func rdtscp() (tsc uint64, aux uint32)

// tscClock turns the TSC values of the no-stop path's records into
// CLOCK_MONOTONIC nanoseconds, the stop path's clock: from a pair of
// readings of both clocks and the TSC's rate, measured over calibrateFor
// when the first area is made and refined at each heartbeat. The TSC is
// the kernel's own clock source here (checked by tscUsable), constant and
// running through sleep states, so a linear map is exact to the rate's
// error (parts per million).
type tscClock struct {
	mu       sync.Mutex
	tsc0     uint64
	ns0      int64
	perNS    float64 // ticks per nanosecond
	lastTSC  uint64
	lastNS   int64
	hzTicks  uint64 // ticks in one second, for the areas' heartbeat timeout
	measured bool
}

// calibrateFor is how long the first measurement of the TSC's rate takes.
const calibrateFor = 5 * time.Millisecond

// monoNS is CLOCK_MONOTONIC in nanoseconds.
func monoNS() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// pair reads both clocks, as close together as it can: the TSC on each
// side of the clock's reading, kept when they are near.
func pair() (uint64, int64) {
	best, bestTSC, bestNS := ^uint64(0), uint64(0), int64(0)
	for range 5 {
		a, _ := rdtscp()
		ns := monoNS()
		b, _ := rdtscp()
		if b-a < best {
			best, bestTSC, bestNS = b-a, a+(b-a)/2, ns
		}
	}
	return bestTSC, bestNS
}

// start measures the rate once.
func (c *tscClock) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.measured {
		return
	}
	c.tsc0, c.ns0 = pair()
	time.Sleep(calibrateFor)
	c.lastTSC, c.lastNS = pair()
	c.perNS = float64(c.lastTSC-c.tsc0) / float64(c.lastNS-c.ns0)
	c.hzTicks = uint64(c.perNS * 1e9)
	c.measured = true
}

// refine takes a new reading, for a better rate over a longer span.
func (c *tscClock) refine() {
	t, ns := pair()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ns > c.ns0 && t > c.tsc0 {
		c.perNS = float64(t-c.tsc0) / float64(ns-c.ns0)
		c.hzTicks = uint64(c.perNS * 1e9)
		c.lastTSC, c.lastNS = t, ns
	}
}

// ns converts a TSC value of this machine.
func (c *tscClock) ns(tsc uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(c.lastNS + int64(float64(int64(tsc-c.lastTSC))/c.perNS))
}

// errTSC: the TSC cannot time the no-stop path's records here.
var errTSC = errors.New("the TSC is not the kernel's clock source, or not constant")

// tscUsable reports whether records can be timed by the TSC: it must be
// the kernel's clock source (so the kernel found it synchronized across
// CPUs), constant and not stopping in idle states, with RDTSCP.
func tscUsable() error {
	src, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	if err != nil || strings.TrimSpace(string(src)) != "tsc" {
		return errTSC
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return errTSC
	}
	for _, flag := range []string{" constant_tsc", " nonstop_tsc", " rdtscp"} {
		if !strings.Contains(string(info), flag) {
			return errTSC
		}
	}
	return nil
}
