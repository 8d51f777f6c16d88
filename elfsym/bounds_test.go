package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// seed returns the bytes of a FuzzOpen seed of testdata/fuzz/FuzzOpen.
func seed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", name))
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(string(b), "[]byte(")
	if !ok {
		t.Fatalf("seed %s is not a []byte", name)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(lit), ")"))
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return []byte(data)
}

// sectionHeader returns the file offset of the header of the first
// section of type typ in data.
func sectionHeader(t *testing.T, data []byte, typ elf.SectionType) (hdr int, sec *elf.Section) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range ef.Sections {
		if s.Type == typ {
			shoff := binary.LittleEndian.Uint64(data[40:])
			return int(shoff) + 64*i, s
		}
	}
	t.Fatalf("no %v section", typ)
	return 0, nil
}

// openAllocs opens data as a file and returns the bytes Open allocated
// and its error.
func openAllocs(t *testing.T, data []byte) (uint64, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "elf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := Open(path)
	if err == nil {
		f.Close()
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestOpenBoundedByFileSize: headers that claim more than the file has
// are refused before debug/elf allocates what they claim (10 MB at a
// time), and version records that point back at themselves before
// debug/elf walks them 65535 times: a crafted file of a few KB costs
// Open no more than a few times its size. These were what slowed
// FuzzOpen to tens of execs a second.
func TestOpenBoundedByFileSize(t *testing.T) {
	const limit = 1 << 20 // bytes Open may allocate for a seed of < 3 KB
	cases := []struct {
		name  string
		seed  string
		patch func(t *testing.T, d []byte)
		want  string
	}{
		{"section headers", "static", func(t *testing.T, d []byte) {
			binary.LittleEndian.PutUint16(d[60:], 0xff00) // e_shnum
		}, "section headers at offset"},
		{"symbol table size", "static", func(t *testing.T, d []byte) {
			hdr, _ := sectionHeader(t, d, elf.SHT_SYMTAB)
			binary.LittleEndian.PutUint64(d[hdr+32:], 9<<20) // sh_size
		}, "(SHT_SYMTAB) at offset"},
		{"program headers", "static", func(t *testing.T, d []byte) {
			binary.LittleEndian.PutUint16(d[54:], 0xffff) // e_phentsize
			binary.LittleEndian.PutUint16(d[56:], 0xff00) // e_phnum
		}, "program headers at offset"},
		{"verdef chain", "shared", func(t *testing.T, d []byte) {
			_, s := sectionHeader(t, d, elf.SHT_GNU_VERDEF)
			vd := int(s.Offset)
			binary.LittleEndian.PutUint16(d[vd+6:], 0xffff) // vd_cnt
			aux := vd + int(binary.LittleEndian.Uint32(d[vd+12:]))
			binary.LittleEndian.PutUint32(d[aux+4:], 0) // vda_next
		}, "version records of section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := seed(t, c.seed)
			if n, err := openAllocs(t, d); err != nil || n > limit {
				t.Fatalf("the seed itself: %v, %d bytes allocated", err, n)
			}
			c.patch(t, d)
			n, err := openAllocs(t, d)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "malformed ELF file") {
				t.Errorf("Open: %v, want a malformed ELF file error saying %q", err, c.want)
			}
			if n > limit {
				t.Errorf("Open allocated %d bytes for a file of %d", n, len(d))
			}
		})
	}
}
