package tracefile

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Folded counts stacks and writes them folded, as flamegraph.pl's
// stackcollapse scripts do and speedscope reads them: one line per
// distinct stack, its frames from the outermost to the innermost joined
// by ";", a space and the number of times it was seen.
type Folded struct {
	counts map[string]uint64
	key    []byte
}

// NewFolded returns an empty Folded.
func NewFolded() *Folded { return &Folded{counts: map[string]uint64{}} }

// Add counts one stack, innermost frame first (as an unwinder gives
// them). A ';' or a space in a frame's name becomes '_', which the format
// cannot hold.
func (f *Folded) Add(frames []string) {
	if len(frames) == 0 {
		return
	}
	k := f.key[:0]
	for i := len(frames) - 1; i >= 0; i-- {
		if i < len(frames)-1 {
			k = append(k, ';')
		}
		for j := 0; j < len(frames[i]); j++ {
			c := frames[i][j]
			if c == ';' || c == ' ' || c == '\n' {
				c = '_'
			}
			k = append(k, c)
		}
	}
	f.key = k
	f.counts[string(k)]++
}

// WriteTo writes the stacks, sorted.
func (f *Folded) WriteTo(w io.Writer) (int64, error) {
	keys := make([]string, 0, len(f.counts))
	for k := range f.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d\n", k, f.counts[k])
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
