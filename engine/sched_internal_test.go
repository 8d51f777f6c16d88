package engine

import (
	"runtime"
	"strconv"
	"testing"
	"time"

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

// TestTaskState: the watcher's starvation reader gives this running
// thread's state as R, and a thread sleeping in a system call's as S.
func TestTaskState(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var buf [128]byte
	fd, err := unix.Open("/proc/thread-self/stat", unix.O_RDONLY, 0)
	if err != nil {
		t.Skipf("skipped: no /proc/thread-self/stat: %v", err)
	}
	defer unix.Close(fd)
	if s, ok := taskState(fd, buf[:]); !ok || s != 'R' {
		t.Errorf("this thread's state %q (%v), want R", s, ok)
	}
	tids := make(chan int)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		var r [1]byte
		p := make([]int, 2)
		unix.Pipe(p)
		go func() { <-done; unix.Write(p[1], r[:]) }()
		unix.Read(p[0], r[:]) // sleeps until done
		unix.Close(p[0])
		unix.Close(p[1])
	}()
	tid := <-tids
	defer close(done)
	sfd, err := unix.Open("/proc/self/task/"+strconv.Itoa(tid)+"/stat", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if s, ok := taskState(sfd, buf[:]); ok && s == 'S' {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("a thread blocked in read: state %q (%v), want S", s, ok)
		}
	}
}
