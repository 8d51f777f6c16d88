package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testProgram has functions of several shapes: global, static, a loop
// with a call, and marker, written in assembly with known bytes and no
// unwind information (so that no FDE covers it).
const testProgram = `#include <stdio.h>
__attribute__((noinline)) int add3(int a, int b, int c) { return a + b * c; }
__attribute__((noinline)) static long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noinline)) int loop_sum(const int *v, int n) {
	int s = 0;
	for (int i = 0; i < n; i++) s += v[i] * (i ^ 3);
	if (s > 1000) puts("big");
	return s;
}
__asm__(".text\n.globl marker\n.type marker,@function\nmarker:\n.byte 0x90,0x90,0x0f,0x0b,0xc3\n.size marker,5\n");
int main(int argc, char **argv) {
	int v[4] = {argc, 2, 3, 4};
	(void)argv;
	printf("%d %ld %d\n", add3(argc, 2, 3), fib(argc + 5), loop_sum(v, 4));
	return 0;
}
`

var markerBytes = []byte{0x90, 0x90, 0x0f, 0x0b, 0xc3}

// buildProgram compiles testProgram with extra gcc flags into dir and
// returns the paths of the binary and of a stripped copy.
func buildProgram(t *testing.T, dir, name string, flags ...string) (bin, stripped string) {
	t.Helper()
	needTool(t, "gcc")
	needTool(t, "strip")
	src := filepath.Join(dir, "prog.c")
	if err := os.WriteFile(src, []byte(testProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, name)
	run(t, "gcc", append(append([]string{"-O1"}, flags...), "-o", bin, src)...)
	stripped = bin + ".stripped"
	run(t, "strip", "-o", stripped, bin)
	return bin, stripped
}

func TestGCCPrograms(t *testing.T) {
	needTool(t, "gcc")
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		flags []string
		typ   elf.Type
		hdr   bool // has .eh_frame_hdr
	}{
		{"nopie", []string{"-no-pie", "-fno-pie"}, elf.ET_EXEC, true},
		{"pie", []string{"-pie", "-fPIE"}, elf.ET_DYN, true},
		{"pie-no-eh-frame-hdr", []string{"-pie", "-fPIE", "-Wl,--no-eh-frame-hdr"}, elf.ET_DYN, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, stripped := buildProgram(t, dir, tc.name, tc.flags...)
			segs := readelfLoads(t, bin)
			want := map[string]nmSym{}
			for _, s := range nm(t, "--defined-only", bin) {
				want[s.name] = s
			}
			funcs := []string{"add3", "fib", "loop_sum", "main", "marker"}

			f, err := Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Type != tc.typ {
				t.Errorf("Type = %v, want %v", f.Type, tc.typ)
			}
			if !strings.Contains(f.Interp, "ld-linux-x86-64") {
				t.Errorf("Interp = %q", f.Interp)
			}
			_, _, hasHdr := f.ehFrameHdr()
			if hasHdr != tc.hdr {
				t.Errorf(".eh_frame_hdr present: %v, want %v", hasHdr, tc.hdr)
			}
			for _, name := range funcs {
				w, ok := want[name]
				if !ok {
					t.Fatalf("nm shows no %s", name)
				}
				s, err := f.Lookup(name)
				if err != nil {
					t.Fatal(err)
				}
				off := execOffset(t, segs, w.value)
				if s.Value != w.value || s.Size != w.size || s.Offset != off || s.Dynamic {
					t.Errorf("Lookup(%s) = %+v, nm %#x size %d, offset %#x", name, s, w.value, w.size, off)
				}
				if name == "fib" && s.Type != elf.STT_FUNC {
					t.Errorf("fib type %v", s.Type)
				}
				start, end, fn, ok := f.Function(w.value + w.size/2)
				if !ok || start != w.value || end != w.value+w.size || fn != name {
					t.Errorf("Function(%s+%d) = %#x, %#x, %q, %v", name, w.size/2, start, end, fn, ok)
				}
				if v, err := f.Vaddr(off); err != nil || v != w.value {
					t.Errorf("Vaddr(%#x) = %#x, %v", off, v, err)
				}
			}
			mk, _ := f.Lookup("marker")
			got := make([]byte, len(markerBytes))
			if _, err := f.ReadAt(got, int64(mk.Offset)); err != nil || !bytes.Equal(got, markerBytes) {
				t.Errorf("ReadAt(marker offset %#x) = % x, %v; want % x", mk.Offset, got, err, markerBytes)
			}

			// The stripped copy: no .symtab, bounds from unwind data.
			sf, err := Open(stripped)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			if sf.ID == f.ID {
				t.Error("stripped copy has the same FileID")
			}
			for _, name := range funcs {
				w := want[name]
				if _, err := sf.Lookup(name); name != "main" && !errors.Is(err, ErrUnknownSymbol) {
					t.Errorf("stripped: Lookup(%s) = %v, want ErrUnknownSymbol", name, err)
				}
				start, end, fn, ok := sf.Function(w.value + 1)
				if name == "marker" {
					if ok {
						t.Errorf("stripped: Function(marker+1) = %#x, %#x, %q; marker has no FDE", start, end, fn)
					}
					continue
				}
				if !ok || start != w.value || end != w.value+w.size {
					t.Errorf("stripped: Function(%s+1) = %#x, %#x, %q, %v; want %#x, %#x", name, start, end, fn, ok, w.value, w.value+w.size)
				}
			}
			got = make([]byte, len(markerBytes))
			if _, err := sf.ReadAt(got, int64(mk.Offset)); err != nil || !bytes.Equal(got, markerBytes) {
				t.Errorf("stripped ReadAt(%#x) = % x, %v", mk.Offset, got, err)
			}
		})
	}
}

func TestNotELF(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("just some text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{text, empty, dir} {
		_, err := Open(p)
		if !errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s) = %v, want ErrNotELF naming the path", p, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}

func TestTruncatedAndForeignELF(t *testing.T) {
	const ls = "/bin/ls"
	needFile(t, ls)
	data, err := os.ReadFile(ls)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []int{4, 16, 63, 64, 200, 4096, len(data) / 2, len(data) - 1} {
		p := filepath.Join(dir, "trunc")
		if err := os.WriteFile(p, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p)
		if err == nil {
			f.Close()
			t.Errorf("Open(%d of %d bytes of %s) succeeded", n, len(data), ls)
			continue
		}
		if errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%d bytes): %v; want a malformed-ELF error naming the path", n, err)
		}
	}
	// Another machine: the same file claiming to be AArch64.
	arm := append([]byte(nil), data...)
	arm[18], arm[19] = byte(elf.EM_AARCH64), 0
	p := filepath.Join(dir, "arm")
	if err := os.WriteFile(p, arm, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "x86-64") {
		t.Errorf("Open(AArch64 file) = %v", err)
	}
	// A PT_LOAD whose address range wraps around.
	wrap := append([]byte(nil), data...)
	phoff := binary.LittleEndian.Uint64(wrap[32:])
	for i := uint64(0); i < uint64(binary.LittleEndian.Uint16(wrap[56:])); i++ {
		ph := wrap[phoff+i*56:]
		if elf.ProgType(binary.LittleEndian.Uint32(ph)) == elf.PT_LOAD {
			binary.LittleEndian.PutUint64(ph[16:], ^uint64(0)-16) // p_vaddr
			break
		}
	}
	if err := os.WriteFile(p, wrap, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "malformed PT_LOAD") {
		t.Errorf("Open(wrapping PT_LOAD) = %v", err)
	}
}

// testLibrary defines foo in two versions (foo@VERS_1 and the default
// foo@@VERS_2, which .symtab spells with the "@"), bar, and baz, an IFUNC.
const testLibrary = `int foo_v1(int x) { return x + 1; }
int foo_v2(int x) { return x + 2; }
__asm__(".symver foo_v1,foo@VERS_1");
__asm__(".symver foo_v2,foo@@VERS_2");
int bar(int x) { return foo_v2(x) * 3; }
__attribute__((ifunc("resolve_baz"))) int baz(int);
static int baz_impl(int x) { return x; }
static void *resolve_baz(void) { return (void *)baz_impl; }
`

func TestSharedLibraryVersions(t *testing.T) {
	needTool(t, "gcc")
	needTool(t, "strip")
	dir := t.TempDir()
	src, script := filepath.Join(dir, "lib.c"), filepath.Join(dir, "lib.map")
	if err := os.WriteFile(src, []byte(testLibrary), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("VERS_1 { global: foo; bar; baz; local: *; };\nVERS_2 { global: foo; } VERS_1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libvers.so.1")
	run(t, "gcc", "-O1", "-fPIC", "-shared", "-Wl,-soname,libvers.so.1", "-Wl,--version-script="+script, "-o", lib, src)
	stripped := lib + ".stripped"
	run(t, "strip", "-o", stripped, lib)
	want := map[string]nmSym{}
	for _, s := range nm(t, "-D", "--defined-only", lib) {
		want[s.name] = s
	}
	for _, p := range []string{lib, stripped} {
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Soname != "libvers.so.1" || f.Type != elf.ET_DYN || !MatchLibrary("libvers", p, f.Soname) {
			t.Errorf("%s: soname %q type %v", p, f.Soname, f.Type)
		}
		for _, tc := range []struct{ lookup, nm, version string }{
			{"foo", "foo@@VERS_2", "VERS_2"},
			{"foo@@VERS_2", "foo@@VERS_2", "VERS_2"},
			{"foo@VERS_1", "foo@VERS_1", "VERS_1"},
			{"bar", "bar@@VERS_1", "VERS_1"},
			{"baz", "baz@@VERS_1", "VERS_1"},
		} {
			s, err := f.Lookup(tc.lookup)
			w, ok := want[tc.nm]
			if err != nil || !ok || s.Value != w.value || s.Version != tc.version || strings.Contains(s.Name, "@") {
				t.Errorf("%s: Lookup(%q) = %+v, %v; nm %s at %#x", p, tc.lookup, s, err, tc.nm, w.value)
			}
		}
		if s, _ := f.Lookup("baz"); s.Type != elf.STT_GNU_IFUNC {
			t.Errorf("baz type %v, want STT_GNU_IFUNC", s.Type)
		}
		if _, err := f.Lookup("foo@VERS_3"); !errors.Is(err, ErrUnknownSymbol) || !strings.Contains(err.Error(), "foo@@VERS_2") {
			t.Errorf("Lookup(foo@VERS_3) = %v", err)
		}
		versions := map[string]string{}
		for _, s := range f.Symbols() {
			if strings.Contains(s.Name, "@") {
				t.Errorf("symbol name %q", s.Name)
			}
			if s.Name == "foo" || s.Name == "bar" || s.Name == "baz" {
				if !s.Dynamic {
					t.Errorf("%s: exported %s not Dynamic", p, s.Name)
				}
				versions[s.Name+fmt.Sprintf("/%#x", s.Value)] = s.Version
			}
		}
		for _, n := range []string{"foo@VERS_1", "foo@@VERS_2", "bar@@VERS_1", "baz@@VERS_1"} {
			name, ver, _ := splitVersion(n)
			if got := versions[name+fmt.Sprintf("/%#x", want[n].value)]; got != ver {
				t.Errorf("%s: Symbols has %s at %#x with version %q, want %q", p, name, want[n].value, got, ver)
			}
		}
		// baz and the local resolve_baz are aliases: the global name wins.
		if _, _, name, ok := f.Function(want["baz@@VERS_1"].value + 1); !ok || name != "baz" {
			t.Errorf("%s: Function(baz+1) name %q, %v", p, name, ok)
		}
	}
}
