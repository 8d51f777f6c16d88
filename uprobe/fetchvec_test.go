package uprobe

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// vecThread is a fakeThread that also reads vectors, as process_vm_readv
// does: range by range, stopping at the first that cannot be read whole.
type vecThread struct {
	*fakeThread
	vectors int // ReadMemoryVector calls
	ranges  int // ranges asked for in all
}

func (v *vecThread) ReadMemoryVector(addrs []uint64, bufs [][]byte) (int, error) {
	v.vectors++
	v.ranges += len(addrs)
	total := 0
	for i := range addrs {
		n := 0
		for n < len(bufs[i]) {
			a := addrs[i] + uint64(n)
			pg := v.pages[a/pageSize]
			if pg == nil || a < addrs[i] {
				break
			}
			bufs[i][n] = pg[a%pageSize]
			n++
		}
		total += n
		if n < len(bufs[i]) {
			if total == 0 {
				return 0, errFault
			}
			return total, nil
		}
	}
	return total, nil
}

// TestFetchArgsVector: with a VectorReader, FetchArgs reads the first
// memory of every arg in one call and gets the values Fetch gets one by
// one, also where some of the memory is unreadable.
func TestFetchArgsVector(t *testing.T) {
	const page2 = 3 * pageSize // a string running across pages 2 and 3
	tests := []struct {
		name  string
		spec  string
		setup func(f *fakeThread)
		// vectors and reads: the calls FetchArgs makes.
		vectors, reads int
	}{
		{"ints, a string and the stack", "p /x:0x1 a=+0(%di):u32 s=+0(%si):string n=$stack1 r=%ax c=+8(%di):s8", func(f *fakeThread) {
			f.write64(0x1000, 0xdeadbeef)
			f.write(0x1008, []byte{0xfe})
			f.write(0x2000, []byte("hello\x00"))
			f.write64(0x7000+8, 42)
		}, 1, 0},
		{"a string cut at its page's end, read on", "p /x:0x1 a=+0(%di):u64 s=+0(%si):string", func(f *fakeThread) {
			f.write64(0x1000, 7)
			f.regs.Rsi = page2 - 10
			f.write(page2-10, []byte("0123456789abcdef\x00"))
		}, 1, 1},
		{"a string running into an unmapped page", "p /x:0x1 a=+0(%di):u64 s=+0(%si):string", func(f *fakeThread) {
			f.write64(0x1000, 7)
			f.regs.Rsi = 5*pageSize - 4
			f.write(5*pageSize-4, []byte("abcd"))
		}, 1, 2},
		{"the first range unreadable: the rest read one by one", "p /x:0x1 bad=+0(%bx):u64 a=+0(%di):u64 s=+0(%si):string", func(f *fakeThread) {
			f.regs.Rbx = 0x9000
			f.write64(0x1000, 7)
			f.write(0x2000, []byte("ok\x00"))
		}, 1, 3},
		{"a later range unreadable", "p /x:0x1 a=+0(%di):u64 bad=+0(%bx):u64 s=+0(%si):string", func(f *fakeThread) {
			f.regs.Rbx = 0x9000
			f.write64(0x1000, 7)
			f.write(0x2000, []byte("ok\x00"))
		}, 1, 2},
		{"nested: only the outer address needs a read first", "p /x:0x1 a=+0(+8(%di)):u64 b=+0(%si):u8 c=@+0x10:u16", func(f *fakeThread) {
			f.write64(0x1008, 0x3000)
			f.write64(0x3000, 99)
			f.write(0x2000, []byte{5})
			f.write(0x400010, []byte{1, 2})
		}, 1, 2},
		{"one memory arg: no vector", "p /x:0x1 a=%di b=+0(%si):u8", func(f *fakeThread) {
			f.write(0x2000, []byte{5})
		}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			one := newFake()
			one.regs.Rdi, one.regs.Rsi, one.regs.Rsp, one.regs.Rax = 0x1000, 0x2000, 0x7000, 3
			tt.setup(one)
			v := fetchBoth(t, mustParse(t, tt.spec), one)
			if v.vectors != tt.vectors || one.reads != tt.reads {
				t.Errorf("%d vector reads and %d single reads, want %d and %d", v.vectors, one.reads, tt.vectors, tt.reads)
			}
		})
	}
}

// TestFetchArgsVectorLimits: the ranges beyond what one vector holds are
// read one by one, with the same values.
func TestFetchArgsVectorLimits(t *testing.T) {
	f := newFake()
	var args []string
	for i := range maxPrefetch + 4 {
		addr := uint64(0x10000 + 0x100*i)
		f.write64(addr, uint64(i))
		args = append(args, "+"+strconv.Itoa(int(addr))+"(%r8):u64")
	}
	v := fetchBoth(t, mustParse(t, "p /x:0x1 "+strings.Join(args, " ")), f)
	if v.ranges != maxPrefetch || f.reads != 4 {
		t.Errorf("%d ranges in vectors and %d single reads, want %d and 4", v.ranges, f.reads, maxPrefetch)
	}
}

// fetchBoth fetches s's args from f one by one with Fetch, then all at
// once with FetchArgs through a vecThread, which it returns with f's read
// count of the latter; the values must be the same.
func fetchBoth(t *testing.T, s *Spec, f *fakeThread) *vecThread {
	t.Helper()
	var want []Value
	for i := range s.Args {
		want = append(want, s.Args[i].Fetch(f))
	}
	v := &vecThread{fakeThread: f}
	f.reads = 0
	if got := s.FetchArgs(v, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("FetchArgs with vectors:\n got %+v\nwant %+v", got, want)
	}
	return v
}

// BenchmarkFetchArgsVector is BenchmarkFetch's two args plus two stack
// words through one vector read.
func BenchmarkFetchArgsVector(b *testing.B) {
	f := newFake()
	f.regs.Rdi, f.regs.Rsi, f.regs.Rsp = 0x1000, 0x2000, 0x7000
	f.write(0x2000, []byte("/usr/share/locale/locale.alias\x00"))
	f.write64(0x7008, 1)
	f.write64(0x7010, 2)
	s := mustParse(b, "p /bin/x:0x10 size=%di:u64 path=+0(%si):string a=$stack1 b=$stack2")
	v := &vecThread{fakeThread: f}
	vals := make([]Value, 0, len(s.Args))
	b.ReportAllocs()
	for b.Loop() {
		vals = s.FetchArgs(v, vals[:0])
	}
	if vals[1].S != "/usr/share/locale/locale.alias" || vals[3].U != 2 {
		b.Fatal(vals)
	}
}
