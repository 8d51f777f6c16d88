package agg_test

import (
	"fmt"
	"os"

	"github.com/ptprobe/ptprobe/agg"
	"github.com/ptprobe/ptprobe/query"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Counts of events by a key, printed as bpftrace prints @[comm] = count().
func ExampleMap() {
	spec, _ := uprobe.Parse("p:demo/alloc /bin/true:0x10 size=%di:u64")
	by, _ := query.Parse("comm")
	m, err := agg.New(agg.Spec{Op: agg.Count, By: []*query.Expr{by}}, []*uprobe.Spec{spec})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, comm := range []string{"ls", "sh", "ls"} {
		m.Add(&uprobe.Event{Comm: comm, Group: "demo", Name: "alloc", Args: []uprobe.Value{{Name: "size"}}})
	}
	os.Stdout.Write(m.AppendText(nil, 0))
	os.Stdout.Write(m.AppendJSON(nil, 0))
	// Output:
	// @count[sh]: 1
	// @count[ls]: 2
	// {"map":"@count","key":{"comm":"sh"},"value":1}
	// {"map":"@count","key":{"comm":"ls"},"value":2}
}
