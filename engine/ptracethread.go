package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The ptrace thread (docs/DESIGN.md §4). The kernel takes a tracee's
// ptrace requests only from the thread that attached to it, so each Tracer
// has one locked OS thread that starts or seizes the program and then
// handles every stop. Other goroutines reach it through do: a request is
// queued and the waker, a child process of the ptrace thread, is stopped
// (wait4 on the ptrace thread returns for a stop of its own child); the
// ptrace thread runs the queued requests and continues the waker.

// maxThreadTries bounds the goroutines run hops through looking for a
// thread it may trace from.
const maxThreadTries = 16

// run is the session's ptrace thread: it starts the program, arms the
// probes and handles every stop until no traced thread is left.
func (s *Tracer) run(first func() error, started chan<- error, tries int, locked chan<- struct{}) {
	runtime.LockOSThread()
	// Once it traces, never unlocked: the thread is the tracer of the
	// program's threads and must not run other goroutines' code
	// afterwards either; Go retires it when this goroutine returns.
	if locked != nil {
		close(locked)
	}
	if mainThread, children := unix.Gettid() == unix.Getpid(), threadHasChildren(); mainThread || children {
		// Not a thread to trace from. Go never retires the main thread,
		// so what the session sets on it (SCHED_IDLE, a one-CPU
		// affinity) would outlast the session, and the children of
		// exiting threads pass to it. A thread with children of its
		// own (Go forks os/exec children on whatever thread runs the
		// goroutine) would have them reaped by the tracer, which waits
		// for its own children. Start over on another thread: this one
		// stays locked until the new goroutine holds its own, so that
		// it cannot be the same one, then goes back unchanged.
		if tries > 0 {
			moved := make(chan struct{})
			go s.run(first, started, tries-1, moved)
			<-moved
			runtime.UnlockOSThread()
			return
		}
		s.warn(fmt.Errorf("no thread free of children for the tracer (main thread %v): other children of this process may be reaped by it", mainThread))
	}
	s.tracerTID = unix.Gettid()
	defer s.lingerInVfork(true) // attached programs: after Wait returns
	defer close(s.done)
	defer s.lingerInVfork(false) // launched programs: before
	defer s.stopDrain()          // every record read before Wait returns
	defer s.closeFiles()
	defer func() { s.sched.close() }()
	defer s.requests.close()
	quietStops()
	if k, err := startWaker(); err != nil {
		s.warn(fmt.Errorf("%w: requests to the tracer (Detach, probes added) will take effect only at the program's next stop", err))
	} else {
		s.waker = k
		defer k.close()
	}

	err := first()
	started <- err
	if err != nil {
		s.err = err
		return
	}
	if err := s.loop(); err != nil {
		// Leave the programs as they were rather than with int3s
		// nobody handles.
		s.err = err
		s.detachAll()
	}
}

// requestQueue holds what other goroutines ask of the ptrace thread.
type requestQueue struct {
	mu      sync.Mutex
	queue   []request
	closed  bool         // the ptrace thread is gone: requests fail at once
	pending atomic.Int32 // len(queue), read without the lock at each stop
}

type request struct {
	fn   func() error
	done chan error
}

// errTracerDone: a request reached a Tracer whose ptrace thread has ended.
var errTracerDone = errors.New("the tracer has ended (the program exited or it detached)")

// do runs fn on the ptrace thread and returns its error; on the ptrace
// thread itself it runs fn at once.
func (s *Tracer) do(fn func() error) error {
	if s.onPtraceThread() {
		return fn()
	}
	r := request{fn: fn, done: make(chan error, 1)}
	q := &s.requests
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errTracerDone
	}
	q.queue = append(q.queue, r)
	q.pending.Store(int32(len(q.queue)))
	q.mu.Unlock()
	s.waker.wake()
	select {
	case err := <-r.done:
		return err
	case <-s.done:
		// The ptrace thread ended; it answered what it took.
		select {
		case err := <-r.done:
			return err
		default:
			return errTracerDone
		}
	}
}

// onPtraceThread reports whether the caller runs on the ptrace thread
// (from a handler, OnEvent or Warn).
func (s *Tracer) onPtraceThread() bool {
	return s.tracerTID != 0 && unix.Gettid() == s.tracerTID
}

// serveRequests runs the queued requests, on the ptrace thread.
func (s *Tracer) serveRequests() {
	s.sched.serving()
	defer s.sched.served()
	q := &s.requests
	for {
		q.mu.Lock()
		rs := q.queue
		q.queue = nil
		q.pending.Store(0)
		q.mu.Unlock()
		if len(rs) == 0 {
			return
		}
		for _, r := range rs {
			r.done <- r.fn()
		}
	}
}

// close fails the requests still queued, and every later one.
func (q *requestQueue) close() {
	q.mu.Lock()
	rs := q.queue
	q.queue, q.closed = nil, true
	q.mu.Unlock()
	for _, r := range rs {
		r.done <- errTracerDone
	}
}
