package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

func mustParse(t testing.TB, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		if e, ok := err.(*uprobe.Error); ok {
			t.Fatalf("parse %q:\n%s", text, e.Caret())
		}
		t.Fatalf("parse %q: %v", text, err)
	}
	return s
}

func TestUprobeLine(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want string
	}{
		{"/bin/x:main", "p:G/E /abs/x:0x1139"},
		{"p:t/push /bin/x:push_func a=%di:s64 b=%rsi:s64",
			"p:G/E /abs/x:0x1139 a=%di:s64 b=%si:s64"},
		{"r:t/mid /bin/x:mid_func v=$retval:s64",
			"r:G/E /abs/x:0x1139 v=$retval:s64"},
		{"/bin/x:f%return $retval",
			"r:G/E /abs/x:0x1139 arg1=$retval:x64"},
		// $argN is the SysV register, also inside dereferences.
		{"libc:strtol s=+0($arg1):string base=$arg3:s32 a4=$arg4 a5=$arg5 a6=$arg6 a2=$arg2",
			"p:G/E /abs/x:0x1139 s=+0(%di):string base=%dx:s32 a4=%cx:x64 a5=%r8:x64 a6=%r9:x64 a2=%si:x64"},
		{"/bin/x:f n=+8(+16($arg2)):u32",
			"p:G/E /abs/x:0x1139 n=+8(+16(%si)):u32"},
		{"/bin/x:f $comm $stack $stack2 @0x1000 @+0x40 -8(%sp):s8 %ip %flags",
			"p:G/E /abs/x:0x1139 arg1=$comm:string arg2=$stack:x64 arg3=$stack2:x64 arg4=@0x1000:x64 arg5=@+0x40:x64 arg6=-8(%sp):s8 arg7=%ip:x64 arg8=%flags:x64"},
		// Registers the kernel does not know are written as they are:
		// the kernel refuses them itself.
		{"/bin/x:f x=%fs_base y=%ds", "p:G/E /abs/x:0x1139 x=%fs_base:x64 y=%ds:x64"},
	} {
		s := mustParse(t, tc.spec)
		if got := UprobeLine(s, "G", "E", "/abs/x", 0x1139); got != tc.want {
			t.Errorf("UprobeLine(%q):\n got %q\nwant %q", tc.spec, got, tc.want)
		}
	}
}

func TestUprobeLineKeepsSpec(t *testing.T) {
	s := mustParse(t, "/bin/x:f a=+0($arg1):u8")
	before := s.Args[0].Expr.String()
	UprobeLine(s, "G", "E", "/abs/x", 1)
	if after := s.Args[0].Expr.String(); after != before {
		t.Errorf("UprobeLine changed the spec's expression: %q -> %q", before, after)
	}
}

func TestKernelName(t *testing.T) {
	s := &Session{name: "ptprobe_4194304_12", byKname: map[string]*probe{}}
	long := strings.Repeat("g", 63)
	seen := map[string]bool{}
	for _, ge := range [][2]string{
		{"t", "push"}, {long, strings.Repeat("e", 63)}, {long, strings.Repeat("e", 62) + "f"},
		{"a__b", "c"}, {"a", "b__c"},
	} {
		k := s.kernelName(ge[0], ge[1])
		if len(k) > maxEventNameLen || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_0123456789") != "" || seen[k] || !strings.HasSuffix(k, "_4194304_12") {
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
	loc, err := resolveUprobe(mustParse(t, "p "+c+":recurse n=$arg1"), nil)
	if err != nil || loc.ABI != uprobe.SysV || !strings.Contains(uprobeLine(mustParse(t, "p "+c+":recurse n=$arg1"), loc.Args, "G", "E", loc.Path, loc.Offset, nil), " n=%di:x64") {
		t.Errorf("C entry probe: %+v, %v; want $arg1 as %%di", loc, err)
	}
	loc, err = resolveUprobe(mustParse(t, "p "+goProg+":main.leaf x=$arg1"), nil)
	if err != nil || loc.ABI != uprobe.GoRegs || loc.Args[0].Expr.String() != "%ax" {
		t.Errorf("Go entry probe: %+v, %v; want $arg1 as %%ax", loc, err)
	}
	spec := "r " + c + ":recurse v=$retval n=$arg1"
	_, err = resolveUprobe(mustParse(t, spec), nil)
	var se *uprobe.Error
	if !errors.As(err, &se) || se.Pos != strings.Index(spec, "$arg1") || !strings.Contains(se.Msg, "$arg* can be used only on function entry or exit") {
		t.Errorf("return probe with $arg1: %v; want the kernel's message at the $arg1", err)
	}
	if _, err := resolveUprobe(mustParse(t, "r "+goProg+":main.leaf"), nil); err == nil || !strings.Contains(err.Error(), "golang/go#22008") {
		t.Errorf("return probe on Go code: %v; want it refused", err)
	}
}
