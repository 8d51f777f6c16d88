package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/uprobe"
)

// ProbeReport is the comparison of one probe in the first round. Each
// run's hits are taken per thread, in order, and the threads of the two
// runs compared as a multiset of sequences: thread IDs differ between
// runs and threads interleave differently. KernelFirst and PtraceFirst
// are each side's first differing event (threads in the order they
// first hit the probe), when ArgsEqual is false.
type ProbeReport struct {
	Probe       string `json:"probe"`
	KernelHits  int    `json:"kernel_hits"`
	PtraceHits  int    `json:"ptrace_hits"`
	ArgsEqual   bool   `json:"args_equal"`
	KernelFirst string `json:"kernel_first_difference,omitempty"`
	PtraceFirst string `json:"ptrace_first_difference,omitempty"`
}

// BackendReport is one backend's runs.
type BackendReport struct {
	// Hits and Status are those of the first round's run.
	Hits   int `json:"hits"`
	Status int `json:"exit_status"`
	// The program's run time over the rounds: median, least, most.
	WallNS    int64 `json:"wall_ns"`
	WallMinNS int64 `json:"wall_min_ns"`
	WallMaxNS int64 `json:"wall_max_ns"`
	// The cost per hit of each round, (wall - the round's unprobed wall)
	// / hits, in µs: median, least, most; the two bounds at least 0.
	// UsPerHit is null when BelowNoise.
	UsPerHit    *float64 `json:"us_per_hit"`
	UsPerHitMin float64  `json:"us_per_hit_min"`
	UsPerHitMax float64  `json:"us_per_hit_max"`
	// NoiseUsPerHit is the noise floor: the spread of the unprobed runs
	// (most - least) per hit. BelowNoise: the median cost is not above
	// it (with one round, not above 0), so no cost can be told.
	NoiseUsPerHit float64 `json:"noise_us_per_hit"`
	BelowNoise    bool    `json:"below_noise"`
}

// Report is the outcome of Run; its JSON is ptprobe compare --format
// json.
type Report struct {
	Program []string `json:"program"`
	Runs    int      `json:"runs"`
	// The unprobed runs' time: median, least, most.
	BaselineNS    int64         `json:"unprobed_wall_ns"`
	BaselineMinNS int64         `json:"unprobed_wall_min_ns"`
	BaselineMaxNS int64         `json:"unprobed_wall_max_ns"`
	Kernel        BackendReport `json:"kernel"`
	Ptrace        BackendReport `json:"ptrace"`
	Probes        []ProbeReport `json:"probes"`
	// OutputsEqual: the first round's kernel and ptrace runs wrote the
	// same output (when collected: Options.Stdout and Stderr nil) and
	// ended with the same status.
	OutputsEqual bool `json:"outputs_equal"`
	// Agree: every probe had the same hits and arguments.
	Agree bool `json:"agree"`
}

// buildReport compares the first round's kernel and ptrace runs and times
// every round: base[i], kern[i] and ptr[i] ran in round i.
func buildReport(specs []*uprobe.Spec, argv []string, base, kern, ptr []*runResult, unordered bool) *Report {
	baseWalls := walls(base)
	rep := &Report{Program: argv, Runs: len(base), Agree: true,
		BaselineNS: median(baseWalls), BaselineMinNS: slices.Min(baseWalls), BaselineMaxNS: slices.Max(baseWalls)}
	noise := rep.BaselineMaxNS - rep.BaselineMinNS
	rep.Kernel, rep.Ptrace = backendCosts(kern, base, noise), backendCosts(ptr, base, noise)
	k0, p0 := kern[0], ptr[0]
	rep.OutputsEqual = bytes.Equal(k0.output, p0.output) && k0.status == p0.status
	for _, s := range specs {
		name := s.Probe()
		k, p := k0.events[name], p0.events[name]
		pr := ProbeReport{Probe: name, KernelHits: len(k), PtraceHits: len(p)}
		if unordered {
			pr.ArgsEqual, pr.KernelFirst, pr.PtraceFirst = compareMultisets(k, p)
		} else {
			pr.ArgsEqual, pr.KernelFirst, pr.PtraceFirst = compareSequences(k, p)
		}
		if pr.KernelHits != pr.PtraceHits || !pr.ArgsEqual {
			rep.Agree = false
		}
		rep.Probes = append(rep.Probes, pr)
	}
	return rep
}

// backendCosts times one backend's runs against the unprobed run of
// their round; noiseNS is the spread of the unprobed runs.
func backendCosts(runs, base []*runResult, noiseNS int64) BackendReport {
	w := walls(runs)
	br := BackendReport{Hits: runs[0].nhits, Status: runs[0].status,
		WallNS: median(w), WallMinNS: slices.Min(w), WallMaxNS: slices.Max(w), BelowNoise: true}
	var costs, hits []float64
	for i, r := range runs {
		if r.nhits > 0 {
			costs = append(costs, float64(r.wall-base[i].wall)/float64(r.nhits)/1e3)
			hits = append(hits, float64(r.nhits))
		}
	}
	if len(costs) == 0 {
		return br // no hit: no cost per hit
	}
	br.NoiseUsPerHit = float64(noiseNS) / median(hits) / 1e3
	m := median(costs)
	br.UsPerHitMin, br.UsPerHitMax = max(slices.Min(costs), 0), max(slices.Max(costs), 0)
	if m > br.NoiseUsPerHit {
		br.UsPerHit, br.BelowNoise = &m, false
	}
	return br
}

func walls(runs []*runResult) []int64 {
	w := make([]int64, len(runs))
	for i, r := range runs {
		w[i] = r.wall.Nanoseconds()
	}
	return w
}

// median of a non-empty list: the middle value, or the mean of the two
// middle ones.
func median[T int64 | float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// compareSequences compares the per-thread sequences of fetched arguments
// of two runs. Thread IDs differ between runs and threads interleave
// differently, so each run's threads are compared as a multiset of
// sequences. When they differ it returns the first differing event of
// each side (threads taken in the order they first hit the probe).
func compareSequences(a, b []recorded) (equal bool, firstA, firstB string) {
	sa, sb := perThread(a), perThread(b)
	ka, kb := seqKeys(sa), seqKeys(sb)
	sort.Strings(ka)
	sort.Strings(kb)
	if strings.Join(ka, "\x00") == strings.Join(kb, "\x00") {
		return true, "", ""
	}
	for i := 0; i < max(len(sa), len(sb)); i++ {
		var x, y []recorded
		if i < len(sa) {
			x = sa[i]
		}
		if i < len(sb) {
			y = sb[i]
		}
		for j := 0; j < max(len(x), len(y)); j++ {
			ex, ey := "(none)", "(none)"
			if j < len(x) {
				ex = fmt.Sprintf("thread #%d hit #%d: %s", i+1, j+1, x[j].args)
			}
			if j < len(y) {
				ey = fmt.Sprintf("thread #%d hit #%d: %s", i+1, j+1, y[j].args)
			}
			if j >= len(x) || j >= len(y) || x[j].args != y[j].args {
				return false, ex, ey
			}
		}
	}
	return false, "(same sequences in another thread order)", ""
}

// compareMultisets compares the fetched arguments of two runs as
// multisets, threads and order aside. When they differ it returns, for
// each side, the least arguments (in byte order) that the side has more
// often than the other, "(none)" for a side that has none.
func compareMultisets(a, b []recorded) (equal bool, firstA, firstB string) {
	count := make(map[string]int)
	for _, e := range a {
		count[e.args]++
	}
	for _, e := range b {
		count[e.args]--
	}
	firstA, firstB = "(none)", "(none)"
	var moreA, moreB []string
	for args, n := range count {
		switch {
		case n > 0:
			moreA = append(moreA, args)
		case n < 0:
			moreB = append(moreB, args)
		}
	}
	if len(moreA) == 0 && len(moreB) == 0 {
		return true, "", ""
	}
	more := func(n int, args string) string {
		if args == "" {
			args = "(no arguments)"
		}
		return fmt.Sprintf("%d more of: %s", n, args)
	}
	if len(moreA) > 0 {
		firstA = more(count[slices.Min(moreA)], slices.Min(moreA))
	}
	if len(moreB) > 0 {
		firstB = more(-count[slices.Min(moreB)], slices.Min(moreB))
	}
	return false, firstA, firstB
}

func perThread(evs []recorded) [][]recorded {
	idx := make(map[int]int)
	var seqs [][]recorded
	for _, e := range evs {
		i, ok := idx[e.tid]
		if !ok {
			i = len(seqs)
			idx[e.tid] = i
			seqs = append(seqs, nil)
		}
		seqs[i] = append(seqs[i], e)
	}
	return seqs
}

func seqKeys(seqs [][]recorded) []string {
	keys := make([]string, len(seqs))
	for i, s := range seqs {
		var b strings.Builder
		for _, e := range s {
			b.WriteString(e.args)
			b.WriteByte('\n')
		}
		keys[i] = b.String()
	}
	return keys
}

// AppendText appends the report to b as ptprobe compare prints it: a
// table of the probes' hits and whether their arguments agree (with the
// first difference), a table of the runs' times and costs per hit, and
// the verdict.
func (rep *Report) AppendText(out []byte) []byte {
	b := bytes.NewBuffer(out)
	fmt.Fprintf(b, "program: %s\n\n", strings.Join(rep.Program, " "))
	fmt.Fprintf(b, "%-32s %10s %10s  %s\n", "PROBE", "KERNEL", "PTRACE", "ARGS")
	for _, p := range rep.Probes {
		args := "equal"
		if !p.ArgsEqual {
			args = "DIFFER"
		}
		mark := ""
		if p.KernelHits != p.PtraceHits {
			mark = "  <- hits differ"
		}
		fmt.Fprintf(b, "%-32s %10d %10d  %s%s\n", p.Probe, p.KernelHits, p.PtraceHits, args, mark)
		if !p.ArgsEqual {
			fmt.Fprintf(b, "    kernel: %s\n    ptrace: %s\n", p.KernelFirst, p.PtraceFirst)
		}
	}
	rounds := "1 run each"
	if rep.Runs > 1 {
		rounds = fmt.Sprintf("median of %d runs each, interleaved; least-most in brackets", rep.Runs)
	}
	fmt.Fprintf(b, "\n%s\n%-10s %26s %10s  %s\n", rounds, "RUN", "WALL ms", "HITS", "µs/hit")
	ms := func(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64) }
	wall := func(m, lo, hi int64) string {
		if rep.Runs == 1 {
			return ms(m)
		}
		return fmt.Sprintf("%s [%s-%s]", ms(m), ms(lo), ms(hi))
	}
	fmt.Fprintf(b, "%-10s %26s %10s  %s\n", "unprobed", wall(rep.BaselineNS, rep.BaselineMinNS, rep.BaselineMaxNS), "-", "-")
	for _, r := range []struct {
		name string
		br   BackendReport
	}{{"kernel", rep.Kernel}, {"ptrace", rep.Ptrace}} {
		fmt.Fprintf(b, "%-10s %26s %10d  %s\n", r.name, wall(r.br.WallNS, r.br.WallMinNS, r.br.WallMaxNS), r.br.Hits, r.br.costText(rep.Runs))
	}
	if !rep.OutputsEqual {
		fmt.Fprintf(b, "\nthe program's output or exit status differed between the runs (kernel %d, ptrace %d)\n", rep.Kernel.Status, rep.Ptrace.Status)
	}
	if rep.Agree {
		b.WriteString("\nhits and arguments agree\n")
	} else {
		b.WriteString("\nthe backends DIFFER\n")
	}
	return b.Bytes()
}

// costText is the µs/hit column: the median cost and its spread, or that
// it is below the noise of the unprobed runs.
func (br BackendReport) costText(runs int) string {
	us := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	switch {
	case br.Hits == 0 && br.UsPerHit == nil:
		return "-"
	case br.BelowNoise && runs == 1:
		return "below noise (one run: no cost above 0)"
	case br.BelowNoise:
		return fmt.Sprintf("below noise (the unprobed runs spread %s µs/hit)", us(br.NoiseUsPerHit))
	case runs == 1:
		return us(*br.UsPerHit)
	}
	return fmt.Sprintf("%s [%s-%s], noise %s", us(*br.UsPerHit), us(br.UsPerHitMin), us(br.UsPerHitMax), us(br.NoiseUsPerHit))
}

// AppendJSON appends the report to b as one JSON object and a newline.
func (rep *Report) AppendJSON(b []byte) []byte {
	j, err := json.Marshal(rep)
	if err != nil {
		// Only plain data: cannot happen.
		return fmt.Appendf(b, "{\"error\":%q}\n", err.Error())
	}
	return append(append(b, j...), '\n')
}
