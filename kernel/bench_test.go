package kernel

import (
	"github.com/ptprobe/ptprobe/internal/testprog"
	"os"
	"strconv"
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

// BenchmarkParseTraceLine is the cost of turning one trace_pipe line into
// an event, which bounds how many events per second Events keeps up with.
func BenchmarkParseTraceLine(b *testing.B) {
	line := "          probes-24540   (  24540) [000] DBZff  1705.569205: push: (0x55b72d4aa250) a=123456 b=246912 s=\"some string\""
	var ev uprobe.Event
	for b.Loop() {
		if err := parseTraceLine(line, testLookup, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRun is the cost of one hit of an entry probe with two args, as
// Run sees it: the program runs b.N hits under the kernel's uprobe while
// Events reads and parses them (start, enable, disable and drain
// amortized over b.N).
func BenchmarkRun(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipped: needs root for tracefs")
	}
	tfs, err := OpenTracefs()
	if err != nil || !tfs.Features.UprobeEvents {
		b.Skipf("skipped: no tracefs uprobe_events: %v", err)
	}
	prog := testprog.Build(b, b.TempDir(), "probes", testprog.PIE...)
	s, err := NewSession(tfs, &Options{BufferKB: 16 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	spec, err := uprobe.Parse("p:t/push " + prog + ":push_func a=%di:s64 b=%si:s64")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddUprobe(spec); err != nil {
		b.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	n := 0
	b.ResetTimer()
	_, _, err = Run(s, []string{prog, strconv.Itoa(b.N)}, nil, devnull, nil, nil, func(*uprobe.Event) error { n++; return nil })
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	lost, _ := s.Lost()
	if n+int(lost) != b.N {
		b.Fatalf("%d events + %d lost, want %d", n, lost, b.N)
	}
	b.ReportMetric(float64(lost), "lost")
}
