package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// USDT is one location of a statically defined probe (SystemTap SDT, the
// <sys/sdt.h> DTRACE_PROBE/STAP_PROBE macros) read from the file's
// .note.stapsdt section (docs/DESIGN.md §9). A probe name may have
// several locations (the macro inlined or duplicated), each with its own
// argument specs.
type USDT struct {
	Provider, Name string
	// Vaddr is the link-time address of the probe's nop, corrected for
	// prelinking (.stapsdt.base), and Offset its file offset through
	// the executable PT_LOAD segment.
	Vaddr, Offset uint64
	// SemVaddr is the link-time address of the probe's semaphore (a
	// 16-bit counter the program tests before it reaches the probe), 0
	// when the probe has none; SemOffset is its file offset through the
	// writable PT_LOAD segment, which is what the kernel's
	// REF_CTR_OFFSET is.
	SemVaddr, SemOffset uint64
	// ArgText is the note's argument string as written ("8@%rbp
	// -4@%eax"), Args its parsed arguments.
	ArgText string
	Args    []USDTArg
}

// USDTArgKind is what an SDT argument is.
type USDTArgKind int

const (
	USDTReg USDTArgKind = iota // N@%reg: a register's value
	USDTMem                    // N@disp(%base[,%index[,scale]]): memory
	USDTImm                    // N@$imm: a constant
)

// USDTArg is one argument spec of an SDT note, in the assembler operand
// syntax the macros emit: "N@OPERAND", N the size in bytes, negative for a
// signed value.
type USDTArg struct {
	Text   string // as written, "-4@%eax"
	Size   int    // 1, 2, 4 or 8 (bytes)
	Signed bool
	Kind   USDTArgKind
	// Reg is the register (USDTReg) or the base register (USDTMem, ""
	// for an absolute address), by its 64-bit name ("rax", "r8", "rip");
	// HighByte marks %ah, %bh, %ch and %dh: bits 8..15 of Reg.
	Reg      string
	HighByte bool
	// Index and Scale are the index register and its scale of a SIB
	// operand ("8@(%rax,%rdx,8)"), Index "" when none.
	Index string
	Scale int
	// Disp is the displacement of a memory operand, or the value of a
	// constant; Sym is the symbol of a symbolic displacement
	// ("counter+8(%rip)" has Sym "counter" and Disp 8).
	Disp int64
	Sym  string
}

// The note: owner "stapsdt", type 3, descriptor of three addresses
// (location, base, semaphore) then provider, name and args, each ending
// in a NUL.
const (
	usdtNoteSection = ".note.stapsdt"
	usdtBaseSection = ".stapsdt.base"
	usdtNoteType    = 3
	usdtOwner       = "stapsdt"
	// maxUSDTArgs is the most arguments an SDT probe has (STAP_PROBE12;
	// libbpf's USDT_MAX_ARG_CNT).
	maxUSDTArgs = 12
)

// USDTProbes returns every location of every SDT probe of the file, in
// the note's order; nil when the file has none. A malformed note is an
// error naming the note.
func (f *File) USDTProbes() ([]USDT, error) {
	sec := f.ef.Section(usdtNoteSection)
	if sec == nil || sec.Type != elf.SHT_NOTE {
		return nil, nil
	}
	data, err := f.sectionData(sec)
	if err != nil {
		return nil, err
	}
	var base uint64
	if b := f.ef.Section(usdtBaseSection); b != nil {
		base = b.Addr
	}
	var out []USDT
	le := binary.LittleEndian
	for n := 0; len(data) > 0; n++ {
		if len(data) < 12 {
			return nil, fmt.Errorf("elfsym: %s: %s: note %d is truncated", f.Path, usdtNoteSection, n)
		}
		namesz, descsz, typ := le.Uint32(data), le.Uint32(data[4:]), le.Uint32(data[8:])
		nameEnd := 12 + align4(uint64(namesz))
		descEnd := nameEnd + align4(uint64(descsz))
		if nameEnd > uint64(len(data)) || nameEnd+uint64(descsz) > uint64(len(data)) {
			return nil, fmt.Errorf("elfsym: %s: %s: note %d is truncated", f.Path, usdtNoteSection, n)
		}
		owner := string(bytes.TrimRight(data[12:12+namesz], "\x00"))
		desc := data[nameEnd : nameEnd+uint64(descsz)]
		if descEnd > uint64(len(data)) {
			descEnd = uint64(len(data))
		}
		data = data[descEnd:]
		if owner != usdtOwner || typ != usdtNoteType {
			continue
		}
		p, err := f.parseUSDTNote(desc, base)
		if err != nil {
			return nil, fmt.Errorf("elfsym: %s: %s: note %d: %w", f.Path, usdtNoteSection, n, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseUSDTNote parses one note's descriptor, as libbpf's parse_usdt_note
// and collect_usdt_targets do.
func (f *File) parseUSDTNote(desc []byte, base uint64) (USDT, error) {
	var p USDT
	if len(desc) < 3*8+3 {
		return p, fmt.Errorf("descriptor of %d bytes is too short", len(desc))
	}
	le := binary.LittleEndian
	loc, noteBase, sem := le.Uint64(desc), le.Uint64(desc[8:]), le.Uint64(desc[16:])
	strs := bytes.SplitN(desc[24:], []byte{0}, 4)
	if len(strs) < 4 {
		return p, fmt.Errorf("descriptor strings are not NUL-terminated")
	}
	p.Provider, p.Name = string(strs[0]), string(strs[1])
	if p.Name == "" {
		return p, fmt.Errorf("probe without a name")
	}
	p.ArgText = string(strs[2])
	// Prelinking moves the file's addresses after the notes were
	// written; .stapsdt.base records where the base is now and the note
	// where it was (SystemTap's UserSpaceProbeImplementation).
	if base != 0 && noteBase != 0 {
		loc += base - noteBase
		if sem != 0 {
			sem += base - noteBase
		}
	}
	p.Vaddr, p.SemVaddr = loc, sem
	off, ok := f.offsetIn(loc, true)
	if !ok {
		return p, fmt.Errorf("probe %s:%s at 0x%x: %w", p.Provider, p.Name, loc, ErrNotExecutable)
	}
	p.Offset = off
	if sem != 0 {
		so, ok := f.dataOffset(sem)
		if !ok {
			return p, fmt.Errorf("probe %s:%s: semaphore at 0x%x is in no writable, non-executable segment", p.Provider, p.Name, sem)
		}
		p.SemOffset = so
	}
	args, err := ParseUSDTArgs(p.ArgText)
	if err != nil {
		return p, fmt.Errorf("probe %s:%s: %w", p.Provider, p.Name, err)
	}
	p.Args = args
	return p, nil
}

// dataOffset maps vaddr through the writable, non-executable PT_LOAD
// segment whose file bytes contain it: a semaphore must be in such a
// segment (libbpf checks the same; the kernel wants it in a private,
// writable, file-backed mapping).
func (f *File) dataOffset(vaddr uint64) (uint64, bool) {
	for _, s := range f.Segments {
		if s.Flags&elf.PF_W == 0 || s.Flags&elf.PF_X != 0 {
			continue
		}
		if vaddr >= s.Vaddr && vaddr-s.Vaddr+2 <= s.Filesz {
			return s.Offset + (vaddr - s.Vaddr), true
		}
	}
	return 0, false
}

func (f *File) sectionData(sec *elf.Section) ([]byte, error) {
	if sec.Offset+sec.Size < sec.Offset || int64(sec.Offset+sec.Size) > f.size {
		return nil, fmt.Errorf("elfsym: %s: section %s is beyond the end of the file", f.Path, sec.Name)
	}
	data := make([]byte, sec.Size)
	if n, err := f.osf.ReadAt(data, int64(sec.Offset)); n < len(data) {
		return nil, fmt.Errorf("elfsym: %s: read section %s: %w", f.Path, sec.Name, err)
	}
	return data, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// ParseUSDTArgs parses an SDT note's argument string: argument specs
// separated by white space (an empty string, or one starting with ':', is
// no arguments, as libbpf reads it).
func ParseUSDTArgs(s string) ([]USDTArg, error) {
	if s == "" || s[0] == ':' {
		return nil, nil
	}
	fields := strings.Fields(s)
	if len(fields) > maxUSDTArgs {
		return nil, fmt.Errorf("%d arguments: an SDT probe has at most %d", len(fields), maxUSDTArgs)
	}
	out := make([]USDTArg, 0, len(fields))
	for i, w := range fields {
		a, err := parseUSDTArg(w)
		if err != nil {
			return nil, fmt.Errorf("argument %d %q: %w", i+1, w, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// parseUSDTArg parses one "N@OPERAND". The operands are the x86-64 AT&T
// ones libbpf's parse_usdt_arg takes (%reg, disp(%reg), (%reg),
// disp(%base,%index,scale), $imm), plus those it does not: %ah..%dh,
// symbolic and rip-relative displacements ("sym+8(%rip)") and an
// operand without a size ("%eax", as old SystemTap versions wrote it:
// the register's size then).
func parseUSDTArg(w string) (USDTArg, error) {
	a := USDTArg{Text: w}
	op := w
	if at := strings.IndexByte(w, '@'); at >= 0 {
		n, err := strconv.Atoi(w[:at])
		if err != nil {
			return a, fmt.Errorf("bad size %q", w[:at])
		}
		a.Signed = n < 0
		if n < 0 {
			n = -n
		}
		if n != 1 && n != 2 && n != 4 && n != 8 {
			return a, fmt.Errorf("bad size %d", n)
		}
		a.Size = n
		op = w[at+1:]
	}
	switch {
	case op == "":
		return a, fmt.Errorf("no operand")
	case op[0] == '$':
		v, err := parseAsmInt(op[1:])
		if err != nil {
			return a, fmt.Errorf("bad constant %q", op[1:])
		}
		a.Kind, a.Disp = USDTImm, v
	case op[0] == '%':
		r, size, high, ok := usdtReg(op[1:])
		if !ok {
			return a, fmt.Errorf("unknown register %q", op)
		}
		a.Kind, a.Reg, a.HighByte = USDTReg, r, high
		if a.Size == 0 {
			a.Size = size
		}
	default:
		a.Kind = USDTMem
		disp, inner := op, ""
		if lp := strings.IndexByte(op, '('); lp >= 0 {
			if !strings.HasSuffix(op, ")") {
				return a, fmt.Errorf("unclosed '('")
			}
			disp, inner = op[:lp], op[lp+1:len(op)-1]
		}
		if err := a.parseDisp(disp); err != nil {
			return a, err
		}
		if inner != "" {
			parts := strings.Split(inner, ",")
			if len(parts) > 3 {
				return a, fmt.Errorf("bad memory operand")
			}
			if parts[0] != "" {
				r, size, high, ok := usdtReg(strings.TrimPrefix(parts[0], "%"))
				if !ok || size != 8 || high || !strings.HasPrefix(parts[0], "%") {
					return a, fmt.Errorf("bad base register %q", parts[0])
				}
				a.Reg = r
			}
			if len(parts) > 1 {
				r, size, high, ok := usdtReg(strings.TrimPrefix(parts[1], "%"))
				if !ok || size != 8 || high || r == "rip" || !strings.HasPrefix(parts[1], "%") {
					return a, fmt.Errorf("bad index register %q", parts[1])
				}
				a.Index, a.Scale = r, 1
				if len(parts) == 3 {
					sc, err := strconv.Atoi(parts[2])
					if err != nil || (sc != 1 && sc != 2 && sc != 4 && sc != 8) {
						return a, fmt.Errorf("bad scale %q", parts[2])
					}
					a.Scale = sc
				}
			}
		}
		if a.Reg == "" && a.Index == "" && a.Sym == "" && disp == "" {
			return a, fmt.Errorf("bad memory operand")
		}
		if a.Size == 0 {
			a.Size = 8
		}
	}
	if a.Size == 0 {
		a.Size = 8
	}
	return a, nil
}

// parseDisp parses a displacement: a number, a symbol, or a symbol plus or
// minus a number.
func (a *USDTArg) parseDisp(d string) error {
	if d == "" {
		return nil
	}
	if v, err := parseAsmInt(d); err == nil {
		a.Disp = v
		return nil
	}
	sym, num := d, ""
	if i := strings.IndexAny(d[1:], "+-"); i >= 0 {
		sym, num = d[:i+1], d[i+1:]
	}
	for i := 0; i < len(sym); i++ {
		c := sym[i]
		if !(c == '_' || c == '.' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return fmt.Errorf("bad displacement %q", d)
		}
	}
	a.Sym = sym
	if num != "" {
		v, err := parseAsmInt(num)
		if err != nil {
			return fmt.Errorf("bad displacement %q", d)
		}
		a.Disp = v
	}
	return nil
}

// parseAsmInt parses a signed assembler integer (decimal or 0x hex).
func parseAsmInt(s string) (int64, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// usdtRegs maps every x86-64 general register name of every width to its
// 64-bit register and the width in bytes.
var usdtRegs = func() map[string]struct {
	r    string
	size int
} {
	m := make(map[string]struct {
		r    string
		size int
	})
	add := func(r string, names ...string) {
		for i, n := range names {
			m[n] = struct {
				r    string
				size int
			}{r, []int{8, 4, 2, 1}[i]}
		}
	}
	add("rax", "rax", "eax", "ax", "al")
	add("rbx", "rbx", "ebx", "bx", "bl")
	add("rcx", "rcx", "ecx", "cx", "cl")
	add("rdx", "rdx", "edx", "dx", "dl")
	add("rsi", "rsi", "esi", "si", "sil")
	add("rdi", "rdi", "edi", "di", "dil")
	add("rbp", "rbp", "ebp", "bp", "bpl")
	add("rsp", "rsp", "esp", "sp", "spl")
	for i := 8; i <= 15; i++ {
		r := "r" + strconv.Itoa(i)
		add(r, r, r+"d", r+"w", r+"b")
	}
	add("rip", "rip")
	return m
}()

// usdtReg returns the 64-bit register, width and high-byte flag of a
// register name without its '%'.
func usdtReg(name string) (reg string, size int, high, ok bool) {
	switch name {
	case "ah", "bh", "ch", "dh":
		return "r" + name[:1] + "x", 1, true, true
	}
	r, ok := usdtRegs[name]
	return r.r, r.size, false, ok
}

// DataSymbol returns the link-time address of the symbol called name of
// any type (an SDT argument's "counter(%rip)" names a variable, which
// Symbols does not list), from .symtab, then .dynsym.
func (f *File) DataSymbol(name string) (uint64, bool) {
	for _, get := range []func() ([]elf.Symbol, error){f.ef.Symbols, f.ef.DynamicSymbols} {
		syms, err := get()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if s.Name == name && s.Section != elf.SHN_UNDEF {
				return s.Value, true
			}
		}
	}
	return 0, false
}

// Writable reports whether the n bytes at file offset off are file bytes
// of a writable, non-executable PT_LOAD segment (where a reference
// counter must be).
func (f *File) Writable(off, n uint64) bool {
	for _, s := range f.Segments {
		if s.Flags&elf.PF_W == 0 || s.Flags&elf.PF_X != 0 {
			continue
		}
		if off >= s.Offset && off-s.Offset+n <= s.Filesz {
			return true
		}
	}
	return false
}
