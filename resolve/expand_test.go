package resolve

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/internal/testprog"
	"github.com/ptprobe/ptprobe/uprobe"
)

// buildNames builds testdata/c/names.cpp.
func buildNames(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ is not installed: cannot build testdata/c/names.cpp")
	}
	prog := filepath.Join(t.TempDir(), "names")
	if out, err := exec.Command("g++", "-O2", "-o", prog, filepath.Join(testprog.Root(), "testdata", "c", "names.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	return prog
}

func parse(t *testing.T, text string) *uprobe.Spec {
	t.Helper()
	s, err := uprobe.Parse(text)
	if err != nil {
		if e, ok := err.(*uprobe.Error); ok {
			t.Fatalf("parse %q:\n%s", text, e.Caret())
		}
		t.Fatal(err)
	}
	return s
}

// TestExpandNames: C++ names and globs expand to the functions they name,
// each resolved in the file, with unique event names.
func TestExpandNames(t *testing.T) {
	prog := buildNames(t)
	r := New(nil)
	defer r.Close()
	tests := []struct {
		target  string
		symbols []string // mangled, in file order
		events  []string
	}{
		{"ns::Foo::bar", []string{"_ZN2ns3Foo3barEi"}, []string{"ns__Foo__bar"}},
		{"'ns::Foo::bar(int)'", []string{"_ZN2ns3Foo3barEi"}, []string{"ns__Foo__bar"}},
		{"over(int)", []string{"_Z4overi"}, []string{"over"}},
		{"over", []string{"_Z4overi", "_Z4overd"}, []string{"over", "over_2"}},
		{"over*", []string{"_Z4overi", "_Z4overd"}, []string{"over", "over_2"}},
		{"twice<long>", []string{"_Z5twiceIlET_S0_"}, []string{"twice_long"}},
		{"parse_*", []string{"parse_a", "parse_b", "parse_c"}, []string{"parse_a", "parse_b", "parse_c"}},
		{"ns::*", []string{"_ZN2ns3Foo3barEi"}, []string{"ns__Foo__bar"}},
		{"parse_a", []string{"parse_a"}, []string{"parse_a"}},                     // a symbol: as it is
		{`"over(double)"+0`, []string{"_Z4overd"}, []string{"over"}},              // quoted
		{"_Z4overd", []string{"_Z4overd"}, []string{"_Z4overd"}},                  // mangled
		{"r:g/ev over", []string{"_Z4overi", "_Z4overd"}, []string{"ev", "ev_2"}}, // named
	}
	for _, tt := range tests {
		text := prog + ":" + strings.Trim(tt.target, "'")
		if strings.HasPrefix(tt.target, "r:") {
			cmd, sym, _ := strings.Cut(tt.target, " ")
			text = cmd + " " + prog + ":" + sym
		}
		exp, err := r.Expand(parse(t, text), nil)
		if err != nil {
			t.Errorf("Expand(%q): %v", text, err)
			continue
		}
		var syms, events []string
		for _, s := range exp {
			syms = append(syms, s.Symbol)
			events = append(events, s.Event)
			if _, err := r.Resolve(s); err != nil {
				t.Errorf("Expand(%q): %s does not resolve: %v", text, s.Symbol, err)
			}
		}
		if !slices.Equal(syms, tt.symbols) || !slices.Equal(events, tt.events) {
			t.Errorf("Expand(%q) = %v named %v, want %v named %v", text, syms, events, tt.symbols, tt.events)
		}
	}
}

// TestExpandErrors: a pattern that matches nothing says so with the
// closest names; more matches than the limit says how many.
func TestExpandErrors(t *testing.T) {
	prog := buildNames(t)
	r := New(nil)
	defer r.Close()
	_, err := r.Expand(parse(t, prog+":pars_*"), nil)
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), "parse_") {
		t.Errorf("no match: %v, want ErrNoMatch with suggestions", err)
	}
	_, err = r.Expand(parse(t, prog+":parse_*"), &ExpandOptions{MaxProbes: 2})
	if !errors.Is(err, ErrTooManyProbes) || !strings.Contains(err.Error(), "matches 3 functions") || !strings.Contains(err.Error(), "--max-probes") {
		t.Errorf("too many: %v, want ErrTooManyProbes saying 3", err)
	}
	// A name that is nothing at all is left to resolving, whose error
	// suggests the closest symbols.
	exp, err := r.Expand(parse(t, prog+":parse_q"), nil)
	if err != nil || len(exp) != 1 {
		t.Fatalf("Expand(parse_q) = %v, %v", exp, err)
	}
	if _, err := r.Resolve(exp[0]); !errors.Is(err, elfsym.ErrUnknownSymbol) || !strings.Contains(err.Error(), "did you mean") {
		t.Errorf("Resolve(parse_q): %v", err)
	}
	_, err = r.Expand(parse(t, "usdt:"+prog+":a:b"), nil)
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "no USDT probes") {
		t.Errorf("USDT in a file without notes: %v", err)
	}
}

// TestExpandLibstdcxx: a glob over libstdc++'s demangled names, and the
// limit.
func TestExpandLibstdcxx(t *testing.T) {
	r := New(nil)
	defer r.Close()
	spec := parse(t, "libstdc++:std::*")
	f, err := r.File(spec)
	if err != nil {
		t.Skipf("no libstdc++: %v", err)
	}
	want := 0
	for _, s := range f.Symbols() {
		if _, short := elfsym.Demangle(s.Name); strings.HasPrefix(short, "std::") {
			want++
		}
	}
	exp, err := r.Expand(spec, &ExpandOptions{MaxProbes: want})
	if err != nil || len(exp) != want || want < 100 {
		t.Fatalf("Expand(libstdc++:std::*) = %d probes, %v; want %d", len(exp), err, want)
	}
	names := make(map[string]bool)
	for _, s := range exp {
		if names[s.Probe()] || len(s.Event) > 63 {
			t.Fatalf("event name %q repeated or too long", s.Probe())
		}
		names[s.Probe()] = true
	}
	if _, err := r.Expand(spec, &ExpandOptions{MaxProbes: want - 1}); !errors.Is(err, ErrTooManyProbes) {
		t.Errorf("limit %d: %v", want-1, err)
	}
}

// TestExpandUSDTNote checks the USDT locations of python3.11 against
// readelf's reading of the same notes.
func TestExpandUSDTNote(t *testing.T) {
	const python = "/usr/bin/python3.11"
	out, err := exec.Command("readelf", "-n", python).Output()
	if err != nil {
		t.Skipf("readelf -n %s: %v", python, err)
	}
	f, err := elfsym.Open(python)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probes, err := f.USDTProbes()
	if err != nil {
		t.Fatal(err)
	}
	// readelf: "Provider: P", "Name: N", "Location: 0x…, Base: 0x…,
	// Semaphore: 0x…", "Arguments: …".
	var got []string
	for _, p := range probes {
		got = append(got, strings.Join([]string{p.Provider, p.Name, hex(p.Vaddr), hex(p.SemVaddr), p.ArgText}, " "))
		if v, err := f.Vaddr(p.Offset); err != nil || v != p.Vaddr {
			t.Errorf("%s:%s: file offset 0x%x is 0x%x, want 0x%x", p.Provider, p.Name, p.Offset, v, p.Vaddr)
		}
	}
	var want []string
	var cur []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "Provider: "):
			cur = []string{strings.TrimPrefix(l, "Provider: ")}
		case strings.HasPrefix(l, "Name: ") && cur != nil:
			cur = append(cur, strings.TrimPrefix(l, "Name: "))
		case strings.HasPrefix(l, "Location: ") && cur != nil:
			for _, part := range strings.Split(l, ", ") {
				k, v, _ := strings.Cut(part, ": ")
				if k == "Location" || k == "Semaphore" {
					cur = append(cur, "0x"+strings.TrimLeft(strings.TrimPrefix(v, "0x"), "0"))
				}
			}
		case strings.HasPrefix(l, "Arguments: ") && cur != nil:
			want = append(want, strings.Join(append(cur, strings.TrimPrefix(l, "Arguments: ")), " "))
			cur = nil
		}
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("notes:\n%s\nreadelf:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

// fakeThread is a stopped thread for evaluating fetch-args: registers and
// a little memory at 0x1000.
type fakeThread struct {
	regs uprobe.Regs
	mem  []byte
}

func (f *fakeThread) Regs() *uprobe.Regs { return &f.regs }
func (f *fakeThread) ReadMemory(addr uint64, p []byte) (int, error) {
	if addr < 0x1000 || addr-0x1000 >= uint64(len(f.mem)) {
		return 0, errors.New("unmapped")
	}
	return copy(p, f.mem[addr-0x1000:]), nil
}
func (f *fakeThread) Comm() string     { return "fake" }
func (f *fakeThread) FileBase() uint64 { return 0 }

// TestUSDTArgValues evaluates SDT arguments of every form, bound as
// Expand binds them, on a fake thread: sizes truncate, negative sizes
// sign-extend, %ah is bits 8..15, SIB operands index.
func TestUSDTArgValues(t *testing.T) {
	th := &fakeThread{mem: make([]byte, 64)}
	th.regs.Rax = 0xffffffff_8000abcd
	th.regs.Rbx = 0x1000
	th.regs.Rcx = 2
	for i := range th.mem {
		th.mem[i] = byte(i)
	}
	th.mem[16+7] = 0x80 // the word at 0x1010 is negative
	args, err := elfsym.ParseUSDTArgs("-4@%eax 8@%rax 1@%ah 2@%ax 8@8(%rbx) -8@(%rbx,%rcx,8) $7 -1@%al")
	if err != nil {
		t.Fatal(err)
	}
	p := &elfsym.USDT{Provider: "p", Name: "n", Args: args}
	fas, err := bindUSDT(nil, &uprobe.Spec{Text: "usdt:x:p:n"}, p)
	if err != nil {
		t.Fatal(err)
	}
	word := func(off int) uint64 {
		var u uint64
		for i := 7; i >= 0; i-- {
			u = u<<8 | uint64(th.mem[off+i])
		}
		return u
	}
	want := []uint64{0xffffffff_8000abcd, 0xffffffff_8000abcd, 0xab, 0xabcd, word(8), word(16), 7, 0xffffffff_ffffffcd}
	for i, a := range fas {
		v := a.Fetch(th)
		if v.Fault || v.U != want[i] {
			t.Errorf("%s (%s): %#x fault %v, want %#x", args[i].Text, a.Expr, v.U, v.Fault, want[i])
		}
	}
}
