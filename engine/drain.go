package engine

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/internal/recorder"
	"github.com/ptprobe/ptprobe/uprobe"
)

// The drain: a goroutine of each Tracer with no-stop sites that reads the
// areas' rings, without stopping anyone, and turns each record into the
// events of its site's probes (docs/DESIGN.md §8). It beats each area's
// heart, so that a recorder waiting for room knows ptprobe is alive.

const (
	// beatEvery spaces the heartbeats; a recorder gives up waiting
	// after a second without one (ADead).
	beatEvery = 100 * time.Millisecond
	// pollEvery spaces the drain's looks at rings that were busy in
	// the last idleAfter: the recorders then make no system call to
	// wake it (a futex wake at each record cost them more than the
	// record). Rings idle for longer are waited on (futex, up to
	// sleepFor): the recorder wakes the drain for the first record.
	pollEvery = time.Millisecond
	idleAfter = 50 * time.Millisecond
	sleepFor  = 100 * time.Millisecond
)

// drainer is the drain's state.
type drainer struct {
	stop chan struct{} // closed: drain what is committed, then end
	done chan struct{}
	// beatDone is closed when the heartbeat goroutine has ended.
	beatDone chan struct{}
	ev       uprobe.Event
	rec      record
	buf      []byte            // a record that wraps, copied whole
	busy     time.Time         // when the drain last found records
	comms    map[uint32]string // thread names by ID
}

// addArea gives the drain another area to read, starting it the first
// time.
func (s *Tracer) addArea(a *area) {
	s.fastMu.Lock()
	s.areas = append(s.areas, a)
	s.publishAreas()
	s.fastMu.Unlock()
	if s.drain == nil {
		s.drain = &drainer{stop: make(chan struct{}), done: make(chan struct{}), beatDone: make(chan struct{}), comms: make(map[uint32]string)}
		go s.drainLoop(s.drain)
		go s.heartbeat(s.drain)
	}
}

// publishAreas makes s.areas what the heartbeat reads; under fastMu.
func (s *Tracer) publishAreas() {
	list := append([]*area(nil), s.areas...)
	s.areaList.Store(&list)
}

// heartbeat beats every area's heart each beatEvery, on a goroutine of
// its own that takes no lock the ptrace thread holds: a ptrace thread
// starved at SCHED_IDLE, or a drain slowed by its OnEvent, must not look
// like a dead ptrace to the recorders (they would count hits missed
// rather than wait for room).
func (s *Tracer) heartbeat(d *drainer) {
	defer close(d.beatDone)
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		}
		if list := s.areaList.Load(); list != nil {
			for _, a := range *list {
				a.beat()
			}
		}
	}
}

// stopDrain drains what is committed and ends the drain; it runs on the
// ptrace thread when the session ends.
func (s *Tracer) stopDrain() {
	if s.drain == nil {
		return
	}
	close(s.drain.stop)
	<-s.drain.done
	<-s.drain.beatDone
	s.fastMu.Lock()
	for _, a := range s.areas {
		a.close()
	}
	s.areas = nil
	s.publishAreas()
	s.fastMu.Unlock()
}

func (s *Tracer) drainLoop(d *drainer) {
	defer close(d.done)
	lastBeat, lastRefine := time.Now(), time.Now()
	for {
		s.fastMu.Lock()
		areas := append([]*area(nil), s.areas...)
		s.fastMu.Unlock()
		kick, kicked := kickOf(areas)
		n := 0
		for _, a := range areas {
			n += s.drainArea(d, a)
		}
		s.closeGone(d, areas)
		select {
		case <-d.stop:
			for _, a := range areas {
				s.drainArea(d, a)
				s.collectMissed(a)
			}
			return
		default:
		}
		if now := time.Now(); now.Sub(lastBeat) >= beatEvery {
			for _, a := range areas {
				s.collectMissed(a)
			}
			lastBeat = now
			if now.Sub(lastRefine) >= time.Second {
				s.clock.refine()
				lastRefine = now
			}
		}
		if n > 0 {
			d.busy = time.Now()
		} else if time.Since(d.busy) < idleAfter {
			s.poll(kicked, kick)
		} else {
			s.sleep(areas)
		}
	}
}

// closeGone closes the areas no process maps any more, once drained.
func (s *Tracer) closeGone(d *drainer, areas []*area) {
	for _, a := range areas {
		s.fastMu.Lock()
		gone := a.gone
		s.fastMu.Unlock()
		if !gone {
			continue
		}
		s.drainArea(d, a)
		s.collectMissed(a)
		s.fastMu.Lock()
		for i, b := range s.areas {
			if b == a {
				s.areas = append(s.areas[:i], s.areas[i+1:]...)
				break
			}
		}
		s.publishAreas()
		a.close()
		s.fastMu.Unlock()
	}
}

// kickOf returns the AKick word of the first area that has one, and its
// value, read before a pass over the rings: a sync site's record made
// after the read ends the poll that follows at once.
func kickOf(areas []*area) (uint64, *uint64) {
	for _, a := range areas {
		if a.mem != nil && !a.bad {
			w := a.word(recorder.AKick)
			return atomic.LoadUint64(w), w
		}
	}
	return 0, nil
}

// poll waits pollEvery before the drain's next pass over busy rings, or
// less if a sync site of the first area kicks it: its thread waits for
// the drain (syncMappings). Other areas' sync sites wait for the poll.
func (s *Tracer) poll(w *uint64, kick uint64) {
	if w == nil {
		time.Sleep(pollEvery)
		return
	}
	ts := unix.NsecToTimespec(int64(pollEvery))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), 0 /* FUTEX_WAIT */, uintptr(uint32(kick)), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// sleep waits until the head of the first area moves (its recorder wakes
// ptprobe when it sees ASleep) or sleepFor passes.
func (s *Tracer) sleep(areas []*area) {
	for _, a := range areas {
		if a.mem != nil && !a.bad {
			s.sleepOn(a)
			return
		}
	}
	time.Sleep(pollEvery)
}

func (s *Tracer) sleepOn(a *area) {
	head := atomic.LoadUint64(a.word(recorder.AHead))
	atomic.StoreUint64(a.word(recorder.ASleep), 1)
	if atomic.LoadUint64(a.word(recorder.AHead)) == head {
		ts := unix.NsecToTimespec(int64(sleepFor))
		// The head is the futex word: its low 32 bits, as the
		// kernel compares them.
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(a.word(recorder.AHead))), 0 /* FUTEX_WAIT */, uintptr(uint32(head)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	}
	atomic.StoreUint64(a.word(recorder.ASleep), 0)
}

// drainArea turns a's complete records into events and frees their room;
// it stops at the first record not complete yet. It returns how many it
// read. A record that breaks the layout (the program wrote over its ring)
// ends the area's recording: the rest of the ring cannot be trusted.
func (s *Tracer) drainArea(d *drainer, a *area) int {
	if a.mem == nil || a.bad {
		return 0
	}
	data := a.mem[dataOffset : dataOffset+ringSize]
	n := 0
	// The head and the tail are read and written once a batch, not once
	// a record: their cache lines go back and forth between the drain's
	// CPU and the recorders' otherwise, at every hit.
	published := a.tail
	defer func() {
		if a.tail != published {
			atomic.StoreUint64(a.word(recorder.ATail), a.tail)
		}
	}()
	head := atomic.LoadUint64(a.word(recorder.AHead))
	for {
		if head == a.tail {
			if head = atomic.LoadUint64(a.word(recorder.AHead)); head == a.tail {
				return n
			}
		}
		if a.tail-published >= tailBatch {
			atomic.StoreUint64(a.word(recorder.ATail), a.tail)
			published = a.tail
		}
		pos := a.tail & (ringSize - 1)
		lenWord := (*uint32)(unsafe.Pointer(&data[pos]))
		l := uint64(atomic.LoadUint32(lenWord))
		if l == 0 {
			return n // reserved, not complete yet
		}
		if l > head-a.tail || l > maxRecord {
			s.badArea(a, fmt.Errorf("record of %d bytes at %d", l, a.tail))
			return n
		}
		// A record may wrap here: the drain maps the data once.
		buf := data[pos:]
		if uint64(len(buf)) < l {
			d.buf = append(append(d.buf[:0], buf...), data[:l-uint64(len(buf))]...)
			buf = d.buf
		}
		if err := decodeRecord(buf[:l], &d.rec, s.opts.OnEvent != nil); err != nil {
			s.badArea(a, err)
			return n
		}
		s.fire(d, a, &d.rec, a.tail+l)
		// Zero the record's bytes before they are free: a record
		// written there later is complete only when its length is.
		if uint64(len(data))-pos >= l {
			clear(data[pos : pos+l])
		} else {
			clear(data[pos:])
			clear(data[:l-(uint64(len(data))-pos)])
		}
		a.tail += l
		n++
	}
}

// tailBatch is how much the drain consumes before it tells the recorders
// (ATail) within a pass.
const tailBatch = ringSize / 16

// badArea stops recording in a and says why.
func (s *Tracer) badArea(a *area, err error) {
	a.off()
	a.bad = true
	s.warn(fmt.Errorf("process %d: the no-stop path's ring is corrupt (%v): its probes record nothing more", a.pid, err))
}

// fire reports the hit of record r, which ends at ring position end: its
// site's entry probes fire, as on the stop path, and a sync site's thread
// is let go once its action is done.
func (s *Tracer) fire(d *drainer, a *area, r *record, end uint64) {
	st := a.sites.get(r.site)
	if st == nil {
		return // a site the program made up
	}
	if st.sync {
		s.syncMappings(a, end)
	}
	var probes []probeRef
	if ps := st.fastProbes.Load(); ps != nil {
		probes = *ps
	}
	pid, tid := a.pid, r.tid
	if r.gen != 0 {
		// Recorded while a vfork child ran in this address space: by
		// the child, which shares the TLS, so the thread table's entry,
		// of the parent's thread that forked (and calls gettid only
		// when that entry is missing), or by another of the parent's
		// threads, whose event it is.
		s.fastMu.Lock()
		g, ok := a.gens[r.gen]
		s.fastMu.Unlock()
		if !ok {
			return // a generation the program made up
		}
		if r.tid == uint32(g.by) || r.tid == r.gen {
			if g.pid <= 0 {
				return // a child not followed
			}
			pid, tid = g.pid, uint32(g.pid) // a vfork child: one thread
		}
	}
	r.regs.Rip = st.addr
	ctx := recordContext{rec: r, fileBase: st.fileBase}
	for _, p := range probes {
		if !p.active() {
			continue
		}
		p.hits.Add(1)
		if s.opts.OnEvent == nil {
			continue
		}
		ev := &d.ev
		ev.TimeNS = s.clock.ns(r.tsc)
		ev.PID, ev.TID, ev.CPU = pid, int(tid), int(r.cpu)
		ev.Comm = s.comm(d, pid, tid)
		ctx.comm = ev.Comm
		ev.Group, ev.Name, ev.Kind = p.Spec.Group, p.Spec.Event, p.Spec.Kind
		ev.IP, ev.RetIP, ev.DurationNS = st.addr, 0, 0
		ev.Args = uprobe.FetchArgs(&ctx, p.args, ev.Args[:0])
		s.eventMu.Lock()
		s.opts.OnEvent(ev)
		s.eventMu.Unlock()
	}
}

// comm is the name of thread tid of process pid, read once: from /proc,
// else as it was when the thread was entered in the thread table (it has
// exited since), else "<...>" as the kernel's trace says for a name it
// does not know.
func (s *Tracer) comm(d *drainer, pid int, tid uint32) string {
	if c, ok := d.comms[tid]; ok {
		return c
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	c := "<...>"
	if err == nil {
		c = strings.TrimSuffix(string(b), "\n")
	} else {
		s.fastMu.Lock()
		if known, ok := s.comms[tid]; ok {
			c = known
		}
		s.fastMu.Unlock()
	}
	d.comms[tid] = c
	return c
}

// collectMissed adds to the probes the hits their sites' recorders could
// not record since the last look.
func (s *Tracer) collectMissed(a *area) {
	if a.mem == nil {
		return
	}
	for id := uint32(1); id < maxSites; id++ {
		st := a.sites.get(id)
		if st == nil {
			break // IDs are given in order
		}
		// Each area has its copy of the descriptor: its own count.
		m := a.missed(a.sites.desc[id])
		seen := a.missedSeen[id]
		if d := m - seen; d > 0 && m > seen {
			a.missedSeen[id] = m
			if ps := st.fastProbes.Load(); ps != nil {
				for _, p := range *ps {
					p.missed.Add(d)
				}
			}
		}
	}
}

// syncMappings runs, for the record of a sync site ending at ring
// position end, what the dynamic linker's breakpoint does on the stop
// path: the ptrace thread holds the process, arms the probes of the
// mappings the linker just made and forgets those it unmapped; then the
// recorder, waiting on ASynced, lets the thread go on into the new code.
// It runs beside the drain, which must go on reading the other threads'
// records meanwhile. A vfork child's record (gen) has no mappings of its
// own to arm: its parent's are its.
func (s *Tracer) syncMappings(a *area, end uint64) {
	// gen != 0: a vfork child runs in this address space, and the call
	// is its own or one of the parent's other threads': the memory is
	// the parent's either way, held with the child in it (holdAll).
	pid := a.pid
	go func() {
		err := s.do(func() error { return s.rescanProcess(pid) })
		if err != nil && !errors.Is(err, errTracerDone) {
			s.warn(fmt.Errorf("process %d: libraries it just loaded: %w", pid, err))
		}
		s.synced(a, end)
	}()
}

// synced moves a's ASynced up to end and wakes the recorders waiting on
// it.
func (s *Tracer) synced(a *area, end uint64) {
	a.memMu.RLock()
	defer a.memMu.RUnlock()
	if a.mem == nil {
		return // closed: the process is gone
	}
	w := a.word(recorder.ASynced)
	for {
		old := atomic.LoadUint64(w)
		if old >= end || atomic.CompareAndSwapUint64(w, old, end) {
			break
		}
	}
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), 1 /* FUTEX_WAKE */, math.MaxInt32, 0, 0, 0)
}
