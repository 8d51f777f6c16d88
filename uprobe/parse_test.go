package uprobe

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/arch"
)

func reg(r arch.Reg) *Expr                      { return &Expr{Op: OpReg, Reg: r} }
func deref(off int64, in *Expr) *Expr           { return &Expr{Op: OpDeref, Imm: off, Inner: in} }
func op(o Op, imm int64) *Expr                  { return &Expr{Op: o, Imm: imm} }
func arg(name string, t Type, e *Expr) FetchArg { return FetchArg{Name: name, Type: t, Expr: e} }

var (
	x64 = DefaultType
	u8  = Type{Kind: Unsigned, Size: 1}
	u32 = Type{Kind: Unsigned, Size: 4}
	s16 = Type{Kind: Signed, Size: 2}
	s32 = Type{Kind: Signed, Size: 4}
	x8  = Type{Kind: Hex, Size: 1}
	str = Type{Kind: String}
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		text string
		want Spec // Text fields are not compared
		// canon is the expected String(); "" skips the check.
		canon string
	}{
		{
			text:  "p:myprobe /bin/bash:0x4245c0",
			want:  Spec{Group: DefaultGroup, Event: "myprobe", Path: "/bin/bash", Offset: 0x4245c0},
			canon: "p:ptprobe/myprobe /bin/bash:0x4245c0",
		},
		{
			text:  "r:grp/ev /bin/bash:0x4245c0 %ax",
			want:  Spec{Kind: Return, Group: "grp", Event: "ev", Path: "/bin/bash", Offset: 0x4245c0, Args: []FetchArg{arg("arg1", x64, reg(arch.RAX))}},
			canon: "r:grp/ev /bin/bash:0x4245c0 arg1=%ax:x64",
		},
		{
			text:  "p /bin/bash:0x4245c0%return $retval:s32",
			want:  Spec{Kind: Return, Group: DefaultGroup, Event: "p_bash_0x4245c0", Path: "/bin/bash", Offset: 0x4245c0, Args: []FetchArg{arg("arg1", s32, op(OpRetval, 0))}},
			canon: "r:ptprobe/p_bash_0x4245c0 /bin/bash:0x4245c0 arg1=$retval:s32",
		},
		{
			text: "p:malloc /usr/lib/x86_64-linux-gnu/libc.so.6:0x98930 size=%di",
			want: Spec{Group: DefaultGroup, Event: "malloc", Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Offset: 0x98930,
				Args: []FetchArg{arg("size", x64, reg(arch.RDI))}},
		},
		{
			text:  "/usr/lib/x86_64-linux-gnu/libc.so.6:0x98930",
			want:  Spec{Group: DefaultGroup, Event: "p_libc_0x98930", Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Offset: 0x98930},
			canon: "p:ptprobe/p_libc_0x98930 /usr/lib/x86_64-linux-gnu/libc.so.6:0x98930",
		},
		{
			text:  "libc:malloc %di",
			want:  Spec{Group: DefaultGroup, Event: "malloc", Path: "libc", Symbol: "malloc", Args: []FetchArg{arg("arg1", x64, reg(arch.RDI))}},
			canon: "p:ptprobe/malloc libc:malloc arg1=%di:x64",
		},
		{
			text:  "r libc:malloc $retval",
			want:  Spec{Kind: Return, Group: DefaultGroup, Event: "malloc__return", Path: "libc", Symbol: "malloc", Args: []FetchArg{arg("arg1", x64, op(OpRetval, 0))}},
			canon: "r:ptprobe/malloc__return libc:malloc arg1=$retval:x64",
		},
		{
			text:  "libc:malloc%return",
			want:  Spec{Kind: Return, Group: DefaultGroup, Event: "malloc__return", Path: "libc", Symbol: "malloc"},
			canon: "r:ptprobe/malloc__return libc:malloc",
		},
		{
			text:  "p /bin/ls:main+0x10",
			want:  Spec{Group: DefaultGroup, Event: "main_0x10", Path: "/bin/ls", Symbol: "main", Offset: 16},
			canon: "p:ptprobe/main_0x10 /bin/ls:main+0x10",
		},
		{
			text:  "p /bin/ls:main+16",
			want:  Spec{Group: DefaultGroup, Event: "main_0x10", Path: "/bin/ls", Symbol: "main", Offset: 16},
			canon: "p:ptprobe/main_0x10 /bin/ls:main+0x10",
		},
		{
			// kstrtoul: a leading 0 is octal.
			text: "p /bin/ls:main+010",
			want: Spec{Group: DefaultGroup, Event: "main_0x8", Path: "/bin/ls", Symbol: "main", Offset: 8},
		},
		{
			text: "p /bin/ls:main+0",
			want: Spec{Group: DefaultGroup, Event: "main", Path: "/bin/ls", Symbol: "main"},
		},
		{
			text:  "libc.so.6:memcpy@GLIBC_2.2.5",
			want:  Spec{Group: DefaultGroup, Event: "memcpy_GLIBC_2_2_5", Path: "libc.so.6", Symbol: "memcpy@GLIBC_2.2.5"},
			canon: "p:ptprobe/memcpy_GLIBC_2_2_5 libc.so.6:memcpy@GLIBC_2.2.5",
		},
		{
			text: "/bin/x:.L.str",
			want: Spec{Group: DefaultGroup, Event: "_L_str", Path: "/bin/x", Symbol: ".L.str"},
		},
		{
			text:  "p:g/ /bin/ls:0x10",
			want:  Spec{Group: "g", Event: "p_ls_0x10", Path: "/bin/ls", Offset: 0x10},
			canon: "p:g/p_ls_0x10 /bin/ls:0x10",
		},
		{
			// The path may contain ':'; the target follows the last one.
			text: "p /tmp/a:b/prog:0x10",
			want: Spec{Group: DefaultGroup, Event: "p_prog_0x10", Path: "/tmp/a:b/prog", Offset: 0x10},
		},
		{
			text: "p /opt/my-tool_v2/bin/my-tool:1234",
			want: Spec{Group: DefaultGroup, Event: "p_my_0x4d2", Path: "/opt/my-tool_v2/bin/my-tool", Offset: 1234},
		},
		{
			text: "p /bin/a+b:0x1",
			want: Spec{Group: DefaultGroup, Event: "p_a_b_0x1", Path: "/bin/a+b", Offset: 1},
		},
		{
			text: "  \tp:e\t/bin/ls:0x10   %di  \n",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{arg("arg1", x64, reg(arch.RDI))}},
		},
		{
			text: "p:e /bin/ls:0x10 %ip %flags %sp %r8 %rax %RDI %orig_ax %fs_base",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{
				arg("arg1", x64, reg(arch.RIP)), arg("arg2", x64, reg(arch.RFLAGS)), arg("arg3", x64, reg(arch.RSP)),
				arg("arg4", x64, reg(arch.R8)), arg("arg5", x64, reg(arch.RAX)), arg("arg6", x64, reg(arch.RDI)),
				arg("arg7", x64, reg(arch.OrigRAX)), arg("arg8", x64, reg(arch.FSBase)),
			}},
			canon: "p:ptprobe/e /bin/ls:0x10 arg1=%ip:x64 arg2=%flags:x64 arg3=%sp:x64 arg4=%r8:x64 arg5=%ax:x64 arg6=%di:x64 arg7=%orig_ax:x64 arg8=%fs_base:x64",
		},
		{
			text: "p:e /bin/ls:0x10 @0x601040 @+0x1040:u32 @1234:string",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{
				arg("arg1", x64, op(OpAddr, 0x601040)), arg("arg2", u32, op(OpFileOffset, 0x1040)), arg("arg3", str, op(OpAddr, 1234)),
			}},
			canon: "p:ptprobe/e /bin/ls:0x10 arg1=@0x601040:x64 arg2=@+0x1040:u32 arg3=@0x4d2:string",
		},
		{
			text: "p:e /bin/ls:0x10 $stack $stack0 $stack3:s16 $comm c=$comm:string $arg1 $arg6:u8 $COMM:ustring",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{
				arg("arg1", x64, op(OpStack, 0)), arg("arg2", x64, op(OpStackN, 0)), arg("arg3", s16, op(OpStackN, 3)),
				arg("arg4", str, op(OpComm, 0)), arg("c", str, op(OpComm, 0)), arg("arg6", x64, op(OpArgN, 1)),
				arg("arg7", u8, op(OpArgN, 6)), arg("arg8", str, op(OpComm, 0)),
			}},
			canon: "p:ptprobe/e /bin/ls:0x10 arg1=$stack:x64 arg2=$stack0:x64 arg3=$stack3:s16 arg4=$comm:string c=$comm:string arg6=$arg1:x64 arg7=$arg6:u8 arg8=$comm:string",
		},
		{
			text: "p:e /bin/ls:0x10 path=+0(%di):string n=-8(%bp):s32 +u8(%si):x8 p=+0x10(+8(+0(%sp))) +0(@0x1000) +8(@+0x20) +0($stack2) +0($arg2):string",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{
				arg("path", str, deref(0, reg(arch.RDI))),
				arg("n", s32, deref(-8, reg(arch.RBP))),
				arg("arg3", x8, deref(8, reg(arch.RSI))),
				arg("p", x64, deref(16, deref(8, deref(0, reg(arch.RSP))))),
				arg("arg5", x64, deref(0, op(OpAddr, 0x1000))),
				arg("arg6", x64, deref(8, op(OpFileOffset, 0x20))),
				arg("arg7", x64, deref(0, op(OpStackN, 2))),
				arg("arg8", str, deref(0, op(OpArgN, 2))),
			}},
			canon: "p:ptprobe/e /bin/ls:0x10 path=+0(%di):string n=-8(%bp):s32 arg3=+8(%si):x8 p=+16(+8(+0(%sp))):x64 arg5=+0(@0x1000):x64 arg6=+8(@+0x20):x64 arg7=+0($stack2):x64 arg8=+0($arg2):string",
		},
		{
			text: "p:e /bin/ls:0x10 -9223372036854775808(%di) +9223372036854775807(%di) @0xffffffffffffffff",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{
				arg("arg1", x64, deref(-1<<63, reg(arch.RDI))),
				arg("arg2", x64, deref(1<<63-1, reg(arch.RDI))),
				arg("arg3", x64, op(OpAddr, -1)),
			}},
		},
		{
			text: "p:e /bin/ls:0x10 $stack2048",
			want: Spec{Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 0x10, Args: []FetchArg{arg("arg1", x64, op(OpStackN, 2048))}},
		},
		{
			text: "r:e /bin/ls:0xffffffffffffffff a=$retval:u8 b=$retval:s16 c=$retval:x8",
			want: Spec{Kind: Return, Group: DefaultGroup, Event: "e", Path: "/bin/ls", Offset: 1<<64 - 1, Args: []FetchArg{
				arg("a", u8, op(OpRetval, 0)), arg("b", s16, op(OpRetval, 0)), arg("c", x8, op(OpRetval, 0)),
			}},
		},
		{
			// 'r' plus %return is redundant, as in the kernel.
			text: "r /bin/ls:0x10%return",
			want: Spec{Kind: Return, Group: DefaultGroup, Event: "p_ls_0x10", Path: "/bin/ls", Offset: 0x10},
		},
		{
			// Library names without the command.
			text: "p:x p:0x10",
			want: Spec{Group: DefaultGroup, Event: "x", Path: "p", Offset: 0x10},
		},
		{
			// "GRP/" with no event: the default name, as 6.x kernels
			// do (kernel/uprobe_events_test.go checks it on this
			// machine's).
			text:  "r:g/ libc:calloc $retval:s64",
			want:  Spec{Kind: Return, Group: "g", Event: "calloc__return", Path: "libc", Symbol: "calloc", Args: []FetchArg{arg("arg1", Type{Kind: Signed, Size: 8}, op(OpRetval, 0))}},
			canon: "r:g/calloc__return libc:calloc arg1=$retval:s64",
		},
		{
			text: "libstdc++.so.6:_Znwm",
			want: Spec{Group: DefaultGroup, Event: "_Znwm", Path: "libstdc++.so.6", Symbol: "_Znwm"},
		},
		{
			text: "ld-linux-x86-64.so.2:_dl_debug_state",
			want: Spec{Group: DefaultGroup, Event: "_dl_debug_state", Path: "ld-linux-x86-64.so.2", Symbol: "_dl_debug_state"},
		},
		{
			text: "libpython3.11.so.1.0:PyObject_Call%return",
			want: Spec{Kind: Return, Group: DefaultGroup, Event: "PyObject_Call__return", Path: "libpython3.11.so.1.0", Symbol: "PyObject_Call"},
		},
		{
			// A path may hold any byte the kernel takes; it is split
			// at the last ':', as the kernel splits it.
			text: "p /tmp/a(b)%x=y$z:c:0x10",
			want: Spec{Group: DefaultGroup, Event: "p_a_b__x_y_z_c_0x10", Path: "/tmp/a(b)%x=y$z:c", Offset: 0x10},
		},
		{
			text: "p ./lig(%di):main",
			want: Spec{Group: DefaultGroup, Event: "main", Path: "./lig(%di)", Symbol: "main"},
		},
	}
	for _, tt := range tests {
		s, err := Parse(tt.text)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.text, err)
			continue
		}
		if s.Text != tt.text {
			t.Errorf("Parse(%q).Text = %q", tt.text, s.Text)
		}
		if !s.Equal(&tt.want) {
			t.Errorf("Parse(%q) =\n  %s\nwant\n  %s", tt.text, s, &tt.want)
		}
		if tt.canon != "" && s.String() != tt.canon {
			t.Errorf("Parse(%q).String() =\n  %s\nwant\n  %s", tt.text, s, tt.canon)
		}
		toks := tokenize(tt.text)
		for i, a := range s.Args {
			if want := toks[len(toks)-len(s.Args)+i].s; a.Text != want {
				t.Errorf("Parse(%q).Args[%d].Text = %q, want %q", tt.text, i, a.Text, want)
			}
		}
		checkRoundTrip(t, s)
	}
}

// checkRoundTrip checks that the canonical form parses back to the spec.
func checkRoundTrip(t testing.TB, s *Spec) {
	t.Helper()
	canon := s.String()
	parse := Parse
	if s.Kernel {
		parse = ParseKprobe
	}
	s2, err := parse(canon)
	if err != nil {
		t.Fatalf("parse %q (the String of %q): %v", canon, s.Text, err)
	}
	if !s2.Equal(s) {
		t.Fatalf("Parse(%q) = %s, not equal to Parse(%q)", canon, s2, s.Text)
	}
	if s2.String() != canon {
		t.Fatalf("String not canonical: %q -> %q", canon, s2.String())
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		text string
		pos  int // -1: the caret is at the marker '^' in mark
		mark string
		msg  string
	}{
		{"", 0, "", errNoSpec},
		{"   ", 3, "", errNoSpec},
		{"p", 1, "", errNoSpec},
		{"p:ev", 4, "", errNoSpec},
		{"-:ev", 0, "", errDelete},
		{"p: /bin/ls:0x10", 2, "", errNoEvent},
		{"p:/ev /bin/ls:0x10", 2, "", errNoGroup},
		{"p:1grp/ev /bin/ls:0x10", 2, "", errBadGroup},
		{"p:grp/e-v /bin/ls:0x10", 6, "", errBadEvent},
		{"p:grp/a/b /bin/ls:0x10", 6, "", errBadEvent},
		{"r:9 /bin/ls:0x10", 2, "", errBadEvent},
		{"p:" + long + " /bin/ls:0x10", 2, "", errEventTooLong},
		{"p:" + long + "/e /bin/ls:0x10", 2, "", errGroupTooLong},
		{"p /bin/ls", 2, "", errNoColon},
		{"p :0x10", 2, "", errNoFile},
		{"p /bin/ls:", 10, "", errBadOffs},
		{"p /bin/ls:0x", 10, "", errBadOffs},
		{"p /bin/ls:08", 10, "", errBadOffs},
		{"p /bin/ls:12abc", 10, "", errBadOffs},
		{"p /bin/ls:0x10000000000000000", 10, "", errBadOffs},
		{"p /bin/ls:0x10%ret", 14, "", errBadSuffix},
		{"p /bin/ls:0x10%return%return", 14, "", errBadSuffix},
		// The kernel's selftest cases (uprobe_syntax_errors.tc).
		{"p /bin/sh:10(1a)", 13, "", errBadRefCtr},
		{"p /bin/sh:10(10", 15, "", errRefCtrBrace},
		{"p /bin/sh:10(10)a", 16, "", errRefCtrSuffix},
		{"p /bin/sh:10(10)%return", 16, "", errRefCtrSuffix},
		{"p /bin/sh:10()", 13, "", errBadRefCtr},
		{"p /bin/ls:%return", 10, "", errBadOffs},
		{"p /bin/ls:+4", 10, "", errNoSymbol},
		{"p /bin/ls:ma-in", 12, "", errBadSymbol},
		{"p /bin/ls:@main", 10, "", errBadSymbol},
		{"p /bin/ls:main+", 15, "", errSymOffs},
		{"p /bin/ls:main+x", 15, "", errSymOffs},
		{"p /bin/ls:main+4+4", 15, "", errSymOffs},
		{"r /bin/ls:main+4", 15, "", errBadRetprobe},
		{"p /bin/ls:main+4%return", 15, "", errBadRetprobe},
		{"p /bin/ls:main %di:u9", 19, "", errBadType},
		{"p /bin/ls:main %di:", 19, "", errBadType},
		{"p /bin/ls:main %di:x128", 19, "", errBadType},
		{"p /bin/ls:main %di:symbol", 19, "", errBadType},
		{"p /bin/ls:main %di:u8[4]", 19, "", errBadString},
		{"p /bin/ls:main %di:string[2]", 19, "", errBadString},
		// Carets where this machine's kernel puts them.
		{"p /bin/ls:main +0(%di):u8[4", 27, "", errArrayOpen},
		{"p /bin/ls:main +0(%di):u8[4]x", 28, "", errArraySuffix},
		{"p /bin/ls:main +0(%di):u8[0]", 26, "", errBadArrayNum},
		{"p /bin/ls:main +0(%di):u8[65]", 26, "", errArrayTooBig},
		{"p /bin/ls:main %di:b4@30/32", 19, "", errBadBitfield},
		{"p /bin/ls:main %di:b4@2/24", 19, "", errBadType},
		{"p /bin/ls:main %di:b0@2/32", 19, "", errBadBitfield},
		{"p /bin/ls:main %xx", 15, "", errBadReg},
		{"p /bin/ls:main %", 15, "", errBadReg},
		{"p /bin/ls:main %eax", 15, "", errBadReg},
		{"p /bin/ls:main a=+0(%zz)", 20, "", errBadReg},
		{"p /bin/ls:main $retval", 15, "", errRetvalOnProbe},
		{"p /bin/ls:main +0($retval)", 18, "", errRetvalOnProbe},
		{"p /bin/ls:main $stack2049", 15, "", errBadStackNum},
		{"p /bin/ls:main $stack99999999999999999999999", 15, "", errBadStackNum},
		{"p /bin/ls:main $stackx", 15, "", errBadVar},
		{"p /bin/ls:main $arg0", 15, "", errBadArgNum},
		{"p /bin/ls:main $arg2049", 15, "", errBadArgNum},
		{"p /bin/ls:main $arg", 15, "", errBadArgNum},
		{"p /bin/ls:main $args", 15, "", errBadArgNum},
		{"p /bin/ls:main $foo", 15, "", errBadVar},
		{"p /bin/ls:main $", 15, "", errBadVar},
		{"p /bin/ls:main @x", 15, "", errSymOnUprobe},
		{"p /bin/ls:main @", 15, "", errSymOnUprobe},
		{"p /bin/ls:main @0xg", 15, "", errBadMemAddr},
		{"p /bin/ls:main @+", 15, "", errBadFileOffs},
		{"p /bin/ls:main @+-1", 15, "", errBadFileOffs},
		{"p /bin/ls:main @+0x8000000000000000", 15, "", errBadFileOffs},
		{"p /bin/ls:main +0", 15, "", errDerefBrace},
		{"p /bin/ls:main +(%di)", 15, "", errBadDerefOffs},
		{"p /bin/ls:main +x(%di)", 15, "", errBadDerefOffs},
		{"p /bin/ls:main +9223372036854775808(%di)", 15, "", errBadDerefOffs},
		{"p /bin/ls:main -9223372036854775809(%di)", 15, "", errBadDerefOffs},
		{"p /bin/ls:main +0(%di", 21, "", errDerefOpen},
		{"p /bin/ls:main +0(+8(%di)", 24, "", errDerefOpen},
		{"p /bin/ls:main +0(%di)x", 22, "", errBadFetchArg},
		{"p /bin/ls:main +0()", 18, "", errBadFetchArg},
		{"p /bin/ls:main +0($comm)", 15, "", errCommDeref},
		{"p /bin/ls:main 1234", 15, "", errBadFetchArg},
		{"p /bin/ls:main foo-bar", 15, "", errBadFetchArg}, // "foo" alone is a variable name (OpName)
		{"p /bin/ls:main \\1x", 16, "", errBadImm},
		{"p /bin/ls:main \\\"ab", 19, "", errImmStrOpen},
		{"p /bin/ls:main \\\"ab\":u8", 21, "", errCommType},
		{"p /bin/ls:main %di:string", 19, "", errBadString},
		{"p /bin/ls:main $stack:string", 22, "", errBadString},
		{"p /bin/ls:main $arg1:string", 21, "", errBadString},
		{"r /bin/ls:main $retval:ustring", 23, "", errBadString},
		{"p /bin/ls:main $comm:u32", 21, "", errCommType},
		{"p /bin/ls:main =%di", 15, "", errNoArgName},
		{"p /bin/ls:main 1a=%di", 15, "", errBadArgName},
		{"p /bin/ls:main a-b=%di", 15, "", errBadArgName},
		{"p /bin/ls:main " + strings.Repeat("n", 33) + "=%di", 15, "", errArgNameLong},
		{"p /bin/ls:main a=", 17, "", errNoArgBody},
		{"p /bin/ls:main a=:u8", 17, "", errNoArgBody},
		{"p /bin/ls:main :u8", 15, "", errNoArgBody},
		{"p /bin/ls:main a=%di a=%si", 21, "", errUsedArgName},
		{"p /bin/ls:main arg2=%di %si", 24, "", errUsedArgName},
		{"p /bin/ls:main common_pid=%di", 15, "", errUsedArgName},
		{"p /bin/ls:main __probe_ip=%di", 15, "", errUsedArgName},
		{"p /bin/ls:main a=%di:u8 b=%si:u99", 30, "", errBadType},
		// Garbled specs of the reliability review: not library names.
		{"lig(%di):string", 3, "", errBadLibrary},
		{"libc:srle(%di):stxring3", 9, "", errBadSymbol},
		{"lsize=%di:u6", 5, "", errBadLibrary},
		{"%di:u64", 0, "", errBadLibrary},
		{"$retval:s64", 0, "", errBadLibrary},
		{"+0(%si):string", 2, "", errBadLibrary},
		{"p lib$c:malloc", 5, "", errBadLibrary},
		{"p libc%return:malloc", 6, "", errBadLibrary},
		{"p li\xffbc:malloc", 4, "", errBadLibrary},
		{"p libc=x:malloc", 6, "", errBadLibrary},
		// A LIB ends at the first ':'; what follows is the target.
		{"p libc:mall:oc", 11, "", errBadSymbol},
		{"p libc:malloc:0x10", 13, "", errBadSymbol},
		{"p libc:0x10:0x20", 7, "", errBadOffs},
		{"p libc:foo/bar", 10, "", errBadSymbol},
		{"p a:b/c", 5, "", errBadSymbol},
		{"p libc:malloc(%di)", 13, "", errBadSymbol},
		{"p libc:mal(loc", 10, "", errBadSymbol},
		// The kernel's (REF_CTR_OFFSET) after an offset, or a symbol.
		{"p libc:malloc(0x20)", 13, "", errRefCtr},
		{"p libc:malloc+4(0x20)", 15, "", errRefCtr},
		{"p libc:mal%loc", 10, "", errBadSuffix},
	}
	for _, tt := range tests {
		s, err := Parse(tt.text)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error %q", tt.text, s, tt.msg)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q): error %T %v, want *Error", tt.text, err, err)
			continue
		}
		if e.Msg != tt.msg || e.Pos != tt.pos || e.Text != tt.text {
			t.Errorf("Parse(%q): %q at %d, want %q at %d\n%s", tt.text, e.Msg, e.Pos, tt.msg, tt.pos, e.Caret())
		}
	}
}

func TestParseLimits(t *testing.T) {
	nestOf := func(n int, base string) string {
		return strings.Repeat("+0(", n) + base + strings.Repeat(")", n)
	}
	nest := func(n int) string { return nestOf(n, "%di") }
	// 14 memory accesses are allowed, as by the kernel's FETCH_INSN_MAX.
	if _, err := Parse("p /bin/ls:0x1 " + nest(maxDeref)); err != nil {
		t.Errorf("nesting %d: %v", maxDeref, err)
	}
	if _, err := Parse("p /bin/ls:0x1 " + nestOf(maxDeref-1, "@0x10")); err != nil {
		t.Errorf("@ADDR at nesting %d: %v", maxDeref-1, err)
	}
	text := "p /bin/ls:0x1 " + nest(maxDeref+1)
	_, err := Parse(text)
	var e *Error
	if !errors.As(err, &e) || e.Msg != errTooManyOps || e.Pos != 14+3*maxDeref {
		t.Errorf("nesting %d: %v", maxDeref+1, err)
	}
	text = "p /bin/ls:0x1 " + nestOf(maxDeref, "@+0x10")
	if _, err := Parse(text); !errors.As(err, &e) || e.Msg != errTooManyOps {
		t.Errorf("@ADDR at nesting %d: %v", maxDeref, err)
	}
	// Very deep nesting stops early, without recursing all the way.
	if _, err := Parse("p /bin/ls:0x1 " + nest(100000)); !errors.As(err, &e) || e.Msg != errTooManyOps {
		t.Errorf("nesting 100000: %v", err)
	}

	args := strings.Repeat(" %di", maxArgs)
	if s, err := Parse("p /bin/ls:0x1" + args); err != nil || len(s.Args) != maxArgs {
		t.Errorf("%d args: %v", maxArgs, err)
	}
	text = "p /bin/ls:0x1" + args + " %si"
	if _, err := Parse(text); !errors.As(err, &e) || e.Msg != errTooManyArgs || e.Pos != len(text)-3 {
		t.Errorf("%d args: %v", maxArgs+1, err)
	}

	name63 := strings.Repeat("e", 63)
	if s, err := Parse("p:" + name63 + "/" + name63 + " /bin/ls:0x1"); err != nil || s.Event != name63 || s.Group != name63 {
		t.Errorf("63-byte names: %v", err)
	}
	arg32 := strings.Repeat("a", 32)
	if _, err := Parse("p /bin/ls:0x1 " + arg32 + "=%di"); err != nil {
		t.Errorf("32-byte arg name: %v", err)
	}
}

func TestDefaultEventNames(t *testing.T) {
	tests := []struct{ text, event string }{
		{"/bin/ls:0x10", "p_ls_0x10"},
		{"r /bin/ls:0x10", "p_ls_0x10"},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6:0x98930", "p_libc_0x98930"},
		{"libc:0x98930", "p_libc_0x98930"},
		{"/usr/bin/python3.12:0", "p_python3_0x0"},
		{"/usr/lib/ld-linux-x86-64.so.2:0x1000", "p_ld_0x1000"},
		{"/opt/my_prog:0x1", "p_my_0x1"},
		{"/opt/_hidden:0x1", "p__0x1"},
		{"/opt/dir/:0x1", "p__0x1"},
		{"/opt/7zip:0xff", "p_7zip_0xff"},
		{"libc:malloc", "malloc"},
		{"libc:malloc+0", "malloc"},
		{"libc:malloc+0x1f", "malloc_0x1f"},
		{"libc:malloc+31", "malloc_0x1f"},
		{"libc:malloc%return", "malloc__return"},
		{"r libc:malloc", "malloc__return"},
		{"app:_ZN3foo3barEv", "_ZN3foo3barEv"},
		{"app:foo.cold+4", "foo_cold_0x4"},
		{"app:$x", "_x"},
		{"libc:memcpy@@GLIBC_2.14", "memcpy__GLIBC_2_14"},
		// Too long: the symbol part is cut, the suffix kept.
		{"app:" + strings.Repeat("s", 80), strings.Repeat("s", 63)},
		{"app:" + strings.Repeat("s", 80) + "+0x10", strings.Repeat("s", 63-len("_0x10")) + "_0x10"},
		{"app:" + strings.Repeat("s", 80) + "%return", strings.Repeat("s", 63-len("__return")) + "__return"},
		// The kernel's snprintf cuts the numeric form.
		{"/x/" + strings.Repeat("f", 70) + ":0x10", ("p_" + strings.Repeat("f", 70))[:63]},
	}
	for _, tt := range tests {
		s, err := Parse(tt.text)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.text, err)
			continue
		}
		if s.Event != tt.event {
			t.Errorf("Parse(%q).Event = %q, want %q", tt.text, s.Event, tt.event)
		}
		if !isIdent(s.Event) || len(s.Event) > maxNameLen {
			t.Errorf("Parse(%q).Event = %q is not a valid event name", tt.text, s.Event)
		}
		if s.Group != DefaultGroup {
			t.Errorf("Parse(%q).Group = %q", tt.text, s.Group)
		}
		checkRoundTrip(t, s)
	}
}

func TestSpecHelpers(t *testing.T) {
	s, err := Parse("p:g/e libc:malloc+0x10 %di")
	if err != nil {
		t.Fatal(err)
	}
	if s.Probe() != "g/e" || !s.IsLibrary() || s.Target() != "libc:malloc+0x10" {
		t.Errorf("Probe %q IsLibrary %v Target %q", s.Probe(), s.IsLibrary(), s.Target())
	}
	if got := s.Args[0].String(); got != "arg1=%di:x64" {
		t.Errorf("FetchArg.String() = %q", got)
	}
	s2, _ := Parse("p:g/e libc:malloc+0x10 %si")
	if s.Equal(s2) {
		t.Errorf("%s Equal %s", s, s2)
	}
	e := &Error{Text: "p /bin/ls:main %di:u9", Pos: 19, Msg: errBadType}
	want := "error: Unknown type is specified\n  Command: p /bin/ls:main %di:u9\n                              ^"
	if e.Caret() != want {
		t.Errorf("Caret:\n%s\nwant\n%s", e.Caret(), want)
	}
}

// TestParseNames: variable paths, $params and source-line targets parse to
// the symbolic nodes resolve binds (docs/DESIGN.md §10).
func TestParseVariableNames(t *testing.T) {
	s, err := Parse("p ./prog:work a p->name:string n=s.len *q arr[3] $params")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, sym string }{{"a", "a"}, {"p_name", "p->name"}, {"n", "s.len"}, {"q", "*q"}, {"arr_3", "arr[3]"}, {"params", "$params"}}
	if len(s.Args) != len(want) {
		t.Fatalf("%d args, want %d", len(s.Args), len(want))
	}
	for i, w := range want {
		a := s.Args[i]
		if a.Expr.Op != OpName || a.Expr.Sym != w.sym || a.Name != w.name {
			t.Errorf("arg %d = %s (op %d), want %s=%s", i, a.String(), a.Expr.Op, w.name, w.sym)
		}
	}
	if !s.Args[1].Typed || s.Args[0].Typed {
		t.Errorf("Typed = %v, %v; want true for p->name:string only", s.Args[1].Typed, s.Args[0].Typed)
	}
	if _, err := s.Bind(SysV); err == nil || !strings.Contains(err.Error(), "resolve binds it") {
		t.Errorf("Bind of an unresolved name: %v", err)
	}
	for _, c := range []struct {
		text, path, file string
		line             int
	}{
		{"./prog:main.c:42", "./prog", "main.c", 42},
		{"/a/b:c/prog:src/x.go:7", "/a/b:c/prog", "src/x.go", 7},
		{"libc:malloc.c:3021", "libc", "malloc.c", 3021},
	} {
		s, err := Parse(c.text)
		if err != nil {
			t.Errorf("%s: %v", c.text, err)
			continue
		}
		if s.Path != c.path || s.SrcFile != c.file || s.SrcLine != c.line || s.Symbol != "" {
			t.Errorf("%s: path %q file %q line %d symbol %q", c.text, s.Path, s.SrcFile, s.SrcLine, s.Symbol)
		}
		if got := s.Target(); got != c.text {
			t.Errorf("Target() = %q, want %q", got, c.text)
		}
	}
	s, err = Parse("./prog:work:+3 sum")
	if err != nil || s.SrcFunc != "work" || s.SrcLine != 3 || s.SrcFile != "" || s.Event != "work_L3" || s.Target() != "./prog:work:+3" {
		t.Errorf("FUNC:+N: %v %+v", err, s)
	}
	s, err = Parse("./prog:main.(*T).Method%return")
	if err != nil || s.Symbol != "main.(*T).Method" || s.Kind != Return {
		t.Errorf("Go method: %v %+v", err, s)
	}
	if _, err := Parse("./prog:main.c:0"); err == nil {
		t.Error("line 0 parsed")
	}
	if _, err := ParseKprobe("p vfs_read foo"); err == nil {
		t.Error("a kernel probe took a variable name")
	}
}
