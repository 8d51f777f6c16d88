package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/uprobe"
)

// libcSites returns up to n probe specs on instruction boundaries of
// libc's functions, and the specs of every libc function's entry.
func libcSites(n int) (sites, entries []backend.Probe, err error) {
	path, ok := elfsym.SearchLibrary("libc")
	if !ok {
		return nil, nil, fmt.Errorf("libc not found")
	}
	f, err := elfsym.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	i := 0
	for _, sym := range f.Symbols() {
		if sym.Type != elf.STT_FUNC || sym.Size == 0 {
			continue
		}
		i++
		spec, err := uprobe.Parse(fmt.Sprintf("p:e/f%d %s:0x%x", i, path, sym.Offset))
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, backend.Probe{Spec: spec})
		code := make([]byte, sym.Size)
		f.ReadAt(code, int64(sym.Offset))
		for pos := 0; pos < len(code) && len(sites) < n; {
			inst, err := arch.Decode(code[pos:])
			if err != nil {
				break // the rest of this function cannot be proved
			}
			if inst.Class != arch.ClassRefuse {
				spec, err := uprobe.Parse(fmt.Sprintf("p:s/s%d %s:0x%x", len(sites), path, sym.Offset+uint64(pos)))
				if err != nil {
					return nil, nil, err
				}
				sites = append(sites, backend.Probe{Spec: spec})
			}
			pos += inst.Len
		}
	}
	return sites, entries, nil
}

func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v
}

// scaling measures how the cost per hit and the start-up change with the
// number of probes and of threads, and what memory and allocations cost.
func (b *bench) scaling() []byte {
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "\n## Scaling (ptprobe one-stop, `push %%rbp` function)\n\n")
	extra, entries, err := libcSites(9999)
	if err != nil {
		b.notes = append(b.notes, "scaling with many probes skipped: "+err.Error())
		return rep.Bytes()
	}
	hwm0 := vmHWM()
	fmt.Fprintf(&rep, "| probes armed | µs/hit |\n|---:|---:|\n")
	// The three take turns run by run, as the floor rows do.
	counts := []int{1, 100, 10000}
	var names []string
	var runners []runner
	for _, k := range counts {
		names = append(names, fmt.Sprintf("ptprobe one-stop, %d probes armed", k))
		runners = append(runners, b.engineRun("p:bench/hit "+b.prog+":FN", uprobe.Handlers{}, false, extra[:k-1]))
	}
	ms := b.interleaved("push", false, names, runners)
	for i, k := range counts {
		fmt.Fprintf(&rep, "| %d | %s |\n", k, cellOf(ms[i]))
	}
	if ms[0].err == nil && ms[2].err == nil && ms[0].median() > 0 {
		fmt.Fprintf(&rep, "\n10000 probes / 1 probe: %.2f× (target ≤ 1.1×). ", ms[2].median()/ms[0].median())
	}
	fmt.Fprintf(&rep, "Peak RSS of the benchmark process grew by %d KiB while 10000 probes were armed (VmHWM).\n", vmHWM()-hwm0)

	// Start-up with a probe on every libc function: an empty run.
	for _, probes := range [][]backend.Probe{nil, entries} {
		start := time.Now()
		sess, err := engine.Launch(b.argv("push", 0), &engine.Options{Probes: append([]backend.Probe{{Spec: mustSpec("p:bench/hit " + b.prog + ":bench_push")}}, probes...), Process: backend.Process{Stdout: devNull()}})
		if err != nil {
			b.notes = append(b.notes, "arming every libc function: "+err.Error())
			break
		}
		sess.Wait()
		if probes != nil {
			var hits uint64
			for _, p := range sess.Probes() {
				hits += p.Hits()
			}
			fmt.Fprintf(&rep, "\nA run of the benchmark program with no call, with a probe on each of libc's %d functions: %.1f ms from launch to exit (%d hits during start-up and exit), against %.1f ms with one probe.\n",
				len(probes), float64(time.Since(start).Microseconds())/1000, hits, b.emptyRun)
		} else {
			b.emptyRun = float64(time.Since(start).Microseconds()) / 1000
		}
	}

	// Allocations per hit: the difference between runs of n and 2n calls.
	mallocs := func(n int) uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		b.engineRun("p:bench/hit "+b.prog+":FN", uprobe.Handlers{}, false, nil)("push", n)
		runtime.ReadMemStats(&ms)
		return ms.Mallocs - before
	}
	n := b.calls
	a1, a2 := mallocs(n), mallocs(2*n)
	perHit := (float64(a2) - float64(a1)) / float64(n)
	if perHit > -0.0005 && perHit < 0.0005 {
		perHit = 0 // not "-0.000"
	}
	fmt.Fprintf(&rep, "\nAllocations per hit on the one-stop path: %.3f (mallocs of a %d-call run minus a %d-call run, over %d; the target is 0).\n", perHit, 2*n, n, n)

	// Threads hitting the probe at once, under both tracer policies.
	fmt.Fprintf(&rep, "\n| threads hitting the probe | µs/hit, default | µs/hit, --tracer-priority normal |\n|---:|---:|---:|\n")
	for _, th := range []int{1, 2, 8} {
		fmt.Fprintf(&rep, "| %d | %s | %s |\n", th, b.threadsRun(th, engine.PriorityAuto), b.threadsRun(th, engine.PriorityNormal))
	}
	fmt.Fprintf(&rep, "\nWall time of testdata/c/threads.c traced minus untraced, over the hits (calls/threads each); every run's hits checked.\n")
	return rep.Bytes()
}

// threadsRun is the cost per hit of th threads hitting one probe at
// once, as a table cell: (traced - untraced wall time) / hits, medians.
func (b *bench) threadsRun(th int, prio engine.TracerPriority) string {
	per := b.calls / th
	argv := []string{b.threads, strconv.Itoa(th), strconv.Itoa(per)}
	var traced, plain []float64
	for i := 0; i < b.runs; i++ {
		t0 := time.Now()
		if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
			return "failed: " + err.Error()
		}
		plain = append(plain, float64(time.Since(t0).Nanoseconds()))
		t0 = time.Now()
		sess, err := engine.Launch(argv, &engine.Options{Probes: []backend.Probe{{Spec: mustSpec("p:bench/t " + b.threads + ":probed")}}, Process: backend.Process{Stdout: devNull()}, Sched: engine.SchedOptions{Priority: prio}})
		if err != nil {
			return "failed: " + err.Error()
		}
		sess.Wait()
		if got := sess.Probes()[0].Hits(); got != uint64(th*per) {
			return fmt.Sprintf("failed: %d hits, want %d", got, th*per)
		}
		traced = append(traced, float64(time.Since(t0).Nanoseconds()))
	}
	return fmt.Sprintf("%.3f", (medianOf(traced)-medianOf(plain))/float64(th*per)/1000)
}

func cellOf(m *measurement) string {
	if m.err != nil {
		return "failed: " + m.err.Error()
	}
	return fmt.Sprintf("%.3f", m.median())
}

// medianOf is the median of v, 0 for none.
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func mustSpec(text string) *uprobe.Spec {
	s, err := uprobe.Parse(text)
	if err != nil {
		panic(fmt.Sprintf("benchmark spec %q: %v", text, err)) // a bug of this program
	}
	return s
}

func devNull() *os.File {
	f, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	return f
}

// busy measures the one-stop path while every CPU runs a busy loop of
// another process: the case where a SCHED_IDLE tracer would starve.
func (b *bench) busy() []byte {
	var rep bytes.Buffer
	n := runtime.NumCPU()
	fmt.Fprintf(&rep, "\n## Every CPU busy (%d other processes spinning; `push %%rbp`, calls/10 a run)\n\n", n)
	var spinners []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			b.notes = append(b.notes, "busy machine: "+err.Error())
			break
		}
		spinners = append(spinners, c)
	}
	defer func() {
		for _, c := range spinners {
			c.Process.Kill()
			c.Wait()
		}
	}()
	time.Sleep(200 * time.Millisecond) // let them spread over the CPUs
	probe := "p:bench/hit " + b.prog + ":FN"
	rows := b.interleaved("push", true,
		[]string{"busy: C ptrace tracer (floor)", "busy: ptprobe one-stop (auto)", "busy: ptprobe --tracer-priority normal", "busy: ptprobe --tracer-priority idle"},
		[]runner{
			b.floorRun(),
			b.engineRun(probe, uprobe.Handlers{}, false, nil),
			b.engineRunCfg(probe, uprobe.Handlers{}, false, nil, engine.Options{StopPath: true, Sched: engine.SchedOptions{Priority: engine.PriorityNormal}}),
			b.engineRunCfg(probe, uprobe.Handlers{}, false, nil, engine.Options{StopPath: true, Sched: engine.SchedOptions{Priority: engine.PriorityIdle}}),
		})
	fmt.Fprintf(&rep, "| mechanism | µs/hit | runs (µs/hit) |\n|---|---:|---|\n")
	for _, m := range rows {
		var runs []string
		for _, u := range m.us {
			runs = append(runs, fmt.Sprintf("%.1f", u))
		}
		fmt.Fprintf(&rep, "| %s | %s | %s |\n", strings.TrimPrefix(m.name, "busy: "), cellOf(m), strings.Join(runs, " "))
	}
	fmt.Fprintf(&rep, "\nauto leaves SCHED_IDLE once the tracer starves (runnable, and no stop handled, at two looks 10 ms apart by a watcher goroutine that sets the tracer thread's policy from outside: a starved SCHED_IDLE tracer could not see it itself), and takes it again after half a second with a CPU free. `idle` keeps it: a SCHED_IDLE thread runs only when no normal thread wants its CPU, so a hit may wait for a spinner's time slice; how often that happens varies from run to run, hence the runs column. The C floor, tracer and program confined to one CPU, shares that CPU with a spinner.\n")
	return rep.Bytes()
}
