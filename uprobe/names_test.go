package uprobe

import (
	"testing"
)

// TestParseNames: USDT targets, reference counters, C++ names (quoted
// or not) and globs parse into the Spec fields resolve.Expand reads, and
// print back as they parse.
func TestParseNames(t *testing.T) {
	tests := []struct {
		text                   string
		path, provider, symbol string
		offset, refCtr         uint64
		usdt                   bool
		event                  string
	}{
		{"usdt:/usr/bin/python3.11:python:function__entry", "/usr/bin/python3.11", "python", "function__entry", 0, 0, true, "function__entry"},
		{"usdt:libstdc++:libstdcxx:*", "libstdc++", "libstdcxx", "*", 0, 0, true, "_"},
		{"usdt:/a:b/c:p:n", "/a:b/c", "p", "n", 0, 0, true, "n"},
		{"/bin/sh:0x10(0x20)", "/bin/sh", "", "", 0x10, 0x20, false, "p_sh_0x10"},
		{"libc:0x10%return(0x20)", "libc", "", "", 0x10, 0x20, false, "p_libc_0x10"},
		{"./prog:ns::Foo::bar", "./prog", "", "ns::Foo::bar", 0, 0, false, "ns__Foo__bar"},
		{"./prog:over(int)", "./prog", "", "over(int)", 0, 0, false, "over_int_"},
		{`./prog:"f(char const*, long)"+4`, "./prog", "", "f(char const*, long)", 4, 0, false, "f_char_const___long__0x4"},
		{"/a:b/prog:std::map<int,long>::find", "/a:b/prog", "", "std::map<int,long>::find", 0, 0, false, "std__map_int_long___find"},
		{"libc:str*", "libc", "", "str*", 0, 0, false, "str_"},
		{"/bin/sh:parse_[ab]?", "/bin/sh", "", "parse_[ab]?", 0, 0, false, "parse__ab__"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.text)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.text, err)
			continue
		}
		if s.Path != tt.path || s.Provider != tt.provider || s.Symbol != tt.symbol || s.Offset != tt.offset ||
			s.RefCtr != tt.refCtr || s.USDT != tt.usdt || s.Event != tt.event {
			t.Errorf("Parse(%q) = path %q provider %q symbol %q offset %#x refctr %#x usdt %v event %q", tt.text,
				s.Path, s.Provider, s.Symbol, s.Offset, s.RefCtr, s.USDT, s.Event)
		}
		back, err := Parse(s.String())
		if err != nil || !back.Equal(s) {
			t.Errorf("Parse(%q).String() = %q, which parses to %v, %v", tt.text, s.String(), back, err)
		}
	}
	for _, bad := range []struct {
		text string
		pos  int
		msg  string
	}{
		{"r usdt:/bin/x:p:n", 7, errUSDTReturn},
		{"usdt:/bin/x:n", 5, errUSDTForm},
		{"usdt:/bin/x:p-q:n", 13, errBadUSDTName},
		{`./prog:"f(int`, 7, errQuote},
		{"./prog:f(10)", 8, errRefCtr},
	} {
		_, err := Parse(bad.text)
		e, ok := err.(*Error)
		if !ok || e.Pos != bad.pos || e.Msg != bad.msg {
			t.Errorf("Parse(%q) = %v, want %q at %d", bad.text, err, bad.msg, bad.pos)
		}
	}
}

// TestFetchTypeText: the kernel's remaining types parse, print back, and
// their values print as trace_pipe prints them.
func TestFetchTypeText(t *testing.T) {
	for _, tt := range []struct {
		typ  string
		v    Value
		want string
	}{
		{"char", Value{U: 'h'}, "x='h'"},
		{"b4@4/32", Value{U: 7}, "x=7"},
		{"u32[3]", Value{Elems: []uint64{7, 9, 1}}, "x={7,9,1}"},
		{"s16[2]", Value{Elems: []uint64{0xffffffffffffffff, 2}}, "x={-1,2}"},
		{"char[2]", Value{Elems: []uint64{'h', 'i'}}, "x={'h','i'}"},
		{"x8[1]", Value{Elems: []uint64{0xab}}, "x={0xab}"},
	} {
		s, err := Parse("p /bin/sh:0x10 x=+0(%di):" + tt.typ)
		if err != nil {
			t.Errorf("%s: %v", tt.typ, err)
			continue
		}
		if got := s.Args[0].Type.String(); got != tt.typ {
			t.Errorf("type %q prints as %q", tt.typ, got)
		}
		tt.v.Name, tt.v.Type = "x", s.Args[0].Type
		if got := string(tt.v.AppendText(nil)); got != tt.want {
			t.Errorf("%s value prints %q, want %q", tt.typ, got, tt.want)
		}
	}
}
