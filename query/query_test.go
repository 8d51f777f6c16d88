package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

func spec(t testing.TB, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(s *uprobe.Spec, args ...uprobe.Value) *uprobe.Event {
	return &uprobe.Event{PID: 42, TID: 43, Comm: "sqlite3", Group: s.Group, Name: s.Event, Kind: s.Kind, DurationNS: 1500, Args: args}
}

func TestMatch(t *testing.T) {
	s := spec(t, "p:grp/work /bin/true:0x10 size=%di:u64 off=%si:s64 name=+0(%dx):string")
	ev := event(s,
		uprobe.Value{Name: "size", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: 8192},
		uprobe.Value{Name: "off", Type: uprobe.Type{Kind: uprobe.Signed, Size: 8}, U: uint64(0xffffffffffffffff)}, // -1
		uprobe.Value{Name: "name", Type: uprobe.Type{Kind: uprobe.String}, S: "tmpfile"},
	)
	for _, c := range []struct {
		expr string
		want bool
	}{
		{`size > 4096 && comm == "sqlite3"`, true},
		{`size > 4096 && comm == "ls"`, false},
		{`size >= 8192`, true},
		{`size > 8192`, false},
		{`off < 0`, true},
		{`off < size`, true}, // -1 below every unsigned
		{`off == -1`, true},
		{`-off == 1`, true},
		{`size / 1024 == 8`, true},
		{`size % 3 == 8192 % 3`, true},
		{`(size & 0x1000) != 0 || false`, false},
		{`size >> 13 == 1 && 1 << 13 == size`, true},
		{`probe == "grp/work"`, true},
		{`probe != "grp/work"`, false},
		{`pid == 42 && tid == 43`, true},
		{`startswith(name, "tmp") && endswith(name, "file") && contains(name, "pf")`, true},
		{`!(name == "tmpfile")`, false},
		{`name < "u" && name > "t"`, true},
		{`size / (pid - 42) == 0`, false}, // division by zero: unknown, no match
		{`args.size == 8192`, true},
		{`(size > 1) == true`, true},
		{`name`, true},
	} {
		e, err := Parse(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		p, err := e.Bind(s)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := p.Match(ev); got != c.want {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestFault(t *testing.T) {
	s := spec(t, "/bin/true:0x10 size=%di:u64")
	ev := event(s, uprobe.Value{Name: "size", Fault: true})
	for _, expr := range []string{"size > 0", "size == 0", "!(size > 0)"} {
		e, _ := Parse(expr)
		p, err := e.Bind(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.Match(ev) {
			t.Errorf("%s matched a faulted fetch", expr)
		}
	}
}

func TestErrors(t *testing.T) {
	s := spec(t, "/bin/true:0x10 size=%di:u64")
	for _, c := range []struct {
		expr, msg string
		pos       int
	}{
		{"sz > 1", `unknown field "sz" in probe ptprobe/p_true_0x10 (did you mean size?)`, 0},
		{"comm > 3", "cannot compare a string with a number", 5},
		{"size > ", "expression ends where a value is expected", 7},
		{"(size > 1", "parenthesis is not closed", 0},
		{`comm == "abc`, "string is not closed", 8},
		{"1 < size < 3", "comparisons do not chain: use && between them", 9},
		{"retval == 0", "retval is a field of return probes, and ptprobe/p_true_0x10 is an entry probe", 0},
		{"size $ 3", `unexpected "$"`, 5},
		{"contains(comm)", "contains takes two arguments", 13},
		{"0x1g", `bad number "0x1g"`, 0},
		{"", "empty expression", 0},
	} {
		e, err := Parse(c.expr)
		if err == nil {
			_, err = e.Bind(s)
		}
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("%q: error %v, want a *query.Error", c.expr, err)
			continue
		}
		if qe.Msg != c.msg || qe.Pos != c.pos {
			t.Errorf("%q: %q at %d, want %q at %d", c.expr, qe.Msg, qe.Pos, c.msg, c.pos)
		}
	}
	e, _ := Parse("sz > 1")
	_, err := e.Bind(s)
	if !errors.Is(err, ErrNoField) {
		t.Errorf("unknown field: %v does not wrap ErrNoField", err)
	}
	if c := err.(*Error).Caret(); !strings.HasSuffix(c, "\n  Expression: sz > 1\n              ^") {
		t.Errorf("caret:\n%s", c)
	}
}

func TestSet(t *testing.T) {
	a := spec(t, "p:g/a /bin/true:0x10 size=%di:u64")
	b := spec(t, "p:g/b /bin/true:0x20 n=%di:u64")
	e, _ := Parse("size == 3")
	set, err := BindAll(e, []*uprobe.Spec{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Skipped([]*uprobe.Spec{a, b}); len(got) != 1 || got[0] != "g/b" {
		t.Errorf("skipped %v, want [g/b]", got)
	}
	three := uprobe.Value{Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: 3}
	if !set.Match(event(a, three)) || set.Match(event(b, three)) || !set.Match(event(a, three)) {
		t.Error("set: want a to match and b not")
	}
	e, _ = Parse("nothing == 3")
	if _, err := BindAll(e, []*uprobe.Spec{a, b}); !errors.Is(err, ErrNoField) {
		t.Errorf("a field of no probe: %v", err)
	}
}

func BenchmarkFilter(b *testing.B) {
	s := spec(b, "p:grp/work /bin/true:0x10 size=%di:u64 name=+0(%dx):string")
	ev := event(s,
		uprobe.Value{Name: "size", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: 8192},
		uprobe.Value{Name: "name", Type: uprobe.Type{Kind: uprobe.String}, S: "tmpfile"})
	for _, expr := range []string{
		`size > 4096`,
		`size > 4096 && comm == "sqlite3"`,
		`(size & 0xfff) == 0 && startswith(name, "tmp") && probe == "grp/work" && pid != 1`,
	} {
		b.Run(expr, func(b *testing.B) {
			e, _ := Parse(expr)
			set, err := BindAll(e, []*uprobe.Spec{s})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if !set.Match(ev) {
					b.Fatal("no match")
				}
			}
		})
	}
}
