package agg

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/uprobe"
)

func mustSpec(t testing.TB, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustExpr(t testing.TB, text string) *query.Expr {
	t.Helper()
	e, err := query.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var u64 = uprobe.Type{Kind: uprobe.Unsigned, Size: 8}

func ev(s *uprobe.Spec, comm string, size uint64) *uprobe.Event {
	return &uprobe.Event{Comm: comm, Group: s.Group, Name: s.Event, Args: []uprobe.Value{{Name: "size", Type: u64, U: size}}}
}

func TestCountBy(t *testing.T) {
	s := mustSpec(t, "p:g/a /bin/true:0x10 size=%di:u64")
	m, err := New(Spec{Op: Count, By: []*query.Expr{mustExpr(t, "comm"), mustExpr(t, "size % 3")}}, []*uprobe.Spec{s})
	if err != nil {
		t.Fatal(err)
	}
	// size 0..29 for "a", 0..9 for "b": comm a has 10 of each remainder,
	// b 4, 3, 3.
	for i := uint64(0); i < 30; i++ {
		m.Add(ev(s, "a", i))
	}
	for i := uint64(0); i < 10; i++ {
		m.Add(ev(s, "b", i))
	}
	want := "@count[b, 1]: 3\n@count[b, 2]: 3\n@count[b, 0]: 4\n@count[a, 0]: 10\n@count[a, 1]: 10\n@count[a, 2]: 10\n"
	if got := string(m.AppendText(nil, 0)); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	if got := string(m.AppendText(nil, 2)); got != "@count[a, 1]: 10\n@count[a, 2]: 10\n" {
		t.Errorf("top 2:\n%s", got)
	}
	lines := strings.Split(strings.TrimSpace(string(m.AppendJSON(nil, 0))), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	var o struct {
		Map   string
		Key   map[string]any
		Value int
	}
	if err := json.Unmarshal([]byte(lines[2]), &o); err != nil {
		t.Fatal(err)
	}
	if o.Map != "@count" || o.Key["comm"] != "b" || o.Key["size % 3"] != 0.0 || o.Value != 4 {
		t.Errorf("JSON line %s", lines[2])
	}
	m.Reset()
	if m.Len() != 0 || len(m.AppendText(nil, 0)) != 0 {
		t.Error("Reset left entries")
	}
}

func TestStats(t *testing.T) {
	s := mustSpec(t, "p:g/a /bin/true:0x10 size=%di:u64")
	for _, c := range []struct {
		op   Op
		want string
	}{{Sum, "@sum: 4950\n"}, {Avg, "@avg: 49\n"}, {Min, "@min: 0\n"}, {Max, "@max: 99\n"}} {
		m, err := New(Spec{Op: c.op, Value: mustExpr(t, "size")}, []*uprobe.Spec{s})
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < 100; i++ {
			m.Add(ev(s, "a", i))
		}
		if got := string(m.AppendText(nil, 0)); got != c.want {
			t.Errorf("%s: %q, want %q", c.op, got, c.want)
		}
	}
	if _, err := New(Spec{Op: Sum, Value: mustExpr(t, "comm")}, []*uprobe.Spec{s}); err == nil {
		t.Error("sum of a string accepted")
	}
}

func TestHist(t *testing.T) {
	var h Log2
	for _, v := range []int64{0, 1, 2, 3, 4, 7, 8, 1023, 1024, 2047, -5} {
		h.Add(v)
	}
	want := "" +
		"(..., 0)                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[0]                         1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[1]                         1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[2, 4)                      2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
		"[4, 8)                      2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
		"[8, 16)                     1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[16, 32)                    0 |                                                    |\n" +
		"[32, 64)                    0 |                                                    |\n" +
		"[64, 128)                   0 |                                                    |\n" +
		"[128, 256)                  0 |                                                    |\n" +
		"[256, 512)                  0 |                                                    |\n" +
		"[512, 1K)                   1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[1K, 2K)                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
	if got := string(h.AppendText(nil)); got != want {
		t.Errorf("hist:\n%s\nwant:\n%s", got, want)
	}
	l := NewLinear(0, 30, 10)
	for _, v := range []int64{-1, 0, 9, 10, 29, 30, 100} {
		l.Add(v)
	}
	want = "" +
		"(..., 0)                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[0, 10)                     2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
		"[10, 20)                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[20, 30)                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
		"[30, ...)                   2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
	if got := string(l.AppendText(nil)); got != want {
		t.Errorf("lhist:\n%s\nwant:\n%s", got, want)
	}
}

func BenchmarkCountBy(b *testing.B) {
	s := mustSpec(b, "p:g/a /bin/true:0x10 size=%di:u64")
	for _, by := range []string{"size", "comm, size"} {
		b.Run(by, func(b *testing.B) {
			var keys []*query.Expr
			for _, k := range strings.Split(by, ", ") {
				keys = append(keys, mustExpr(b, k))
			}
			m, err := New(Spec{Op: Count, By: keys}, []*uprobe.Spec{s})
			if err != nil {
				b.Fatal(err)
			}
			events := make([]*uprobe.Event, 64)
			for i := range events {
				events[i] = ev(s, "sqlite3", uint64(i)*16)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m.Add(events[i&63])
				i++
			}
		})
	}
	b.Run("hist size", func(b *testing.B) {
		m, err := New(Spec{Op: Hist, Value: mustExpr(b, "size")}, []*uprobe.Spec{s})
		if err != nil {
			b.Fatal(err)
		}
		e := ev(s, "sqlite3", 4096)
		b.ReportAllocs()
		for b.Loop() {
			m.Add(e)
		}
	})
}
