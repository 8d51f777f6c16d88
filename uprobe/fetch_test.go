package uprobe

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/arch"
)

// fakeThread is an in-memory FetchContext: registers and page-granular
// memory, with the two behaviours real readers have at unmapped memory.
type fakeThread struct {
	regs  Regs
	pages map[uint64]*[pageSize]byte // by page number
	comm  string
	base  uint64
	// partial: a read stops at the first unmapped page and returns what
	// it read (pread of /proc/PID/mem); else a read touching an unmapped
	// page fails whole (process_vm_readv with one iovec).
	partial bool
	reads   int // ReadMemory calls
	maxRead int // largest len(p) asked for
}

var errFault = errors.New("fault")

func newFake() *fakeThread {
	return &fakeThread{pages: map[uint64]*[pageSize]byte{}, comm: "fake", base: 0x400000}
}

func (f *fakeThread) Regs() *Regs      { return &f.regs }
func (f *fakeThread) Comm() string     { return f.comm }
func (f *fakeThread) FileBase() uint64 { return f.base }

// mapRange maps the pages covering [addr, addr+n), zero-filled.
func (f *fakeThread) mapRange(addr uint64, n int) {
	for p := addr / pageSize; p <= (addr+uint64(n)-1)/pageSize; p++ {
		if f.pages[p] == nil {
			f.pages[p] = new([pageSize]byte)
		}
	}
}

// write maps and fills memory at addr.
func (f *fakeThread) write(addr uint64, b []byte) {
	f.mapRange(addr, len(b))
	for i, c := range b {
		a := addr + uint64(i)
		f.pages[a/pageSize][a%pageSize] = c
	}
}

func (f *fakeThread) write64(addr, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	f.write(addr, b[:])
}

func (f *fakeThread) ReadMemory(addr uint64, p []byte) (int, error) {
	f.reads++
	f.maxRead = max(f.maxRead, len(p))
	for i := range p {
		a := addr + uint64(i)
		if a < addr { // wrapped
			return f.short(i)
		}
		pg := f.pages[a/pageSize]
		if pg == nil {
			return f.short(i)
		}
		p[i] = pg[a%pageSize]
	}
	return len(p), nil
}

func (f *fakeThread) short(n int) (int, error) {
	if f.partial {
		return n, errFault
	}
	return 0, errFault
}

func mustParse(t testing.TB, text string) *Spec {
	t.Helper()
	s, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFetchIntegers(t *testing.T) {
	f := newFake()
	f.regs.Rdi = 0x1000
	f.regs.Rsi = 0xfffffffffffffff0 // -16
	f.regs.Rdx = 0x1234567890abcdef
	f.regs.Rcx, f.regs.R8, f.regs.R9 = 4, 5, 6
	f.regs.Rax = 0xffffffff
	f.regs.Rsp = 0x7000
	f.regs.Rbp = 0x7100
	f.regs.Rip = 0x401000
	f.write64(0x1000, 0x2000)     // *(rdi) = 0x2000
	f.write64(0x2008, 0xdeadbeef) // *(0x2000+8)
	f.write64(0x7000, 0x401234)   // return address
	f.write64(0x7010, 0xfffffffffffffffe)
	f.write64(0x70f8, 0x8899aabbccddeeff) // -8(%bp)
	f.write64(0x401040, 0x55)             // @+0x1040 through FileBase
	f.write(0x3000, []byte{0x80, 0xff, 0x7f})

	tests := []struct {
		arg  string
		u    uint64
		text string
	}{
		{"%di", 0x1000, "arg1=0x1000"},
		{"%rdi:u64", 0x1000, "arg1=4096"},
		{"%si:s64", 0xfffffffffffffff0, "arg1=-16"},
		{"%si:s8", 0xfffffffffffffff0, "arg1=-16"},
		{"%si:u8", 0xf0, "arg1=240"},
		{"%si:x16", 0xfff0, "arg1=0xfff0"},
		{"%dx:x32", 0x90abcdef, "arg1=0x90abcdef"},
		{"%dx:s32", 0xffffffff90abcdef, "arg1=-1867788817"},
		{"%ax:s32", 0xffffffffffffffff, "arg1=-1"},
		{"%ax:u16", 0xffff, "arg1=65535"},
		{"%ip", 0x401000, "arg1=0x401000"},
		{"$stack", 0x7000, "arg1=0x7000"},
		{"$stack0", 0x401234, "arg1=0x401234"},
		{"$stack2:s64", 0xfffffffffffffffe, "arg1=-2"},
		{"$stack2:u8", 0xfe, "arg1=254"},
		{"+0(%di)", 0x2000, "arg1=0x2000"},
		{"+8(+0(%di))", 0xdeadbeef, "arg1=0xdeadbeef"},
		{"+8(+0(%di)):u16", 0xbeef, "arg1=48879"},
		{"+8(+0($arg1)):x8", 0xef, "arg1=0xef"},
		{"-8(%bp):x64", 0x8899aabbccddeeff, "arg1=0x8899aabbccddeeff"},
		{"-8(%bp):s8", 0xffffffffffffffff, "arg1=-1"},
		{"+8(@0x1000)", 0xdeadbeef, "arg1=0xdeadbeef"},
		{"@0x1000:u32", 0x2000, "arg1=8192"},
		{"@+0x1040:u8", 0x55, "arg1=85"},
		{"@0x3000:s8", 0xffffffffffffff80, "arg1=-128"},
		{"@0x3001:s16", 0x7fff, "arg1=32767"},
		{"$arg1", 0x1000, "arg1=0x1000"},
		{"$arg2:s32", 0xfffffffffffffff0, "arg1=-16"},
		{"$arg3", 0x1234567890abcdef, "arg1=0x1234567890abcdef"},
		{"$arg4:u8", 4, "arg1=4"},
		{"$arg5:u8", 5, "arg1=5"},
		{"$arg6:u8", 6, "arg1=6"},
	}
	for _, tt := range tests {
		s := mustParse(t, "p /bin/x:0x10 "+tt.arg)
		v := s.Args[0].Fetch(f)
		if v.Fault || v.U != tt.u {
			t.Errorf("%s: %+v, want U=%#x", tt.arg, v, tt.u)
		}
		if got := string(v.AppendText(nil)); got != tt.text {
			t.Errorf("%s: text %q, want %q", tt.arg, got, tt.text)
		}
	}

	r := mustParse(t, "r /bin/x:0x10 $retval:s32 $retval:u8")
	if v := r.Args[0].Fetch(f); v.U != 0xffffffffffffffff || string(v.AppendText(nil)) != "arg1=-1" {
		t.Errorf("$retval:s32 = %+v", v)
	}
	if v := r.Args[1].Fetch(f); v.U != 0xff {
		t.Errorf("$retval:u8 = %+v", v)
	}
}

func TestFetchFaults(t *testing.T) {
	for _, partial := range []bool{false, true} {
		f := newFake()
		f.partial = partial
		f.regs.Rdi = 0x1000
		f.regs.Rsp = 0x9000 // unmapped
		f.write64(0x1000, 0x5000)
		f.write(0x2ffc, []byte{1, 2, 3, 4}) // page 0x3000 is not mapped
		for _, a := range []string{
			"+0(+0(%di))", "+0(%si)", "$stack0", "@0x5000", "@+0x10",
			"@0x2ffc:u64", "@0x2fff:u16", "+0(+0(%di)):string", "@0x2ffc:string",
			"+0(-1(%si))",
		} {
			s := mustParse(t, "p /bin/x:0x10 "+a)
			v := s.Args[0].Fetch(f)
			if !v.Fault {
				t.Errorf("partial=%v %s: %+v, want fault", partial, a, v)
			}
			if got := string(v.AppendText(nil)); got != "arg1=(fault)" {
				t.Errorf("partial=%v %s: text %q", partial, a, got)
			}
		}
		// A read right up to the unmapped page works.
		s := mustParse(t, "p /bin/x:0x10 @0x2ffc:u32")
		if v := s.Args[0].Fetch(f); v.Fault || v.U != 0x04030201 {
			t.Errorf("partial=%v @0x2ffc:u32 = %+v", partial, v)
		}
	}
}

func TestFetchStrings(t *testing.T) {
	for _, partial := range []bool{false, true} {
		f := newFake()
		f.partial = partial
		f.comm = "worker/1"
		f.write(0x1000, []byte("hello, world\x00garbage"))
		// A short string 10 bytes before an unmapped page: the first
		// 256-byte read crosses into it.
		f.write(0x2ff6, []byte("edge\x00"))
		// Exactly to the last byte of the mapping.
		f.write(0x4ffb, []byte("last\x00"))
		// Running into unmapped memory without a NUL.
		f.write(0x6ff0, []byte(strings.Repeat("x", 16)))
		// Longer than the first chunk, across a mapped page boundary.
		long := strings.Repeat("0123456789", 100) // 1000 bytes
		f.write(0x8f00, []byte(long+"\x00"))
		// Longer than MaxStringLen.
		f.write(0x10000, []byte(strings.Repeat("y", 3*pageSize)))
		// Exactly MaxStringLen, its NUL the first byte of a page.
		f.write(0x14001, []byte(strings.Repeat("e", MaxStringLen)+"\x00"))
		// MaxStringLen bytes, then unmapped memory where its NUL would be
		// (0x1a000 is the first unmapped page after them).
		f.write(0x19001, []byte(strings.Repeat("u", MaxStringLen)))
		// Raw bytes are kept.
		f.write(0x20000, []byte("a\"b\\c\n\xff\x00"))
		f.regs.Rdi = 0x1000
		f.regs.Rsi = 0x2ff6

		tests := []struct {
			arg       string
			s         string
			fault     bool
			truncated bool
		}{
			{"+0(%di):string", "hello, world", false, false},
			{"+7(%di):string", "world", false, false},
			{"@0x1000:string", "hello, world", false, false},
			{"+0(%si):string", "edge", false, false},
			{"@0x4ffb:ustring", "last", false, false},
			{"@0x4fff:string", "", false, false},
			{"@0x6ff0:string", "", true, false},
			{"@0x6fff:string", "", true, false},
			{"@0x8f00:string", long, false, false},
			{"@0x10000:string", strings.Repeat("y", MaxStringLen), false, true},
			{"@0x14001:string", strings.Repeat("e", MaxStringLen), false, false},
			{"@0x19001:string", "", true, false},
			{"@0x20000:string", "a\"b\\c\n\xff", false, false},
			{"$comm", "worker/1", false, false},
			{"c=$comm:string", "worker/1", false, false},
		}
		for _, tt := range tests {
			s := mustParse(t, "p /bin/x:0x10 "+tt.arg)
			f.reads, f.maxRead = 0, 0
			v := s.Args[0].Fetch(f)
			if v.Fault != tt.fault || v.S != tt.s || v.Truncated != tt.truncated {
				t.Errorf("partial=%v %s: fault=%v truncated=%v %q, want fault=%v truncated=%v %q",
					partial, tt.arg, v.Fault, v.Truncated, trunc(v.S), tt.fault, tt.truncated, trunc(tt.s))
			}
			if v.Type.Kind != String {
				t.Errorf("%s: type %v", tt.arg, v.Type)
			}
			// Chunked: never byte by byte, a bounded number of reads.
			if f.reads > 8 {
				t.Errorf("partial=%v %s: %d reads", partial, tt.arg, f.reads)
			}
		}
	}

	// A short string costs one read of one chunk.
	f := newFake()
	f.write(0x1000, []byte("short\x00"))
	s := mustParse(t, "p /bin/x:0x10 @0x1000:string")
	if v := s.Args[0].Fetch(f); v.S != "short" || f.reads != 1 || f.maxRead != stringChunk {
		t.Errorf("short string: %q in %d reads of up to %d", v.S, f.reads, f.maxRead)
	}
	got := string(mustParse(t, "p /bin/x:0x10 p=@0x1000:string").Args[0].Fetch(f).AppendText(nil))
	if got != `p="short"` {
		t.Errorf("text %q", got)
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func TestFetchArgs(t *testing.T) {
	f := newFake()
	f.regs.Rdi = 0x1000
	f.regs.Rsi = 42
	f.write(0x1000, []byte("file.txt\x00"))
	s := mustParse(t, "p /bin/x:0x10 path=+0(%di):string flags=%si:u32 bad=+0(%ax)")
	vals := s.FetchArgs(f, nil)
	if len(vals) != 3 || vals[0].S != "file.txt" || vals[1].U != 42 || !vals[2].Fault {
		t.Errorf("FetchArgs = %+v", vals)
	}
	if vals[0].Name != "path" || vals[1].Name != "flags" || vals[1].Type != (Type{Kind: Unsigned, Size: 4}) {
		t.Errorf("FetchArgs names/types = %+v", vals)
	}
}

// Hand-built, malformed FetchArgs fault instead of panicking.
func TestFetchMalformed(t *testing.T) {
	f := newFake()
	loop := &Expr{Op: OpDeref}
	loop.Inner = loop
	for _, a := range []FetchArg{
		{Name: "a"},
		{Name: "a", Type: DefaultType, Expr: &Expr{Op: OpDeref}},
		{Name: "a", Type: DefaultType, Expr: loop},
		{Name: "a", Type: DefaultType, Expr: &Expr{Op: OpComm}},
		{Name: "a", Type: DefaultType, Expr: &Expr{Op: OpArgN, Imm: 7}},
		{Name: "a", Type: DefaultType, Expr: &Expr{Op: Op(99)}},
		{Name: "a", Type: Type{Kind: String}, Expr: &Expr{Op: OpReg}},
		{Name: "a", Type: Type{Kind: TypeKind(9), Size: 99}, Expr: &Expr{Op: OpStackN, Imm: -1}},
	} {
		if v := a.Fetch(f); !v.Fault {
			t.Errorf("%+v: %+v, want fault", a, v)
		}
	}
	// Nil registers fault too.
	a := mustParse(t, "p /bin/x:0x10 %di").Args[0]
	if v := a.Fetch(nilRegs{f}); !v.Fault {
		t.Errorf("nil regs: %+v", v)
	}
}

type nilRegs struct{ *fakeThread }

func (nilRegs) Regs() *Regs { return nil }

func TestFetchAllocs(t *testing.T) {
	f := newFake()
	f.regs.Rdi = 0x1000
	f.write64(0x1000, 0x2000)
	f.write(0x2000, []byte("a string\x00"))
	s := mustParse(t, "p /bin/x:0x10 %di:u32 +0(%di):x64 +8(+0(%di)):s16 $stack3 $comm")
	f.write64(0x18, 1)
	for i := range s.Args {
		a := &s.Args[i]
		if n := testing.AllocsPerRun(100, func() { a.Fetch(f) }); n != 0 {
			t.Errorf("%s: %v allocs per Fetch", a.Text, n)
		}
	}
	str := &mustParse(t, "p /bin/x:0x10 +0(+0(%di)):string").Args[0]
	if n := testing.AllocsPerRun(100, func() { str.Fetch(f) }); n > 1 {
		t.Errorf("string: %v allocs per Fetch", n)
	}
}

// TestFetchSlice: a Go slice (FetchArg.Len with an array type) reads its
// length and at most Type.Len of its first elements, no more: a short
// slice at the end of its mapping reads, a nil one reads nothing, and
// []string elements are Go strings, each read to its own length.
func TestFetchSlice(t *testing.T) {
	f := newFake()
	f.partial = false // a read past the mapping fails whole
	end := uint64(0x10000 + pageSize)
	f.write64(end-16, 7)
	f.write64(end-8, 1<<64-2) // two s64 at the very end of the page
	long := uint64(0x20000)
	for i := uint64(0); i < 10; i++ {
		f.write64(long+8*i, 100+i)
	}
	f.write(0x30000, []byte("abcdefgh"))
	strs := uint64(0x31000)
	f.write64(strs, 0x30000)
	f.write64(strs+8, 3) // "abc"
	f.write64(strs+16, 0x30003)
	f.write64(strs+24, 0) // ""
	for _, c := range []struct {
		base, n uint64
		kind    TypeKind
		size    int
		want    string
	}{
		{end - 16, 2, Signed, 8, "xs=[2]{7,-2}"},
		{0, 0, Signed, 8, "xs=[0]{}"},
		{long, 10, Unsigned, 8, "xs=[10]{100,101,102,103,104,105,106,107,...}"},
		{strs, 2, String, 0, `xs=[2]{"abc",""}`},
		{0x50000, 3, Signed, 8, "xs=(fault)"}, // its array is not mapped
	} {
		f.regs.Rdi, f.regs.Rsi = c.base, c.n
		a := FetchArg{Name: "xs", Type: Type{Kind: c.kind, Size: c.size, Len: 8},
			Expr: &Expr{Op: OpDeref, Inner: &Expr{Op: OpReg, Reg: arch.RDI}}, Len: &Expr{Op: OpReg, Reg: arch.RSI}}
		v := a.Fetch(f)
		if got := string(v.AppendText(nil)); got != c.want {
			t.Errorf("slice at 0x%x of %d: %s, want %s", c.base, c.n, got, c.want)
		}
	}
}
