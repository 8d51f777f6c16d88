package dwarf_test

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve/dwarf"
	"github.com/ptprobe/ptprobe/uprobe"
)

// build compiles testdata/c/dwarf.c with gcc and flags into dir/name.
func build(t *testing.T, dir, name string, flags ...string) string {
	t.Helper()
	return testprog.BuildAs(t, dir, name, "dwarf", flags...)
}

func open(t testing.TB, path string, opts *dwarf.Options) *dwarf.Data {
	t.Helper()
	d, err := dwarf.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func fn(t *testing.T, d *dwarf.Data, name string) *dwarf.Func {
	t.Helper()
	fs := d.Funcs(name)
	if len(fs) != 1 {
		t.Fatalf("%d functions %s", len(fs), name)
	}
	return fs[0]
}

// TestLocationLists: with gcc -O2 a parameter is in its ABI register at
// the entry (the location list's first range) and, at some later
// address of the function, nowhere: "optimized out here", never a guess.
func TestLocationLists(t *testing.T) {
	d := open(t, build(t, t.TempDir(), "dwarf", "-O2", "-g"), nil)
	f := fn(t, d, "work")
	// SysV: the 1st, 3rd and 4th integer arguments.
	for path, want := range map[string]string{"a": "%di", "s": "+0(%dx)", "p->x": "+0(%cx)", "p->name": "+0(+16(%cx))", "p->tag": "+24(%cx)"} {
		as, err := d.Resolve(f.Low, path, nil)
		if err != nil || len(as) != 1 || as[0].Expr.String() != want {
			t.Errorf("%s at the entry: %v %v, want %s", path, as, err, want)
		}
	}
	as, _ := d.Resolve(f.Low, "s", nil)
	if as[0].Type.Kind != uprobe.String {
		t.Errorf("const char *s is fetched as %s, want a string", as[0].Type)
	}
	as, _ = d.Resolve(f.Low, "a", &uprobe.Type{Kind: uprobe.Hex, Size: 2})
	if as[0].Type.String() != "x16" {
		t.Errorf("a:x16 is fetched as %s", as[0].Type)
	}
	out := 0
	for pc := f.Low; pc < f.High; pc++ {
		if _, err := d.Resolve(pc, "a", nil); errors.Is(err, dwarf.ErrOptimizedOut) {
			out++
			if !strings.Contains(err.Error(), fmt.Sprintf("a at 0x%x (work+0x%x)", pc, pc-f.Low)) {
				t.Errorf("the error does not name the variable and the address: %v", err)
			}
		}
	}
	if out == 0 {
		t.Error("a is available at every address of work at -O2: the location list was not read per address")
	}
}

// TestErrors: what a path that cannot be fetched says.
func TestErrors(t *testing.T) {
	d := open(t, build(t, t.TempDir(), "dwarf", "-O2", "-g"), nil)
	f := fn(t, d, "work")
	for path, want := range map[string]string{
		"nope":   "no variable nope here; visible: a, b, c, p, s",
		"a->x":   "->x: a int is not a pointer",
		"p.x.y":  ".y: a int is not a struct",
		"p":      "",
		"*p":     "it is a struct point: name a member (x, y, name, tag)",
		"p->tag": "",
		"a[2]":   "[2]: a int is not an array",
	} {
		_, err := d.Resolve(f.Low, path, nil)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

// TestLinePCs: a line of an inlined function is at one address per copy
// (two calls, two copies with -O2; one function with -O0).
func TestLinePCs(t *testing.T) {
	dir := t.TempDir()
	for opt, copies := range map[string]int{"-O0": 1, "-O2": 2} {
		d := open(t, build(t, dir, "dwarf"+opt, opt, "-g"), nil)
		pcs, err := d.LinePCs("dwarf.c", 22)
		if err != nil || len(pcs) != copies {
			t.Errorf("%s: dwarf.c:22 at %x (%v), want %d addresses", opt, pcs, err, copies)
		}
		if _, err := d.LinePCs("dwarf.c", 9); err == nil || !strings.Contains(err.Error(), "no code at this line") {
			t.Errorf("%s: dwarf.c:9 (a struct member): %v", opt, err)
		}
	}
}

// TestInlines: at every address of gcc -O2's total, which inlines twice
// twice, the inlined functions and the source positions are those
// binutils' addr2line -f -i gives: the inlined function at its own line,
// then the function it is in at the line of the call.
func TestInlines(t *testing.T) {
	if _, err := exec.LookPath("addr2line"); err != nil {
		t.Skip("skipped: no addr2line (binutils) to compare with")
	}
	prog := build(t, t.TempDir(), "dwarf", "-O2", "-g")
	d := open(t, prog, nil)
	f := fn(t, d, "total")
	args := []string{"-f", "-i", "-e", prog}
	for pc := f.Low; pc < f.High; pc++ {
		args = append(args, fmt.Sprintf("0x%x", pc))
	}
	out, err := exec.Command("addr2line", args...).Output()
	if err != nil {
		t.Skipf("skipped: addr2line: %v", err)
	}
	// addr2line prints a function line and a FILE:LINE line per frame,
	// innermost first; the frames of an address end with total's.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	inlined := 0
	for pc := f.Low; pc < f.High; pc++ {
		var want []string
		for len(lines) >= 2 {
			pos, _, _ := strings.Cut(lines[1], " (discriminator")
			want = append(want, lines[0]+" "+pos)
			lines = lines[2:]
			if want[len(want)-1][:len("total ")] == "total " {
				break
			}
		}
		frames, file, line := d.Inlines(pc)
		var got []string
		for _, fr := range frames {
			got = append(got, fmt.Sprintf("%s %s:%d", fr.Func, fr.File, fr.Line))
		}
		got = append(got, fmt.Sprintf("total %s:%d", file, line))
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("total+0x%x: %q, addr2line -i says %q", pc-f.Low, got, want)
		}
		if len(frames) > 0 {
			inlined++
		}
	}
	if inlined == 0 {
		t.Error("no address of total is in an inlined twice")
	}
}

// TestSeparateDebugFiles: DWARF found by build-id under a debug root and
// by .gnu_debuglink beside the file, as distributions install it; none
// at all is ErrNoDWARF naming the paths looked at.
func TestSeparateDebugFiles(t *testing.T) {
	for _, tool := range []string{"objcopy", "strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s (binutils) is not installed", tool)
		}
	}
	dir := t.TempDir()
	prog := build(t, dir, "dwarf", "-O2", "-g", "-Wl,--build-id")
	run := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
	}
	dbg := prog + ".debug"
	run("objcopy", "--only-keep-debug", prog, dbg)
	run("strip", "--strip-debug", prog)

	// By build-id.
	ef, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	id := buildID(t, ef)
	ef.Close()
	root := filepath.Join(dir, "debug")
	byID := filepath.Join(root, ".build-id", id[:2], id[2:]+".debug")
	os.MkdirAll(filepath.Dir(byID), 0o755)
	b, _ := os.ReadFile(dbg)
	os.WriteFile(byID, b, 0o644)
	d := open(t, prog, &dwarf.Options{DebugDirs: []string{root}})
	if d.DebugPath != byID {
		t.Errorf("DebugPath %s, want %s", d.DebugPath, byID)
	}
	if _, err := d.Resolve(fn(t, d, "work").Low, "p->name", nil); err != nil {
		t.Error(err)
	}
	os.Remove(byID)

	_, err = dwarf.Open(prog, &dwarf.Options{DebugDirs: []string{root}})
	if !errors.Is(err, dwarf.ErrNoDWARF) || !strings.Contains(err.Error(), byID) {
		t.Errorf("without a debug file: %v, want ErrNoDWARF naming %s", err, byID)
	}

	// By .gnu_debuglink, beside the file.
	run("objcopy", "--add-gnu-debuglink="+dbg, prog)
	d = open(t, prog, &dwarf.Options{DebugDirs: []string{root}})
	if d.DebugPath != dbg {
		t.Errorf("DebugPath %s, want %s", d.DebugPath, dbg)
	}
}

func buildID(t *testing.T, f *elf.File) string {
	t.Helper()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Skip("skipped: the linker wrote no build-id")
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		t.Fatal("bad build-id note")
	}
	return fmt.Sprintf("%x", b[16:])
}

// TestGo: Go's register ABI, strings (pointer and length) and slices in
// register pieces, a method by its Go name, and runtime.g's goid offset.
func TestGo(t *testing.T) {
	d := open(t, testprog.BuildGo(t, t.TempDir(), "dwarfargs"), nil)
	f := fn(t, d, "main.work")
	as, err := d.Resolve(f.Low, "s", nil)
	// The Go ABI's first words: RAX, RBX.
	if err != nil || len(as) != 1 || as[0].Expr.String() != "+0(%ax)" || as[0].Len == nil || as[0].Len.String() != "%bx" {
		t.Errorf("s: %+v %v, want +0(%%ax) of length %%bx", as, err)
	}
	// A slice: its array (the words RDI, RSI, R8 after s and n), its
	// length, its first SliceElems elements; of strings, Go strings.
	as, err = d.Resolve(f.Low, "xs", nil)
	if err != nil || len(as) != 1 || as[0].Expr.String() != "+0(%di)" || as[0].Len == nil || as[0].Len.String() != "%si" || as[0].Type.String() != fmt.Sprintf("s64[%d]", dwarf.SliceElems) {
		t.Errorf("xs: %+v %v, want +0(%%di):s64[%d] of length %%si", as, err, dwarf.SliceElems)
	}
	as, err = d.Resolve(f.Low, "ws", nil)
	if err != nil || len(as) != 1 || as[0].Expr.String() != "+0(%r9)" || as[0].Len == nil || as[0].Len.String() != "%r10" || as[0].Type.Kind != uprobe.String || as[0].Type.Len != dwarf.SliceElems {
		t.Errorf("ws: %+v %v, want +0(%%r9) strings of length %%r10", as, err)
	}
	for _, m := range []string{"len", "cap"} {
		if as, err := d.Resolve(f.Low, "xs."+m, nil); err != nil || len(as) != 1 || as[0].Type.String() != "s64" {
			t.Errorf("xs.%s: %+v %v", m, as, err)
		}
	}
	ps, err := d.Params(f.Low)
	if err != nil || strings.Join(ps, " ") != "s n xs ws" {
		t.Errorf("params %v %v, want s n xs ws (no result)", ps, err)
	}
	m := fn(t, d, "main.(*T).Add")
	if as, err := d.Resolve(m.Low, "t.name", nil); err != nil || as[0].Len == nil {
		t.Errorf("t.name: %+v %v", as, err)
	}
	if rt, name, err := d.ReturnType(f.Low); err != nil || rt.String() != "s64" || name != "int" {
		t.Errorf("result %s %s %v, want s64 int", rt, name, err)
	}
	if off, err := d.GoidOffset(); err != nil || off <= 0 {
		t.Errorf("goid offset %d %v", off, err)
	}
}

// BenchmarkOpen is the start-up cost names add to a probe: opening a
// file's DWARF and indexing its functions (docs/DESIGN.md §10), for a
// small C program, a Go program and libc (libc6-dbg's build-id file).
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	c := filepath.Join(dir, "dwarf")
	if out, err := exec.Command("gcc", "-O2", "-g", "-o", c, filepath.Join(testprog.Root(), "testdata", "c", "dwarf.c")).CombinedOutput(); err != nil {
		b.Skipf("skipped: gcc: %v %s", err, out)
	}
	files := map[string]string{"c": c, "go": testprog.BuildGo(b, dir, "dwarfargs"), "libc": "/lib/x86_64-linux-gnu/libc.so.6"}
	for _, name := range []string{"c", "go", "libc"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				d, err := dwarf.Open(files[name], nil)
				if err != nil {
					b.Skipf("skipped: %v", err)
				}
				d.Close()
			}
		})
	}
}

// BenchmarkResolve is the cost of one variable path once the DWARF is
// open: the function's DIE tree, its location list at the address, the
// type.
func BenchmarkResolve(b *testing.B) {
	d := open(b, testprog.BuildGo(b, b.TempDir(), "dwarfargs"), nil)
	f := d.Funcs("main.(*T).Add")[0]
	for b.Loop() {
		if _, err := d.Resolve(f.Low, "t.name", nil); err != nil {
			b.Fatal(err)
		}
	}
}
