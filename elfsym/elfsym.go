// Package elfsym reads what a probe engine needs from ELF files and from
// /proc/PID/maps: function symbols, the mapping between virtual addresses
// and file offsets through the executable PT_LOAD segments, function bounds
// of stripped files (from .eh_frame_hdr), file identity (device + inode)
// and the executable mappings of a process.
//
// elfsym imports nothing of this module.
package elfsym

import (
	"debug/elf"
	"errors"
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
	Type    elf.SymType
	Dynamic bool // from .dynsym (else .symtab)
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

// File is an opened ELF file. It holds an open file descriptor until Close.
type File struct {
	Path     string // as given to Open
	ID       FileID
	Type     elf.Type // ET_EXEC or ET_DYN
	Soname   string   // DT_SONAME, "" if none
	Interp   string   // PT_INTERP, "" if none
	Segments []Segment
	// unexported: *os.File, *elf.File, sorted symbols, eh_frame_hdr table
}

// Open opens and parses path. Malformed files return an error, never panic.
// Only x86-64 ELF files are accepted.
func Open(path string) (*File, error) { panic("not implemented") }

// Close releases the file.
func (f *File) Close() error { panic("not implemented") }

// Symbols returns the defined function symbols of .symtab and .dynsym
// (deduplicated by name and address), sorted by address. The slice is
// owned by the File.
func (f *File) Symbols() []Symbol { panic("not implemented") }

// Lookup returns the defined function symbol called name (".symtab" first,
// then ".dynsym"; name may carry "@VERSION"). Not found: an error wrapping
// ErrUnknownSymbol that names the symbol and the file.
func (f *File) Lookup(name string) (Symbol, error) { panic("not implemented") }

// FileOffset converts a link-time virtual address into a file offset
// through the executable PT_LOAD segment containing it (off = vaddr -
// p_vaddr + p_offset); ErrNotExecutable if none contains it.
func (f *File) FileOffset(vaddr uint64) (uint64, error) { panic("not implemented") }

// Vaddr converts a file offset inside an executable PT_LOAD segment into
// its link-time virtual address; ErrNotExecutable otherwise.
func (f *File) Vaddr(off uint64) (uint64, error) { panic("not implemented") }

// Function returns the bounds [start, end) (link-time virtual addresses)
// of the function containing vaddr and its name (may be "" when the bounds
// come from .eh_frame_hdr of a stripped file). ok is false when neither a
// sized symbol nor an unwind entry contains vaddr.
func (f *File) Function(vaddr uint64) (start, end uint64, name string, ok bool) {
	panic("not implemented")
}

// ReadAt reads file bytes at a file offset (io.ReaderAt).
func (f *File) ReadAt(p []byte, off int64) (int, error) { panic("not implemented") }

// MatchLibrary reports whether name, as a user writes a library in
// "LIB:SYMBOL" ("libc", "libc.so.6", "libz", "libpthread.so.0"), designates
// the library at path with the given soname: equal to the soname or the
// base name, or equal to the base name up to ".so" (and "libc" for
// "libc.so.6", also with the "lib" prefix omitted: "c" is not accepted).
func MatchLibrary(name, path, soname string) bool { panic("not implemented") }

// SearchLibrary looks for a library named as in MatchLibrary in the
// directories the dynamic linker searches by default on this system
// (LD_LIBRARY_PATH, the directories of /etc/ld.so.conf and its includes,
// /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64,
// /lib, /usr/lib) and returns its path, preferring the real file
// (symlinks resolved). ok is false when none is found.
func SearchLibrary(name string) (path string, ok bool) { panic("not implemented") }
