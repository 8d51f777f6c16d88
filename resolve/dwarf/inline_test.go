package dwarf

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// BenchmarkInlines is what --stack pays per frame for its inlined
// functions and line (docs/DESIGN.md §10), once the file is open and
// the line table read: at an address in an inlined copy in the small C
// program, and at malloc's first address in libc (__libc_malloc in
// libc6-dbg's build-id file, whose units are large). "new" is an address
// not seen before (the answers forgotten at each op), "seen" one that
// was (a stack's addresses repeat from hit to hit).
func BenchmarkInlines(b *testing.B) {
	dir := b.TempDir()
	c := filepath.Join(dir, "dwarf")
	if out, err := exec.Command("gcc", "-O2", "-g", "-o", c, filepath.Join(testprog.Root(), "testdata", "c", "dwarf.c")).CombinedOutput(); err != nil {
		b.Skipf("skipped: gcc: %v %s", err, out)
	}
	for _, tc := range []struct{ name, path, fn string }{{"c", c, "total"}, {"libc", "/lib/x86_64-linux-gnu/libc.so.6", "__libc_malloc"}} {
		d, err := Open(tc.path, nil)
		if err != nil {
			b.Logf("skipped %s: %v", tc.name, err)
			continue
		}
		defer d.Close()
		fs := d.Funcs(tc.fn)
		if len(fs) == 0 {
			b.Logf("skipped %s: no %s in %s's DWARF", tc.name, tc.fn, tc.path)
			continue
		}
		pc := fs[0].Low
		if tc.fn == "total" {
			pc += 0x10 // in twice's first copy
		}
		d.Inlines(pc) // the line table and the tree, read once
		b.Run(tc.name+"/new", func(b *testing.B) {
			for b.Loop() {
				d.inlines = nil
				d.Inlines(pc)
			}
		})
		b.Run(tc.name+"/seen", func(b *testing.B) {
			for b.Loop() {
				d.Inlines(pc)
			}
		})
	}
}
