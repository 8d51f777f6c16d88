package elfsym

import (
	"encoding/binary"
	"regexp"
	"testing"
)

// readelfFDEs returns the [start, end) ranges of the FDEs of .eh_frame as
// readelf --debug-dump=frames prints them ("... FDE cie=... pc=S..E").
func readelfFDEs(t *testing.T, path string) [][2]uint64 {
	t.Helper()
	re := regexp.MustCompile(`FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)`)
	var out [][2]uint64
	for _, m := range re.FindAllStringSubmatch(runTool(t, true, "readelf", "--debug-dump=frames", path), -1) {
		out = append(out, [2]uint64{hex(t, m[1]), hex(t, m[2])})
	}
	if len(out) == 0 {
		t.Fatalf("readelf --debug-dump=frames %s: no FDE", path)
	}
	return out
}

// TestLsFunctionBounds checks the bounds Function finds in the stripped
// /bin/ls (from .eh_frame_hdr) against every FDE readelf decodes.
func TestLsFunctionBounds(t *testing.T) {
	const ls = "/bin/ls"
	needFile(t, ls)
	f, err := Open(ls)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.ef.Section(".symtab") != nil {
		t.Skipf("needs a stripped %s: it has .symtab", ls)
	}
	fdes := readelfFDEs(t, ls)
	checked := 0
	for _, r := range fdes {
		if r[1] <= r[0] {
			continue
		}
		for _, v := range []uint64{r[0], r[0] + (r[1]-r[0])/2, r[1] - 1} {
			start, end, name, ok := f.Function(v)
			if !ok || start != r[0] || end != r[1] {
				t.Errorf("Function(%#x) = %#x, %#x, %q, %v; readelf FDE %#x..%#x", v, start, end, name, ok, r[0], r[1])
			}
		}
		checked++
	}
	if checked < 100 {
		t.Errorf("only %d FDEs checked", checked)
	}
	if _, _, _, ok := f.Function(0); ok {
		t.Error("Function(0) found a function")
	}
	if _, _, _, ok := f.Function(1 << 62); ok {
		t.Error("Function(1<<62) found a function")
	}
	// The table is from .eh_frame_hdr.
	if _, _, ok := f.ehFrameHdr(); !ok {
		t.Errorf("%s: no .eh_frame_hdr found", ls)
	}
}

// TestLibcEhFrameMatchesReadelf compares, for libc, the FDE bounds found
// through .eh_frame_hdr with the linear walk of .eh_frame and readelf.
func TestLibcEhFrameMatchesReadelf(t *testing.T) {
	f := openLibc(t)
	fdes := readelfFDEs(t, libcPath)
	f.eh.once.Do(func() { f.eh.build(f) })
	if _, ok := f.eh.rd.(fileMem); !ok {
		t.Fatalf("libc table not from .eh_frame_hdr (reader %T)", f.eh.rd)
	}
	sec := f.ef.Section(".eh_frame")
	m := sectionMem{base: sec.Addr, data: f.readSection(sec.Offset, sec.Size)}
	linear := parseEHFrame(m)
	want := 0
	for _, r := range fdes {
		if r[1] > r[0] {
			want++
		}
	}
	if len(linear) != want {
		t.Errorf("linear walk: %d FDEs, readelf %d", len(linear), want)
	}
	if len(f.eh.entries) != len(fdes) {
		t.Errorf(".eh_frame_hdr: %d rows, readelf %d FDEs", len(f.eh.entries), len(fdes))
	}
	for i, e := range linear {
		s, en, err := decodeFDE(fileMem{f}, e.fde, nil)
		if err != nil || s != e.start || en != e.end {
			t.Fatalf("FDE %d at %#x: %#x..%#x %v, linear %#x..%#x", i, e.fde, s, en, err, e.start, e.end)
		}
	}
}

func TestReadPointer(t *testing.T) {
	le32 := func(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	for _, tc := range []struct {
		name  string
		b     []byte
		enc   byte
		field uint64
		data  uint64
		want  uint64
		n     int
		err   bool
	}{
		{"absptr", binary.LittleEndian.AppendUint64(nil, 0x1122334455667788), peAbsptr, 0, 0, 0x1122334455667788, 8, false},
		{"udata2", []byte{0xfe, 0xff}, peUdata2, 0, 0, 0xfffe, 2, false},
		{"sdata2", []byte{0xfe, 0xff}, peSdata2, 0, 0, ^uint64(1), 2, false},
		{"udata4", le32(-16), peUdata4, 0, 0, 0xfffffff0, 4, false},
		{"sdata4", le32(-16), peSdata4, 0, 0, ^uint64(15), 4, false},
		{"pcrel|sdata4", le32(-16), pePcrel | peSdata4, 0x1000, 0, 0x1000 - 16, 4, false},
		{"datarel|sdata4", le32(0x20), peDatarel | peSdata4, 0x1000, 0x5000, 0x5020, 4, false},
		{"pcrel|udata4", le32(0x20), pePcrel | peUdata4, 0x1000, 0, 0x1020, 4, false},
		{"uleb128", []byte{0xe5, 0x8e, 0x26}, peULEB, 0, 0, 624485, 3, false},
		{"sleb128", []byte{0xc0, 0xbb, 0x78}, peSLEB, 0, 0, uint64(1<<64 - 123456), 3, false},
		{"sdata8", binary.LittleEndian.AppendUint64(nil, 1<<63), peSdata8, 0, 0, 1 << 63, 8, false},
		{"truncated", []byte{1, 2, 3}, peSdata4, 0, 0, 0, 0, true},
		{"truncated leb", []byte{0x80, 0x80}, peULEB, 0, 0, 0, 0, true},
		{"indirect", le32(1), peIndir | pePcrel | peSdata4, 0, 0, 0, 0, true},
		{"omit", le32(1), peOmit, 0, 0, 0, 0, true},
		{"textrel", le32(1), 0x20 | peSdata4, 0, 0, 0, 0, true},
		{"bad format", le32(1), 0x07, 0, 0, 0, 0, true},
	} {
		v, n, err := readPointer(tc.b, 0, tc.enc, tc.field, tc.data, true)
		if (err != nil) != tc.err || (err == nil && (v != tc.want || n != tc.n)) {
			t.Errorf("%s: %#x, %d, %v; want %#x, %d, error %v", tc.name, v, n, err, tc.want, tc.n, tc.err)
		}
	}
	if _, _, err := readPointer(le32(1), 0, peDatarel|peSdata4, 0, 0, false); err == nil {
		t.Error("datarel without a data base accepted")
	}
}

// ehBuilder assembles a synthetic .eh_frame for the encodings the linker
// does not emit on this machine.
type ehBuilder struct {
	base uint64
	b    []byte
}

func (e *ehBuilder) addr() uint64 { return e.base + uint64(len(e.b)) }

// cie appends a CIE with augmentation aug and its data; returns its address.
func (e *ehBuilder) cie(aug string, augData []byte) uint64 {
	at := e.addr()
	body := []byte{0, 0, 0, 0, 1} // CIE id 0, version 1
	body = append(body, aug...)
	body = append(body, 0, 1, 0x78, 16) // code align 1, data align -8, RA 16
	if len(aug) > 0 && aug[0] == 'z' {
		body = append(body, byte(len(augData)))
		body = append(body, augData...)
	}
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(body)))
	e.b = append(e.b, body...)
	return at
}

// fde appends an FDE of cie whose pc_begin/pc_range are given encoded by
// fn (called with the address of pc_begin); returns its address.
func (e *ehBuilder) fde(cie uint64, fn func(pcAddr uint64) []byte) uint64 {
	at := e.addr()
	idAddr := at + 4
	pc := fn(idAddr + 4)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(4+len(pc)+1))
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(idAddr-cie))
	e.b = append(e.b, pc...)
	e.b = append(e.b, 0) // augmentation data length for 'z'
	return at
}

func TestParseEHFrameSynthetic(t *testing.T) {
	e := &ehBuilder{base: 0x2000}
	// zR with pcrel|sdata4 (what gcc emits).
	c1 := e.cie("zR", []byte{pePcrel | peSdata4})
	f1 := e.fde(c1, func(pc uint64) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(int32(int64(0x1000)-int64(pc))))
		return binary.LittleEndian.AppendUint32(b, 0x40)
	})
	// zPLR: personality (udata4), LSDA encoding, then R = udata8 absolute.
	c2 := e.cie("zPLR", []byte{peUdata4, 0x44, 0x33, 0x22, 0x11, peUdata4, peUdata8})
	f2 := e.fde(c2, func(uint64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, 0x1800)
		return binary.LittleEndian.AppendUint64(b, 0x10)
	})
	// No augmentation: absptr.
	c3 := e.cie("", nil)
	f3 := e.fde(c3, func(uint64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, 0x1100)
		return binary.LittleEndian.AppendUint64(b, 0x100)
	})
	// zR with uleb128 (format only), then the terminator.
	c4 := e.cie("zR", []byte{peULEB})
	e.fde(c4, func(uint64) []byte { return []byte{0x80, 0x30, 0x20} }) // 0x1800, 0x20
	e.b = append(e.b, 0, 0, 0, 0)
	m := sectionMem{base: e.base, data: e.b}
	got := parseEHFrame(m)
	want := []ehEntry{{0x1000, 0x1040, f1}, {0x1100, 0x1200, f3}, {0x1800, 0x1810, f2}, {0x1800, 0x1820, 0}}
	if len(got) != len(want) {
		t.Fatalf("parseEHFrame = %+v, want %d entries", got, len(want))
	}
	for i := range want {
		if got[i].start != want[i].start || got[i].end != want[i].end || (want[i].fde != 0 && got[i].fde != want[i].fde) {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// A .eh_frame_hdr with a pcrel|sdata4 table over the same FDEs.
	hdrBase := uint64(0x9000)
	hdr := []byte{1, pePcrel | peSdata4, peUdata4, pePcrel | peSdata4}
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(int32(int64(e.base)-int64(hdrBase+4))))
	hdr = binary.LittleEndian.AppendUint32(hdr, 3)
	for _, r := range [][2]uint64{{0x1000, f1}, {0x1100, f3}, {0x1800, f2}} {
		for _, v := range r {
			hdr = binary.LittleEndian.AppendUint32(hdr, uint32(int32(int64(v)-int64(hdrBase+uint64(len(hdr))))))
		}
	}
	rows, err := parseEHFrameHdr(hdr, hdrBase)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].start != 0x1000 || rows[0].fde != f1 || rows[2].start != 0x1800 || rows[2].fde != f2 {
		t.Fatalf("parseEHFrameHdr = %+v", rows)
	}
	c := &ehCache{entries: rows, rd: m}
	c.once.Do(func() {})
	for _, tc := range []struct {
		v          uint64
		start, end uint64
		ok         bool
	}{
		{0x1000, 0x1000, 0x1040, true}, {0x103f, 0x1000, 0x1040, true}, {0x1040, 0, 0, false},
		{0x1150, 0x1100, 0x1200, true}, {0x180f, 0x1800, 0x1810, true}, {0xfff, 0, 0, false},
	} {
		s, en, ok := c.lookup(nil, tc.v)
		if s != tc.start || en != tc.end || ok != tc.ok {
			t.Errorf("lookup(%#x) = %#x, %#x, %v; want %#x, %#x, %v", tc.v, s, en, ok, tc.start, tc.end, tc.ok)
		}
	}

	// Malformed headers are errors, not panics.
	for _, bad := range [][]byte{nil, {2, 0, 0, 0}, {1, 0xff, 0xff, 0x3b}, {1, 0xff, 0x03, 0x01, 1, 0, 0, 0}, {1, 0x1b, 0x03, 0x3b, 1}} {
		if _, err := parseEHFrameHdr(bad, 0); err == nil {
			t.Errorf("parseEHFrameHdr(%x) accepted", bad)
		}
	}
	// A truncated table keeps its complete rows.
	if rows, err := parseEHFrameHdr(hdr[:len(hdr)-3], hdrBase); err != nil || len(rows) != 2 {
		t.Errorf("truncated table: %d rows, %v", len(rows), err)
	}
}
