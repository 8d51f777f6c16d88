package uprobe

import "testing"

func BenchmarkFetch(b *testing.B) {
	f := newFake()
	f.regs.Rdi = 0x1000
	f.regs.Rsi = 0x2000
	f.write(0x2000, []byte("/usr/share/locale/locale.alias\x00"))
	s := mustParse(b, "p /bin/x:0x10 size=%di:u64 path=+0(%si):string")
	vals := make([]Value, 0, len(s.Args))
	b.ReportAllocs()
	for b.Loop() {
		vals = vals[:0]
		for i := range s.Args {
			vals = append(vals, s.Args[i].Fetch(f))
		}
	}
	if vals[1].S != "/usr/share/locale/locale.alias" {
		b.Fatal(vals)
	}
}

func BenchmarkAppendText(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = returnEvent.AppendText(buf[:0])
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = returnEvent.AppendJSON(buf[:0])
	}
}
