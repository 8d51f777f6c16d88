package resolve

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/resolve/dwarf"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Names is what names mean in one file: the resolver asks it what a
// variable path means at a probed address, and gets the fetch-arg tree
// both backends execute there (docs/DESIGN.md §10). The file's DWARF
// (DWARFNames) is the one implementation ptprobe has.
type Names interface {
	// Var returns the fetch-args the variable path ("p->name", "s.len",
	// "*p", "arr[3]") means at pc, a link-time address; want is the
	// type the spec wrote, nil if none.
	Var(pc uint64, path string, want *uprobe.Type) ([]NameArg, error)
	// Params names the parameters of the function containing pc.
	Params(pc uint64) ([]string, error)
	// ReturnType is the fetch type of the result of the function that
	// starts at pc.
	ReturnType(pc uint64) (uprobe.Type, error)
	// LinePCs are the addresses a probe on file:line goes to.
	LinePCs(file string, line int) ([]uint64, error)
	// FuncLinePCs are those of line rel of the function containing pc,
	// counted from the line it is declared on, in that function.
	FuncLinePCs(pc uint64, rel int) ([]uint64, error)
	// EntryPC is where an entry probe of the function starting at pc
	// must be for the variables paths to hold their values: pc, or past
	// the prologue when they are stack slots the prologue fills.
	EntryPC(pc uint64, paths []string) uint64
	// GoidOffset is the offset of the goroutine id in a Go runtime.g.
	GoidOffset() (int64, error)
	Close() error
}

// NameArg is a fetch-arg a name gives. Suffix is appended to the
// fetch-arg's name ("len" and "cap" of a Go slice); Len is a Go string's
// length (uprobe.FetchArg.Len).
type NameArg struct {
	Suffix string
	Expr   *uprobe.Expr
	Len    *uprobe.Expr
	Type   uprobe.Type
}

// NamesOpener opens the Names of the file at path.
type NamesOpener func(path string) (Names, error)

// DWARFNames opens the DWARF debug information of the file at path (in
// the file, by build-id, by .gnu_debuglink) as its Names.
func DWARFNames(path string) (Names, error) {
	d, err := dwarf.Open(path, nil)
	if err != nil {
		return nil, err
	}
	return dwarfNames{d}, nil
}

type dwarfNames struct{ d *dwarf.Data }

func (n dwarfNames) Var(pc uint64, path string, want *uprobe.Type) ([]NameArg, error) {
	as, err := n.d.Resolve(pc, path, want)
	if err != nil {
		return nil, err
	}
	out := make([]NameArg, len(as))
	for i, a := range as {
		out[i] = NameArg{Suffix: a.Name, Expr: a.Expr, Len: a.Len, Type: a.Type}
	}
	return out, nil
}

func (n dwarfNames) Params(pc uint64) ([]string, error) { return n.d.Params(pc) }

func (n dwarfNames) ReturnType(pc uint64) (uprobe.Type, error) {
	t, _, err := n.d.ReturnType(pc)
	return t, err
}

func (n dwarfNames) LinePCs(file string, line int) ([]uint64, error) {
	return n.d.LinePCs(file, line)
}

func (n dwarfNames) FuncLinePCs(pc uint64, rel int) ([]uint64, error) {
	return n.d.FuncLinePCs(pc, rel)
}

func (n dwarfNames) EntryPC(pc uint64, paths []string) uint64 {
	f, ok := n.d.FuncAt(pc)
	if !ok || f.Low != pc {
		return pc
	}
	for _, p := range paths {
		if n.d.FrameBased(pc, p) {
			if after, ok := n.d.AfterPrologue(f); ok {
				return after
			}
		}
	}
	return pc
}

func (n dwarfNames) GoidOffset() (int64, error) { return n.d.GoidOffset() }
func (n dwarfNames) Close() error               { return n.d.Close() }

// names returns the Names of f, opened once; nil with the error when the
// file has none.
func (r *Resolver) names(f *elfsym.File) (Names, error) {
	if n, ok := r.namesOf[f.Path]; ok {
		return n, r.namesErr[f.Path]
	}
	open := r.openNames
	if open == nil {
		open = DWARFNames
	}
	n, err := open(f.Path)
	r.namesOf[f.Path], r.namesErr[f.Path] = n, err
	return n, err
}

// NeedsNames reports whether a spec has a name only debug information
// can bind: a source line, a variable path, $params.
func NeedsNames(spec *uprobe.Spec) bool {
	if spec.SrcFile != "" || spec.SrcFunc != "" {
		return true
	}
	for i := range spec.Args {
		for e := spec.Args[i].Expr; e != nil; e = e.Inner {
			if e.Op == uprobe.OpName {
				return true
			}
		}
	}
	return false
}

// BindNames binds the names of spec, once, to the fetch-arg trees they mean
// at the probed address, and returns the specs both backends take: a
// PATH:FILE:LINE target gives one spec per address of the line (its
// events named EVENT, EVENT_1, ...), each variable path and $params the
// fetch-args of the variables, an untyped $retval the function's DWARF
// result type, and a probe in a Go function with the register ABI a goid
// fetch-arg, read from runtime.g at the offset the file's DWARF gives
// (docs/DESIGN.md §10). A spec without such names comes back as it is,
// and a file without debug information is an error only when the spec
// asks for a name. Errors are *Error.
func (r *Resolver) BindNames(spec *uprobe.Spec) ([]*uprobe.Spec, error) {
	if spec.Kernel {
		return []*uprobe.Spec{spec}, nil
	}
	need := NeedsNames(spec)
	if !need && (spec.USDT || spec.IsGlob()) {
		// Many probes: the backends expand it (Expand) and bind
		// nothing (docs/DESIGN.md §9).
		return []*uprobe.Spec{spec}, nil
	}
	f, err := r.File(spec)
	if err != nil {
		if need {
			return nil, err
		}
		return []*uprobe.Spec{spec}, nil // the backend says it
	}
	typedRet := false
	for i := range spec.Args {
		if a := &spec.Args[i]; a.Expr != nil && a.Expr.Op == uprobe.OpRetval && !a.Typed {
			typedRet = true
		}
	}
	if !need && !typedRet && !f.IsGo() {
		return []*uprobe.Spec{spec}, nil
	}
	fail := func(err error) ([]*uprobe.Spec, error) {
		return nil, &Error{Spec: spec.Text, Path: f.Path, Err: err}
	}
	names, nerr := r.names(f)
	if nerr != nil {
		if need {
			return fail(nerr)
		}
		return []*uprobe.Spec{spec}, nil // no goid or typed $retval without DWARF
	}

	// The addresses probed, link-time, and the base of each target.
	var pcs []uint64
	var sym elfsym.Symbol
	switch {
	case spec.SrcFile != "":
		if spec.Kind == uprobe.Return {
			return fail(errors.New("a source line takes entry probes only"))
		}
		if pcs, err = names.LinePCs(spec.SrcFile, spec.SrcLine); err != nil {
			return fail(err)
		}
	case spec.SrcFunc != "":
		if spec.Kind == uprobe.Return {
			return fail(errors.New("a source line takes entry probes only"))
		}
		fsym, err := f.Lookup(spec.SrcFunc)
		if err != nil {
			return fail(err)
		}
		if pcs, err = names.FuncLinePCs(fsym.Value, spec.SrcLine); err != nil {
			return fail(err)
		}
	case spec.Symbol != "":
		if sym, err = f.Lookup(spec.Symbol); err != nil {
			return fail(err)
		}
		pcs = []uint64{sym.Value + spec.Offset}
	default:
		vaddr, err := f.Vaddr(spec.Offset)
		if err != nil {
			return fail(fmt.Errorf("file offset 0x%x: %w", spec.Offset, err))
		}
		pcs = []uint64{vaddr}
	}
	if spec.Kind == uprobe.Entry && spec.Symbol != "" && spec.Offset == 0 {
		var paths []string
		for i := range spec.Args {
			if e := spec.Args[i].Expr; e != nil && e.Op == uprobe.OpName {
				paths = append(paths, e.Sym)
			}
		}
		if len(paths) > 0 {
			pcs[0] = names.EntryPC(pcs[0], paths)
		}
	}

	var out []*uprobe.Spec
	for i, pc := range pcs {
		args, err := r.bindNames(spec, f, names, pc)
		if err != nil {
			return fail(err)
		}
		s := *spec
		s.Args = args
		if spec.SrcFile != "" || spec.SrcFunc != "" || pc != sym.Value+spec.Offset {
			if spec.SrcFile != "" || spec.SrcFunc != "" {
				s.SrcFile, s.SrcFunc, s.SrcLine, s.Symbol = "", "", 0, ""
			}
			if s.Symbol != "" {
				s.Offset = pc - sym.Value
			} else {
				off, err := f.FileOffset(pc)
				if err != nil {
					return fail(fmt.Errorf("0x%x: %w", pc, err))
				}
				s.Offset = off
			}
		}
		if i > 0 {
			s.Event = fmt.Sprintf("%s_%d", spec.Event, i)
		}
		s.Text = s.String()
		placeArgs(&s)
		out = append(out, &s)
	}
	return out, nil
}

// placeArgs sets the positions of the fetch-args of s in its text, which
// BindNames writes anew: a caret a backend puts under an arg (the
// kernel's refusal of a return probe's entry values) is then under it.
// The args are the end of the text, each after a space.
func placeArgs(s *uprobe.Spec) {
	end := len(s.Text)
	for i := len(s.Args) - 1; i >= 0; i-- {
		a := &s.Args[i]
		if j := strings.LastIndex(s.Text[:end], " "+a.Text); j >= 0 {
			a.Pos, end = j+1, j
		}
	}
}

// atEntry is e, a tree valid at a function's entry, read at its return:
// each register is the value the function was entered with, which the
// ptrace engine saves for the ABI's argument registers (uprobe.OpEntryReg,
// a return probe's $argN); memory is read at the return. A tree that
// needs another register (a stack slot, relative to %sp) cannot be
// saved: an error says where the value is.
func atEntry(e *uprobe.Expr, abi uprobe.ABI) (*uprobe.Expr, error) {
	if e == nil {
		return nil, nil
	}
	if e.Op == uprobe.OpReg {
		for i, r := range abi.ArgRegs() {
			if r == e.Reg {
				return &uprobe.Expr{Op: uprobe.OpEntryReg, Reg: r, Imm: int64(i + 1)}, nil
			}
		}
		where := "in %" + e.Reg.KernelName()
		if e.Reg == arch.RSP || e.Reg == arch.RBP {
			// A stack argument, or gcc -O0's stack slot that the
			// prologue fills.
			where = "memory relative to %" + e.Reg.KernelName() + " (a stack slot: an argument passed on the stack, or where gcc -O0 keeps parameters)"
		}
		return nil, fmt.Errorf("at the function's entry it is %s, and a return probe saves only the argument registers of the %s there (%s, read as $arg1...): fetch it with $argN, or at the entry", where, abi, regNames(abi.ArgRegs()))
	}
	inner, err := atEntry(e.Inner, abi)
	if err != nil || inner == e.Inner {
		return e, err
	}
	c := *e
	c.Inner = inner
	return &c, nil
}

func regNames(rs []arch.Reg) string {
	var b []byte
	for i, r := range rs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, '%')
		b = append(b, r.KernelName()...)
	}
	return string(b)
}

// bindNames returns the fetch-args of spec at pc with every name bound.
func (r *Resolver) bindNames(spec *uprobe.Spec, f *elfsym.File, names Names, pc uint64) ([]uprobe.FetchArg, error) {
	var out []uprobe.FetchArg
	taken := make(map[string]bool)
	for i := range spec.Args {
		taken[spec.Args[i].Name] = true
	}
	// A return probe's variables are their values at the entry: the
	// argument registers the engine saves there (docs/DESIGN.md §10).
	abi := uprobe.SysV
	if _, _, fn, ok := f.Function(pc); ok && f.GoRegisterABI(fn) {
		abi = uprobe.GoRegs
	}
	add := func(a uprobe.FetchArg, path string, want *uprobe.Type) error {
		nas, err := names.Var(pc, path, want)
		if err != nil {
			return err
		}
		for _, na := range nas {
			if spec.Kind == uprobe.Return {
				var err error
				if na.Expr, err = atEntry(na.Expr, abi); err == nil {
					na.Len, err = atEntry(na.Len, abi)
				}
				if err != nil {
					return &uprobe.Error{Text: spec.Text, Pos: a.Pos, Msg: fmt.Sprintf("%s: %v", path, err)}
				}
			}
			b := a
			b.Expr, b.Len, b.Type = na.Expr, na.Len, na.Type
			if na.Suffix != "" {
				b.Name = a.Name + "_" + na.Suffix
			}
			b.Text = b.String()
			out = append(out, b)
		}
		return nil
	}
	for i := range spec.Args {
		a := spec.Args[i]
		e := a.Expr
		switch {
		case e != nil && e.Op == uprobe.OpName && e.Sym == "$params":
			ps, err := names.Params(pc)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				if taken[p] {
					continue
				}
				if err := add(uprobe.FetchArg{Name: p, Text: p, Pos: a.Pos}, p, nil); err != nil {
					return nil, err
				}
			}
		case e != nil && e.Op == uprobe.OpName:
			var want *uprobe.Type
			if a.Typed {
				want = &a.Type
			}
			if err := add(a, e.Sym, want); err != nil {
				return nil, err
			}
		case e != nil && e.Op == uprobe.OpRetval && !a.Typed:
			if t, err := names.ReturnType(pc); err == nil {
				a.Type = t
				a.Text = a.String()
			}
			out = append(out, a)
		default:
			out = append(out, a)
		}
	}
	if f.IsGo() && !taken["goid"] {
		if _, _, fn, ok := f.Function(pc); ok && f.GoRegisterABI(fn) {
			if off, err := names.GoidOffset(); err == nil {
				// ABIInternal keeps the running goroutine's g in R14
				// throughout Go code.
				g := uprobe.FetchArg{Name: "goid", Type: uprobe.Type{Kind: uprobe.Unsigned, Size: 8},
					Expr: &uprobe.Expr{Op: uprobe.OpDeref, Imm: off, Inner: &uprobe.Expr{Op: uprobe.OpReg, Reg: arch.R14}}}
				g.Text = g.String()
				out = append(out, g)
			}
		}
	}
	return out, nil
}
