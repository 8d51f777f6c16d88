// Command dwarfargs is a target for probes on Go functions by name
// (docs/DESIGN.md §10): it prints every argument it passes, and the id of
// the goroutine that passed it.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// T has a method, named main.(*T).Add in the binary.
type T struct {
	name  string
	count int
}

//go:noinline
func (t *T) Add(n int) int {
	t.count += n
	return t.count
}

//go:noinline
func work(s string, n int, xs []int, ws []string) int {
	sum := n
	for _, x := range xs {
		sum += x
	}
	return sum + len(ws)
}

// join is the elements of xs, comma-separated.
func join[E any](xs []E) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, x)
	}
	return b.String()
}

// goid is the goroutine's id as the runtime prints it in a stack trace.
func goid() int {
	var b [64]byte
	s := string(b[:runtime.Stack(b[:], false)])
	id, _ := strconv.Atoi(strings.Fields(strings.TrimPrefix(s, "goroutine "))[0])
	return id
}

func main() {
	n := 3
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	t := &T{name: "tee"}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			s := strings.Repeat("go", i+1)
			// More than 8 elements from the fourth call on; ws is
			// nil at the first.
			xs := make([]int, 3*i+1, 3*i+4)
			for j := range xs {
				xs[j] = 10 * (j + 1)
			}
			var ws []string
			for j := 0; j < 3*i; j++ {
				ws = append(ws, strings.Repeat("w", j+1))
			}
			fmt.Printf("work goid=%d s=%s n=%d len=%d cap=%d xs0=%d xs=%s ws=%d:%s\n", goid(), s, i, len(xs), cap(xs), xs[0], join(xs), len(ws), join(ws))
			r := work(s, i, xs, ws)
			fmt.Printf("ret=%d add=%d\n", r, t.Add(i))
		}(i)
		wg.Wait()
	}
}
