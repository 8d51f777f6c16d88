package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
)

// USDT semaphores (docs/DESIGN.md §9). A program built with SDT
// semaphores tests a 16-bit counter before it reaches a probe's nop, and
// skips the probe (and the work of its arguments) while the counter is 0.
// The kernel raises the counter by one in each mm where it installs a
// uprobe with a REF_CTR_OFFSET, and lowers it when it removes it
// (update_ref_ctr), never below 0. The engine does the same per address
// space: it raises the counter of each probed location with
// Location.RefCtr once where it arms it, in the process's private writable mapping of
// the file that holds the counter's file offset, and lowers it when the
// location's site is taken out (its probes closed or disabled), at detach,
// and in a fork child it lets go. A counter whose data is not mapped
// yet is raised at the next rescan of the mappings. Counters other
// tracers raised are left as they are: only the engine's own one is
// taken back.

// semKey is one raise of a counter: a file, the file offset of the
// counter and that of the probed instruction. The kernel raises a counter
// once per uprobe (file and offset) installed in an mm, however many
// consumers the uprobe has: two locations of one USDT probe sharing a
// semaphore raise it to 2, two probes at one location to 1. The engine
// counts alike.
type semKey struct {
	id        elfsym.FileID
	off, site uint64
}

// wantSemaphore notes that the probe armed at file offset site of file id
// in p's address space needs the counter at file offset off of that file
// raised, and raises it if it can.
func (s *Tracer) wantSemaphore(p *process, id elfsym.FileID, off, site uint64) {
	as := p.as
	if as.sems == nil {
		as.sems = make(map[semKey]uint64)
	}
	k := semKey{id, off, site}
	if _, ok := as.sems[k]; ok {
		return
	}
	as.sems[k] = 0 // pending
	s.raisePending(p)
}

// raisePending raises the counters of p's address space that are not
// raised yet and whose data is mapped now.
func (s *Tracer) raisePending(p *process) {
	as := p.as
	pending := false
	for _, addr := range as.sems {
		pending = pending || addr == 0
	}
	if !pending {
		return
	}
	maps, err := elfsym.ReadMaps(p.pid)
	if err != nil {
		s.warn(fmt.Errorf("USDT semaphores of process %d: %w", p.pid, err))
		return
	}
	for k, addr := range as.sems {
		if addr != 0 {
			continue
		}
		for _, m := range maps {
			// The kernel's valid_ref_ctr_vma: the same file, writable,
			// not shared.
			if m.ID() != k.id || len(m.Perms) < 4 || m.Perms[1] != 'w' || m.Perms[3] != 'p' {
				continue
			}
			a, ok := m.Addr(k.off)
			if !ok {
				continue
			}
			if err := addCounter(as.mem, a, +1); err != nil {
				s.warn(fmt.Errorf("USDT semaphore at 0x%x (file offset 0x%x) of process %d: %w: its probes will not fire", a, k.off, p.pid, err))
				delete(as.sems, k)
				break
			}
			as.sems[k] = a
			break
		}
	}
}

// lowerSemaphores takes back the engine's raise of every counter of as.
func (s *Tracer) lowerSemaphores(as *addrSpace, pid int) {
	for k, addr := range as.sems {
		delete(as.sems, k)
		if addr == 0 {
			continue
		}
		if err := addCounter(as.mem, addr, -1); err != nil {
			s.warn(fmt.Errorf("USDT semaphore at 0x%x of process %d: %w", addr, pid, err))
		}
	}
}

// addCounter adds d to the 16-bit counter at addr, refusing to take it
// below 0 (the kernel's __update_ref_ctr).
func addCounter(mem *memory, addr uint64, d int16) error {
	var b [2]byte
	if n, err := mem.ReadMemory(addr, b[:]); n < 2 {
		return fmt.Errorf("read the counter: %w", err)
	}
	v := int16(binary.LittleEndian.Uint16(b[:]))
	if v+d < 0 {
		return fmt.Errorf("counter is %d: it would go negative", v)
	}
	binary.LittleEndian.PutUint16(b[:], uint16(v+d))
	if n, err := mem.WriteMemory(addr, b[:]); n < 2 {
		return fmt.Errorf("write the counter: %w", err)
	}
	return nil
}

// siteGone lowers the counter of a probed location whose site was taken
// out of p's address space while the program runs (its probes closed or
// disabled), as the kernel lowers it when it removes the uprobe from an
// mm.
func (s *Tracer) siteGone(p *process, loc *resolve.Location) {
	if loc == nil || loc.RefCtr == 0 || p.as.sems == nil {
		return
	}
	k := semKey{loc.ID, loc.RefCtr, loc.Offset}
	addr, ok := p.as.sems[k]
	if !ok {
		return
	}
	delete(p.as.sems, k)
	if addr == 0 {
		return
	}
	if err := addCounter(p.as.mem, addr, -1); err != nil {
		s.warn(fmt.Errorf("USDT semaphore at 0x%x of process %d: %w", addr, p.pid, err))
	}
}
