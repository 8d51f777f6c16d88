package elfsym

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMaps(t *testing.T) {
	text := "" +
		"00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n" +
		"5619abe70000-5619abe75000 r-xp 00002000 fe:00 247026                     /usr/bin/cat\n" +
		"7f0000000000-7f0000001000 r-xp 1234567890 103:0a 99   /tmp/dir with spaces/lib x.so (deleted)\n" +
		"5619c269d000-5619c26be000 rw-p 00000000 00:00 0                          [heap]\n" +
		"7f62dbe67000-7f62dbe89000 rw-p 00000000 00:00 0 \n" +
		"\n" +
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]" // no final newline
	ms, err := ParseMaps([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{0x400000, 0x452000, "r-xp", 0, unix.Mkdev(8, 2), 173521, "/usr/bin/dbus-daemon"},
		{0x5619abe70000, 0x5619abe75000, "r-xp", 0x2000, unix.Mkdev(0xfe, 0), 247026, "/usr/bin/cat"},
		{0x7f0000000000, 0x7f0000001000, "r-xp", 0x1234567890, unix.Mkdev(0x103, 0xa), 99, "/tmp/dir with spaces/lib x.so (deleted)"},
		{0x5619c269d000, 0x5619c26be000, "rw-p", 0, 0, 0, "[heap]"},
		{0x7f62dbe67000, 0x7f62dbe89000, "rw-p", 0, 0, 0, ""},
		{0xffffffffff600000, 0xffffffffff601000, "--xp", 0, 0, 0, "[vsyscall]"},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("ParseMaps =\n%+v\nwant\n%+v", ms, want)
	}
	m := ms[1]
	if !m.Exec() || ms[3].Exec() {
		t.Error("Exec")
	}
	if a, ok := m.Addr(0x2010); !ok || a != 0x5619abe70010 {
		t.Errorf("Addr(0x2010) = %#x, %v", a, ok)
	}
	if _, ok := m.Addr(0x7000); ok {
		t.Error("Addr beyond the mapping")
	}
	if o, ok := m.FileOffsetOf(0x5619abe70010); !ok || o != 0x2010 {
		t.Errorf("FileOffsetOf = %#x, %v", o, ok)
	}

	for _, bad := range []string{
		"00400000 r-xp 00000000 08:02 1 /x",
		"00400000-0040000g r-xp 00000000 08:02 1 /x",
		"00500000-00400000 r-xp 00000000 08:02 1 /x",
		"00400000-00452000 r-x 00000000 08:02 1 /x",
		"00400000-00452000 r-xp 0000000z 08:02 1 /x",
		"00400000-00452000 r-xp 00000000 0802 1 /x",
		"00400000-00452000 r-xp 00000000 08:02 x1 /x",
		"00400000-00452000 r-xp 00000000 08:02",
	} {
		if _, err := ParseMaps([]byte("00400000-00452000 r-xp 00000000 08:02 1 /ok\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("ParseMaps(%q) = %v, want an error on line 2", bad, err)
		}
	}
}

// funcForTest is a function of the test binary whose address is compared
// with its symbol.
//
//go:noinline
func funcForTest(x int) int { return x*3 + 1 }

// TestReadMapsSelf finds the test binary's executable mapping by the
// FileID of os.Executable and checks that a function's symbol, through
// its file offset and the mapping, lands on the function in memory, whose
// bytes equal the file's.
func TestReadMapsSelf(t *testing.T) {
	ms, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	if f.ID.Ino != st.Ino || f.ID.Dev != st.Dev {
		t.Fatalf("ID %+v, stat dev %#x ino %d", f.ID, st.Dev, st.Ino)
	}
	var exec []Mapping
	for _, m := range ms {
		if m.Exec() && m.ID() == f.ID {
			exec = append(exec, m)
		}
	}
	if len(exec) == 0 {
		t.Fatalf("no executable mapping of %s (%+v) in /proc/self/maps", exe, f.ID)
	}
	if real, _ := filepath.EvalSymlinks(exe); exec[0].Path != real && exec[0].Path != exe {
		t.Errorf("mapping path %q, executable %q", exec[0].Path, exe)
	}

	pc := uint64(reflect.ValueOf(funcForTest).Pointer())
	var off uint64
	found := false
	for _, m := range exec {
		if o, ok := m.FileOffsetOf(pc); ok {
			off, found = o, true
		}
	}
	if !found {
		t.Fatalf("funcForTest at %#x is in no executable mapping of %s", pc, exe)
	}
	v, err := f.Vaddr(off)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := f.FileOffset(v); err != nil || o != off {
		t.Errorf("FileOffset(Vaddr(%#x) = %#x) = %#x, %v", off, v, o, err)
	}
	if bias := pc - v; f.Type == elf.ET_EXEC && bias != 0 || bias%4096 != 0 {
		t.Errorf("load bias %#x (type %v)", bias, f.Type)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	inMem := make([]byte, 16)
	if _, err := mem.ReadAt(inMem, int64(pc)); err != nil {
		t.Fatal(err)
	}
	inFile := make([]byte, len(inMem))
	if _, err := f.ReadAt(inFile, int64(off)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inMem, inFile) {
		t.Errorf("funcForTest: memory % x, file % x", inMem, inFile)
	}

	// go test links with -s (no .symtab); "go test -c" does not.
	name := runtime.FuncForPC(uintptr(pc)).Name()
	s, err := f.Lookup(name)
	if err != nil {
		t.Logf("symbol check skipped, the test binary has no .symtab: %v", err)
		return
	}
	if s.Value != v || s.Offset != off {
		t.Errorf("Lookup(%s) = %+v; want value %#x offset %#x", name, s, v, off)
	}
	if start, end, fn, ok := f.Function(s.Value + 1); !ok || start != s.Value || end != s.Value+s.Size || fn != name {
		t.Errorf("Function(%s+1) = %#x, %#x, %q, %v", name, start, end, fn, ok)
	}
}

func TestReadMapsMissing(t *testing.T) {
	if _, err := ReadMaps(-1); err == nil {
		t.Error("ReadMaps(-1) succeeded")
	}
}
