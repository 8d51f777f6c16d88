package tracefs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
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
	// strings may span before its first line is given up as bad: a
	// string argument is at most MAX_STRING_SIZE (4096) bytes, all of
	// them newlines at worst (a Go string's pointer read as a C string
	// runs on through the program's constants), and an event has a few.
	maxJoinLines = 4 * 4096
	// pollTimeoutMS is a safety net for the wait on trace_pipe: even if
	// a wakeup is missed, the buffer is read again this often
	// (milliseconds).
	pollTimeoutMS = 200
)

// Pipe is an instance's trace_pipe, opened for Read, with a way to stop
// a Read from another goroutine: closing the write end of a pipe of its
// own makes the read end readable (POLLHUP) for the poll Read sleeps in.
type Pipe struct {
	path     string
	fd       int
	wakeR    int
	wakeW    int
	stopOnce sync.Once
}

// OpenPipe opens the instance's trace_pipe.
func (i *Instance) OpenPipe() (*Pipe, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("trace_pipe of %s: %w", i.Name, err)
	}
	path := i.Path("trace_pipe")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Pipe{path: path, fd: fd, wakeR: p[0], wakeW: p[1]}, nil
}

// Stop makes Read return once it has read what is buffered. It may be
// called from any goroutine, more than once, before or during Read.
func (p *Pipe) Stop() { p.stopOnce.Do(func() { unix.Close(p.wakeW) }) }

// Close closes the pipe (and stops it). Call it once Read has returned.
func (p *Pipe) Close() error {
	p.Stop()
	unix.Close(p.wakeR)
	return unix.Close(p.fd)
}

// Read reads trace_pipe and calls fn with each event, in time order,
// until Stop; it then reads what is still buffered without waiting (so
// that the events of a program that has exited are all delivered) and
// returns nil. It returns fn's error as soon as fn returns one, and the
// errors of reading trace_pipe.
//
// lookup maps a kernel event name to its EventInfo (nil: not one of
// ours); bad receives the lines that cannot be parsed. fn may keep the
// event. PID is the thread's tgid from /proc (once per thread; see
// fillPID), else the kernel's tgid column, else the TID.
//
// trace_pipe is a consuming read: one Read at a time.
func (p *Pipe) Read(lookup func(kname string) *EventInfo, fn func(*uprobe.Event) error, bad func(error)) error {
	lr := lineReader{lookup: lookup, fn: fn, bad: bad, tgids: map[int]tgidOf{}}
	buf := make([]byte, readBufSize)
	stopping := false
	for {
		n, err := unix.Read(p.fd, buf)
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
			return fmt.Errorf("read %s: %w", p.path, err)
		}
		// Empty (EAGAIN, or end of file once tracing is off).
		if stopping {
			return lr.feed(nil, true)
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}, {Fd: int32(p.wakeR), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, pollTimeoutMS); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll %s: %w", p.path, err)
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
	lookup  func(kname string) *EventInfo
	fn      func(*uprobe.Event) error
	bad     func(error)
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
	text := lines[0]
	for n := 1; ; n++ {
		ev := &uprobe.Event{}
		var info *EventInfo
		err := parseTraceLine(text, func(kname string) *EventInfo { info = lr.lookup(kname); return info }, ev)
		if err == nil {
			lr.fillPID(ev)
			info.Events.Add(1)
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
