package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

func TestKernelName(t *testing.T) {
	s := &Session{inst: &tracefs.Instance{Name: "ptprobe_4194304_12"}, byKname: map[string]*probe{}}
	long := strings.Repeat("g", 63)
	seen := map[string]bool{}
	for _, ge := range [][2]string{
		{"t", "push"}, {long, strings.Repeat("e", 63)}, {long, strings.Repeat("e", 62) + "f"},
		{"a__b", "c"}, {"a", "b__c"},
	} {
		k := s.kernelName(ge[0], ge[1])
		if len(k) > tracefs.MaxNameLen || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_0123456789") != "" || seen[k] || !strings.HasSuffix(k, "_4194304_12") {
			t.Errorf("kernelName(%q, %q) = %q", ge[0], ge[1], k)
		}
		seen[k] = true
		s.byKname[k] = &probe{}
	}
	if k := s.kernelName("t", "pull"); k != "t__pull_4194304_12" {
		t.Errorf("kernelName(t, pull) = %q", k)
	}
}

// TestBindForKernel: $argN is bound to the probed function's ABI (SysV,
// or Go's registers in a Go program); a return probe's $argN, which
// kernel uretprobes cannot save, and a return probe on Go code, which a
// uretprobe would crash, are refused before anything reaches tracefs.
func TestBindForKernel(t *testing.T) {
	dir := t.TempDir()
	c := testprog.Build(t, dir, "retprobes", testprog.PIE...)
	goProg := testprog.BuildGo(t, dir, "recurse")
	res := resolve.New(nil)
	defer res.Close()
	loc, err := resolveUprobe(res, mustParse(t, "p "+c+":recurse n=$arg1"))
	if err != nil || loc.ABI != uprobe.SysV || !strings.Contains(tracefs.UprobeLine(uprobe.Entry, "G", "E", loc.Path, loc.Offset, 0, loc.Args), " n=%di:x64") {
		t.Errorf("C entry probe: %+v, %v; want $arg1 as %%di", loc, err)
	}
	loc, err = resolveUprobe(res, mustParse(t, "p "+goProg+":main.leaf x=$arg1"))
	if err != nil || loc.ABI != uprobe.GoRegs || loc.Args[0].Expr.String() != "%ax" {
		t.Errorf("Go entry probe: %+v, %v; want $arg1 as %%ax", loc, err)
	}
	spec := "r " + c + ":recurse v=$retval n=$arg1"
	_, err = resolveUprobe(res, mustParse(t, spec))
	var se *uprobe.Error
	if !errors.As(err, &se) || se.Pos != strings.Index(spec, "$arg1") || !strings.Contains(se.Msg, "$arg* can be used only on function entry or exit") {
		t.Errorf("return probe with $arg1: %v; want the kernel's message at the $arg1", err)
	}
	if _, err := resolveUprobe(res, mustParse(t, "r "+goProg+":main.leaf")); err == nil || !strings.Contains(err.Error(), "golang/go#22008") {
		t.Errorf("return probe on Go code: %v; want it refused", err)
	}
}
