package engine

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFollowerReads checks the follower's two /proc readers: the CPU a
// thread last ran on, on this thread pinned to each CPU in turn, and the
// machine's runnable threads, at least this one.
func TestFollowerReads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &old)
	f := &cpuFollower{loadavg: -1}
	tested := 0
	for cpu := 0; cpu < 1024 && tested < old.Count(); cpu++ {
		if !old.IsSet(cpu) {
			continue
		}
		tested++
		if err := pinThread(cpu); err != nil {
			t.Fatal(err)
		}
		if got, ok := f.threadCPU(unix.Gettid()); !ok || got != cpu {
			t.Errorf("pinned to CPU %d, /proc says %d (%v)", cpu, got, ok)
		}
	}
	fd, err := unix.Open("/proc/loadavg", unix.O_RDONLY, 0)
	if err != nil {
		t.Skipf("skipped: no /proc/loadavg: %v", err)
	}
	f.loadavg = fd
	defer f.close()
	if n, ok := runnable(fd, f.buf[:]); !ok || n < 1 {
		t.Errorf("runnable threads: %d, %v; want at least this one", n, ok)
	}
}
