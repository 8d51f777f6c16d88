package engine

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitFlags make the ptrace thread wait for its tracees and its own
// children only (__WNOTHREAD): other children of the process embedding
// the engine are none of its business, and reaping them would take their
// exit statuses from whoever waits for them. WUNTRACED reports the
// waker's stops (a tracee's are reported anyway).
const waitFlags = unix.WALL | unix.WNOTHREAD | unix.WUNTRACED

// waker is a child of the ptrace thread that any goroutine can make it
// see. The ptrace thread sleeps in wait4, which only the exit or stop of
// one of its own children or tracees ends; a child of its own that stops
// or exits is the one such event that does not touch the traced
// programs. It is cat reading a pipe: SIGSTOP stops it, as often as asked
// (the ptrace thread continues it, see served); closing the pipe's other
// end makes it exit.
type waker struct {
	pid    int
	w      *os.File // cat's standard input, write end
	once   sync.Once
	reaped bool // its exit was waited for
	// mu and gone keep wake from signalling the waker's process ID
	// once it is reaped (and may name another process).
	mu   sync.Mutex
	gone bool
}

// startWaker starts the waker; it must run on the ptrace thread, whose
// child the waker must be.
func startWaker() (*waker, error) {
	k, err := spawnWaker()
	if err != nil {
		return nil, fmt.Errorf("start the helper that wakes the tracer: %w", err)
	}
	return k, nil
}

func spawnWaker() (*waker, error) {
	cat := ""
	for _, path := range []string{"/bin/cat", "/usr/bin/cat"} {
		if unix.Access(path, unix.X_OK) == nil {
			cat = path
			break
		}
	}
	if cat == "" {
		var err error
		if cat, err = exec.LookPath("cat"); err != nil {
			return nil, err
		}
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Its own process group: a terminal's Ctrl-C must not end it.
	p, err := os.StartProcess(cat, []string{"cat"}, &os.ProcAttr{
		Files: []*os.File{r, devNull, devNull},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	pid := p.Pid
	p.Release()
	return &waker{pid: pid, w: w}, nil
}

// wake stops the waker, which wakes the ptrace thread. Any goroutine
// may call it, as often as it likes; wakes before the ptrace thread saw
// the last one count once.
func (k *waker) wake() {
	if k == nil {
		return
	}
	k.mu.Lock()
	if !k.gone {
		unix.Kill(k.pid, unix.SIGSTOP)
	}
	k.mu.Unlock()
}

// served continues the waker, on the ptrace thread, before it serves what
// the wake was for: a wake after this one then stops it anew.
func (k *waker) served() {
	unix.Kill(k.pid, unix.SIGCONT)
}

// is reports whether tid is the waker, noting its exit if it is.
func (k *waker) is(tid int, ws unix.WaitStatus) bool {
	if k == nil || tid != k.pid {
		return false
	}
	if ws.Exited() || ws.Signaled() {
		k.reaped = true
	}
	return true
}

// close ends the waker and waits for it (on the ptrace thread).
func (k *waker) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.gone = true
	k.mu.Unlock()
	k.once.Do(func() { k.w.Close() })
	unix.Kill(k.pid, unix.SIGCONT) // a stopped cat reads its end of file only once continued
	if !k.reaped {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(k.pid, &ws, waitFlags, nil); err != unix.EINTR {
				break
			}
		}
		k.reaped = true
	}
}

// threadHasChildren reports whether the calling thread has children of
// its own (forked by it, not yet reaped). Without /proc's children file
// (CONFIG_PROC_CHILDREN) it reports false.
func threadHasChildren() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/children", unix.Gettid()))
	return err == nil && len(b) > 0
}
