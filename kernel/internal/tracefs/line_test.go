package tracefs

import (
	"testing"

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
		// $argN bound to SysV: the register, also inside dereferences.
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
		args, err := s.Bind(uprobe.SysV)
		if err != nil {
			t.Fatal(err)
		}
		if got := UprobeLine(s.Kind, "G", "E", "/abs/x", 0x1139, 0, args); got != tc.want {
			t.Errorf("UprobeLine(%q):\n got %q\nwant %q", tc.spec, got, tc.want)
		}
	}
}

// TestKprobeLine: kernel probes are written with every default, their
// symbolic fetch-args, user dereferences and user strings as the kernel
// takes them, and the args given (the hidden comm first) in place of the
// spec's.
func TestKprobeLine(t *testing.T) {
	for _, tc := range []struct {
		spec, want string
	}{
		{"p vfs_read", "p:G/E vfs_read __ptprobe_comm=$comm:string"},
		{"p:g/e vfs_write%return ret=$retval:s64", "r:G/E vfs_write __ptprobe_comm=$comm:string ret=$retval:s64"},
		{"r8 ext4:ext4_file_open", "r8:G/E ext4:ext4_file_open __ptprobe_comm=$comm:string"},
		{"p 0xffffffff81000010 %ip", "p:G/E 0xffffffff81000010 __ptprobe_comm=$comm:string arg1=%ip:x64"},
		{"p do_sys_openat2+0x4 p=+u0(%si):ustring j=+8(@jiffies-16):u64 b=@linux_banner+6:string d=$arg1:s32",
			"p:G/E do_sys_openat2+0x4 __ptprobe_comm=$comm:string p=+u0(%si):ustring j=+8(@jiffies-16):u64 b=@linux_banner+6:string d=$arg1:s32"},
	} {
		s, err := uprobe.ParseKprobe(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := KprobeLine(s, "G", "E", append([]uprobe.FetchArg{CommArg()}, s.Args...)); got != tc.want {
			t.Errorf("KprobeLine(%q):\n got %q\nwant %q", tc.spec, got, tc.want)
		}
	}
}
