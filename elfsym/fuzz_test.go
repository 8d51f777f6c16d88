package elfsym

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzOpen feeds arbitrary files to Open and every query: none may panic,
// and what they return must be consistent. The seed corpus is in
// testdata/fuzz/FuzzOpen (made by testdata/genseeds/main.go, with
// version-with-at: the shared seed with a version "@" in .dynstr).
//
// Go's minimizer is quadratic in an input's length (golang/go#48820) and
// ELF inputs are kilobytes: a new input the fuzzer finds can take the
// whole -fuzzminimizetime (60 s by default) while the exec count stands
// still. Give -fuzzminimizetime 1x (or a few seconds) for a run that
// keeps moving; its new inputs are then kept unminimized.
func FuzzOpen(f *testing.F) {
	// Each fuzzing worker is a process of its own that runs the function
	// serially: one file per process is enough. It is a memfd, opened by
	// Open through /proc/self/fd: writing a file on disk for every input
	// took most of an exec's time.
	fd, err := unix.MemfdCreate("elfsym-fuzz", unix.MFD_CLOEXEC)
	if err != nil {
		f.Fatalf("memfd: %v", err)
	}
	f.Cleanup(func() { unix.Close(fd) })
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := unix.Ftruncate(fd, 0); err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); {
			n, err := unix.Pwrite(fd, data[off:], int64(off))
			if err != nil {
				t.Fatal(err)
			}
			off += n
		}
		ef, err := Open(path)
		if err != nil {
			return
		}
		defer ef.Close()

		checkFunction := func(v uint64) {
			start, end, _, ok := ef.Function(v)
			if ok && (v < start || v >= end) {
				t.Fatalf("Function(%#x) = [%#x, %#x): does not contain it", v, start, end)
			}
		}
		syms := ef.Symbols()
		for i, s := range syms {
			if i >= 64 {
				break
			}
			if strings.Contains(s.Name, "@") || s.Name == "" {
				t.Fatalf("symbol name %q", s.Name)
			}
			if i > 0 && s.Value < syms[i-1].Value {
				t.Fatal("Symbols not sorted")
			}
			if _, err := ef.Lookup(s.Name); err != nil {
				t.Fatalf("Lookup(%q) of a listed symbol: %v", s.Name, err)
			}
			if s.Version != "" {
				if _, err := ef.Lookup(s.Name + "@" + s.Version); err != nil {
					t.Fatalf("Lookup(%s@%s) of a listed symbol: %v", s.Name, s.Version, err)
				}
			}
			checkFunction(s.Value)
			checkFunction(s.Value + 1)
			if off, err := ef.FileOffset(s.Value); err == nil {
				ef.Vaddr(off)
			}
		}
		ef.Lookup("main")
		ef.Lookup("MAIN@@V")
		for _, s := range ef.Segments {
			for _, v := range []uint64{s.Vaddr, s.Vaddr + s.Filesz/2, s.Vaddr + s.Memsz - 1} {
				checkFunction(v)
				if off, err := ef.FileOffset(v); err == nil {
					if _, err := ef.Vaddr(off); err != nil {
						t.Fatalf("Vaddr(FileOffset(%#x) = %#x): %v", v, off, err)
					}
				}
			}
			ef.Vaddr(s.Offset)
			var b [16]byte
			ef.ReadAt(b[:], int64(s.Offset))
		}
		for _, v := range []uint64{0, 1, 0x400000, 1 << 63, ^uint64(0)} {
			checkFunction(v)
			ef.FileOffset(v)
			ef.Vaddr(v)
		}
		MatchLibrary(ef.Soname, ef.Path, ef.Soname)
	})
}

// FuzzLDCache feeds arbitrary bytes to the ld.so.cache parser: it may
// refuse them, never panic, and what it returns is in the data.
func FuzzLDCache(f *testing.F) {
	entries := []ldCacheEntry{{"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}, {"libz.so.1", "/lib/libz.so.1"}}
	newCache := seedLDCacheNew(entries)
	f.Add(newCache)
	f.Add(seedLDCacheOld(entries))
	f.Add(seedLDCacheCompat(entries))
	f.Add([]byte(ldCacheMagicNew))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseLDCache(data)
		if err != nil {
			return
		}
		for _, e := range got {
			if !strings.Contains(string(data), e.name+"\x00") || !strings.Contains(string(data), e.path+"\x00") {
				t.Fatalf("entry %+v is not in the data", e)
			}
		}
	})
}

// seedLDCacheNew lays out an x86-64 cache of the new format.
func seedLDCacheNew(entries []ldCacheEntry) []byte {
	strs := ldCacheNewHeader + len(entries)*ldCacheNewEntry
	b := append([]byte(ldCacheMagicNew), make([]byte, strs-len(ldCacheMagicNew))...)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(entries)))
	b[28] = 2 // little-endian
	for i, e := range entries {
		at := ldCacheNewHeader + i*ldCacheNewEntry
		binary.LittleEndian.PutUint32(b[at:], ldCacheX8664)
		binary.LittleEndian.PutUint32(b[at+4:], uint32(len(b)))
		b = append(append(b, e.name...), 0)
		binary.LittleEndian.PutUint32(b[at+8:], uint32(len(b)))
		b = append(append(b, e.path...), 0)
	}
	binary.LittleEndian.PutUint32(b[24:], uint32(len(b)-strs))
	return b
}

// seedLDCacheOld lays out an x86-64 cache of the old format, its strings
// padded to 8 bytes so that a new cache may follow.
func seedLDCacheOld(entries []ldCacheEntry) []byte {
	strs := ldCacheOldHeader + len(entries)*ldCacheOldEntry
	b := append([]byte(ldCacheMagicOld), make([]byte, strs-len(ldCacheMagicOld))...)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(entries)))
	for i, e := range entries {
		at := ldCacheOldHeader + i*ldCacheOldEntry
		binary.LittleEndian.PutUint32(b[at:], ldCacheX8664)
		binary.LittleEndian.PutUint32(b[at+4:], uint32(len(b)-strs))
		b = append(append(b, e.name...), 0)
		binary.LittleEndian.PutUint32(b[at+8:], uint32(len(b)-strs))
		b = append(append(b, e.path...), 0)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// seedLDCacheCompat lays out a compat cache: an old header and entries,
// then, 8-byte aligned, a new cache, whose strings both use (the old
// entries' offsets are left 0: only the new part is read).
func seedLDCacheCompat(entries []ldCacheEntry) []byte {
	b := append([]byte(ldCacheMagicOld), make([]byte, ldCacheOldHeader-len(ldCacheMagicOld))...)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(entries)))
	for range entries {
		var e [ldCacheOldEntry]byte
		binary.LittleEndian.PutUint32(e[:], ldCacheX8664)
		b = append(b, e[:]...)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return append(b, seedLDCacheNew(entries)...)
}
