package engine

import (
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/elfsym"
)

// Slot regions: anonymous r-x mappings the engine injects into a traced
// process, within ±2 GiB of the code they serve, bump-allocated into
// out-of-line code (docs/DESIGN.md §3). The first region's header holds
// the engine's own code: the injected system call and the return
// trampoline.

// slotRegionSize is the size of one slot region. Trampolines are at most a
// few dozen bytes, so one region holds thousands.
const slotRegionSize = 1 << 20

// slotHeader is the part of the first region reserved for the engine's
// own: the injected system call's code (injectedSyscall) at 0, the return
// trampoline's int3 at retTrampOffset, and at areaNameOffset the name of
// the no-stop path's memfd (areaName, NUL-terminated).
const slotHeader = 32

const (
	retTrampOffset = syscallCodeLen
	areaNameOffset = 16
)

// slotReach is how far a trampoline may be from its site: rel32 branches
// and rebased disp32 reach ±2 GiB; keep a margin for the instruction
// lengths and the region size.
const slotReach = 1<<31 - 2*slotRegionSize

// slotRegion is an anonymous r-x mapping the engine injected into the
// tracee, bump-allocated into trampolines.
type slotRegion struct {
	start, end, next uint64
	tramps           []trampRef
	// recorder is where the no-stop path's recorder is in the region,
	// 0 when it is not.
	recorder uint64
}

type trampRef struct {
	start, end uint64
	site       *site
}

func within(a, b, d uint64) bool {
	if a > b {
		return a-b <= d
	}
	return b-a <= d
}

// regionFor returns a slot region within reach of addr with room for n
// bytes, injecting a new one when none has.
func (s *Tracer) regionFor(t *thread, addr uint64, n int) (*slotRegion, error) {
	as := t.proc.as
	for _, r := range as.slots {
		if within(r.start, addr, slotReach) && r.end-r.next >= uint64(n) {
			return r, nil
		}
	}
	return s.newRegion(t, addr)
}

// newRegion maps a slot region near addr in the thread's address space.
func (s *Tracer) newRegion(t *thread, addr uint64) (*slotRegion, error) {
	maps, err := readMapsSorted(t.proc.pid)
	if err != nil {
		return nil, err
	}
	for _, hint := range holesNear(maps, addr, slotRegionSize) {
		got, err := s.remoteSyscall(t, unix.SYS_MMAP, hint, slotRegionSize,
			unix.PROT_READ|unix.PROT_EXEC,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
		if err != nil {
			if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOMEM) {
				continue
			}
			return nil, fmt.Errorf("map a slot region near 0x%x in process %d: %w", addr, t.proc.pid, err)
		}
		if got != hint {
			// A kernel without MAP_FIXED_NOREPLACE took it as a hint.
			s.remoteSyscall(t, unix.SYS_MUNMAP, got, slotRegionSize, 0, 0, 0, 0)
			continue
		}
		r := &slotRegion{start: got, end: got + slotRegionSize, next: got}
		as := t.proc.as
		if as.stub == 0 {
			hdr := append(injectedSyscall(0), int3) // the return trampoline follows
			hdr = append(hdr, make([]byte, areaNameOffset-len(hdr))...)
			hdr = append(append(hdr, areaName...), 0)
			if _, err := as.mem.WriteMemory(got, hdr); err != nil {
				return nil, err
			}
			as.stub, as.retTramp = got, got+retTrampOffset
			r.next = got + slotHeader
		}
		as.slots = append(as.slots, r)
		return r, nil
	}
	return nil, fmt.Errorf("process %d: no free address range within ±2 GiB of 0x%x for a slot region: %w", t.proc.pid, addr, ErrNoSlotSpace)
}

// slotOffset is how far below the probed code the engine prefers to put a
// slot region. Right next to a library it would take the place of the
// program's next mmap, and right above the main executable the place of
// the brk heap: the program's own layout would change. 1 GiB below is in
// reach of rel32 and far from both.
const slotOffset = 1 << 30

// holesNear lists page-aligned addresses for a region of n bytes within
// reach of addr, each in a hole of the address space with a guard page on
// either side, the closest to addr - slotOffset first.
func holesNear(maps []mapRange, addr uint64, n uint64) []uint64 {
	const low = 1 << 16 // mmap_min_addr
	const top = 0x7ffffffff000
	target := uint64(low)
	if addr > slotOffset+low {
		target = addr - slotOffset
	}
	var cands []uint64
	prevEnd := uint64(low)
	for i := 0; i <= len(maps); i++ {
		holeStart, holeEnd := prevEnd, uint64(top)
		if i < len(maps) {
			holeEnd = maps[i].start
			prevEnd = max(prevEnd, maps[i].end)
		}
		if holeEnd <= holeStart || holeEnd-holeStart < n+2*pageSize {
			continue
		}
		lo, hi := holeStart+pageSize, holeEnd-pageSize-n // region start bounds
		c := min(max(target, lo), hi) &^ (pageSize - 1)
		if c < lo {
			c += pageSize
		}
		if c > hi || !within(c, addr, slotReach) || !within(c+n, addr, slotReach) {
			// The point nearest target is out of reach: try the
			// end of the hole nearest addr.
			if hi < addr {
				c = hi &^ (pageSize - 1)
			} else {
				c = lo
			}
			if !within(c, addr, slotReach) || !within(c+n, addr, slotReach) {
				continue
			}
		}
		cands = append(cands, c)
	}
	dist := func(c uint64) uint64 {
		if c > target {
			return c - target
		}
		return target - c
	}
	sort.Slice(cands, func(i, j int) bool { return dist(cands[i]) < dist(cands[j]) })
	return cands
}

const pageSize = 4096

// mapRange is an address range of a process, for finding holes.
type mapRange struct{ start, end uint64 }

func readMapsSorted(pid int) ([]mapRange, error) {
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		return nil, err
	}
	r := make([]mapRange, len(maps))
	for i, m := range maps {
		r[i] = mapRange{m.Start, m.End}
	}
	sort.Slice(r, func(i, j int) bool { return r[i].start < r[j].start })
	return r, nil
}
