package elfsym

import (
	"debug/elf"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func openLibc(t *testing.T) *File {
	t.Helper()
	needFile(t, libcPath)
	f, err := Open(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestLibcHeaders(t *testing.T) {
	f := openLibc(t)
	var st unix.Stat_t
	if err := unix.Stat(libcPath, &st); err != nil {
		t.Fatal(err)
	}
	if want := (FileID{Dev: unix.Mkdev(unix.Major(st.Dev), unix.Minor(st.Dev)), Ino: st.Ino}); f.ID != want {
		t.Errorf("ID = %+v, want %+v", f.ID, want)
	}
	if f.Type != elf.ET_DYN {
		t.Errorf("Type = %v, want ET_DYN", f.Type)
	}
	if f.Soname != "libc.so.6" {
		t.Errorf("Soname = %q, want libc.so.6", f.Soname)
	}
	out := run(t, "readelf", "-lW", libcPath)
	if i := strings.Index(out, "[Requesting program interpreter: "); i >= 0 {
		want, _, _ := strings.Cut(out[i+len("[Requesting program interpreter: "):], "]")
		if f.Interp != want {
			t.Errorf("Interp = %q, want %q", f.Interp, want)
		}
	} else if f.Interp != "" {
		t.Errorf("Interp = %q, readelf shows none", f.Interp)
	}
	want := readelfLoads(t, libcPath)
	if len(f.Segments) != len(want) {
		t.Fatalf("Segments = %+v, readelf: %+v", f.Segments, want)
	}
	for i, s := range f.Segments {
		w := want[i]
		if s.Vaddr != w.Vaddr || s.Offset != w.Offset || s.Filesz != w.Filesz || s.Memsz != w.Memsz || s.Flags != w.Flags {
			t.Errorf("segment %d = %+v, readelf %+v", i, s, w)
		}
	}
}

func TestLibcMalloc(t *testing.T) {
	f := openLibc(t)
	var want nmSym
	for _, s := range nm(t, "-D", "--defined-only", libcPath) {
		if s.name == "malloc@@GLIBC_2.2.5" || s.name == "malloc@GLIBC_2.2.5" {
			want = s
		}
	}
	if want.name == "" {
		t.Fatal("nm -D shows no malloc@GLIBC_2.2.5")
	}
	wantOff := execOffset(t, readelfLoads(t, libcPath), want.value)
	for _, name := range []string{"malloc", "malloc@GLIBC_2.2.5", "malloc@@GLIBC_2.2.5"} {
		s, err := f.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		if s.Name != "malloc" || s.Version != "GLIBC_2.2.5" || s.Value != want.value || s.Size != want.size ||
			s.Offset != wantOff || !s.Dynamic || s.Type != elf.STT_FUNC {
			t.Errorf("Lookup(%q) = %+v, want value %#x size %d offset %#x", name, s, want.value, want.size, wantOff)
		}
	}
	off, err := f.FileOffset(want.value)
	if err != nil || off != wantOff {
		t.Errorf("FileOffset(%#x) = %#x, %v; want %#x", want.value, off, err, wantOff)
	}
	v, err := f.Vaddr(wantOff)
	if err != nil || v != want.value {
		t.Errorf("Vaddr(%#x) = %#x, %v; want %#x", wantOff, v, err, want.value)
	}
	start, end, name, ok := f.Function(want.value + 5)
	if !ok || start != want.value || end != want.value+want.size || name != "malloc" {
		t.Errorf("Function(malloc+5) = %#x, %#x, %q, %v", start, end, name, ok)
	}
}

func TestLibcVersions(t *testing.T) {
	f := openLibc(t)
	byName := map[string]nmSym{}
	for _, s := range nm(t, "-D", "--defined-only", libcPath) {
		byName[s.name] = s
	}
	for _, tc := range []struct{ lookup, nm, version string }{
		{"memcpy", "memcpy@@GLIBC_2.14", "GLIBC_2.14"},
		{"memcpy@GLIBC_2.2.5", "memcpy@GLIBC_2.2.5", "GLIBC_2.2.5"},
		{"pthread_create", "pthread_create@@GLIBC_2.34", "GLIBC_2.34"},
		{"pthread_create@GLIBC_2.2.5", "pthread_create@GLIBC_2.2.5", "GLIBC_2.2.5"},
		{"realpath", "realpath@@GLIBC_2.3", "GLIBC_2.3"},
		{"realpath@GLIBC_2.2.5", "realpath@GLIBC_2.2.5", "GLIBC_2.2.5"},
	} {
		want, ok := byName[tc.nm]
		if !ok {
			t.Logf("nm -D shows no %s on this libc; skipped", tc.nm)
			continue
		}
		s, err := f.Lookup(tc.lookup)
		if err != nil {
			t.Errorf("Lookup(%q): %v", tc.lookup, err)
			continue
		}
		if s.Value != want.value || s.Version != tc.version || strings.Contains(s.Name, "@") {
			t.Errorf("Lookup(%q) = %+v, want value %#x version %s", tc.lookup, s, want.value, tc.version)
		}
		if wantType := elf.STT_FUNC; want.typ == "i" {
			wantType = elf.STT_GNU_IFUNC
			if s.Type != wantType {
				t.Errorf("Lookup(%q).Type = %v, want %v", tc.lookup, s.Type, wantType)
			}
		}
	}
}

// TestLibcSymbolsVsTools compares Symbols with readelf --dyn-syms (every
// defined FUNC/IFUNC, deduplicated by name and address) and each symbol
// with its line in nm -D --defined-only.
func TestLibcSymbolsVsTools(t *testing.T) {
	f := openLibc(t)
	type key struct {
		name  string
		value uint64
	}
	want := map[key]uint64{} // -> size
	for _, line := range strings.Split(run(t, "readelf", "--dyn-syms", "-W", libcPath), "\n") {
		fl := strings.Fields(line)
		if len(fl) < 8 || !strings.HasSuffix(fl[0], ":") || (fl[3] != "FUNC" && fl[3] != "IFUNC") || fl[6] == "UND" {
			continue
		}
		value := hex(t, fl[1])
		if value == 0 {
			continue
		}
		size, err := strconv.ParseUint(fl[2], 0, 64)
		if err != nil {
			t.Fatalf("readelf size %q: %v", fl[2], err)
		}
		name, _, _ := strings.Cut(fl[7], "@")
		want[key{name, value}] = size
	}
	got := map[key]bool{}
	segs := readelfLoads(t, libcPath)
	for _, s := range f.Symbols() {
		k := key{s.Name, s.Value}
		if got[k] {
			t.Errorf("duplicate symbol %+v", s)
		}
		got[k] = true
		size, ok := want[k]
		if !ok {
			t.Errorf("symbol %+v not in readelf --dyn-syms", s)
			continue
		}
		if s.Size != size {
			t.Errorf("%s: size %d, readelf %d", s.Name, s.Size, size)
		}
		if off := execOffset(t, segs, s.Value); s.Offset != off {
			t.Errorf("%s: offset %#x, want %#x", s.Name, s.Offset, off)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("readelf symbol %s at %#x missing from Symbols", k.name, k.value)
		}
	}
	if len(got) < 1000 {
		t.Errorf("only %d symbols in libc", len(got))
	}
	// Sorted by address.
	syms := f.Symbols()
	for i := 1; i < len(syms); i++ {
		if syms[i].Value < syms[i-1].Value {
			t.Fatalf("Symbols not sorted: %#x after %#x", syms[i].Value, syms[i-1].Value)
		}
	}
	// nm -D --defined-only prints name@@V for the default version and
	// name@V for another one; the kept version must be printed there at
	// the same address with a code type.
	nmAt := map[string]nmSym{}
	for _, s := range nm(t, "-D", "--defined-only", libcPath) {
		nmAt[s.name+fmt.Sprintf("/%x", s.value)] = s
	}
	for i, s := range syms {
		if i%7 != 0 { // a sample is enough; all would be fine too
			continue
		}
		names := []string{s.Name}
		if s.Version != "" {
			names = []string{s.Name + "@@" + s.Version, s.Name + "@" + s.Version}
		}
		found := false
		for _, n := range names {
			if ns, ok := nmAt[n+fmt.Sprintf("/%x", s.Value)]; ok {
				found = true
				if !strings.Contains("TtWwi", ns.typ) {
					t.Errorf("%s: nm type %q", n, ns.typ)
				}
			}
		}
		if !found {
			t.Errorf("symbol %+v not in nm -D output", s)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	f := openLibc(t)
	for _, tc := range []struct{ name, hint string }{
		{"no_such_function_xyz", ""},
		{"MALLOC", `did you mean malloc`},
		{"mallo", "did you mean"},
		{"mallocc", "did you mean malloc"},
		{"mlaloc", "did you mean malloc"},
		{"strlne", "did you mean strlen"},
		{"malloc@GLIBC_9.9", "malloc@@GLIBC_2.2.5"},
		{"", ""},
		{"@GLIBC_2.2.5", ""},
	} {
		_, err := f.Lookup(tc.name)
		if !errors.Is(err, ErrUnknownSymbol) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownSymbol", tc.name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(tc.name)) || !strings.Contains(msg, libcPath) {
			t.Errorf("Lookup(%q): %q does not name the symbol and the file", tc.name, msg)
		}
		if tc.hint != "" && !strings.Contains(msg, tc.hint) {
			t.Errorf("Lookup(%q): %q lacks %q", tc.name, msg, tc.hint)
		}
		if tc.hint == "" && strings.Contains(msg, "did you mean") {
			t.Errorf("Lookup(%q): %q suggests something", tc.name, msg)
		}
		if n := strings.Count(msg, ","); n > 2 {
			t.Errorf("Lookup(%q): more than 3 suggestions: %q", tc.name, msg)
		}
	}
}

func TestNotExecutable(t *testing.T) {
	f := openLibc(t)
	var data *Segment
	for i, s := range f.Segments {
		if s.Flags&elf.PF_X == 0 && s.Filesz > 0 && s.Vaddr != 0 {
			data = &f.Segments[i]
		}
	}
	if data == nil {
		t.Fatal("libc has no non-executable segment with a nonzero address")
	}
	_, err := f.FileOffset(data.Vaddr)
	if !errors.Is(err, ErrNotExecutable) || !strings.Contains(err.Error(), fmt.Sprintf("%#x", data.Vaddr)) || !strings.Contains(err.Error(), libcPath) {
		t.Errorf("FileOffset(data %#x) = %v", data.Vaddr, err)
	}
	_, err = f.Vaddr(data.Offset)
	if !errors.Is(err, ErrNotExecutable) || !strings.Contains(err.Error(), fmt.Sprintf("%#x", data.Offset)) {
		t.Errorf("Vaddr(data offset %#x) = %v", data.Offset, err)
	}
	if _, err := f.FileOffset(1 << 60); !errors.Is(err, ErrNotExecutable) {
		t.Errorf("FileOffset(1<<60) = %v", err)
	}
	for _, s := range f.Segments {
		if s.Flags&elf.PF_X == 0 {
			continue
		}
		// Exactly p_filesz bytes are mapped from the file.
		if _, err := f.FileOffset(s.Vaddr + s.Filesz - 1); err != nil {
			t.Errorf("last byte of text: %v", err)
		}
		if off, err := f.FileOffset(s.Vaddr + s.Filesz); err == nil {
			if v, _ := f.Vaddr(off); v != s.Vaddr+s.Filesz {
				t.Errorf("end of text %#x mapped to %#x", s.Vaddr+s.Filesz, off)
			}
		}
	}
}
