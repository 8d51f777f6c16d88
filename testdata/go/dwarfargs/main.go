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
func work(s string, n int, xs []int) int {
	sum := n
	for _, x := range xs {
		sum += x
	}
	return sum
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
			xs := make([]int, i+1, i+4)
			for j := range xs {
				xs[j] = 10 * (j + 1)
			}
			fmt.Printf("work goid=%d s=%s n=%d len=%d cap=%d xs0=%d\n", goid(), s, i, len(xs), cap(xs), xs[0])
			r := work(s, i, xs)
			fmt.Printf("ret=%d add=%d\n", r, t.Add(i))
		}(i)
		wg.Wait()
	}
}
