package elfsym

import (
	"reflect"
	"testing"
)

// TestParseUSDTArgs: every operand form of the x86-64 SDT argument
// grammar, libbpf's and the ones it lacks.
func TestParseUSDTArgs(t *testing.T) {
	tests := []struct {
		text string
		want USDTArg
	}{
		{"8@%rbp", USDTArg{Size: 8, Kind: USDTReg, Reg: "rbp"}},
		{"-4@%eax", USDTArg{Size: 4, Signed: true, Kind: USDTReg, Reg: "rax"}},
		{"1@%sil", USDTArg{Size: 1, Kind: USDTReg, Reg: "rsi"}},
		{"2@%r9w", USDTArg{Size: 2, Kind: USDTReg, Reg: "r9"}},
		{"1@%ah", USDTArg{Size: 1, Kind: USDTReg, Reg: "rax", HighByte: true}},
		{"8@-16(%rbp)", USDTArg{Size: 8, Kind: USDTMem, Reg: "rbp", Disp: -16}},
		{"-4@112(%rsp)", USDTArg{Size: 4, Signed: true, Kind: USDTMem, Reg: "rsp", Disp: 112}},
		{"8@(%rsp)", USDTArg{Size: 8, Kind: USDTMem, Reg: "rsp"}},
		{"8@(%rax,%rdx,8)", USDTArg{Size: 8, Kind: USDTMem, Reg: "rax", Index: "rdx", Scale: 8}},
		{"-1@-96(%rbp,%rax,8)", USDTArg{Size: 1, Signed: true, Kind: USDTMem, Reg: "rbp", Index: "rax", Scale: 8, Disp: -96}},
		{"4@8(%rbx,%rcx)", USDTArg{Size: 4, Kind: USDTMem, Reg: "rbx", Index: "rcx", Scale: 1, Disp: 8}},
		{"8@(,%rcx,4)", USDTArg{Size: 8, Kind: USDTMem, Index: "rcx", Scale: 4}},
		{"4@counter(%rip)", USDTArg{Size: 4, Kind: USDTMem, Reg: "rip", Sym: "counter"}},
		{"8@table+16(%rip)", USDTArg{Size: 8, Kind: USDTMem, Reg: "rip", Sym: "table", Disp: 16}},
		{"-4@$-5", USDTArg{Size: 4, Signed: true, Kind: USDTImm, Disp: -5}},
		{"8@$0x10", USDTArg{Size: 8, Kind: USDTImm, Disp: 16}},
		{"%eax", USDTArg{Size: 4, Kind: USDTReg, Reg: "rax"}},
	}
	for _, tt := range tests {
		got, err := ParseUSDTArgs(tt.text)
		tt.want.Text = tt.text
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
			t.Errorf("ParseUSDTArgs(%q) = %+v, %v; want %+v", tt.text, got, err, tt.want)
		}
	}
	for _, bad := range []string{"3@%eax", "8@%xyz", "8@(%eax)", "8@(%rax,%rbx,3)", "8@(%rax", "x@%rax", "8@", "8@(,%rip,1)"} {
		if got, err := ParseUSDTArgs(bad); err == nil {
			t.Errorf("ParseUSDTArgs(%q) = %+v, want an error", bad, got)
		}
	}
	if got, err := ParseUSDTArgs(":"); err != nil || got != nil {
		t.Errorf("ParseUSDTArgs(\":\") = %v, %v; want no args", got, err)
	}
}
