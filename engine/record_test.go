package engine

import (
	"encoding/binary"
	"testing"

	"github.com/ptprobe/ptprobe/internal/recorder"
	"github.com/ptprobe/ptprobe/uprobe"
)

// makeRecord lays out a record as the recorder writes it.
func makeRecord(site, tid uint32, regs [recorder.NRegs]uint64, blocks []block) []byte {
	le := binary.LittleEndian
	b := make([]byte, recorder.RBlocks)
	le.PutUint32(b[recorder.RSite:], site)
	le.PutUint32(b[recorder.RTID:], tid)
	le.PutUint32(b[recorder.RNBlocks:], uint32(len(blocks)))
	le.PutUint64(b[recorder.RTime:], 12345)
	for i, v := range regs {
		le.PutUint64(b[recorder.RRegs+8*i:], v)
	}
	for _, bl := range blocks {
		h := make([]byte, recorder.BData)
		le.PutUint64(h[recorder.BAddr:], bl.addr)
		want := len(bl.data)
		if want < 8 {
			want = 8
		}
		le.PutUint32(h[recorder.BWant:], uint32(want))
		le.PutUint32(h[recorder.BGot:], uint32(len(bl.data)))
		b = append(b, h...)
		d := make([]byte, (max(len(bl.data), 8)+7)&^7)
		copy(d, bl.data)
		b = append(b, d...)
	}
	le.PutUint32(b[recorder.RLen:], uint32(len(b)))
	return b
}

// TestRecordFetch: fetch-args evaluated on a record read the recorded
// registers (in the recorder's order) and blocks, and fault on memory not
// recorded, as on a stopped thread.
func TestRecordFetch(t *testing.T) {
	var regs [recorder.NRegs]uint64
	for i := range regs {
		regs[i] = uint64(100 + i)
	}
	regs[regIndex(recordRegs[5])] = 0x1000 // rdi: a pointer
	str := append([]byte("hello"), 0)
	b := makeRecord(7, 42, regs, []block{{addr: 0x1000, data: str}})
	var r record
	if err := decodeRecord(b, &r, true); err != nil {
		t.Fatal(err)
	}
	for i, reg := range recordRegs {
		if got := reg.Get(&r.regs); got != regs[i] {
			t.Errorf("register %s: %d, want %d", reg, got, regs[i])
		}
	}
	spec, err := uprobe.Parse("p /bin/ls:main s=+0(%di):string n=%si:u64 bad=+0(%ax):u64")
	if err != nil {
		t.Fatal(err)
	}
	ctx := recordContext{rec: &r}
	v := uprobe.FetchArgs(&ctx, spec.Args, nil)
	if v[0].S != "hello" || v[0].Fault || v[1].U != regs[4] || !v[2].Fault {
		t.Errorf("fetched %+v", v)
	}
	if r.site != 7 || r.tid != 42 || r.tsc != 12345 {
		t.Errorf("header %+v", r)
	}
}

// FuzzDecodeRecord: the ring is written by the traced program; a record
// it made up is refused or decoded within its bytes, never a panic.
func FuzzDecodeRecord(f *testing.F) {
	var regs [recorder.NRegs]uint64
	f.Add(makeRecord(1, 2, regs, nil))
	f.Add(makeRecord(1, 2, regs, []block{{addr: 8, data: []byte("abc\x00")}, {addr: 16, data: make([]byte, 8)}}))
	spec, _ := uprobe.Parse("p /bin/ls:main s=+0(%di):string n=+8(+0(%si)):u32")
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		if decodeRecord(b, &r, true) != nil {
			return
		}
		for _, bl := range r.blocks {
			if len(bl.data) > recorder.MaxString {
				t.Fatalf("block of %d bytes", len(bl.data))
			}
		}
		ctx := recordContext{rec: &r}
		uprobe.FetchArgs(&ctx, spec.Args, nil)
	})
}
