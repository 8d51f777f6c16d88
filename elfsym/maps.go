package elfsym

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64 // [Start, End) virtual addresses
	Perms      string // "r-xp"
	Offset     uint64 // file offset of Start
	Dev        uint64 // unix.Mkdev(major, minor)
	Inode      uint64
	Path       string // "" for anonymous mappings; "[heap]", "[vdso]", ...
}

// Exec reports whether the mapping is executable.
func (m Mapping) Exec() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }

// ID is the identity of the mapped file.
func (m Mapping) ID() FileID { return FileID{Dev: m.Dev, Ino: m.Inode} }

// Addr returns the virtual address at which file offset off is mapped, and
// false when off lies outside the mapping.
func (m Mapping) Addr(off uint64) (uint64, bool) {
	if off < m.Offset || off-m.Offset >= m.End-m.Start {
		return 0, false
	}
	return m.Start + (off - m.Offset), true
}

// FileOffsetOf returns the file offset mapped at addr, and false when addr
// lies outside the mapping.
func (m Mapping) FileOffsetOf(addr uint64) (uint64, bool) {
	if addr < m.Start || addr >= m.End {
		return 0, false
	}
	return m.Offset + (addr - m.Start), true
}

// ReadMaps reads and parses /proc/PID/maps.
func ReadMaps(pid int) ([]Mapping, error) { panic("not implemented") }

// ParseMaps parses the text of a /proc/PID/maps file. Paths may contain
// spaces and the " (deleted)" suffix is kept in Path.
func ParseMaps(data []byte) ([]Mapping, error) { panic("not implemented") }
