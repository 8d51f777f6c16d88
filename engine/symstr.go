package engine

import (
	"fmt"

	"github.com/ptprobe/ptprobe/elfsym"
)

// symbols names the addresses of one address space for symstr fetch-args
// (docs/DESIGN.md §9), as the kernel's sprint_symbol names kernel
// addresses: "name+0xoff/0xsize" from the function symbols of the file
// mapped at the address, "0x..." where no function is. The mappings are
// read once, and again when an address is in none of them (a library
// loaded since); each file is opened once, checked by device and inode.
type symbols struct {
	maps  []elfsym.Mapping
	files map[elfsym.FileID]*elfsym.File // nil: not an ELF we can read
}

// symbolize names addr in process pid (whose address space as is).
func (as *addrSpace) symbolize(pid int, addr uint64) string {
	if as.syms == nil {
		as.syms = &symbols{files: make(map[elfsym.FileID]*elfsym.File)}
	}
	return as.syms.name(pid, addr)
}

func (s *symbols) name(pid int, addr uint64) string {
	for again := 0; again < 2; again++ {
		if s.maps == nil || again == 1 {
			ms, err := elfsym.ReadMaps(pid)
			if err != nil {
				break
			}
			s.maps = ms
		}
		for _, m := range s.maps {
			if addr < m.Start || addr >= m.End {
				continue
			}
			if m.Inode == 0 {
				break // anonymous: no symbols
			}
			f, ok := s.files[m.ID()]
			if !ok {
				f, _ = openMapped(pid, m)
				s.files[m.ID()] = f
			}
			if f == nil {
				break
			}
			off, _ := m.FileOffsetOf(addr)
			vaddr, err := f.Vaddr(off)
			if err != nil {
				break
			}
			if start, end, name, ok := f.Function(vaddr); ok && name != "" {
				return fmt.Sprintf("%s+0x%x/0x%x", name, vaddr-start, end-start)
			}
			break
		}
		if again == 0 && s.inMaps(addr) {
			break // mapped, but in no function: reading again will not help
		}
	}
	return fmt.Sprintf("0x%x", addr)
}

// inMaps reports whether addr is in one of the mappings read.
func (s *symbols) inMaps(addr uint64) bool {
	for _, m := range s.maps {
		if addr >= m.Start && addr < m.End {
			return true
		}
	}
	return false
}

// close closes the files.
func (s *symbols) close() {
	if s == nil {
		return
	}
	for id, f := range s.files {
		if f != nil {
			f.Close()
		}
		delete(s.files, id)
	}
}
