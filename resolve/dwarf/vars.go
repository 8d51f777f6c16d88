package dwarf

import (
	"bytes"
	"debug/dwarf"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/godwarf"
	"github.com/go-delve/delve/pkg/dwarf/leb128"
	"github.com/go-delve/delve/pkg/dwarf/loclist"
	"github.com/go-delve/delve/pkg/dwarf/op"
	"github.com/go-delve/delve/pkg/dwarf/reader"
	"github.com/go-delve/delve/pkg/dwarf/regnum"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/uprobe"
)

// ErrOptimizedOut is the error of a variable that has no location at the
// probed address: the compiler keeps it nowhere there (gcc -O2 keeps a
// parameter in its register for the first instructions only).
var ErrOptimizedOut = errors.New("optimized out here")

// Arg is one fetch-arg a variable path gives: Name is appended to the
// fetch-arg's name ("" for the value itself, "len" and "cap" for a Go
// slice's).
type Arg struct {
	Name string
	Expr *uprobe.Expr
	Type uprobe.Type
	// Len is a Go string's length (uprobe.FetchArg.Len).
	Len *uprobe.Expr
	// TypeName is the DWARF type, for listings and messages.
	TypeName string
}

// Var is a variable visible at an address.
type Var struct {
	Name     string
	TypeName string
	Param    bool
	// Where is the location at the address, or why there is none.
	Where string
}

// place is where a value is at the probed address: in a register, in
// memory at value(base)+off (base nil: at the file offset off of a
// static), or in pieces.
type place struct {
	reg    arch.Reg
	inReg  bool
	base   *uprobe.Expr
	off    int64
	static bool
	pieces []piece
	// cfa: the place is the CFA, an address (DW_OP_call_frame_cfa).
	cfa bool
}

type piece struct {
	p    place
	size int64
}

// mem is the memory node that reads the place's bytes.
func (p place) mem() *uprobe.Expr {
	if p.static {
		return &uprobe.Expr{Op: uprobe.OpFileOffset, Imm: p.off}
	}
	return &uprobe.Expr{Op: uprobe.OpDeref, Imm: p.off, Inner: p.base}
}

// value is the node that reads the value at the place: the register
// (a fetch truncates it to its type), or the memory at the address.
func (p place) value() *uprobe.Expr {
	if p.inReg {
		return &uprobe.Expr{Op: uprobe.OpReg, Reg: p.reg}
	}
	return p.mem()
}

// at is the place of the bytes off bytes into p, size bytes long.
func (p place) at(off, size int64) (place, error) {
	switch {
	case p.pieces != nil:
		var o int64
		for _, pc := range p.pieces {
			if off >= o && off+size <= o+pc.size {
				return pc.p.at(off-o, size)
			}
			o += pc.size
		}
		return place{}, fmt.Errorf("bytes %d..%d are not in one piece of its location", off, off+size)
	case p.inReg:
		if off != 0 {
			return place{}, fmt.Errorf("it is in register %%%s: byte %d of it has no fetch-arg", p.reg.KernelName(), off)
		}
		return p, nil
	}
	p.off += off
	return p, nil
}

// deref is the place a pointer at p points to.
func (p place) deref() place { return place{base: p.value()} }

// regOf maps a DWARF register number of x86-64 to arch's.
func regOf(n uint64) (arch.Reg, error) {
	regs := map[uint64]arch.Reg{
		regnum.AMD64_Rax: arch.RAX, regnum.AMD64_Rdx: arch.RDX, regnum.AMD64_Rcx: arch.RCX, regnum.AMD64_Rbx: arch.RBX,
		regnum.AMD64_Rsi: arch.RSI, regnum.AMD64_Rdi: arch.RDI, regnum.AMD64_Rbp: arch.RBP, regnum.AMD64_Rsp: arch.RSP,
		regnum.AMD64_R8: arch.R8, regnum.AMD64_R9: arch.R9, regnum.AMD64_R10: arch.R10, regnum.AMD64_R11: arch.R11,
		regnum.AMD64_R12: arch.R12, regnum.AMD64_R13: arch.R13, regnum.AMD64_R14: arch.R14, regnum.AMD64_R15: arch.R15,
		regnum.AMD64_Rip: arch.RIP,
	}
	if r, ok := regs[n]; ok {
		return r, nil
	}
	return 0, fmt.Errorf("DWARF register %s has no fetch-arg register", regnum.AMD64ToName(n))
}

// The DWARF 5 entry-value operations, which delve's op table lacks.
const (
	opEntryValue    = 0xa3
	opGNUEntryValue = 0xf3
)

// translate turns the location expression instr, valid at pc of f, into
// the place it describes. It does not evaluate: it maps each operation
// that names a register, a register plus an offset, the frame's CFA or a
// static address onto the fetch-arg node that reads the same thing, so
// that both backends execute it (docs/DESIGN.md §10). Operations that
// compute a value no fetch-arg can carry are refused, with the
// expression.
func (d *Data) translate(instr []byte, pc uint64, f *Func, frameBase []byte) (place, error) {
	var pieces []piece
	var cur *place
	buf := bytes.NewBuffer(instr)
	bad := func(what string) (place, error) {
		var s strings.Builder
		op.PrettyPrint(&s, instr, regnum.AMD64ToName)
		return place{}, fmt.Errorf("its location [%s] %s: no fetch-arg reads it", strings.TrimSpace(s.String()), what)
	}
	for buf.Len() > 0 {
		o, _ := buf.ReadByte()
		switch {
		case o >= byte(op.DW_OP_reg0) && o <= byte(op.DW_OP_reg0)+31:
			r, err := regOf(uint64(o - byte(op.DW_OP_reg0)))
			if err != nil {
				return place{}, err
			}
			cur = &place{reg: r, inReg: true}
		case o == byte(op.DW_OP_regx):
			n, _ := leb128.DecodeUnsigned(buf)
			r, err := regOf(n)
			if err != nil {
				return place{}, err
			}
			cur = &place{reg: r, inReg: true}
		case o >= byte(op.DW_OP_breg0) && o <= byte(op.DW_OP_breg0)+31:
			off, _ := leb128.DecodeSigned(buf)
			r, err := regOf(uint64(o - byte(op.DW_OP_breg0)))
			if err != nil {
				return place{}, err
			}
			cur = &place{base: &uprobe.Expr{Op: uprobe.OpReg, Reg: r}, off: off}
		case o == byte(op.DW_OP_fbreg):
			off, _ := leb128.DecodeSigned(buf)
			if frameBase == nil {
				return bad("is relative to a frame base the function does not have")
			}
			fb, err := d.translate(frameBase, pc, f, nil)
			if err != nil {
				return place{}, fmt.Errorf("frame base: %w", err)
			}
			// The frame base is an address: its value plus off is the
			// variable's address.
			switch {
			case fb.inReg:
				cur = &place{base: &uprobe.Expr{Op: uprobe.OpReg, Reg: fb.reg}, off: off}
			case fb.base != nil:
				cur = &place{base: fb.base, off: fb.off + off}
			default:
				return bad("has a frame base no register gives")
			}
		case o == byte(op.DW_OP_call_frame_cfa):
			cfa, err := d.cfa(pc)
			if err != nil {
				return place{}, err
			}
			cur = &cfa
		case o == byte(op.DW_OP_addr):
			var b [8]byte
			if n, _ := buf.Read(b[:]); n < 8 {
				return bad("is cut short")
			}
			vaddr := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			off, err := d.fileOffset(vaddr)
			if err != nil {
				return place{}, err
			}
			cur = &place{static: true, off: int64(off)}
		case o == byte(op.DW_OP_piece):
			n, _ := leb128.DecodeUnsigned(buf)
			if cur == nil {
				return place{}, fmt.Errorf("%w (a part of it is)", ErrOptimizedOut)
			}
			pieces = append(pieces, piece{*cur, int64(n)})
			cur = nil
		case o == opEntryValue || o == opGNUEntryValue:
			n, _ := leb128.DecodeUnsigned(buf)
			sub := buf.Next(int(n))
			// The value a register had at the function's entry: at
			// the entry itself, that register.
			if pc != f.Low || len(sub) != 1 || sub[0] < byte(op.DW_OP_reg0) || sub[0] > byte(op.DW_OP_reg0)+31 {
				return place{}, fmt.Errorf("%w: only its value at the function's entry is described", ErrOptimizedOut)
			}
			r, err := regOf(uint64(sub[0] - byte(op.DW_OP_reg0)))
			if err != nil {
				return place{}, err
			}
			cur = &place{reg: r, inReg: true}
			if b, _ := buf.ReadByte(); b != byte(op.DW_OP_stack_value) {
				return bad("uses its entry value in a computation")
			}
		case o == byte(op.DW_OP_stack_value):
			// After a lone register or a breg with offset 0 the value
			// is the register.
			if cur != nil && !cur.inReg && cur.base != nil && cur.off == 0 && cur.base.Op == uprobe.OpReg && !cur.cfa {
				cur = &place{reg: cur.base.Reg, inReg: true}
				continue
			}
			return bad("is a computed value")
		default:
			return bad(fmt.Sprintf("uses %s", opName(o)))
		}
	}
	if pieces != nil {
		if cur != nil {
			return bad("ends outside a piece")
		}
		return place{pieces: pieces}, nil
	}
	if cur == nil {
		return place{}, ErrOptimizedOut
	}
	return *cur, nil
}

func opName(o byte) string {
	var s strings.Builder
	op.PrettyPrint(&s, []byte{o}, regnum.AMD64ToName)
	if t := strings.TrimSpace(s.String()); t != "" {
		return t
	}
	return fmt.Sprintf("operation 0x%x", o)
}

// cfa is the canonical frame address at pc, from the CFI: a register
// plus an offset.
func (d *Data) cfa(pc uint64) (place, error) {
	fc, err := d.Frame(pc)
	if err != nil {
		return place{}, fmt.Errorf("the frame address at 0x%x: %w", pc, err)
	}
	if fc.CFA.Rule != frame.RuleCFA {
		return place{}, fmt.Errorf("the frame address at 0x%x is an expression: no fetch-arg computes it", pc)
	}
	r, err := regOf(fc.CFA.Reg)
	if err != nil {
		return place{}, err
	}
	return place{base: &uprobe.Expr{Op: uprobe.OpReg, Reg: r}, off: fc.CFA.Offset, cfa: true}, nil
}

// fileOffset is the file offset of the link-time address vaddr, for
// @+OFFSET (the file's load base is added when the probe fires).
func (d *Data) fileOffset(vaddr uint64) (uint64, error) {
	for _, p := range d.exe.Progs {
		if p.Type == 1 && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Memsz { // PT_LOAD
			// In .bss too: @+OFFSET adds the file's load base, and
			// the segment is mapped at its offset's distance.
			return p.Off + (vaddr - p.Vaddr), nil
		}
	}
	return 0, fmt.Errorf("static at 0x%x is in no loaded segment of %s", vaddr, d.Path)
}

// scope is what is visible at a pc: the function, its variables.
type scope struct {
	f    *Func
	vars []reader.Variable
	fb   []byte // the frame base of the innermost function
}

func (d *Data) scopeAt(pc uint64) (*scope, error) {
	f, t, err := d.funcTreeAt(pc)
	if err != nil {
		return nil, err
	}
	_, ln, _ := d.Line(pc)
	vars := reader.Variables(t, pc, ln, reader.VariablesOnlyVisible)
	fb, _ := t.Val(dwarf.AttrFrameBase).([]byte)
	return &scope{f: f, vars: vars, fb: fb}, nil
}

// lookup is the innermost variable named name.
func (s *scope) lookup(name string) (*reader.Variable, bool) {
	best := -1
	for i := range s.vars {
		if n, _ := s.vars[i].Val(dwarf.AttrName).(string); n == name && (best < 0 || s.vars[i].Depth > s.vars[best].Depth) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	return &s.vars[best], true
}

func (s *scope) names() []string {
	var ns []string
	seen := make(map[string]bool)
	for i := range s.vars {
		if n, _ := s.vars[i].Val(dwarf.AttrName).(string); n != "" && !seen[n] {
			seen[n] = true
			ns = append(ns, n)
		}
	}
	sort.Strings(ns)
	return ns
}

// location is the place of v at pc.
func (d *Data) location(s *scope, v *reader.Variable, pc uint64) (place, error) {
	a := v.Val(dwarf.AttrLocation)
	var instr []byte
	switch a := a.(type) {
	case nil:
		if v.Val(dwarf.AttrConstValue) != nil {
			return place{}, fmt.Errorf("%w: it is a constant the compiler folded into the code", ErrOptimizedOut)
		}
		return place{}, ErrOptimizedOut
	case []byte:
		instr = a
	case int64:
		u := &d.units[s.f.unit]
		if d.loc2 == nil {
			d.loc2 = loclist.NewDwarf2Reader(d.section("loc"), 8)
			d.loc5 = loclist.NewDwarf5Reader(d.section("loclists"))
		}
		var rd loclist.Reader = d.loc2
		var da *godwarf.DebugAddr
		if u.version >= 5 {
			rd = d.loc5
			if base, ok := u.entry.Val(dwarf.AttrAddrBase).(int64); ok {
				da = d.addr.GetSubsection(uint64(base))
			}
		}
		if rd.Empty() {
			return place{}, fmt.Errorf("its location list is missing from %s", d.DebugPath)
		}
		e, err := rd.Find(int(a), 0, u.low, pc, da)
		if err != nil {
			return place{}, fmt.Errorf("its location list: %w", err)
		}
		if e == nil || len(e.Instr) == 0 {
			return place{}, ErrOptimizedOut
		}
		instr = e.Instr
	default:
		return place{}, fmt.Errorf("its location attribute is of an unknown form")
	}
	return d.translate(instr, pc, s.f, s.fb)
}

// typeOf is the DWARF type of a DIE.
func (d *Data) typeOf(e godwarf.Entry) (godwarf.Type, error) {
	off, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
	if !ok {
		return nil, errors.New("it has no type")
	}
	return godwarf.ReadType(d.dw, 0, off, d.types)
}

// strip removes typedefs and qualifiers.
func strip(t godwarf.Type) godwarf.Type {
	for {
		switch tt := t.(type) {
		case *godwarf.TypedefType:
			t = tt.Type
		case *godwarf.QualType:
			t = tt.Type
		default:
			return t
		}
	}
}

// Vars returns the variables visible at pc, parameters first, each with
// its location there or why it has none.
func (d *Data) Vars(pc uint64) ([]Var, error) {
	s, err := d.scopeAt(pc)
	if err != nil {
		return nil, err
	}
	var out []Var
	for _, name := range s.names() {
		v, _ := s.lookup(name)
		vr := Var{Name: name, Param: v.Tag == dwarf.TagFormalParameter}
		if t, err := d.typeOf(v); err == nil {
			vr.TypeName = t.String()
		}
		if p, err := d.location(s, v, pc); err != nil {
			vr.Where = err.Error()
		} else {
			vr.Where = p.String()
		}
		out = append(out, vr)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Param && !out[j].Param })
	return out, nil
}

func (p place) String() string {
	switch {
	case p.pieces != nil:
		var ps []string
		for _, pc := range p.pieces {
			ps = append(ps, fmt.Sprintf("%s[%d]", pc.p, pc.size))
		}
		return strings.Join(ps, "+")
	case p.inReg:
		return "%" + p.reg.KernelName()
	}
	return p.mem().String()
}

// Params returns the names of the parameters of the function at pc, in
// order (Go's result parameters excluded).
func (d *Data) Params(pc uint64) ([]string, error) {
	f, ok := d.FuncAt(pc)
	if !ok {
		return nil, fmt.Errorf("no function of the debug information of %s contains 0x%x", d.Path, pc)
	}
	t, err := d.tree(f)
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, c := range t.Children {
		if c.Tag != dwarf.TagFormalParameter {
			continue
		}
		if isRet, _ := c.Val(dwarf.AttrVarParam).(bool); isRet {
			continue // a Go result
		}
		if n, _ := c.Val(dwarf.AttrName).(string); n != "" {
			ps = append(ps, n)
		}
	}
	return ps, nil
}

// ReturnType is the fetch type of the result of the function that
// starts at pc (for a typed $retval), and its DWARF name.
func (d *Data) ReturnType(pc uint64) (uprobe.Type, string, error) {
	f, ok := d.FuncAt(pc)
	if !ok {
		return uprobe.Type{}, "", fmt.Errorf("no function of the debug information of %s contains 0x%x", d.Path, pc)
	}
	t, err := d.tree(f)
	if err != nil {
		return uprobe.Type{}, "", err
	}
	if _, ok := t.Val(dwarf.AttrType).(dwarf.Offset); ok {
		typ, err := d.typeOf(t)
		if err != nil {
			return uprobe.Type{}, "", fmt.Errorf("%s: result: %w", f.Name, err)
		}
		ft, err := scalar(typ)
		return ft, typ.String(), err
	}
	// Go has no DW_AT_type on functions: the first result parameter.
	for _, c := range t.Children {
		if isRet, _ := c.Val(dwarf.AttrVarParam).(bool); c.Tag == dwarf.TagFormalParameter && isRet {
			typ, err := d.typeOf(c)
			if err != nil {
				return uprobe.Type{}, "", err
			}
			ft, err := scalar(typ)
			return ft, typ.String(), err
		}
	}
	return uprobe.Type{}, "", fmt.Errorf("%s returns nothing", f.Name)
}

// scalar is the fetch type of a value of type t held in a register.
func scalar(t godwarf.Type) (uprobe.Type, error) {
	t = strip(t)
	size := int(t.Size())
	switch tt := t.(type) {
	case *godwarf.IntType, *godwarf.CharType:
		return uprobe.Type{Kind: uprobe.Signed, Size: size}, nil
	case *godwarf.UintType, *godwarf.UcharType, *godwarf.BoolType:
		return uprobe.Type{Kind: uprobe.Unsigned, Size: size}, nil
	case *godwarf.EnumType:
		// Printed by name (docs/DESIGN.md §10).
		e := &uprobe.Enum{Name: t.String()}
		for _, v := range tt.Val {
			e.Vals = append(e.Vals, uprobe.Enumerator{Name: v.Name, Val: v.Val})
		}
		return uprobe.Type{Kind: uprobe.Signed, Size: size, Enum: e}, nil
	case *godwarf.PtrType, *godwarf.FuncType, *godwarf.MapType, *godwarf.ChanType:
		return uprobe.Type{Kind: uprobe.Hex, Size: 8}, nil
	case *godwarf.FloatType:
		return uprobe.Type{Kind: uprobe.Hex, Size: size}, nil
	default:
		if size == 1 || size == 2 || size == 4 || size == 8 {
			return uprobe.Type{Kind: uprobe.Hex, Size: size}, nil
		}
	}
	return uprobe.Type{}, fmt.Errorf("a %s is not a scalar", t.String())
}

// isChar reports whether t is C's char (signed, unsigned or plain) or
// Go's uint8/byte.
func isChar(t godwarf.Type) bool {
	switch strip(t).(type) {
	case *godwarf.CharType, *godwarf.UcharType:
		return true
	}
	return false
}

// step is one component of a variable path.
type step struct {
	kind  byte // '.', '>', '[', '*'
	name  string
	index int64
}

// parsePath splits "**p->a.b[3]" into its root and steps.
func parsePath(path string) (string, []step, error) {
	stars := 0
	for stars < len(path) && path[stars] == '*' {
		stars++
	}
	w := path[stars:]
	n := 0
	for n < len(w) && (w[n] == '_' || w[n] >= 'a' && w[n] <= 'z' || w[n] >= 'A' && w[n] <= 'Z' || n > 0 && w[n] >= '0' && w[n] <= '9') {
		n++
	}
	if n == 0 {
		return "", nil, fmt.Errorf("%q is not a variable path", path)
	}
	root := w[:n]
	var steps []step
	for w = w[n:]; w != ""; {
		switch {
		case strings.HasPrefix(w, "->") || w[0] == '.':
			k := byte('.')
			if w[0] == '-' {
				k, w = '>', w[2:]
			} else {
				w = w[1:]
			}
			m := 0
			for m < len(w) && (w[m] == '_' || w[m] >= 'a' && w[m] <= 'z' || w[m] >= 'A' && w[m] <= 'Z' || w[m] >= '0' && w[m] <= '9') {
				m++
			}
			if m == 0 {
				return "", nil, fmt.Errorf("%q: a member name is missing", path)
			}
			steps = append(steps, step{kind: k, name: w[:m]})
			w = w[m:]
		case w[0] == '[':
			end := strings.IndexByte(w, ']')
			if end < 0 {
				return "", nil, fmt.Errorf("%q: ']' is missing", path)
			}
			i, err := strconv.ParseInt(w[1:end], 10, 64)
			if err != nil {
				return "", nil, fmt.Errorf("%q: bad index %q", path, w[1:end])
			}
			steps = append(steps, step{kind: '[', index: i})
			w = w[end+1:]
		default:
			return "", nil, fmt.Errorf("%q: unexpected %q", path, w)
		}
	}
	for range stars {
		steps = append(steps, step{kind: '*'})
	}
	return root, steps, nil
}

// Resolve returns the fetch-args the variable path means at pc: "name",
// "p->x", "s.f", "*p", "arr[3]". want, if not nil, is the type the spec
// wrote (":string" on a char pointer reads the string it points to; an
// integer type reads the value at that size). A Go string is a counted
// string (Arg.Len); a Go slice its length and its first SliceElems
// elements (Arg.Len with an array type), or, when its elements are
// structs, its length and capacity (Arg.Name "len" and "cap"). Errors name
// the variable and the address: unknown (with those visible), optimized
// out here, a member of a non-struct.
func (d *Data) Resolve(pc uint64, path string, want *uprobe.Type) ([]Arg, error) {
	root, steps, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	s, err := d.scopeAt(pc)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s at 0x%x (%s+0x%x)", path, pc, s.f.Name, pc-s.f.Low)
	v, ok := s.lookup(root)
	if !ok {
		return nil, fmt.Errorf("%s: no variable %s here; visible: %s", where, root, strings.Join(s.names(), ", "))
	}
	typ, err := d.typeOf(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	p, err := d.location(s, v, pc)
	if err != nil {
		return nil, fmt.Errorf("%s: %s is %w", where, root, err)
	}
	for _, st := range steps {
		if p, typ, err = d.step(p, typ, st); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	args, err := leaf(p, typ, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return args, nil
}

// step applies one path component.
func (d *Data) step(p place, t godwarf.Type, st step) (place, godwarf.Type, error) {
	t = strip(t)
	switch st.kind {
	case '*':
		pt, ok := t.(*godwarf.PtrType)
		if !ok {
			return p, nil, fmt.Errorf("*: a %s is not a pointer", t)
		}
		q, err := p.at(0, 8)
		return q.deref(), pt.Type, err
	case '.', '>':
		if pt, ok := t.(*godwarf.PtrType); ok {
			// p->f, and Go's p.f on a pointer.
			q, err := p.at(0, 8)
			if err != nil {
				return p, nil, err
			}
			p, t = q.deref(), strip(pt.Type)
		} else if st.kind == '>' {
			return p, nil, fmt.Errorf("->%s: a %s is not a pointer", st.name, t)
		}
		var fields []*godwarf.StructField
		switch tt := t.(type) {
		case *godwarf.StructType:
			fields = tt.Field
		case *godwarf.StringType:
			fields = tt.Field
		case *godwarf.SliceType:
			fields = tt.Field
		default:
			return p, nil, fmt.Errorf(".%s: a %s is not a struct", st.name, t)
		}
		var names []string
		for _, f := range fields {
			if f.Name == st.name {
				q, err := p.at(f.ByteOffset, f.Type.Size())
				return q, f.Type, err
			}
			names = append(names, f.Name)
		}
		return p, nil, fmt.Errorf("%s has no member %s; its members: %s", t, st.name, strings.Join(names, ", "))
	case '[':
		var elem godwarf.Type
		switch tt := t.(type) {
		case *godwarf.ArrayType:
			if tt.Count >= 0 && st.index >= tt.Count {
				return p, nil, fmt.Errorf("[%d]: a %s has %d elements", st.index, t, tt.Count)
			}
			elem = tt.Type
			q, err := p.at(st.index*elem.Size(), elem.Size())
			return q, elem, err
		case *godwarf.PtrType:
			elem = tt.Type
			q, err := p.at(0, 8)
			return place{base: q.value(), off: st.index * elem.Size()}, elem, err
		case *godwarf.SliceType:
			elem = tt.ElemType
			q, err := p.at(0, 8)
			return place{base: q.value(), off: st.index * elem.Size()}, elem, err
		}
		return p, nil, fmt.Errorf("[%d]: a %s is not an array, pointer or slice", st.index, t)
	}
	return p, nil, fmt.Errorf("bad path step")
}

// leaf is the fetch-args of a value of type t at p.
func leaf(p place, t godwarf.Type, want *uprobe.Type) ([]Arg, error) {
	name := t.String()
	t = strip(t)
	if want != nil && want.Kind == uprobe.String {
		switch tt := t.(type) {
		case *godwarf.PtrType:
			q, err := p.at(0, 8)
			return []Arg{{Expr: place{base: q.value()}.mem(), Type: *want, TypeName: name}}, err
		case *godwarf.ArrayType:
			if p.inReg || p.pieces != nil {
				return nil, fmt.Errorf("a %s in registers is not a string in memory", name)
			}
			return []Arg{{Expr: p.mem(), Type: *want, TypeName: name}}, nil
		case *godwarf.StringType:
			return goString(p, *want, name)
		default:
			return nil, fmt.Errorf("a %s is not a string (%v)", name, tt)
		}
	}
	if want != nil {
		q, err := p.at(0, int64(want.Size))
		if err != nil {
			return nil, err
		}
		return []Arg{{Expr: q.value(), Type: *want, TypeName: name}}, nil
	}
	switch tt := t.(type) {
	case *godwarf.StringType:
		return goString(p, uprobe.Type{Kind: uprobe.String}, name)
	case *godwarf.SliceType:
		ptr, err := p.at(0, 8)
		if err != nil {
			return nil, err
		}
		l, err := p.at(8, 8)
		if err != nil {
			return nil, err
		}
		// Its length and its first elements (docs/DESIGN.md §10).
		var et uprobe.Type
		if _, ok := strip(tt.ElemType).(*godwarf.StringType); ok {
			et, err = uprobe.Type{Kind: uprobe.String}, nil
		} else {
			et, err = scalar(tt.ElemType)
		}
		if err == nil {
			et.Len = SliceElems
			return []Arg{{Expr: place{base: ptr.value()}.mem(), Len: l.value(), Type: et, TypeName: name}}, nil
		}
		// Elements no fetch type holds (structs): the length and the
		// capacity; xs[i].f reads an element's member.
		c, err := p.at(16, 8)
		if err != nil {
			return nil, err
		}
		return []Arg{
			{Name: "len", Expr: l.value(), Type: uprobe.Type{Kind: uprobe.Signed, Size: 8}, TypeName: "int"},
			{Name: "cap", Expr: c.value(), Type: uprobe.Type{Kind: uprobe.Signed, Size: 8}, TypeName: "int"},
		}, nil
	case *godwarf.PtrType:
		if isChar(tt.Type) {
			q, err := p.at(0, 8)
			return []Arg{{Expr: place{base: q.value()}.mem(), Type: uprobe.Type{Kind: uprobe.String}, TypeName: name}}, err
		}
	case *godwarf.ArrayType:
		if isChar(tt.Type) && !p.inReg && p.pieces == nil {
			return []Arg{{Expr: p.mem(), Type: uprobe.Type{Kind: uprobe.String}, TypeName: name}}, nil
		}
		return nil, fmt.Errorf("it is a %s: name an element ([N])", name)
	case *godwarf.StructType:
		var ms []string
		for _, f := range tt.Field {
			ms = append(ms, f.Name)
		}
		return nil, fmt.Errorf("it is a %s: name a member (%s)", name, strings.Join(ms, ", "))
	}
	ft, err := scalar(t)
	if err != nil {
		return nil, err
	}
	q, err := p.at(0, int64(ft.Size))
	if err != nil {
		return nil, err
	}
	return []Arg{{Expr: q.value(), Type: ft, TypeName: name}}, nil
}

// SliceElems is how many of a Go slice's first elements a variable of
// slice type fetches ([]int, []string: xs=[10]{0,1,2,3,4,5,6,7,...}).
const SliceElems = 8

// goString is a Go string at p: its pointer and its length.
func goString(p place, typ uprobe.Type, name string) ([]Arg, error) {
	ptr, err := p.at(0, 8)
	if err != nil {
		return nil, err
	}
	n, err := p.at(8, 8)
	if err != nil {
		return nil, err
	}
	return []Arg{{Expr: place{base: ptr.value()}.mem(), Len: n.value(), Type: typ, TypeName: name}}, nil
}

// GoidOffset is the offset of goid in the Go runtime's g, from the
// DWARF of the file (not a constant: it moves between Go versions).
func (d *Data) GoidOffset() (int64, error) {
	if d.goid >= 0 {
		return d.goid, nil
	}
	if d.goid == -2 {
		return 0, fmt.Errorf("%s: no runtime.g with a goid in its DWARF", d.DebugPath)
	}
	d.goid = -2
	for i := 0; i < len(d.units) && d.gType == 0; i++ {
		d.index(i)
	}
	if d.gType == 0 {
		return 0, fmt.Errorf("%s: no runtime.g in its DWARF", d.DebugPath)
	}
	t, err := godwarf.ReadType(d.dw, 0, d.gType, d.types)
	if err != nil {
		return 0, fmt.Errorf("%s: runtime.g: %w", d.DebugPath, err)
	}
	st, ok := strip(t).(*godwarf.StructType)
	if !ok {
		return 0, fmt.Errorf("%s: runtime.g is a %s", d.DebugPath, t)
	}
	for _, f := range st.Field {
		if f.Name == "goid" {
			d.goid = f.ByteOffset
			return d.goid, nil
		}
	}
	return 0, fmt.Errorf("%s: runtime.g has no goid", d.DebugPath)
}

// funcLines are the statement addresses of f, in order.
func (d *Data) funcLines(f *Func) []uint64 {
	li := d.lineInfo(&d.units[f.unit])
	if li == nil {
		return nil
	}
	pcs, err := li.AllPCsBetween(f.Low, f.High-1, "", -1)
	if err != nil {
		return nil
	}
	return pcs
}

// LineVars are the variables visible at the first address of a source
// line of a function, and where each is there (perf probe -V, per line).
type LineVars struct {
	PC   uint64
	File string
	Line int
	Vars []Var
}

// VarsByLine returns the variables of function f line by line.
func (d *Data) VarsByLine(f *Func) ([]LineVars, error) {
	var out []LineVars
	seen := make(map[int]bool)
	pcs := d.funcLines(f)
	if len(pcs) == 0 {
		pcs = []uint64{f.Low}
	}
	for _, pc := range pcs {
		file, ln, _ := d.Line(pc)
		if seen[ln] {
			continue
		}
		seen[ln] = true
		vs, err := d.Vars(pc)
		if err != nil {
			return nil, err
		}
		out = append(out, LineVars{PC: pc, File: file, Line: ln, Vars: vs})
	}
	return out, nil
}

// AfterPrologue returns the first address of f past its prologue: the
// line table's prologue_end, else the first statement of a line other
// than the one f starts on (what perf probe takes). gcc -O0 keeps
// parameters in stack slots that its prologue fills: at the entry they
// hold garbage, which a probe must not report.
func (d *Data) AfterPrologue(f *Func) (uint64, bool) {
	li := d.lineInfo(&d.units[f.unit])
	if li == nil {
		return 0, false
	}
	if pc, _, _, ok := li.PrologueEndPC(f.Low, f.High); ok && pc > f.Low {
		return pc, true
	}
	_, first, _ := d.Line(f.Low)
	for _, pc := range d.funcLines(f) {
		if _, ln, ok := d.Line(pc); ok && pc > f.Low && ln != first {
			return pc, true
		}
	}
	return 0, false
}

// FrameBased reports whether the location of the variable path at pc is
// memory relative to the frame (a stack slot), not a register.
func (d *Data) FrameBased(pc uint64, path string) bool {
	root, _, err := parsePath(path)
	if err != nil {
		return false
	}
	s, err := d.scopeAt(pc)
	if err != nil {
		return false
	}
	v, ok := s.lookup(root)
	if !ok {
		return false
	}
	p, err := d.location(s, v, pc)
	return err == nil && !p.inReg && p.pieces == nil && !p.static && p.base != nil && p.base.Op == uprobe.OpReg && (p.base.Reg == arch.RSP || p.base.Reg == arch.RBP)
}
