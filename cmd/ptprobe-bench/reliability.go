package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/internal/stress"
)

// reliability runs the engine's race hunts at a size go test does not:
// attach/detach cycles on an 8-thread hot loop (stress.DetachCycles).
func (b *bench) reliability() []byte {
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "\n## Reliability\n\n")
	start := time.Now()
	r, err := stress.DetachCycles(b.hot, b.dir, 8, b.detaches)
	if err != nil {
		fmt.Fprintf(&rep, "Attach/detach cycles: failed: %v\n", err)
		return rep.Bytes()
	}
	fmt.Fprintf(&rep, "Attach/detach cycles on `testdata/c/hot.c` (8 threads in a hot loop; entry probes with fetch-args and formatted events, entry and return probes on the same functions, post handlers with return probes, in turn), each detach in the middle of hits: %d cycles in %.1f s, %d hits, **%d deaths**, %d other failures (text that differs from the file, a wrong program output).\n",
		r.Cycles, time.Since(start).Seconds(), r.Hits, len(r.Deaths), len(r.Failures))
	for _, d := range append(r.Deaths, r.Failures...) {
		fmt.Fprintf(&rep, "- %s\n", strings.TrimSpace(d))
	}
	return rep.Bytes()
}
