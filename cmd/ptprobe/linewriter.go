package main

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// pipeBuf is Linux's PIPE_BUF: a write(2) of at most this many bytes to a
// pipe is atomic, never interleaved with another process's writes.
const pipeBuf = 4096

// lineWriter batches ptprobe's output (events, --count, --latency) into
// write calls that each end at a line boundary and hold at most pipeBuf
// bytes; a single line longer than that is written alone, in one call.
// By default the traced program writes to the same stdout as ptprobe, so
// a write that ended inside a line would let a line of the program land in
// the middle of an event, and one larger than PIPE_BUF could be split by
// one on a pipe. What is buffered is flushed at least every 100 ms, so a
// slow stream shows promptly.
//
// The first write error (EPIPE from a reader that went away, ENOSPC) is
// kept: later output is dropped, and Close returns it.
type lineWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // output not yet written; may end in an unfinished line
	err error
	// onFail, if set, is called once, at the first write error.
	onFail func()

	stop chan struct{}
	done chan struct{}
}

// flushEvery is how long output may wait in the buffer: a slow stream of
// events shows promptly.
const flushEvery = 100 * time.Millisecond

// newLineWriter returns a lineWriter on w that flushes whole lines at
// least every interval.
func newLineWriter(w io.Writer, interval time.Duration) *lineWriter {
	lw := &lineWriter{w: w, buf: make([]byte, 0, 2*pipeBuf), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flusher(interval)
	return lw
}

// Write buffers p, and writes the buffer's whole lines as soon as they
// make a full write. It never fails: errors are reported by Close.
func (lw *lineWriter) Write(p []byte) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.err != nil {
		return
	}
	lw.buf = append(lw.buf, p...)
	lw.writeLines(pipeBuf)
}

// writeLines writes whole lines from the buffer while more than keep bytes
// are left in it, each write as full as the lines allow. keep = pipeBuf
// leaves a partly filled write to wait for more lines; keep = 0 writes every
// whole line. An unfinished last line stays. Called with mu held.
func (lw *lineWriter) writeLines(keep int) {
	off := 0
	for len(lw.buf)-off > keep && lw.err == nil {
		n, ok := chunkLen(lw.buf[off:])
		if !ok {
			break
		}
		_, lw.err = lw.w.Write(lw.buf[off : off+n])
		off += n
	}
	if lw.err != nil {
		if lw.onFail != nil {
			lw.onFail()
			lw.onFail = nil
		}
		lw.buf = lw.buf[:0]
		return
	}
	lw.buf = lw.buf[:copy(lw.buf, lw.buf[off:])]
}

// chunkLen is the length of the next write of b: the whole lines that fit
// in pipeBuf, or the first line alone when it is longer than that. ok is
// false when b holds no whole line.
func chunkLen(b []byte) (n int, ok bool) {
	if len(b) <= pipeBuf {
		n = bytes.LastIndexByte(b, '\n') + 1
		return n, n > 0
	}
	if i := bytes.LastIndexByte(b[:pipeBuf], '\n'); i >= 0 {
		return i + 1, true
	}
	if i := bytes.IndexByte(b[pipeBuf:], '\n'); i >= 0 {
		return pipeBuf + i + 1, true
	}
	return 0, false
}

func (lw *lineWriter) flusher(interval time.Duration) {
	defer close(lw.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-lw.stop:
			return
		case <-tick.C:
			lw.mu.Lock()
			lw.writeLines(0)
			lw.mu.Unlock()
		}
	}
}

// Close stops the flusher and writes everything buffered, an unfinished
// last line included. It returns the first write error.
func (lw *lineWriter) Close() error {
	close(lw.stop)
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.writeLines(0)
	if lw.err == nil && len(lw.buf) > 0 {
		_, lw.err = lw.w.Write(lw.buf)
		lw.buf = lw.buf[:0]
	}
	return lw.err
}
