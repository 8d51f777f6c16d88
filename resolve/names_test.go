package resolve_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// TestExpand: a name is bound once, to the fetch-arg tree the kernel's
// grammar writes (as perf probe turns p->name:string into
// +0(+16(%di)):string), so that the kernel backend gets text that means
// the same as the tree the ptrace engine runs; a source line becomes one
// spec per address; a spec without names is left as it is.
func TestBindNames(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipped: gcc is not installed: cannot build testdata/c/dwarf.c")
	}
	prog := filepath.Join(t.TempDir(), "dwarf")
	if b, err := exec.Command(gcc, "-O2", "-g", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "dwarf.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	r := resolve.New(nil)
	defer r.Close()
	expand := func(text string) []*uprobe.Spec {
		t.Helper()
		spec, err := uprobe.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.BindNames(spec)
		if err != nil {
			t.Fatalf("BindNames(%q): %v", text, err)
		}
		return out
	}
	out := expand("p:t/work " + prog + ":work a p->name s:string n=p->y:u32 $params")
	want := "p:t/work " + prog + ":work a=%di:s32 p_name=+0(+16(%cx)):string s=+0(%dx):string n=+8(%cx):u32 b=%si:s64 p=%cx:x64 c=%r8:s32"
	if len(out) != 1 || out[0].String() != want {
		t.Fatalf("Expand = %v,\nwant %s", out, want)
	}
	// The text the kernel gets parses back to the same probe.
	back, err := uprobe.Parse(out[0].String())
	if err != nil || !back.Equal(out[0]) {
		t.Errorf("Parse(%q) = %v, %v: not the same probe", out[0].String(), back, err)
	}

	out = expand("p:t/l " + prog + ":dwarf.c:22")
	if len(out) != 2 || out[0].Event != "l" || out[1].Event != "l_1" || out[0].Symbol != "" || out[0].SrcFile != "" {
		t.Errorf("a line of two inlined copies: %v", out)
	}
	for _, s := range out {
		if _, err := r.Resolve(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}

	out = expand("r:t/ret " + prog + ":work $retval")
	if len(out) != 1 || out[0].Args[0].Type.String() != "s32" {
		t.Errorf("$retval of an int function: %v", out)
	}

	spec, _ := uprobe.Parse("p:t/plain " + prog + ":work %di")
	if out, err := r.BindNames(spec); err != nil || len(out) != 1 || out[0] != spec {
		t.Errorf("a spec without names: %v %v", out, err)
	}

	// A return probe's variable is its value at the entry: the entry's
	// register ($argN's), and its text says so.
	out = expand("r:t/ret " + prog + ":work a p->x")
	if want := "r:t/ret " + prog + ":work a=$arg1:s32 p_x=+0($arg4):s32"; len(out) != 1 || out[0].String() != want || out[0].Args[0].Expr.Op != uprobe.OpEntryReg {
		t.Errorf("variables in a return probe: %v, want %s", out, want)
	} else if a := out[0].Args[1]; out[0].Text[a.Pos:a.Pos+len(a.Text)] != a.Text {
		t.Errorf("%s is not at its position %d in %q", a.Text, a.Pos, out[0].Text)
	}
}

// BenchmarkExpand is what binding names adds to a probe's start: a new
// Resolver each time, so the DWARF is opened each time, as at a start
// of ptprobe (docs/DESIGN.md §10).
func BenchmarkBindNames(b *testing.B) {
	prog := testprog.BuildGo(b, b.TempDir(), "dwarfargs")
	for name, text := range map[string]string{"go": prog + ":main.work n", "libc": "libc:malloc bytes"} {
		spec, err := uprobe.Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r := resolve.New(nil)
				if _, err := r.BindNames(spec); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
