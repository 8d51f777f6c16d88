package uprobe

import (
	"testing"

	"github.com/ptprobe/ptprobe/arch"
)

// TestBind: $argN made concrete for each ABI and probe kind, with the
// error and its position where the value cannot be had.
func TestBind(t *testing.T) {
	for _, tc := range []struct {
		spec string
		abi  ABI
		want string // the bound args, canonical; "" when an error is wanted
		pos  int    // of the error
	}{
		{"p /bin/ls:main $arg1 $arg6 $arg7 $arg9", SysV, "arg1=%di:x64 arg2=%r9:x64 arg3=$stack1:x64 arg4=$stack3:x64", 0},
		{"p /bin/ls:main $arg1 $arg2 $arg3 $arg9", GoRegs, "arg1=%ax:x64 arg2=%bx:x64 arg3=%cx:x64 arg4=%r11:x64", 0},
		{"p /bin/ls:main s=+0($arg2):string n=%di", SysV, "s=+0(%si):string n=%di:x64", 0},
		{"r /bin/ls:main n=$arg1 s=+0($arg4):string v=$retval", SysV, "n=$arg1:x64 s=+0($arg4):string v=$retval:x64", 0},
		{"r /bin/ls:main n=$arg7", SysV, "", 17},
		{"p /bin/ls:main %di n=$arg10", GoRegs, "", 21},
	} {
		s, err := Parse(tc.spec)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.spec, err)
		}
		args, err := s.Bind(tc.abi)
		if tc.want == "" {
			e, ok := err.(*Error)
			if !ok || e.Pos != tc.pos {
				t.Errorf("Bind(%q, %v) = %v, want an *Error at %d", tc.spec, tc.abi, err, tc.pos)
			}
			continue
		}
		if err != nil {
			t.Errorf("Bind(%q, %v): %v", tc.spec, tc.abi, err)
			continue
		}
		got := ""
		for i := range args {
			if i > 0 {
				got += " "
			}
			got += args[i].String()
		}
		if got != tc.want {
			t.Errorf("Bind(%q, %v) = %q, want %q", tc.spec, tc.abi, got, tc.want)
		}
	}
	// A return probe's $argN is the register as the entry had it.
	s, _ := Parse("r /bin/ls:main $arg2")
	args, _ := s.Bind(GoRegs)
	if e := args[0].Expr; e.Op != OpEntryReg || e.Reg != arch.RBX {
		t.Errorf("return probe $arg2 in the Go ABI bound to %+v, want the entry's %%bx", e)
	}
	// Binding leaves the spec as it was.
	if s.Args[0].Expr.Op != OpArgN {
		t.Errorf("Bind changed the spec's expression to %v", s.Args[0].Expr)
	}
}

// entryCtx is a fetch context at a return that knows the entry's registers.
type entryCtx struct {
	fakeThread
	entry map[arch.Reg]uint64
}

func (c *entryCtx) EntryReg(r arch.Reg) (uint64, bool) {
	v, ok := c.entry[r]
	return v, ok
}

// TestFetchEntryReg: a bound return probe's $argN reads the entry's
// registers, not those of the return; a context without them faults.
func TestFetchEntryReg(t *testing.T) {
	s, _ := Parse("r /bin/ls:main n=$arg1:u64 v=$retval:u64")
	args, _ := s.Bind(SysV)
	ctx := &entryCtx{entry: map[arch.Reg]uint64{arch.RDI: 42}}
	ctx.regs.Rdi, ctx.regs.Rax = 7, 99
	vals := FetchArgs(ctx, args, nil)
	if vals[0].U != 42 || vals[0].Fault || vals[1].U != 99 {
		t.Errorf("n=%d (fault %v) v=%d, want n=42 (the entry's %%di) v=99", vals[0].U, vals[0].Fault, vals[1].U)
	}
	if v := FetchArgs(&ctx.fakeThread, args, nil); !v[0].Fault {
		t.Errorf("without the entry's registers: n=%d, want a fault", v[0].U)
	}
}
