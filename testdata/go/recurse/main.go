// Command recurse recurses deeply in several goroutines with frames big
// enough to make the Go runtime grow (copy) their stacks many times: the
// test bed for return probes on Go functions.
//
//	recurse DEPTH GOROUTINES
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

//go:noinline
func recurse(n int) int {
	var pad [64]int // a big frame: the stack grows and moves
	pad[n%64] = n
	if n == 0 {
		return pad[0]
	}
	return recurse(n-1) + 1 + pad[n%64] - n
}

//go:noinline
func leaf(x int) int { return x * 3 }

func main() {
	depth, _ := strconv.Atoi(os.Args[1])
	gs, _ := strconv.Atoi(os.Args[2])
	var wg sync.WaitGroup
	results := make([]int, gs)
	for g := 0; g < gs; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			results[g] = recurse(depth) + leaf(g)
		}(g)
	}
	wg.Wait()
	fmt.Println("results", results, "calls", gs*(depth+1))
}
