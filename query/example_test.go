package query_test

import (
	"fmt"

	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/uprobe"
)

// A filter parsed once, bound to a probe, and evaluated on its events.
func Example() {
	spec, _ := uprobe.Parse("p:demo/alloc /bin/true:0x10 size=%di:u64")
	e, err := query.Parse(`size > 4096 && comm == "sqlite3"`)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := e.Bind(spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, size := range []uint64{100, 8192} {
		ev := &uprobe.Event{Comm: "sqlite3", Group: "demo", Name: "alloc",
			Args: []uprobe.Value{{Name: "size", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8}, U: size}}}
		fmt.Println(size, p.Match(ev))
	}
	_, err = query.Parse("size >")
	fmt.Println(err.(*query.Error).Caret())
	// Output:
	// 100 false
	// 8192 true
	// error: expression ends where a value is expected
	//   Expression: size >
	//                     ^
}
