package elfsym

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

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
func ReadMaps(pid int) ([]Mapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("elfsym: %w", err)
	}
	ms, err := ParseMaps(data)
	if err != nil {
		return nil, fmt.Errorf("elfsym: /proc/%d/maps: %w", pid, err)
	}
	return ms, nil
}

// ParseMaps parses the text of a /proc/PID/maps file. Paths may contain
// spaces and the " (deleted)" suffix is kept in Path.
//
// The kernel writes a newline in a path as "\012"; it is kept as written
// (a backslash in a path is not escaped, so it cannot be undone reliably).
// Blank lines are skipped.
func ParseMaps(data []byte) ([]Mapping, error) {
	var ms []Mapping
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := parseMapsLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("maps line %d %q: %w", n, line, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// parseMapsLine parses "start-end perms offset major:minor inode   path"
// (numbers in hex but the inode, decimal; the path after padding blanks).
func parseMapsLine(s string) (Mapping, error) {
	var m Mapping
	field := func() string {
		s = strings.TrimLeft(s, " \t")
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			i = len(s)
		}
		f := s[:i]
		s = s[i:]
		return f
	}
	rng, perms, off, dev, ino := field(), field(), field(), field(), field()
	lo, hi, ok := strings.Cut(rng, "-")
	if !ok {
		return m, fmt.Errorf("address range %q", rng)
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("start address: %w", err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("end address: %w", err)
	}
	if m.End < m.Start {
		return m, fmt.Errorf("end %#x before start %#x", m.End, m.Start)
	}
	if len(perms) != 4 {
		return m, fmt.Errorf("permissions %q", perms)
	}
	m.Perms = perms
	if m.Offset, err = strconv.ParseUint(off, 16, 64); err != nil {
		return m, fmt.Errorf("offset: %w", err)
	}
	major, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return m, fmt.Errorf("device %q", dev)
	}
	maj, err := strconv.ParseUint(major, 16, 32)
	if err != nil {
		return m, fmt.Errorf("device major: %w", err)
	}
	mnr, err := strconv.ParseUint(minor, 16, 32)
	if err != nil {
		return m, fmt.Errorf("device minor: %w", err)
	}
	m.Dev = unix.Mkdev(uint32(maj), uint32(mnr))
	if m.Inode, err = strconv.ParseUint(ino, 10, 64); err != nil {
		return m, fmt.Errorf("inode: %w", err)
	}
	// One blank separates the inode from the padding; the path starts at
	// the first non-blank. Trailing blanks belong to the path only if the
	// file name has them, which the kernel cannot tell apart: keep them.
	m.Path = strings.TrimLeft(s, " \t")
	return m, nil
}
