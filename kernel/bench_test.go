package kernel

import (
	"os"
	"strconv"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/uprobe"
)

// BenchmarkRun is the cost of one hit of an entry probe with two args, as
// a run sees it: the program runs b.N hits under the kernel's uprobe while
// Events reads and parses them (start, enable, disable and drain
// amortized over b.N).
func BenchmarkRun(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipped: needs root for tracefs")
	}
	tfs, err := tracefs.Open()
	if err != nil || !tfs.Features.UprobeEvents {
		b.Skipf("skipped: no tracefs uprobe_events: %v", err)
	}
	prog := testprog.Build(b, b.TempDir(), "probes", testprog.PIE...)
	s, err := newSession(tfs, &Options{BufferKB: 16 << 10})
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
	_, err = runArgv(s, []string{prog, strconv.Itoa(b.N)}, devnull, func(*uprobe.Event) error { n++; return nil })
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
