package kernel

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ptprobe/ptprobe/uprobe"
	"golang.org/x/sys/unix"
)

const (
	// readBufSize is the read size on trace_pipe. The kernel returns at
	// most a page of whole entries per read; more room costs nothing.
	readBufSize = 64 << 10
	// maxJoinLines bounds how many lines one event with newlines in its
	// strings may span before its first line is given up as bad.
	maxJoinLines = 16
	// pollTimeoutMS is a safety net for the wait on trace_pipe: even if
	// a wakeup is missed, the buffer is read again this often
	// (milliseconds).
	pollTimeoutMS = 200
)

// readerStop wakes and stops one Events call: closing the write end of
// its pipe makes the read end readable (POLLHUP) for the poll it sleeps in.
type readerStop struct {
	once sync.Once
	r, w int // pipe fds
}

func (st *readerStop) stop() { st.once.Do(func() { unix.Close(st.w) }) }

// Events reads the session's events from its instance's trace_pipe and
// calls fn with each, in time order, until ctx is done or the session is
// closed; it then reads what is still buffered without waiting (so that
// the events of a program that has exited are all delivered) and returns
// nil. It returns fn's error as soon as fn returns one, and the errors of
// reading trace_pipe.
//
// Event times are those of the instance's clock, CLOCK_MONOTONIC when
// MonotonicClock says so, with the microsecond resolution trace_pipe
// prints; CPU is the CPU the probe fired on.
//
// fn may keep the event. Lines that cannot be parsed are counted by
// BadLines and passed to Options.Warn. PID is the thread's tgid from
// /proc (once per thread; see fillPID), else the kernel's tgid column,
// else the TID.
//
// trace_pipe is a consuming read: run one Events per session at a time.
func (s *Session) Events(ctx context.Context, fn func(*uprobe.Event) error) error {
	st := &readerStop{}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("kernel: events of %s: %w", s.name, err)
	}
	st.r, st.w = p[0], p[1]
	defer unix.Close(st.r)
	defer st.stop()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.stops[st] = struct{}{}
	s.readers.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.stops, st)
		s.mu.Unlock()
		s.readers.Done()
	}()
	stopAfter := context.AfterFunc(ctx, st.stop)
	defer stopAfter()

	path := filepath.Join(s.inst, "trace_pipe")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("kernel: open %s: %w", path, err)
	}
	defer unix.Close(fd)

	lr := lineReader{s: s, fn: fn, tgids: map[int]tgidOf{}}
	buf := make([]byte, readBufSize)
	stopping := false
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			if err := lr.feed(buf[:n], false); err != nil {
				return err
			}
			continue
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil && err != unix.EAGAIN:
			return fmt.Errorf("kernel: read %s: %w", path, err)
		}
		// Empty (EAGAIN, or end of file once tracing is off).
		if stopping {
			return lr.feed(nil, true)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(st.r), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, pollTimeoutMS); err != nil && err != unix.EINTR {
			return fmt.Errorf("kernel: poll %s: %w", path, err)
		}
		if fds[1].Revents != 0 {
			// Stop: read what is left, then return.
			stopping = true
		}
	}
}

// lineReader splits what trace_pipe returns into entries and delivers
// them.
type lineReader struct {
	s       *Session
	fn      func(*uprobe.Event) error
	pending []byte         // read but not yet delivered
	tgids   map[int]tgidOf // by tid: what fillPID found
}

// feed adds data and delivers every entry that is complete. final says
// no more data will come: what is left is reported as bad.
func (lr *lineReader) feed(data []byte, final bool) error {
	lr.pending = append(lr.pending, data...)
	buf := lr.pending
	var lines []string
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(buf[:i]))
		buf = buf[i+1:]
	}
	rest := buf // a partial line
	used := 0   // lines delivered or given up
	for used < len(lines) {
		n, err := lr.entry(lines[used:], final)
		if err != nil {
			return err
		}
		if n == 0 {
			break // an entry that may continue in data not read yet
		}
		used += n
	}
	var keep []byte
	for _, l := range lines[used:] {
		keep = append(append(keep, l...), '\n')
	}
	keep = append(keep, rest...)
	if final && len(keep) > 0 {
		lr.bad(&LineError{Line: string(keep), Msg: "incomplete entry at the end of trace_pipe"})
		keep = nil
	}
	lr.pending = append(lr.pending[:0], keep...)
	return nil
}

// entry parses the entry starting at lines[0], joining the following
// lines while its last string argument is unfinished. It returns how many
// lines it used, 0 when the entry may continue beyond lines.
func (lr *lineReader) entry(lines []string, final bool) (int, error) {
	lookup := lr.s.lookup
	text := lines[0]
	for n := 1; ; n++ {
		ev := &uprobe.Event{}
		err := parseTraceLine(text, lookup, ev)
		if err == nil {
			lr.fillPID(ev)
			return n, lr.fn(ev)
		}
		if err != errIncomplete {
			lr.bad(err)
			return 1, nil
		}
		if n == len(lines) {
			if final || n >= maxJoinLines {
				lr.bad(&LineError{Line: lines[0], Msg: "string argument not closed"})
				return 1, nil
			}
			return 0, nil
		}
		if n >= maxJoinLines {
			lr.bad(&LineError{Line: lines[0], Msg: "string argument not closed"})
			return 1, nil
		}
		text += "\n" + lines[n]
	}
}

func (lr *lineReader) bad(err error) {
	lr.s.badLines.Add(1)
	lr.s.warn(err)
}

// fillPID sets the event's PID: the thread's tgid from /proc, read once
// per thread, else trace_pipe's tgid column, else the tid. The column
// alone cannot be trusted: the kernel saves a thread's tgid lazily (at a
// later context switch) in a table indexed by pid, so a thread whose pid
// had an owner before (pid_max is 32768 on many machines, and wraps) can
// be shown with the former owner's tgid until then.
//
// The result is kept per tid with the column it came with: a line whose
// column differs is of another thread that reused the tid, or the
// kernel's table caught up, and /proc is read again.
func (lr *lineReader) fillPID(ev *uprobe.Event) {
	column := ev.PID
	if got, ok := lr.tgids[ev.TID]; ok && got.column == column {
		ev.PID = got.tgid
		return
	}
	tgid := procTgid(ev.TID)
	if tgid == 0 {
		tgid = column // the thread is gone: the column, if any
	}
	if tgid == 0 {
		tgid = ev.TID
	}
	lr.tgids[ev.TID] = tgidOf{column: column, tgid: tgid}
	ev.PID = tgid
}

// tgidOf is the tgid fillPID found for a tid, and the column it read.
type tgidOf struct{ column, tgid int }

// procTgid reads the thread group id of a thread from /proc, 0 if gone.
func procTgid(tid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// lookup maps a kernel event name to its probe's info.
func (s *Session) lookup(kname string) *eventInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.byKname[kname]; p != nil {
		return &p.info
	}
	return nil
}
