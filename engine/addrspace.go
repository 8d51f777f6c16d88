package engine

import (
	"fmt"

	"github.com/ptprobe/ptprobe/elfsym"
)

// addrSpace is one address space (mm) and what the engine put in it: the
// armed sites, the trampoline exits, the slot regions and the mappings
// already armed. Threads share it, and so do a vfork parent and child
// until the child execs; a fork child gets a copy.
type addrSpace struct {
	mem   *memory
	sites map[uint64]*site // by probed address
	// retired are sites taken out while the program ran (their probes
	// closed or disabled): a thread may have taken the trap of one just
	// before, and reports it after; such a stop is a hit of nothing.
	retired map[uint64]*site
	// exits are the int3s ending trampolines of sites with post
	// handlers, by address. They outlive their sites: a thread between
	// a site's trampoline and its exit when the site goes still stops
	// there.
	exits map[uint64]exitStop
	slots []*slotRegion
	// armed records the executable mappings whose probes are armed (with
	// their end address), so a rescan arms only new ones.
	armed map[mapKey]uint64
	// stub is the injected system call's code and retTramp the return
	// trampoline's int3, both in the first slot region; 0 until it
	// exists.
	stub, retTramp uint64
	// dlState is the dynamic linker's _dl_debug_state, 0 if not armed.
	dlState uint64
	users   int // processes using this address space
	// area is the no-stop path's, nil until a site needs it.
	area *area
	// syms names addresses for symstr fetch-args, nil until one does.
	syms *symbols
	// sems are the USDT semaphores the engine raised here, by counter,
	// with their address (0: not mapped yet), see semaphore.go.
	sems map[semKey]uint64
}

// mapKey identifies one mapping of one file.
type mapKey struct {
	start, offset uint64
	id            elfsym.FileID
}

func keyOf(m elfsym.Mapping) mapKey {
	return mapKey{start: m.Start, offset: m.Offset, id: m.ID()}
}

func newAddrSpace(pid int) (*addrSpace, error) {
	mem, err := openMemory(pid)
	if err != nil {
		return nil, err
	}
	return &addrSpace{
		mem:     mem,
		sites:   make(map[uint64]*site),
		retired: make(map[uint64]*site),
		exits:   make(map[uint64]exitStop),
		armed:   make(map[mapKey]uint64),
		users:   1,
	}, nil
}

// fork returns the address space of a fork child: the same layout, so the
// same sites at the same addresses, but its own memory from now on.
func (as *addrSpace) fork(pid int) (*addrSpace, error) {
	c, err := newAddrSpace(pid)
	if err != nil {
		return nil, err
	}
	for a, st := range as.sites {
		c.sites[a] = st
	}
	for a, st := range as.retired {
		c.retired[a] = st
	}
	for a, e := range as.exits {
		c.exits[a] = e
	}
	for k, end := range as.armed {
		c.armed[k] = end
	}
	for _, r := range as.slots {
		cp := *r
		cp.tramps = append([]trampRef(nil), r.tramps...)
		c.slots = append(c.slots, &cp)
	}
	c.stub, c.retTramp, c.dlState, c.area = as.stub, as.retTramp, as.dlState, as.area
	if len(as.sems) > 0 {
		// The child's memory is a copy: so are the raised counters.
		c.sems = make(map[semKey]uint64, len(as.sems))
		for k, a := range as.sems {
			c.sems[k] = a
		}
	}
	return c, nil
}

func (as *addrSpace) release() {
	if as == nil {
		return
	}
	as.users--
	if as.users <= 0 {
		as.mem.close()
		as.syms.close()
	}
}

// isTrap reports whether addr holds, or held, one of the engine's int3s:
// a site (retired ones too), a trampoline exit, or the return trampoline.
func (as *addrSpace) isTrap(addr uint64) bool {
	if _, ok := as.sites[addr]; ok {
		return true
	}
	if _, ok := as.retired[addr]; ok {
		return true
	}
	if _, ok := as.exits[addr]; ok {
		return true
	}
	return as.retTramp != 0 && addr == as.retTramp
}

// outOfLine returns the site whose out-of-line code (its trampoline)
// contains addr.
func (as *addrSpace) outOfLine(addr uint64) (*site, bool) {
	for _, r := range as.slots {
		if addr < r.start || addr >= r.end {
			continue
		}
		for _, t := range r.tramps {
			if addr >= t.start && addr < t.end {
				return t.site, true
			}
		}
	}
	return nil, false
}

// disarm takes site st out of the text (its strategy puts back the bytes
// it replaced) and keeps it among the retired sites.
func (as *addrSpace) disarm(st *site) error {
	delete(as.sites, st.addr)
	as.retired[st.addr] = st
	if err := st.strategy.disarm(as.mem, st); err != nil {
		return fmt.Errorf("remove the probe at 0x%x (%s): %w", st.addr, st.loc.Function, err)
	}
	return nil
}

// restore takes every site out of the text and reads the text back to
// check it against the file's bytes. It returns how many sites it took
// out and where the text differs from the file (which should be nowhere);
// failed writes go to warn.
func (as *addrSpace) restore(warn func(error)) (restored int, mismatches []string) {
	for _, st := range as.sites {
		if err := as.disarm(st); err != nil {
			warn(err)
		}
		want := st.strategy.original(st)
		got := make([]byte, len(want))
		if err := as.mem.readFull(st.addr, got); err != nil || string(got) != string(want) {
			mismatches = append(mismatches,
				fmt.Sprintf("0x%x (%s, file offset 0x%x): memory % x, file % x", st.addr, st.loc.Function, st.loc.Offset, got, want))
		}
		restored++
	}
	return restored, mismatches
}
