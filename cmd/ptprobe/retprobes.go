package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strconv"
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
