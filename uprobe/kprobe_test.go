package uprobe

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/arch"
)

func TestParseKprobe(t *testing.T) {
	for _, tc := range []struct {
		text  string
		canon string // String()
		check func(t *testing.T, k *Spec)
	}{
		{
			text:  "p vfs_read",
			canon: "p:ptprobe/p_vfs_read_0 vfs_read",
			check: func(t *testing.T, k *Spec) {
				if !k.Kernel || k.Symbol != "vfs_read" || k.Kind != Entry || k.Group != DefaultGroup || k.Path != "" || k.IsLibrary() {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			text:  "p:mygrp/myev do_sys_open+0x10 dfd=%di:s32 name=+0(%si):string flags=%dx:x32",
			canon: "p:mygrp/myev do_sys_open+0x10 dfd=%di:s32 name=+0(%si):string flags=%dx:x32",
			check: func(t *testing.T, k *Spec) {
				if k.Offset != 0x10 || len(k.Args) != 3 {
					t.Fatalf("%+v", k)
				}
				a := k.Args[1]
				if a.Name != "name" || a.Type != str || a.Expr.Op != OpDeref || a.Expr.User || a.Expr.Inner.Reg != arch.RSI {
					t.Errorf("arg %+v", a)
				}
			},
		},
		{
			// Return probe with maxactive; default names "argN",
			// default type x64; $retval.
			text:  "r16:ret_open do_sys_open $retval %ax:u64",
			canon: "r16:ptprobe/ret_open do_sys_open arg1=$retval:x64 arg2=%ax:u64",
			check: func(t *testing.T, k *Spec) {
				if k.Kind != Return || k.MaxActive != 16 {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			// %return suffix: rendered as the "r" command.
			text:  "p:g/e vfs_write%return ret=$retval:s64",
			canon: "r:g/e vfs_write ret=$retval:s64",
			check: func(t *testing.T, k *Spec) {
				if k.Kind != Return {
					t.Errorf("kind %v", k.Kind)
				}
			},
		},
		{
			text:  "p ext4:ext4_file_open",
			canon: "p:ptprobe/p_ext4_ext4_file_open_0 ext4:ext4_file_open",
			check: func(t *testing.T, k *Spec) {
				if k.Module != "ext4" || k.Symbol != "ext4_file_open" || k.Target() != "ext4:ext4_file_open" {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			text:  "p 0xffffffff81234560 %ip",
			canon: "p:ptprobe/p_0xffffffff81234560 0xffffffff81234560 arg1=%ip:x64",
			check: func(t *testing.T, k *Spec) {
				if k.Symbol != "" || k.Addr != 0xffffffff81234560 {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			// Data symbols, user-memory dereferences and ustring:
			// nodes and types of their own, written back as the
			// kernel takes them.
			text:  "p:g/sym schedule j=@jiffies:u64 cnt=+8(@nr_threads-16):s32 u=+u0(%di):ustring c=$comm w=-u8(+u16(@pos+0x10)):u8",
			canon: "p:g/sym schedule j=@jiffies:u64 cnt=+8(@nr_threads-16):s32 u=+u0(%di):ustring c=$comm:string w=-u8(+u16(@pos+16)):u8",
			check: func(t *testing.T, k *Spec) {
				j, cnt, u, w := k.Args[0], k.Args[1], k.Args[2], k.Args[4]
				if j.Expr.Op != OpSymbol || j.Expr.Sym != "jiffies" || j.Expr.Imm != 0 || j.Text != "j=@jiffies:u64" {
					t.Errorf("j: %+v %+v", j, j.Expr)
				}
				if cnt.Expr.Op != OpDeref || cnt.Expr.Imm != 8 || cnt.Expr.Inner.Op != OpSymbol || cnt.Expr.Inner.Sym != "nr_threads" || cnt.Expr.Inner.Imm != -16 {
					t.Errorf("cnt: %+v %+v", cnt, cnt.Expr)
				}
				if u.Type != (Type{Kind: String, User: true}) || !u.Expr.User || u.Expr.Imm != 0 {
					t.Errorf("u: %+v %+v", u, u.Expr)
				}
				if !w.Expr.User || w.Expr.Imm != -8 || !w.Expr.Inner.User || w.Expr.Inner.Imm != 16 || w.Expr.Inner.Inner.Imm != 16 {
					t.Errorf("w: %s", w.Expr)
				}
			},
		},
		{
			// A string at a symbol: @SYM reads memory.
			text:  "p:g/s schedule n=@init_task+0x5c8:string",
			canon: "p:g/s schedule n=@init_task+1480:string",
		},
		{
			text:  "p:g/e foo.isra.0+4 $stack3 $stack $arg2",
			canon: "p:g/e foo.isra.0+0x4 arg1=$stack3:x64 arg2=$stack:x64 arg3=$arg2:x64",
		},
		{
			text:  "p:g/ vfs_read",
			canon: "p:g/p_vfs_read_0 vfs_read",
		},
		{
			text:  "p:g/e vfs_read+010", // octal, as kstrtoul reads it
			canon: "p:g/e vfs_read+0x8",
		},
	} {
		t.Run(tc.text, func(t *testing.T) {
			k, err := ParseKprobe(tc.text)
			if err != nil {
				var pe *Error
				if errors.As(err, &pe) {
					t.Fatalf("%v\n%s", err, pe.Caret())
				}
				t.Fatal(err)
			}
			if k.Text != tc.text {
				t.Errorf("Text %q", k.Text)
			}
			if got := k.String(); got != tc.canon {
				t.Errorf("String:\n got %q\nwant %q", got, tc.canon)
			}
			if tc.check != nil {
				tc.check(t, k)
			}
			checkRoundTrip(t, k)
		})
	}
}

// TestKprobeNotUprobe: the forms of one grammar are refused in the
// other, as the kernel refuses them, and a uprobe spec never sets what
// only kernel probes have.
func TestKprobeNotUprobe(t *testing.T) {
	u, err := Parse("p /bin/ls:main a=+u0(%di):ustring")
	if err != nil {
		t.Fatal(err)
	}
	if u.Kernel || u.Args[0].Expr.User || u.Args[0].Type.User || u.String() != "p:ptprobe/main /bin/ls:main a=+0(%di):string" {
		t.Errorf("uprobe spec %s: %+v", u, u.Args[0])
	}
	k, err := ParseKprobe("p vfs_read a=+u0(%di):ustring")
	if err != nil {
		t.Fatal(err)
	}
	if u.Equal(k) || k.Args[0].Expr.Equal(u.Args[0].Expr) {
		t.Errorf("%s Equal %s", u, k)
	}
	if _, err := Parse("p /bin/ls:main @jiffies"); err == nil {
		t.Error("uprobe spec with @SYM accepted")
	}
	if _, err := ParseKprobe("p vfs_read @+0x10"); err == nil {
		t.Error("kernel probe with @+OFFSET accepted")
	}
}

func TestParseKprobeErrors(t *testing.T) {
	for _, tc := range []struct {
		text, msg string
		pos       int
	}{
		{"", errNoSpec, 0},
		{"p", errNoSpec, 1},
		{"x vfs_read", errBadCommand, 0},
		{"-:g/e", errDelete, 0},
		{"p8 vfs_read", errMaxactType, 1},
		{"r0 vfs_read", errBadMaxact, 1},
		{"r4097 vfs_read", errMaxactBig, 1},
		{"r1x vfs_read", errBadMaxact, 1},
		{"p:/e vfs_read", errNoGroup, 2},
		{"p:1g/e vfs_read", errBadGroup, 2},
		{"p:g/e-x vfs_read", errBadEvent, 4},
		{"p: vfs_read", errNoEvent, 2},
		{"p:" + strings.Repeat("e", 64) + " vfs_read", errEventTooLong, 2},
		{"p vfs_read%retur", errBadSuffix, 10},
		{"p vfs_read-4", errBadAddr, 2},
		{"p vfs_read+0x1000000000", errBadAddr, 2},
		{"p 1sym", errBadAddr, 2},
		{"p :vfs_read", errBadAddr, 2},
		{"r vfs_read+4", errBadRetprobe, 2},
		{"p vfs_read%return+4", errBadSuffix, 10},
		{"p /bin/ls:0x10", errUprobeTarget, 2},
		{"p vfs_read x=@+0x10", errFileOnKprobe, 13},
		{"p vfs_read x=+0(@+8)", errFileOnKprobe, 16},
		{"p vfs_read x=@a:b:u8", errBadType, 16}, // the type starts at the first ':', as in the kernel
		{"p vfs_read x=@1sym", errBadMemAddr, 13},
		{"p vfs_read x=@sym+x", errBadMemAddr, 13},
		{"p vfs_read x=+0(@sym-0x8000000000000000)", errBadMemAddr, 16},
		// The fetch-arg errors of uprobe specs, at positions of the
		// text as written.
		{"p vfs_read x=%foo", errBadReg, 13},
		{"p vfs_read x=$retval", errRetvalOnProbe, 13},
		{"p vfs_read x=+0(@jiffies):u9", errBadType, 26},
		{"p vfs_read x=%di y=%si x=%dx", errUsedArgName, 23},
		{"p vfs_read x=%di:b1@x/8", errBadBitfield, 17},
		{"p vfs_read x=%di:symbol", errBadType, 17},
		{"p vfs_read x=%di:ustring", errBadString, 17},
		{"p vfs_read" + strings.Repeat(" %di", maxArgs+1), errTooManyArgs, 10 + 4*maxArgs + 1},
		// $argN past a function's entry (kprobe_on_func_entry: offset
		// 0, or within an IBT endbr64, which the kernel decides).
		{"p vfs_read+8 x=$arg1", errNoFentryArgs, 15},
		{"p vfs_read+0x10 x=%di y=+0($arg2):u8", errNoFentryArgs, 27},
	} {
		_, err := ParseKprobe(tc.text)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("ParseKprobe(%q) = %v, want an *Error", tc.text, err)
			continue
		}
		if pe.Msg != tc.msg || pe.Pos != tc.pos || pe.Text != tc.text {
			t.Errorf("ParseKprobe(%q):\n%s\nwant %q at %d", tc.text, pe.Caret(), tc.msg, tc.pos)
		}
	}
}

// TestKprobeArgNAtEntry: $argN on a function's entry is taken, also at
// offsets up to 4 (the kernel counts x86's endbr64 as the entry when it
// has IBT, and says so itself when it does not).
func TestKprobeArgNAtEntry(t *testing.T) {
	for _, text := range []string{"p vfs_read x=$arg1", "p vfs_read+4 x=$arg2", "r vfs_read x=$arg1", "p 0xffffffff81000000 x=$arg1"} {
		if _, err := ParseKprobe(text); err != nil {
			t.Errorf("ParseKprobe(%q): %v", text, err)
		}
	}
}

// FuzzParseKprobe checks ParseKprobe as FuzzParse checks Parse: no
// panics, *Error with a position inside the text, and an accepted spec's
// String parses back to an equal spec that renders the same.
func FuzzParseKprobe(f *testing.F) {
	f.Add("p:g/e do_sys_openat2+0x4 dfd=$arg1:s32 p=+u0(%si):ustring j=+8(@jiffies-16):u64")
	f.Add("r16:g/r vfs_read $retval:s64")
	f.Add("p ext4:ext4_file_open %di")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseKprobe(text)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseKprobe(%q): error %T %v, want *Error", text, err, err)
			}
			if e.Pos < 0 || e.Pos > len(text) || e.Text != text || e.Msg == "" {
				t.Fatalf("ParseKprobe(%q): bad error %+v", text, e)
			}
			return
		}
		if !s.Kernel || s.Text != text || !isIdent(s.Group) || !isIdent(s.Event) || len(s.Event) > maxNameLen {
			t.Fatalf("ParseKprobe(%q) = %+v", text, s)
		}
		checkRoundTrip(t, s)
	})
}
