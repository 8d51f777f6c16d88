package elfsym

import (
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
