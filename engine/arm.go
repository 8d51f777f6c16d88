package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// newImage arms a freshly exec'd image: t is the only thread of its
// process, stopped before the program's first instruction.
func (s *Tracer) newImage(t *thread) error {
	if err := getRegs(t.tid, &t.regs); err != nil {
		return fmt.Errorf("registers of thread %d: %w", t.tid, err)
	}
	as, err := newAddrSpace(t.proc.pid)
	if err != nil {
		return err
	}
	t.proc.as = as
	if err := s.armNew(t); err != nil {
		return err
	}
	if err := s.armLinker(t); err != nil {
		return err
	}
	if as.stub == 0 {
		// No probe needed a slot region yet. Map the first one now,
		// while this is the only thread: its header's injected
		// system call serves the probes added later, when other
		// threads run and the code at rip cannot be borrowed for it.
		if _, err := s.newRegion(t, t.regs.Rip); err != nil {
			return err
		}
	}
	if err := s.learnTrapAction(t); err != nil {
		s.warn(fmt.Errorf("thread %d: %w", t.tid, err))
	}
	return nil
}

// armNew arms the probes in every executable mapping not armed yet, and
// forgets mappings that are gone (a dlclose'd library).
func (s *Tracer) armNew(t *thread) error {
	maps, err := elfsym.ReadMaps(t.proc.pid)
	if err != nil {
		return err
	}
	as := t.proc.as
	present := make(map[mapKey]bool)
	var firstErr error
	for _, m := range maps {
		if !m.Exec() || m.Inode == 0 {
			continue
		}
		k := keyOf(m)
		present[k] = true
		if _, ok := as.armed[k]; ok {
			continue
		}
		as.armed[k] = m.End
		if err := s.armMapping(t, m, nil); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for k, end := range as.armed {
		if !present[k] {
			delete(as.armed, k)
			s.forgetSites(as, k.start, end)
		}
	}
	s.raisePending(t.proc)
	return firstErr
}

// forgetSites drops the sites of a mapping [start, end) that was unmapped
// (a dlclose'd library): a library mapped there later is armed afresh.
func (s *Tracer) forgetSites(as *addrSpace, start, end uint64) {
	for addr := range as.sites {
		if addr >= start && addr < end {
			delete(as.sites, addr)
		}
	}
}

// armMapping arms the probes that fall in the executable mapping m, and
// the engine's own breakpoints on C++ exception unwinding when return
// probes need them. probes nil means every probe of the session (a new
// mapping); otherwise only those (probes added while the program runs).
func (s *Tracer) armMapping(t *thread, m elfsym.Mapping, probes []*Probe) error {
	newMapping := probes == nil
	if newMapping {
		probes = s.probes
	}
	plans := make(map[uint64]*sitePlan)
	plan := func(addr uint64, loc *resolve.Location) *sitePlan {
		pl := plans[addr]
		if pl == nil {
			pl = &sitePlan{loc: loc}
			plans[addr] = pl
		}
		return pl
	}
	var armed []*Probe
	var refCtrs []*resolve.Location
	hijacks := false
	for _, p := range probes {
		if !p.active() {
			continue
		}
		loc, err := s.locate(p, t.proc.pid, m)
		if err != nil {
			return err
		}
		if loc == nil {
			continue
		}
		addr, ok := m.Addr(loc.Offset)
		if !ok {
			continue
		}
		ref := probeRef{Probe: p, args: loc.Args}
		kind := entryBreaklet
		switch {
		case p.Spec.Kind == uprobe.Return && loc.Go:
			// Never a hijacked return address in Go code, whatever
			// else is probed here: the return is caught at the rets.
			kind = goEntryBreaklet
		case p.Spec.Kind == uprobe.Return:
			kind, hijacks = returnBreaklet, true
		}
		pl := plan(addr, loc)
		pl.breaklets = append(pl.breaklets, breaklet{kind: kind, probeRef: ref})
		for _, r := range loc.Rets {
			if raddr, ok := m.Addr(r.Offset); ok {
				rp := plan(raddr, r)
				rp.breaklets = append(rp.breaklets, breaklet{kind: goReturnBreaklet, probeRef: ref, fn: addr, abi: loc.ABI})
			}
		}
		for _, r := range loc.Restarts {
			if raddr, ok := m.Addr(r.Offset); ok {
				rp := plan(raddr, r)
				if !slices.ContainsFunc(rp.breaklets, func(b breaklet) bool { return b.kind == restartBreaklet && b.fn == addr }) {
					rp.breaklets = append(rp.breaklets, breaklet{kind: restartBreaklet, fn: addr})
				}
			}
		}
		armed = append(armed, p)
		if loc.RefCtr != 0 {
			refCtrs = append(refCtrs, loc)
		}
	}
	// Arm in address order so slot regions fill predictably.
	addrs := make([]uint64, 0, len(plans))
	for a := range plans {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	// A patch of the no-stop path must not cover another site.
	s.planned = addrs
	defer func() { s.planned = nil }()
	for _, addr := range addrs {
		pl := plans[addr]
		if err := s.armSite(t, addr, addr-pl.loc.Offset, pl); err != nil {
			return err
		}
	}
	for _, p := range armed {
		p.armed.Add(1)
	}
	for _, loc := range refCtrs {
		s.wantSemaphore(t.proc, m.ID(), loc.RefCtr, loc.Offset)
	}
	if hijacks || (s.hijacks && newMapping) {
		s.hijacks = true
		return s.armUnwindHooks(t, m)
	}
	return nil
}

// locate returns where probe p is in the file mapped by m, or nil when p
// does not apply to that file.
func (s *Tracer) locate(p *Probe, pid int, m elfsym.Mapping) (*resolve.Location, error) {
	id := m.ID()
	if !p.Spec.IsLibrary() {
		if p.loc != nil && p.loc.ID == id {
			return p.loc, nil
		}
		return nil, nil
	}
	if loc, ok := p.byFile[id]; ok {
		return loc, nil // nil too: the file was looked at and is not it
	}
	f := s.mappedFile(pid, m)
	if f == nil {
		p.byFile[id] = nil
		return nil, nil // not an ELF we can read: cannot be the library
	}
	if !elfsym.MatchLibrary(p.Spec.Path, f.Path, f.Soname) && !elfsym.MatchLibrary(p.Spec.Path, strings.TrimSuffix(m.Path, " (deleted)"), f.Soname) {
		p.byFile[id] = nil
		return nil, nil
	}
	loc, err := resolve.In(f, p.Spec)
	if err != nil {
		p.byFile[id] = nil
		return nil, err
	}
	p.byFile[id] = &loc
	return &loc, nil
}

// mappedFile returns the open ELF file of mapping m, opened once per
// session, or nil when it cannot be read as ELF.
func (s *Tracer) mappedFile(pid int, m elfsym.Mapping) *elfsym.File {
	id := m.ID()
	if f, ok := s.files[id]; ok {
		return f
	}
	f, err := openMapped(pid, m)
	if err != nil {
		f = nil
	}
	s.files[id] = f
	return f
}

// openMapped opens the file of mapping m, checking that it is the mapped
// file (same device and inode), also when the process has another root
// (resolve.MappedPath).
func openMapped(pid int, m elfsym.Mapping) (*elfsym.File, error) {
	if p, ok := resolve.MappedPath(pid, elfsym.ProcessRoot(pid), m); ok {
		f, err := elfsym.Open(p)
		if err == nil && f.ID == m.ID() {
			return f, nil
		}
		if err == nil {
			f.Close()
		}
	}
	return nil, fmt.Errorf("cannot open the file mapped at 0x%x (%s)", m.Start, m.Path)
}

// armLinker puts the engine's own breakpoint on the dynamic linker's
// _dl_debug_state, which the linker calls after it maps or unmaps
// libraries and before their code runs: each call rescans the mappings.
func (s *Tracer) armLinker(t *thread) error {
	base, err := auxvEntry(t.proc.pid, 7 /* AT_BASE */)
	if err != nil || base == 0 {
		return nil // a static program has no dynamic linker
	}
	maps, err := elfsym.ReadMaps(t.proc.pid)
	if err != nil {
		return err
	}
	var ld *elfsym.Mapping
	for i := range maps {
		if maps[i].Start == base {
			ld = &maps[i]
			break
		}
	}
	if ld == nil {
		return fmt.Errorf("no mapping at the dynamic linker's base 0x%x", base)
	}
	f := s.mappedFile(t.proc.pid, *ld) // kept open: the no-stop path reads the function from it
	if f == nil {
		return fmt.Errorf("dynamic linker %s: cannot read it as ELF (libraries loaded later will not be probed)", ld.Path)
	}
	loc, err := resolve.In(f, &uprobe.Spec{Text: "_dl_debug_state", Path: f.Path, Symbol: "_dl_debug_state"})
	if err != nil {
		return fmt.Errorf("dynamic linker %s: %w (libraries loaded later will not be probed)", f.Path, err)
	}
	for _, m := range maps {
		if m.ID() != f.ID || !m.Exec() {
			continue
		}
		if addr, ok := m.Addr(loc.Offset); ok {
			t.proc.as.dlState = addr
			// A sync site (docs/DESIGN.md §8): on the no-stop path
			// the calling thread waits in the recorder until the
			// drain has rescanned the mappings, and only while
			// ptprobe's heartbeat goes on, so a killed ptprobe
			// leaves no int3 that a later dlopen would trip on.
			// With Options.StopPath, where the no-stop path cannot
			// run, or when no probe of the session can take it, it
			// is an int3: then a killed ptprobe leaves int3s anyway,
			// and the area the sync site needs (its drain and
			// heartbeat goroutines) made every stop of a run of
			// return probes cost up to 2.5× (docs/DESIGN.md §8).
			pl := &sitePlan{loc: &loc, breaklets: []breaklet{{kind: internalBreaklet, name: "rescan", action: s.rescan, sync: s.mayNoStop()}}}
			return s.armSite(t, addr, addr-loc.Offset, pl)
		}
	}
	return fmt.Errorf("dynamic linker %s: _dl_debug_state is not mapped", f.Path)
}

// mayNoStop reports whether a probe of the session may take the no-stop
// path: an entry probe without Go handlers (fastOK), with the no-stop
// path not turned off.
func (s *Tracer) mayNoStop() bool {
	if s.opts.StopPath {
		return false
	}
	for _, p := range s.probes {
		h := p.handlers
		if p.Spec.Kind == uprobe.Entry && h.Pre == nil && h.Post == nil && h.Fault == nil && h.Entry == nil && h.Return == nil {
			return true
		}
	}
	return false
}

// rescan is the action of the _dl_debug_state breakpoint.
func (s *Tracer) rescan(t *thread) error {
	return s.armNew(t)
}

// rescanProcess is rescan for _dl_debug_state on the no-stop path
// (syncMappings): the thread that called it waits in the recorder, not at
// a stop, so the process is held for the rescan.
func (s *Tracer) rescanProcess(pid int) error {
	pr := s.procs[pid]
	if pr == nil || pr.as == nil || pr.unfollowed {
		return nil // gone, or exec'd meanwhile (exec arms afresh)
	}
	var errs []error
	ran := false
	s.withHeld(pr, func(_ *process, held []*thread) {
		ran = true
		if err := s.armNew(held[0]); err != nil {
			errs = append(errs, err)
		}
	}, &errs)
	if !ran && s.procs[pid] == pr {
		errs = append(errs, errors.New("no thread of it could be held to arm them from"))
	}
	return errors.Join(errs...)
}

// auxvEntry reads one entry of the process's auxiliary vector.
func auxvEntry(pid int, key uint64) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return 0, err
	}
	r := bytes.NewReader(b)
	for {
		var kv [2]uint64
		if err := binary.Read(r, binary.LittleEndian, &kv); err != nil {
			return 0, nil
		}
		if kv[0] == key {
			return kv[1], nil
		}
		if kv[0] == 0 {
			return 0, nil
		}
	}
}
