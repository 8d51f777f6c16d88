package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// maxTaskReads bounds how often attach reads a process's thread list
// while it keeps changing.
const maxTaskReads = 100

// attach traces the running process pid with the session's probes, as
// the kernel backend traces a process it did not start: it limits the
// session's events to every thread of pid (and, with follow, to what they
// create from then on), enables them, and reads the events until the
// process exits or ctx is done (then, detached, the session is closed
// and the process runs on untraced). Nothing of the process is stopped:
// the kernel installs its breakpoints in every process mapping a probed
// file, raising USDT semaphores there (update_ref_ctr), and the pid filter
// keeps the events of this one. Its exit status is its parent's to read.
func (s *Session) attach(ctx context.Context, pid int, follow bool, started func(int), fn func(*uprobe.Event) error) (runResult, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return runResult{}, fmt.Errorf("kernel: attach to %d: no such process", pid)
		}
		return runResult{}, fmt.Errorf("kernel: attach to %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(pidfd)
	// The thread list until it is the one the filter holds: a thread
	// created by one not listed yet would be missed (those created by
	// listed threads afterwards event-fork adds).
	var tids []int
	for n := 0; ; n++ {
		now, err := taskIDs(pid)
		if err != nil {
			return runResult{}, fmt.Errorf("kernel: attach to %d: %w", pid, err)
		}
		if slices.Equal(now, tids) {
			break
		}
		if n == maxTaskReads {
			return runResult{}, fmt.Errorf("kernel: attach to %d: its threads kept changing", pid)
		}
		tids = now
		if err := s.setPIDs(follow, tids); err != nil {
			return runResult{}, err
		}
	}
	// A path probe whose file the process no longer has at that path
	// fires nowhere in it: said before the trace starts.
	var replaced []error
	s.mu.Lock()
	for _, p := range s.probes {
		if p.file == tracefs.UprobeEvents {
			if err := resolve.Replaced(pid, p.spec, p.id); err != nil {
				replaced = append(replaced, fmt.Errorf("kernel: %w", err))
			}
		}
	}
	s.mu.Unlock()
	for _, err := range replaced {
		s.warn(err)
	}
	if s.hasProbes() {
		if err := s.Enable(); err != nil {
			return runResult{}, err
		}
	}
	readCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read, err := s.openEvents(readCtx, fn)
	if err != nil {
		return runResult{}, err
	}
	readc := make(chan error, 1)
	go func() { readc <- read() }()
	t0 := time.Now()
	if started != nil {
		started(pid)
	}
	exited := make(chan struct{})
	stopWait := make(chan struct{})
	defer close(stopWait)
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			select {
			case <-stopWait:
				return
			default:
			}
			// A pidfd is readable when its process has exited; the
			// timeout lets the goroutine end with the run.
			if n, err := unix.Poll(fds, 100); err == nil && n > 0 {
				close(exited)
				return
			} else if err != nil && err != unix.EINTR {
				close(exited)
				return
			}
		}
	}()
	select {
	case <-exited:
		derr := s.Disable()
		cancel()
		rerr := <-readc
		r := runResult{pid: pid, wall: time.Since(t0)}
		return s.ended(r, fmt.Sprintf("process %d", pid), derr, rerr)
	case <-ctx.Done():
		return s.detached(runResult{pid: pid, wall: time.Since(t0), detached: true}, readc)
	}
}

// taskIDs lists the thread ids of process pid, sorted.
func taskIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no threads")
	}
	sort.Ints(ids)
	return ids, nil
}
