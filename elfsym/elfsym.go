// Package elfsym reads what a probe engine needs from ELF files and from
// /proc/PID/maps: function symbols, the mapping between virtual addresses
// and file offsets through the executable PT_LOAD segments, function bounds
// of stripped files (from .eh_frame_hdr), file identity (device + inode)
// and the executable mappings of a process.
//
// elfsym imports nothing of this module.
package elfsym

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// FileID identifies a file the way the kernel's uprobes do: by device and
// inode. Dev is in the encoding of unix.Mkdev(major, minor).
type FileID struct {
	Dev uint64
	Ino uint64
}

// Symbol is a function (or other code symbol) of an ELF file.
type Symbol struct {
	Name    string // without @VERSION
	Version string // "GLIBC_2.2.5" for versioned dynamic symbols, else ""
	Value   uint64 // link-time virtual address
	Size    uint64 // bytes; 0 when the symbol table does not say
	Offset  uint64 // file offset of Value through its PT_LOAD segment
	// Type is STT_FUNC or STT_GNU_IFUNC. The address of an IFUNC
	// (memcpy in glibc) is its resolver, run once by the dynamic linker,
	// not the implementation that calls reach.
	Type elf.SymType
	// Dynamic reports that the symbol is in .dynsym (exported). In the
	// merged list of [File.Symbols] a symbol present in both .symtab and
	// .dynsym has Dynamic set and carries the .dynsym version.
	Dynamic bool
}

// Segment is a PT_LOAD program header.
type Segment struct {
	Vaddr, Memsz   uint64
	Offset, Filesz uint64
	Flags          elf.ProgFlag
}

// ErrNotELF is wrapped by Open for files that are not ELF.
var ErrNotELF = errors.New("not an ELF file")

// ErrUnknownSymbol is wrapped by Lookup when no symbol has the name.
var ErrUnknownSymbol = errors.New("unknown symbol")

// ErrNotExecutable is wrapped when an offset or address lies outside every
// executable PT_LOAD segment.
var ErrNotExecutable = errors.New("outside any executable segment")

// maxInterp bounds the PT_INTERP read: a malformed header may claim any
// size, and a real interpreter path is short.
const maxInterp = 4096

// File is an opened ELF file. It holds an open file descriptor until Close.
//
// After Open, the methods of File are safe for concurrent use.
type File struct {
	Path     string // as given to Open
	ID       FileID
	Type     elf.Type // ET_EXEC or ET_DYN
	Soname   string   // DT_SONAME, "" if none
	Interp   string   // PT_INTERP, "" if none
	Segments []Segment

	osf  *os.File
	ef   *elf.File
	size int64 // file size in bytes at Open, bounds every read

	symtab, dynsym []sym               // defined code symbols of each table, table order
	symtabByName   map[string][]int    // name -> indexes into symtab
	dynsymByName   map[string][]int    // name -> indexes into dynsym
	merged         []sym               // deduplicated by (name, value), sorted by Value
	mergedByKey    map[symKey]int      // (name, value) -> index into merged
	symbols        []Symbol            // merged without the internal fields
	sized          []int               // indexes into merged of symbols with Size > 0
	sizedMaxEnd    []uint64            // sizedMaxEnd[i] = max end of merged[sized[0..i]]
	names          map[string]struct{} // every symbol name, for "did you mean"

	eh ehCache // .eh_frame_hdr / .eh_frame table, built on first use

	goVersion     string // the Go version of .go.buildinfo, once read
	goVersionRead bool
}

// sym is a Symbol with what Lookup and Function need to choose among
// aliases and versions.
type sym struct {
	Symbol
	bind   elf.SymBind
	hidden bool // a non-default version ("name@V", not "name@@V")
}

// Open opens and parses path. Malformed files return an error, never panic.
// Only x86-64 ELF files are accepted.
func Open(path string) (*File, error) {
	// O_NONBLOCK: opening a FIFO must not hang; it has no effect on the
	// regular files accepted below.
	osf, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("elfsym: %w", err)
	}
	f, err := open(path, osf)
	if err != nil {
		osf.Close()
		return nil, err
	}
	return f, nil
}

func open(path string, osf *os.File) (*File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(osf.Fd()), &st); err != nil {
		return nil, fmt.Errorf("elfsym: fstat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("elfsym: %s: not a regular file: %w", path, ErrNotELF)
	}
	var magic [4]byte
	if n, _ := osf.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("elfsym: %s: %w", path, ErrNotELF)
	}
	if err := checkHeaders(osf, st.Size, path); err != nil {
		return nil, err
	}
	f := &File{
		Path: path,
		ID:   FileID{Dev: unix.Mkdev(unix.Major(st.Dev), unix.Minor(st.Dev)), Ino: st.Ino},
		osf:  osf,
		size: st.Size,
	}
	if err := f.parse(); err != nil {
		return nil, err
	}
	return f, nil
}

// parse reads the headers and the symbol tables. debug/elf has panicked on
// malformed input in the past; the recover turns any such panic into an
// error so that Open keeps its promise.
func (f *File) parse() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("elfsym: %s: malformed ELF file (parser panic: %v)", f.Path, r)
		}
	}()
	ef, err := elf.NewFile(f.osf)
	if err != nil {
		return fmt.Errorf("elfsym: %s: malformed ELF file: %w", f.Path, err)
	}
	f.ef = ef // 64-bit little-endian x86-64: checkHeaders saw to it
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("elfsym: %s: unsupported ELF type %v (want ET_EXEC or ET_DYN)", f.Path, ef.Type)
	}
	f.Type = ef.Type
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			// Offsets and addresses are computed within a segment; one
			// that wraps around the address space cannot be mapped.
			if p.Off+p.Filesz < p.Off || p.Vaddr+p.Memsz < p.Vaddr || p.Vaddr+p.Filesz < p.Vaddr {
				return fmt.Errorf("elfsym: %s: malformed PT_LOAD (offset %#x, vaddr %#x, filesz %#x, memsz %#x)",
					f.Path, p.Off, p.Vaddr, p.Filesz, p.Memsz)
			}
			f.Segments = append(f.Segments, Segment{
				Vaddr: p.Vaddr, Memsz: p.Memsz,
				Offset: p.Off, Filesz: p.Filesz,
				Flags: p.Flags,
			})
		case elf.PT_INTERP:
			if f.Interp == "" {
				f.Interp = f.readString(p.Off, p.Filesz)
			}
		}
	}
	sonames, err := ef.DynString(elf.DT_SONAME)
	if err != nil {
		return fmt.Errorf("elfsym: %s: reading DT_SONAME: %w", f.Path, err)
	}
	if len(sonames) > 0 {
		f.Soname = sonames[0]
	}
	return f.loadSymbols()
}

// readString reads a NUL-terminated string of at most n (and maxInterp)
// bytes at file offset off.
func (f *File) readString(off, n uint64) string {
	n = min(n, maxInterp)
	b := make([]byte, n)
	got, _ := f.readFile(b, off)
	b = b[:got]
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// readFile reads at a file offset, never beyond the file size at Open
// (so that lengths taken from the file cannot make it read forever).
func (f *File) readFile(p []byte, off uint64) (int, error) {
	if off >= uint64(f.size) {
		return 0, fmt.Errorf("elfsym: %s: offset %#x beyond end of file (%d bytes)", f.Path, off, f.size)
	}
	if rest := uint64(f.size) - off; uint64(len(p)) > rest {
		p = p[:rest]
	}
	return f.osf.ReadAt(p, int64(off))
}

// Close releases the file.
func (f *File) Close() error {
	if f.osf == nil {
		return nil
	}
	err := f.osf.Close()
	if err != nil {
		return fmt.Errorf("elfsym: close %s: %w", f.Path, err)
	}
	return nil
}

// Symbols returns the defined function symbols of .symtab and .dynsym
// (deduplicated by name and address), sorted by address. The slice is
// owned by the File.
//
// Of several versions of one name at one address (pthread_create@GLIBC_2.2.5
// and pthread_create@@GLIBC_2.34) the default version is kept; Lookup still
// finds the others by their version.
func (f *File) Symbols() []Symbol { return f.symbols }

// Lookup returns the defined function symbol called name (".symtab" first,
// then ".dynsym"; name may carry "@VERSION"). Not found: an error wrapping
// ErrUnknownSymbol that names the symbol and the file.
//
// "name@V" and "name@@V" both select version V. Without a version, the
// default version of a dynamic symbol is preferred. The result is the
// entry of Symbols for that name and address (a .symtab symbol carries
// the version of its .dynsym twin), except for a non-default version
// asked for by name, which Symbols lists under the default one. Among several symbols
// of one name in one table (static functions of different source files)
// the global one is chosen, else weak, else the lowest address.
func (f *File) Lookup(name string) (Symbol, error) {
	base, ver, hasVer := name, "", false
	if i := strings.IndexByte(name, '@'); i >= 0 {
		base, ver, hasVer = name[:i], strings.TrimLeft(name[i+1:], "@"), true
	}
	if base != "" {
		for _, t := range []struct {
			syms   []sym
			byName map[string][]int
		}{{f.symtab, f.symtabByName}, {f.dynsym, f.dynsymByName}} {
			best := -1
			for _, i := range t.byName[base] {
				if hasVer && t.syms[i].Version != ver {
					continue
				}
				if best < 0 || lookupBetter(t.syms[i], t.syms[best]) {
					best = i
				}
			}
			if best >= 0 {
				return f.enrich(t.syms[best], ver), nil
			}
		}
	}
	return Symbol{}, fmt.Errorf("elfsym: %s: %w %q%s", f.Path, ErrUnknownSymbol, name, f.suggest(base, hasVer))
}

// enrich returns s as Symbols lists it (with the version and Dynamic flag
// of its .dynsym twin when s comes from .symtab), unless that entry has
// another version than the one asked for (pthread_create@GLIBC_2.2.5 is
// listed as its default version GLIBC_2.34).
func (f *File) enrich(s sym, ver string) Symbol {
	i, ok := f.mergedByKey[symKey{s.Name, s.Value}]
	if !ok {
		return s.Symbol
	}
	m := f.merged[i].Symbol
	if ver != "" && m.Version != ver {
		return s.Symbol
	}
	return m
}

// lookupBetter orders candidates of one name for Lookup.
func lookupBetter(a, b sym) bool {
	if a.hidden != b.hidden {
		return !a.hidden
	}
	if ra, rb := bindRank(a.bind), bindRank(b.bind); ra != rb {
		return ra < rb
	}
	return a.Value < b.Value
}

func bindRank(b elf.SymBind) int {
	switch b {
	case elf.STB_GLOBAL:
		return 0
	case elf.STB_WEAK:
		return 1
	}
	return 2
}

// suggest returns " (did you mean ...?)" naming up to 3 close matches of
// base: the same name with another version, then the names closest by
// edit distance, ignoring case (within suggestBound), then the shortest
// names containing it, ignoring case ("mallo" for "malloc_usable_size").
func (f *File) suggest(base string, hasVer bool) string {
	if base == "" {
		return ""
	}
	var out []string
	if hasVer {
		for _, s := range f.merged {
			if v := versioned(s); s.Name == base && len(out) < maxSuggestions && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	lower := strings.ToLower(base)
	bound := suggestBound(len(base))
	var cands []candidate
	for n := range f.names {
		if n == base {
			continue
		}
		ln := strings.ToLower(n)
		if d := editDistance(lower, ln, bound); d <= bound {
			cands = append(cands, candidate{name: n, rank: d})
		} else if strings.Contains(ln, lower) {
			cands = append(cands, candidate{name: n, rank: bound + 1})
		}
	}
	for _, c := range rankCandidates(cands) {
		if len(out) == maxSuggestions {
			break
		}
		out = append(out, c.name)
	}
	return didYouMean(out)
}

// versioned renders a symbol the way nm -D does: name@@V for the default
// version, name@V for another one.
func versioned(s sym) string {
	switch {
	case s.Version == "":
		return s.Name
	case s.hidden:
		return s.Name + "@" + s.Version
	}
	return s.Name + "@@" + s.Version
}

// FileOffset converts a link-time virtual address into a file offset
// through the executable PT_LOAD segment containing it (off = vaddr -
// p_vaddr + p_offset); ErrNotExecutable if none contains it.
func (f *File) FileOffset(vaddr uint64) (uint64, error) {
	if off, ok := f.offsetIn(vaddr, true); ok {
		return off, nil
	}
	return 0, fmt.Errorf("elfsym: %s: address %#x: %w", f.Path, vaddr, ErrNotExecutable)
}

// offsetIn maps vaddr through the first PT_LOAD segment (executable ones
// only if exec) whose file bytes contain it.
func (f *File) offsetIn(vaddr uint64, exec bool) (uint64, bool) {
	for _, s := range f.Segments {
		if exec && s.Flags&elf.PF_X == 0 {
			continue
		}
		if vaddr >= s.Vaddr && vaddr-s.Vaddr < s.Filesz {
			return s.Offset + (vaddr - s.Vaddr), true
		}
	}
	return 0, false
}

// Vaddr converts a file offset inside an executable PT_LOAD segment into
// its link-time virtual address; ErrNotExecutable otherwise.
func (f *File) Vaddr(off uint64) (uint64, error) {
	for _, s := range f.Segments {
		if s.Flags&elf.PF_X == 0 {
			continue
		}
		if off >= s.Offset && off-s.Offset < s.Filesz {
			return s.Vaddr + (off - s.Offset), nil
		}
	}
	return 0, fmt.Errorf("elfsym: %s: file offset %#x: %w", f.Path, off, ErrNotExecutable)
}

// Function returns the bounds [start, end) (link-time virtual addresses)
// of the function containing vaddr and its name (may be "" when the bounds
// come from .eh_frame_hdr of a stripped file). ok is false when neither a
// sized symbol nor an unwind entry contains vaddr.
//
// Of several sized symbols containing vaddr the smallest wins, then
// global over weak over local, then the name with fewer leading
// underscores ("malloc" over "__libc_malloc"). Bounds from unwind
// information are named after a symbol starting there, if any.
func (f *File) Function(vaddr uint64) (start, end uint64, name string, ok bool) {
	if s, found := f.sizedSymbolAt(vaddr); found {
		return s.Value, addSat(s.Value, s.Size), s.Name, true
	}
	start, end, ok = f.eh.lookup(f, vaddr)
	if !ok {
		return 0, 0, "", false
	}
	return start, end, f.nameAt(start), true
}

// sizedSymbolAt finds the preferred sized symbol containing vaddr.
func (f *File) sizedSymbolAt(vaddr uint64) (sym, bool) {
	i := sort.Search(len(f.sized), func(i int) bool { return f.merged[f.sized[i]].Value > vaddr }) - 1
	best := -1
	// sizedMaxEnd is non-decreasing: once it is <= vaddr no earlier
	// symbol can reach vaddr.
	for ; i >= 0 && f.sizedMaxEnd[i] > vaddr; i-- {
		s := f.merged[f.sized[i]]
		if vaddr-s.Value < s.Size && (best < 0 || functionBetter(s, f.merged[best])) {
			best = f.sized[i]
		}
	}
	if best < 0 {
		return sym{}, false
	}
	return f.merged[best], true
}

// nameAt names the symbol starting exactly at vaddr, "" if none.
func (f *File) nameAt(vaddr uint64) string {
	i := sort.Search(len(f.merged), func(i int) bool { return f.merged[i].Value >= vaddr })
	best := -1
	for ; i < len(f.merged) && f.merged[i].Value == vaddr; i++ {
		if best < 0 || functionBetter(f.merged[i], f.merged[best]) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return f.merged[best].Name
}

// functionBetter orders aliases for naming a function.
func functionBetter(a, b sym) bool {
	if a.Size != b.Size && a.Size != 0 && b.Size != 0 {
		return a.Size < b.Size
	}
	if ra, rb := bindRank(a.bind), bindRank(b.bind); ra != rb {
		return ra < rb
	}
	ua, ub := len(a.Name)-len(strings.TrimLeft(a.Name, "_")), len(b.Name)-len(strings.TrimLeft(b.Name, "_"))
	if ua != ub {
		return ua < ub
	}
	if len(a.Name) != len(b.Name) {
		return len(a.Name) < len(b.Name)
	}
	return a.Name < b.Name
}

// addSat returns a+b, saturated at the largest uint64 (sizes come from the
// file and must not wrap around).
func addSat(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// ReadAt reads file bytes at a file offset (io.ReaderAt).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.osf.ReadAt(p, off)
}

// IsGo reports whether the file was built by the Go toolchain (it has a
// .go.buildinfo section or a Go build ID note). Go moves goroutine stacks,
// so a return address rewritten on one is lost when the stack is copied:
// return probes on Go code must not hijack return addresses.
func (f *File) IsGo() bool {
	if f.ef == nil {
		return false
	}
	return f.ef.Section(".go.buildinfo") != nil || f.ef.Section(".note.go.buildid") != nil
}

// GoRegisterABI reports whether function (a symbol name) of the file takes
// its arguments in Go's register ABI: the file was built by Go 1.17 or
// later, and the function is Go code. Go functions are named
// "package.Name"; the C functions of a cgo program have no '.', and the
// ABI0 functions of Go's assembly, which take their arguments on the
// stack, carry the ".abi0" suffix where both ABIs exist.
func (f *File) GoRegisterABI(function string) bool {
	if !f.IsGo() || !strings.Contains(function, ".") || strings.HasSuffix(function, ".abi0") {
		return false
	}
	if !f.goVersionRead {
		f.goVersionRead = true
		if bi, err := buildinfo.Read(f.osf); err == nil {
			f.goVersion = bi.GoVersion
		}
	}
	// "go1.22.3", "go1.17", "devel go1.25-abc…": the register ABI came
	// with go1.17. An unknown version is taken as a current one.
	v := f.goVersion
	if i := strings.Index(v, "go1."); i >= 0 {
		minor := v[i+len("go1."):]
		n := 0
		for len(minor) > 0 && minor[0] >= '0' && minor[0] <= '9' {
			n = n*10 + int(minor[0]-'0')
			minor = minor[1:]
		}
		return n >= 17
	}
	return true
}

// HasSection reports whether the file has a section of that name.
func (f *File) HasSection(name string) bool {
	return f.ef != nil && f.ef.Section(name) != nil
}
