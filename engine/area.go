package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/internal/recorder"
)

// The no-stop path's area (docs/DESIGN.md §8): a memfd that the traced
// process and ptprobe both map, holding the recorder's header, its thread
// table, the descriptors of the patched sites and the ring of records.
// The process maps the ring's data twice in a row, so that the recorder
// writes every record in one piece; ptprobe maps it once and reads across
// the end. A fork child gets an area of its own before it runs.

// areaName names the memfd (in /proc/PID/maps: "/memfd:ptprobe (deleted)").
const areaName = "ptprobe"

const (
	// descSpace is the room for descriptors, after the thread table.
	descSpace = 4 << 20
	// ringSize is the ring's data, a power of 2.
	ringSize = 4 << 20
	// descOffset and dataOffset are where those start in the memfd.
	descOffset = recorder.AHeader
	dataOffset = (descOffset + descSpace + pageSize - 1) &^ (pageSize - 1)
	areaFile   = dataOffset + ringSize
)

// area is ptprobe's side of one address space's area.
type area struct {
	pid int // the process whose ring it is
	// mem is ptprobe's mapping of the whole memfd. Only the drain (and
	// the end of the session, after it) unmaps it, under memMu: the
	// heartbeat and synced, which run beside the drain, read it under
	// memMu's read lock.
	mem   []byte
	memMu sync.RWMutex
	base  uint64 // the process's address of the memfd's start
	// descNext is the next free byte of the descriptor space.
	descNext uint64
	// sites are the patched sites by descriptor ID, read by the drain
	// without a lock. A fork child's area shares them.
	sites  *siteTable
	nextID uint32
	// tail is what the drain consumed (it writes ATail).
	tail uint64
	// bad: the ring broke its layout; the drain reads it no more.
	bad bool
	// missedSeen is, by descriptor ID, the DMissed the drain has added
	// to the probes' Missed (the drain's own).
	missedSeen map[uint32]uint64
	// gone: no process maps the area any more (exit, exec); the drain
	// reads what is left and closes it.
	gone bool
	// gens are the processes a record's RGen names (a vfork child that
	// ran in this address space), by that value; -1 for a child not
	// followed (its hits are not reported).
	gens map[uint32]sharedGen
}

// word returns the area's 64-bit word at off, for atomic access.
func (a *area) word(off int) *uint64 { return (*uint64)(unsafe.Pointer(&a.mem[off])) }

// newArea makes the area of the address space of the stopped thread t,
// with system calls it injects: memfd_create, ftruncate, a reservation of
// the process's addresses and the two mappings of the memfd in it, then
// close of the process's fd once ptprobe has opened the memfd itself. The
// process's file descriptors are as before.
func (s *Tracer) newArea(t *thread, beatTicks uint64) (*area, error) {
	return s.newAreaAt(t, 0, beatTicks)
}

// newAreaAt is newArea at the process's address at (0: where the kernel
// likes), over what is mapped there.
func (s *Tracer) newAreaAt(t *thread, at, beatTicks uint64) (*area, error) {
	as := t.proc.as
	if as.stub == 0 {
		return nil, errors.New("no slot region for the area's system calls")
	}
	call := func(nr uintptr, a ...uint64) (uint64, error) {
		var args [6]uint64
		copy(args[:], a)
		return s.remoteSyscall(t, nr, args[0], args[1], args[2], args[3], args[4], args[5])
	}
	fd, err := call(unix.SYS_MEMFD_CREATE, as.stub+areaNameOffset, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create in process %d: %w", t.proc.pid, err)
	}
	defer call(unix.SYS_CLOSE, fd)
	if _, err := call(unix.SYS_FTRUNCATE, fd, areaFile); err != nil {
		return nil, fmt.Errorf("size the area in process %d: %w", t.proc.pid, err)
	}
	span := uint64(areaFile + ringSize) // the data twice
	flags := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE)
	if at != 0 {
		flags |= unix.MAP_FIXED
	}
	base, err := call(unix.SYS_MMAP, at, span, unix.PROT_NONE, flags, ^uint64(0), 0)
	if err != nil {
		return nil, fmt.Errorf("reserve the area in process %d: %w", t.proc.pid, err)
	}
	// MAP_POPULATE: a page fault on the ring's first pass costs a few
	// µs here, tens of times a record.
	_, err = call(unix.SYS_MMAP, base, areaFile, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED|unix.MAP_POPULATE, fd, 0)
	if err == nil {
		_, err = call(unix.SYS_MMAP, base+areaFile, ringSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED|unix.MAP_POPULATE, fd, dataOffset)
	}
	if err != nil {
		call(unix.SYS_MUNMAP, base, span)
		return nil, fmt.Errorf("map the area in process %d: %w", t.proc.pid, err)
	}
	mine, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", t.proc.pid, fd), os.O_RDWR, 0)
	if err != nil {
		call(unix.SYS_MUNMAP, base, span)
		return nil, fmt.Errorf("open the area of process %d: %w", t.proc.pid, err)
	}
	defer mine.Close()
	mem, err := unix.Mmap(int(mine.Fd()), 0, areaFile, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		call(unix.SYS_MUNMAP, base, span)
		return nil, fmt.Errorf("map the area of process %d: %w", t.proc.pid, err)
	}
	a := &area{pid: t.proc.pid, mem: mem, base: base, descNext: descOffset, sites: &siteTable{}, gens: make(map[uint32]sharedGen), missedSeen: make(map[uint32]uint64)}
	a.init(beatTicks)
	if s.opts.DropWhenFull {
		atomic.StoreUint64(a.word(recorder.AFlags), recorder.FDrop)
	}
	return a, nil
}

// init writes the header of a new area.
func (a *area) init(beatTicks uint64) {
	le := binary.LittleEndian
	le.PutUint64(a.mem[recorder.AMask:], ringSize-1)
	le.PutUint64(a.mem[recorder.ASize:], ringSize)
	le.PutUint64(a.mem[recorder.APid:], uint64(a.pid))
	le.PutUint64(a.mem[recorder.ADead:], beatTicks)
	le.PutUint64(a.mem[recorder.AData:], a.base+dataOffset)
	a.beat()
}

// beat writes ptprobe's heartbeat: a recorder waiting for room gives up
// after ADead ticks without one.
func (a *area) beat() {
	a.memMu.RLock()
	defer a.memMu.RUnlock()
	if a.mem == nil {
		return
	}
	tsc, _ := rdtscp()
	atomic.StoreUint64(a.word(recorder.ABeat), tsc)
}

// off stops the recorders: they record nothing more and do not wait.
func (a *area) off() {
	for {
		old := atomic.LoadUint64(a.word(recorder.AFlags))
		if atomic.CompareAndSwapUint64(a.word(recorder.AFlags), old, old|recorder.FOff) {
			return
		}
	}
}

// newDescriptor allocates the descriptor of a site: its ID, and its
// address in the process.
func (a *area) newDescriptor(st *site, plans []readPlan, recLen int) (id uint32, addr uint64, err error) {
	size := uint64(recorder.DPlans + len(plans)*recorder.PSizeof)
	off := (a.descNext + 7) &^ 7
	if off+size > descOffset+descSpace {
		return 0, 0, errors.New("the area has no room for another site")
	}
	a.descNext = off + size
	if a.nextID+1 >= maxSites {
		return 0, 0, errors.New("the area has no room for another site")
	}
	a.nextID++
	id = a.nextID
	d := a.mem[off : off+size]
	le := binary.LittleEndian
	le.PutUint64(d[recorder.DArea:], a.base)
	le.PutUint32(d[recorder.DSite:], id)
	le.PutUint32(d[recorder.DRecLen:], uint32(recLen))
	le.PutUint32(d[recorder.DNPlans:], uint32(len(plans)))
	if st.sync {
		le.PutUint32(d[recorder.DSync:], 1)
	}
	for i, p := range plans {
		p.put(d[recorder.DPlans+i*recorder.PSizeof:])
	}
	a.sites.desc[id] = a.base + off // before the site is published
	a.sites.entries[id].Store(st)
	return id, a.base + off, nil
}

// maxSites bounds the sites of an area: as many as the smallest
// descriptors fill its room.
const maxSites = descSpace / recorder.DPlans

// siteTable is the sites of an area by descriptor ID. The ptrace thread
// fills it and the drain reads it, each entry on its own.
type siteTable struct {
	entries [maxSites]atomic.Pointer[site]
	desc    [maxSites]uint64 // the descriptor's address, set before the entry
}

// get returns the site of a descriptor ID, nil for an ID of no site.
func (t *siteTable) get(id uint32) *site {
	if id >= maxSites {
		return nil
	}
	return t.entries[id].Load()
}

// missed is the DMissed counter of the descriptor at the process's addr.
func (a *area) missed(addr uint64) uint64 {
	off := addr - a.base
	if off < descOffset || off+recorder.DPlans > descOffset+descSpace {
		return 0
	}
	return atomic.LoadUint64(a.word(int(off) + recorder.DMissed))
}

// setThread enters thread tid, whose fs_base is fs, in the thread table,
// over a stale entry of the same fs_base (glibc gives a new thread the
// TLS block of one that exited).
func (a *area) setThread(fs uint64, tid int) {
	if fs == 0 {
		return
	}
	h := (fs>>12 ^ fs) & (recorder.TCount - 1)
	for i := uint64(0); i < recorder.TCount; i++ {
		e := recorder.ATids + int((h+i)&(recorder.TCount-1))<<recorder.TShift
		cur := atomic.LoadUint64(a.word(e + recorder.TFS))
		if cur == fs || (cur == 0 && atomic.CompareAndSwapUint64(a.word(e+recorder.TFS), 0, fs)) {
			atomic.StoreUint64(a.word(e+recorder.TTID), uint64(tid))
			return
		}
	}
}

// close unmaps ptprobe's mapping; the process's stays.
func (a *area) close() {
	a.memMu.Lock()
	defer a.memMu.Unlock()
	if a.mem != nil {
		unix.Munmap(a.mem)
		a.mem = nil
	}
}

// newbornArea gives a new thread its place in its address space's area:
// a thread enters the thread table; the first thread of a fork child,
// which shares its parent's area since the fork, gets an area of its own
// before it runs (its records would be its parent's otherwise), with the
// parent's descriptors.
func (s *Tracer) newbornArea(t *thread) error {
	if err := getRegs(t.tid, &t.regs); err != nil {
		return fmt.Errorf("thread %d: %w", t.tid, err)
	}
	as := t.proc.as
	if t.proc.gen != 0 {
		// A vfork child runs on its parent's thread's TLS: that thread's
		// entry is its too, and stays the parent's (fire tells the two
		// apart by the generation).
		s.noteComm(t.proc.pid, t.tid)
		return nil
	}
	if as.area.pid == t.proc.pid || as.users > 1 || t.tid != t.proc.pid {
		as.area.setThread(t.regs.Fs_base, t.tid)
		s.noteComm(t.proc.pid, t.tid)
		return nil
	}
	parent := as.area
	ar, err := s.replaceArea(t, parent)
	if err != nil {
		// Better no records than records in the parent's name: the
		// child's copy of the text gets its bytes back, so it never
		// reaches the recorder, whose ring is still the parent's. The
		// sites themselves are shared with the parent (addrSpace.fork)
		// and stay armed there.
		as.area = nil
		var errs []error
		for _, st := range as.sites {
			if fs, fast := st.strategy.(*fastStrategy); fast {
				if _, werr := as.mem.WriteMemory(st.addr, fs.orig); werr != nil {
					errs = append(errs, werr)
				}
			}
		}
		return fmt.Errorf("fork child %d: its probes on the no-stop path record nothing: %w", t.tid, errors.Join(append([]error{err}, errs...)...))
	}
	as.area = ar
	ar.setThread(t.regs.Fs_base, t.tid)
	s.noteComm(t.proc.pid, t.tid)
	return nil
}

// noteComm keeps the name of thread tid of process pid for the drain
// (Tracer.comms).
func (s *Tracer) noteComm(pid, tid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	if err != nil {
		return
	}
	s.fastMu.Lock()
	if s.comms == nil {
		s.comms = make(map[uint32]string)
	}
	s.comms[uint32(tid)] = strings.TrimSuffix(string(b), "\n")
	s.fastMu.Unlock()
}

// replaceArea maps a new memfd over the fork child's copy of the parent's
// area mapping, at the same addresses (the thunks hold the descriptors'
// addresses), with the parent's descriptors and a ring of its own.
func (s *Tracer) replaceArea(t *thread, parent *area) (*area, error) {
	ar, err := s.newAreaAt(t, parent.base, s.clock.hzTicks)
	if err != nil {
		return nil, err
	}
	s.fastMu.Lock()
	copy(ar.mem[descOffset:descOffset+descSpace], parent.mem[descOffset:descOffset+descSpace])
	ar.descNext, ar.nextID, ar.sites = parent.descNext, parent.nextID, parent.sites
	s.fastMu.Unlock()
	s.addArea(ar)
	return ar, nil
}

// sharedChild notes a process that runs in the address space of ar's
// (a vfork child) and returns the AGen its records carry: the area's
// header says it while the child runs there (it is the one that runs:
// its parent waits for it), and the records are the child's.
func (s *Tracer) sharedChild(ar *area, pid, by int, unfollowed bool) uint32 {
	gen := uint32(pid)
	s.fastMu.Lock()
	ar.gens[gen] = sharedGen{pid: pid, by: by}
	if unfollowed {
		ar.gens[gen] = sharedGen{pid: -1, by: by}
	}
	s.fastMu.Unlock()
	atomic.StoreUint64(ar.word(recorder.AGen), uint64(gen))
	return gen
}

// sharedGen is a process that runs in another's address space (a vfork
// child): its ID (-1 when it is not followed) and the thread that made it,
// whose thread-table entry it shares.
type sharedGen struct{ pid, by int }

// leaveArea is a process leaving its address space (exit, exec): a vfork
// child gives it back to its parent; the last process leaves the area to
// the drain, which reads what is left in it and closes it.
func (s *Tracer) leaveArea(p *process) {
	as := p.as
	if as == nil || as.area == nil {
		return
	}
	ar := as.area
	if p.gen != 0 {
		atomic.CompareAndSwapUint64(ar.word(recorder.AGen), uint64(p.gen), 0)
		p.gen = 0
	}
	if as.users <= 1 && ar.pid == p.pid {
		s.fastMu.Lock()
		ar.gone = true
		s.fastMu.Unlock()
	}
}
