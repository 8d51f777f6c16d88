package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/uprobe"
)

func TestParseKprobe(t *testing.T) {
	for _, tc := range []struct {
		text  string
		line  string // Line()
		check func(t *testing.T, k *KprobeSpec)
	}{
		{
			text: "p vfs_read",
			line: "p:ptprobe/p_vfs_read_0 vfs_read",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Symbol != "vfs_read" || k.Kind != uprobe.Entry || k.Group != uprobe.DefaultGroup {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			text: "p:mygrp/myev do_sys_open+0x10 dfd=%di:s32 name=+0(%si):string flags=%dx:x32",
			line: "p:mygrp/myev do_sys_open+0x10 dfd=%di:s32 name=+0(%si):string flags=%dx:x32",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Offset != 0x10 || len(k.Args) != 3 {
					t.Fatalf("%+v", k)
				}
				a := k.Args[1]
				if a.Name != "name" || a.Type.Kind != uprobe.String || a.Expr.Op != uprobe.OpDeref || a.Expr.Inner.Reg != arch.RSI {
					t.Errorf("arg %+v", a)
				}
			},
		},
		{
			// Return probe with maxactive; default names "argN",
			// default type x64; $retval.
			text: "r16:ret_open do_sys_open $retval %ax:u64",
			line: "r16:ptprobe/ret_open do_sys_open arg1=$retval:x64 arg2=%ax:u64",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Kind != uprobe.Return || k.MaxActive != 16 {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			// %return suffix: rendered as the "r" command.
			text: "p:g/e vfs_write%return ret=$retval:s64",
			line: "r:g/e vfs_write ret=$retval:s64",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Kind != uprobe.Return {
					t.Errorf("kind %v", k.Kind)
				}
			},
		},
		{
			text: "p ext4:ext4_file_open",
			line: "p:ptprobe/p_ext4_ext4_file_open_0 ext4:ext4_file_open",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Module != "ext4" || k.Symbol != "ext4_file_open" {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			text: "p 0xffffffff81234560 %ip",
			line: "p:ptprobe/p_0xffffffff81234560 0xffffffff81234560 arg1=%ip:x64",
			check: func(t *testing.T, k *KprobeSpec) {
				if k.Symbol != "" || k.Addr != 0xffffffff81234560 {
					t.Errorf("%+v", k)
				}
			},
		},
		{
			// Data symbols, user-memory dereferences and ustring are
			// kept as written.
			text: "p:g/sym schedule j=@jiffies:u64 cnt=+8(@nr_threads-16):s32 u=+u0(%di):ustring c=$comm",
			line: "p:g/sym schedule j=@jiffies:u64 cnt=+8(@nr_threads-16):s32 u=+u0(%di):ustring c=$comm:string",
			check: func(t *testing.T, k *KprobeSpec) {
				j, cnt, u := k.Args[0], k.Args[1], k.Args[2]
				if j.Symbol != "jiffies" || j.SymbolOffset != 0 || j.Expr.Op != uprobe.OpAddr || j.Text != "j=@jiffies:u64" {
					t.Errorf("j: %+v", j)
				}
				if cnt.Symbol != "nr_threads" || cnt.SymbolOffset != -16 || cnt.Expr.Op != uprobe.OpDeref || cnt.Expr.Inner.Op != uprobe.OpAddr || cnt.Expr.Imm != 8 {
					t.Errorf("cnt: %+v %+v", cnt, cnt.Expr)
				}
				if u.TypeName != "ustring" || u.Type.Kind != uprobe.String || u.Body != "+u0(%di)" {
					t.Errorf("u: %+v", u)
				}
			},
		},
		{
			text: "p:g/e foo.isra.0+4 $stack3 $stack $arg2",
			line: "p:g/e foo.isra.0+0x4 arg1=$stack3:x64 arg2=$stack:x64 arg3=$arg2:x64",
		},
		{
			text: "p:g/ vfs_read",
			line: "p:g/p_vfs_read_0 vfs_read",
		},
		{
			text: "p:g/e vfs_read+010", // octal, as kstrtoul reads it
			line: "p:g/e vfs_read+0x8",
		},
	} {
		t.Run(tc.text, func(t *testing.T) {
			k, err := ParseKprobe(tc.text)
			if err != nil {
				var pe *uprobe.Error
				if errors.As(err, &pe) {
					t.Fatalf("%v\n%s", err, pe.Caret())
				}
				t.Fatal(err)
			}
			if got := k.Line(); got != tc.line {
				t.Errorf("Line:\n got %q\nwant %q", got, tc.line)
			}
			if tc.check != nil {
				tc.check(t, k)
			}
			// Line is stable: it parses to itself.
			k2, err := ParseKprobe(k.Line())
			if err != nil {
				t.Fatalf("parse Line %q: %v", k.Line(), err)
			}
			if k2.Line() != k.Line() {
				t.Errorf("Line of Line:\n got %q\nwant %q", k2.Line(), k.Line())
			}
		})
	}
}

func TestParseKprobeErrors(t *testing.T) {
	for _, tc := range []struct {
		text, msg string
		pos       int
	}{
		{"", errKNoSpec, 0},
		{"p", errKNoSpec, 1},
		{"x vfs_read", errKBadCommand, 0},
		{"-:g/e", errKDelete, 0},
		{"p8 vfs_read", errKMaxactType, 1},
		{"r0 vfs_read", errKBadMaxact, 1},
		{"r4097 vfs_read", errKMaxactBig, 1},
		{"r1x vfs_read", errKBadMaxact, 1},
		{"p:/e vfs_read", errKNoGroup, 2},
		{"p:1g/e vfs_read", errKBadGroup, 2},
		{"p:g/e-x vfs_read", errKBadEvent, 4},
		{"p: vfs_read", errKNoEvent, 2},
		{"p:" + strings.Repeat("e", 64) + " vfs_read", errKEventTooLong, 2},
		{"p vfs_read%retur", errKBadSuffix, 10},
		{"p vfs_read-4", errKBadAddr, 2},
		{"p vfs_read+0x1000000000", errKBadAddr, 2},
		{"p 1sym", errKBadAddr, 2},
		{"r vfs_read+4", errKRetprobe, 2},
		{"p vfs_read%return+4", errKBadSuffix, 10},
		{"p /bin/ls:0x10", errKUprobe, 2},
		{"p vfs_read x=@+0x10", errKFileOffs, 13},
		{"p vfs_read x=+0(@+8)", errKFileOffs, 16},
		{"p vfs_read x=@a:b:u8", "Unknown type is specified", 16}, // the type starts at the first ':', as in the kernel
		// uprobe's parser reports the fetch-arg errors, at positions of
		// the text as written.
		{"p vfs_read x=%foo", "Invalid register name", 13},
		{"p vfs_read x=$retval", "$retval is not available on probe", 13},
		{"p vfs_read x=+0(@jiffies):u9", "Unknown type is specified", 26},
		{"p vfs_read x=%di y=%si x=%dx", "This argument name is already used", 23},
		{"p vfs_read x=%di:b1@x/8", "Unknown type is specified", 17},
	} {
		_, err := ParseKprobe(tc.text)
		var pe *uprobe.Error
		if !errors.As(err, &pe) {
			t.Errorf("ParseKprobe(%q) = %v, want an *uprobe.Error", tc.text, err)
			continue
		}
		if pe.Msg != tc.msg || pe.Pos != tc.pos || pe.Text != tc.text {
			t.Errorf("ParseKprobe(%q):\n%s\nwant %q at %d", tc.text, pe.Caret(), tc.msg, tc.pos)
		}
	}
}
