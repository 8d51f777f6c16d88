package engine

import (
	"fmt"
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
	stop  chan struct{} // closed: drain what is committed, then end
	done  chan struct{}
	ev    uprobe.Event
	rec   record
	buf   []byte            // a record that wraps, copied whole
	busy  time.Time         // when the drain last found records
	comms map[uint32]string // thread names by ID
}

// addArea gives the drain another area to read, starting it the first
// time.
func (s *Tracer) addArea(a *area) {
	s.fastMu.Lock()
	s.areas = append(s.areas, a)
	s.fastMu.Unlock()
	if s.drain == nil {
		s.drain = &drainer{stop: make(chan struct{}), done: make(chan struct{}), comms: make(map[uint32]string)}
		go s.drainLoop(s.drain)
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
	s.fastMu.Lock()
	for _, a := range s.areas {
		a.close()
	}
	s.areas = nil
	s.fastMu.Unlock()
}

func (s *Tracer) drainLoop(d *drainer) {
	defer close(d.done)
	lastBeat, lastRefine := time.Now(), time.Now()
	for {
		s.fastMu.Lock()
		areas := append([]*area(nil), s.areas...)
		s.fastMu.Unlock()
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
				a.beat()
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
			time.Sleep(pollEvery)
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
		a.close()
		s.fastMu.Unlock()
	}
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
		// (The head may be ahead by more than the ring: recorders
		// that reserved room wait for it.)
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
		s.fire(d, a, &d.rec)
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

// fire reports the hit of record r: its site's entry probes fire, as on
// the stop path.
func (s *Tracer) fire(d *drainer, a *area, r *record) {
	st := a.sites.get(r.site)
	if st == nil {
		return // a site the program made up
	}
	var probes []probeRef
	if ps := st.fastProbes.Load(); ps != nil {
		probes = *ps
	}
	pid := a.pid
	if r.gen != 0 {
		// Recorded by a vfork child while it ran in this address
		// space: its own event, reported if the child is followed.
		s.fastMu.Lock()
		p, ok := a.gens[r.gen]
		s.fastMu.Unlock()
		if !ok || p <= 0 {
			return
		}
		pid = p
	}
	tid := r.tid
	if r.gen != 0 {
		tid = uint32(pid) // a vfork child: one thread
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
		ev.Comm = d.comm(pid, tid)
		ctx.comm = ev.Comm
		ev.Group, ev.Name, ev.Kind = p.Spec.Group, p.Spec.Event, p.Spec.Kind
		ev.IP, ev.RetIP, ev.DurationNS = st.addr, 0, 0
		ev.Args = uprobe.FetchArgs(&ctx, p.args, ev.Args[:0])
		s.eventMu.Lock()
		s.opts.OnEvent(ev)
		s.eventMu.Unlock()
	}
}

// comm is the name of thread tid of process pid, read once.
func (d *drainer) comm(pid int, tid uint32) string {
	if c, ok := d.comms[tid]; ok {
		return c
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	c := "<...>"
	if err == nil {
		c = strings.TrimSuffix(string(b), "\n")
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
