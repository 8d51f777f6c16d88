package query

import (
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

// FuzzParse: any text parses or fails with an *Error whose position is
// inside it (or at its end); what parses binds or fails the same way, and
// what binds evaluates without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`size > 4096 && comm == "sqlite3"`, `!(a == 1) || -b < ~3`, `contains(name, "x\"y")`, `((1`, `1 < 2 < 3`, `args.size % 0`, `"\xff" < comm`} {
		f.Add(s)
	}
	spec, err := uprobe.Parse("p:g/e /bin/true:0x10 size=%di:u64 b=%si:s32 name=+0(%dx):string")
	if err != nil {
		f.Fatal(err)
	}
	ev := &uprobe.Event{Comm: "c", Group: "g", Name: "e", Args: []uprobe.Value{
		{Name: "size", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: 5},
		{Name: "b", Type: uprobe.Type{Kind: uprobe.Signed, Size: 4}, U: ^uint64(0)},
		{Name: "name", Type: uprobe.Type{Kind: uprobe.String}, S: "n"}}}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := Parse(text)
		check := func(err error) {
			qe, ok := err.(*Error)
			if !ok || qe.Pos < 0 || qe.Pos > len(text) {
				t.Fatalf("%q: error %v (%T)", text, err, err)
			}
		}
		if err != nil {
			check(err)
			return
		}
		p, err := e.Bind(spec)
		if err != nil {
			check(err)
			return
		}
		p.Eval(ev)
		p.Match(ev)
	})
}
