package resolve

import (
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// DefaultMaxProbes is how many probes one spec may expand to when
// ExpandOptions do not say: a pattern that matches more is more likely a
// mistake than meant ("libc:*"), and each probe costs a site.
const DefaultMaxProbes = 10000

// ErrNoMatch is wrapped by Expand when a pattern, a C++ name or a USDT
// probe matches nothing in the file; ErrTooManyProbes when a spec would
// expand to more than the limit.
var (
	ErrNoMatch       = errors.New("matches nothing")
	ErrTooManyProbes = errors.New("too many probes")
)

// ExpandOptions bound Expand; nil is the defaults.
type ExpandOptions struct {
	// MaxProbes is the most probes one spec may expand to; 0 is
	// DefaultMaxProbes.
	MaxProbes int
	// Warn, if set, is told what an expansion left out: the GNU
	// indirect functions (IFUNC) a glob matched besides ordinary
	// functions, whose resolvers run once, at load.
	Warn func(error)
}

// Expand turns a spec that names several probe points, or names one by a
// name that is not a symbol of the file, into the plain specs the
// backends arm (docs/DESIGN.md §9):
//
//   - usdt:PATH|LIB:PROVIDER:NAME: one PATH:OFFSET(REF_CTR_OFFSET) spec
//     per location of each matching SDT probe, its $argN replaced by the
//     location's own argument specs (all of them, named arg1..argN, when
//     the spec has no fetch-args); PATH is the file found;
//   - PATH:GLOB and LIB:GLOB: one spec per matching function, matched
//     against the symbol's name and its demangled forms;
//   - a name that is no symbol but a C++ name ("ns::Foo::bar",
//     "over(int)", "over"): one spec per function whose demangled name,
//     with or without its parameters, is that name (every overload of
//     "over").
//
// Every other spec comes back alone, as it is. The probes a spec expands
// to have unique GROUP/EVENT names: the symbol's (demangled, without
// parameters) or the SDT probe's, with "_2", "_3"... when names repeat.
// A pattern that matches nothing is an error wrapping ErrNoMatch with
// the closest names; more than MaxProbes matches, one wrapping
// ErrTooManyProbes that says how many.
func (r *Resolver) Expand(spec *uprobe.Spec, opts *ExpandOptions) ([]*uprobe.Spec, error) {
	if spec.Kernel || !spec.USDT && spec.Symbol == "" {
		return []*uprobe.Spec{spec}, nil
	}
	max := DefaultMaxProbes
	var warn func(error)
	if opts != nil {
		if opts.MaxProbes > 0 {
			max = opts.MaxProbes
		}
		warn = opts.Warn
	}
	f, err := r.File(spec)
	if err != nil {
		return nil, err
	}
	if spec.USDT {
		return expandUSDT(f, spec, max)
	}
	if !spec.IsGlob() {
		if _, err := f.Lookup(spec.Symbol); err == nil {
			return []*uprobe.Spec{spec}, nil // a symbol of that very name
		}
		exp, err := expandSymbols(f, spec, max, warn)
		if errors.Is(err, ErrNoMatch) {
			// No demangled name either: resolving it says so, with
			// the closest symbols.
			return []*uprobe.Spec{spec}, nil
		}
		return exp, err
	}
	return expandSymbols(f, spec, max, warn)
}

// ExpandAll expands each spec (Expand) and checks that the names of all
// the probes are unique.
func (r *Resolver) ExpandAll(specs []*uprobe.Spec, opts *ExpandOptions) ([]*uprobe.Spec, error) {
	var out []*uprobe.Spec
	seen := make(map[string]string)
	for _, s := range specs {
		exp, err := r.Expand(s, opts)
		if err != nil {
			return nil, err
		}
		for _, e := range exp {
			if prev, ok := seen[e.Probe()]; ok && len(exp) > 1 {
				return nil, fmt.Errorf("probe %q expands to %s, which %q names already: name the probes (p:GROUP/EVENT)", s.Text, e.Probe(), prev)
			}
			seen[e.Probe()] = s.Text
		}
		out = append(out, exp...)
	}
	return out, nil
}

// namer gives the probes of one expansion unique event names.
type namer struct {
	spec *uprobe.Spec
	used map[string]bool
}

// name returns a unique event name made from base (the spec's own event
// name when it gave one and the expansion has one probe).
func (n *namer) name(base string) string {
	if n.used == nil {
		n.used = make(map[string]bool)
	}
	base = eventBase(base)
	name := base
	for i := 2; n.used[name]; i++ {
		tag := "_" + strconv.Itoa(i)
		b := base
		if len(b)+len(tag) > maxEventLen {
			b = b[:maxEventLen-len(tag)]
		}
		name = b + tag
	}
	n.used[name] = true
	return name
}

// maxEventLen is the kernel's longest event name (MAX_EVENT_NAME_LEN-1).
const maxEventLen = 63

// eventBase makes base an event name: bytes outside [A-Za-z0-9_] become
// '_', runs of them one '_', a leading digit gets a '_'.
func eventBase(base string) string {
	b := make([]byte, 0, len(base))
	for i := 0; i < len(base); i++ {
		c := base[i]
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			c = '_'
			if len(b) > 0 && b[len(b)-1] == '_' && i > 0 && !isIdentByte(base[i-1]) {
				continue
			}
		}
		b = append(b, c)
	}
	s := strings.TrimRight(string(b), "_")
	if s == "" {
		s = "probe"
	}
	if s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	if len(s) > maxEventLen {
		s = s[:maxEventLen]
	}
	return s
}

func isIdentByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// explicitEvent reports whether spec named its event (p:GRP/EVENT).
func explicitEvent(spec *uprobe.Spec) bool {
	return spec.Event != uprobe.DefaultEvent(spec)
}

// match reports whether name matches the glob (path.Match's syntax, '/'
// an ordinary byte: C++ has operator/), or equals it when it is no glob.
func match(glob, name string) bool {
	slash := func(s string) string { return strings.ReplaceAll(s, "/", "\x00") }
	if ok, err := path.Match(slash(glob), slash(name)); err == nil && ok {
		return true
	}
	return glob == name
}

// expandSymbols expands a glob or a C++ name over the functions of f.
func expandSymbols(f *elfsym.File, spec *uprobe.Spec, max int, warn func(error)) ([]*uprobe.Spec, error) {
	if _, err := path.Match(spec.Symbol, ""); err != nil {
		return nil, fmt.Errorf("probe %q: bad pattern %q: %w", spec.Text, spec.Symbol, err)
	}
	type hit struct {
		sym   elfsym.Symbol
		short string
	}
	var hits []hit
	for _, s := range f.Symbols() {
		full, short := elfsym.Demangle(s.Name)
		if match(spec.Symbol, s.Name) || full != s.Name && (match(spec.Symbol, full) || match(spec.Symbol, short)) {
			hits = append(hits, hit{s, short})
		}
	}
	if spec.IsGlob() {
		// An IFUNC's symbol is its resolver, which the dynamic linker
		// runs once: a pattern means the functions calls reach, whose
		// implementations have names of their own (__strlen_avx2).
		var ifuncs []string
		kept := hits[:0]
		for _, h := range hits {
			if h.sym.Type == elf.STT_GNU_IFUNC {
				ifuncs = append(ifuncs, h.sym.Name)
			} else {
				kept = append(kept, h)
			}
		}
		if len(kept) > 0 && len(ifuncs) > 0 {
			hits = kept
			if warn != nil {
				warn(fmt.Errorf("probe %q: %d of the functions it matches in %s are indirect functions (IFUNC: %s), whose symbols are resolvers that run once: left out; their implementations have names of their own (ptprobe list %s '*%s*')",
					spec.Text, len(ifuncs), f.Path, strings.Join(ifuncs, ", "), f.Path, ifuncs[0]))
			}
		}
	}
	switch {
	case len(hits) == 0:
		return nil, fmt.Errorf("probe %q: no function of %s %w: %q%s", spec.Text, f.Path, ErrNoMatch, spec.Symbol, suggestSymbols(f, spec.Symbol))
	case len(hits) > max:
		return nil, fmt.Errorf("probe %q: %q matches %d functions of %s, more than the limit of %d (--max-probes raises it): %w",
			spec.Text, spec.Symbol, len(hits), f.Path, max, ErrTooManyProbes)
	}
	n := namer{spec: spec}
	own := explicitEvent(spec)
	out := make([]*uprobe.Spec, 0, len(hits))
	for _, h := range hits {
		c := *spec
		c.Symbol = h.sym.Name
		base := h.short
		if own {
			base = spec.Event
		} else {
			cc := c
			cc.Symbol = base
			base = uprobe.DefaultEvent(&cc)
		}
		c.Event = n.name(base)
		out = append(out, &c)
	}
	return out, nil
}

// suggestSymbols names the functions closest to a pattern that matched
// nothing: those of its literal part (what Lookup suggests).
func suggestSymbols(f *elfsym.File, glob string) string {
	lit := strings.Map(func(r rune) rune {
		if strings.ContainsRune("*?[]", r) {
			return -1
		}
		return r
	}, glob)
	if i := strings.IndexByte(lit, '('); i > 0 {
		lit = lit[:i]
	}
	if j := strings.LastIndex(lit, "::"); j >= 0 {
		lit = lit[j+2:]
	}
	if lit == "" {
		return ""
	}
	_, err := f.Lookup(lit)
	if err == nil {
		return fmt.Sprintf(" (did you mean %s?)", lit)
	}
	if i := strings.Index(err.Error(), " (did you mean"); i >= 0 {
		return err.Error()[i:]
	}
	return ""
}

// expandUSDT expands a USDT spec over the SDT probes of f.
func expandUSDT(f *elfsym.File, spec *uprobe.Spec, max int) ([]*uprobe.Spec, error) {
	probes, err := f.USDTProbes()
	if err != nil {
		return nil, fmt.Errorf("probe %q: %w", spec.Text, err)
	}
	var hits []elfsym.USDT
	for _, p := range probes {
		if match(spec.Provider, p.Provider) && match(spec.Symbol, p.Name) {
			hits = append(hits, p)
		}
	}
	switch {
	case len(hits) == 0 && len(probes) == 0:
		return nil, fmt.Errorf("probe %q: %s has no USDT probes (no .note.stapsdt): %w", spec.Text, f.Path, ErrNoMatch)
	case len(hits) == 0:
		var names []string
		for _, p := range probes {
			if n := p.Provider + ":" + p.Name; !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		more := ""
		if len(names) > 10 {
			names, more = names[:10], ", ..."
		}
		return nil, fmt.Errorf("probe %q: no USDT probe of %s %w: %s:%s (it has %s%s)", spec.Text, f.Path, ErrNoMatch,
			spec.Provider, spec.Symbol, strings.Join(names, ", "), more)
	case len(hits) > max:
		return nil, fmt.Errorf("probe %q: %s:%s matches %d USDT probe locations of %s, more than the limit of %d (--max-probes raises it): %w",
			spec.Text, spec.Provider, spec.Symbol, len(hits), f.Path, max, ErrTooManyProbes)
	}
	n := namer{spec: spec}
	own := explicitEvent(spec)
	out := make([]*uprobe.Spec, 0, len(hits))
	for _, h := range hits {
		c := *spec
		c.USDT, c.Provider, c.Symbol = false, "", ""
		c.Path, c.Offset, c.RefCtr = f.Path, h.Offset, h.SemOffset
		base := h.Name
		if own {
			base = spec.Event
		}
		c.Event = n.name(base)
		args, err := bindUSDT(f, spec, &h)
		if err != nil {
			return nil, err
		}
		c.Args = args
		out = append(out, &c)
	}
	return out, nil
}

// bindUSDT returns spec's fetch-args for one location of an SDT probe:
// each $argN is the location's Nth argument, with the argument's size and
// sign as its type when the fetch-arg gives none, and read as the address
// of a string for ":string". No fetch-args: all of the probe's.
func bindUSDT(f *elfsym.File, spec *uprobe.Spec, p *elfsym.USDT) ([]uprobe.FetchArg, error) {
	exprs := make([]*uprobe.Expr, len(p.Args))
	for i := range p.Args {
		e, err := usdtExpr(f, p, &p.Args[i])
		if err != nil {
			return nil, fmt.Errorf("probe %q: USDT probe %s:%s at file offset 0x%x of %s: argument %d %q: %w",
				spec.Text, p.Provider, p.Name, p.Offset, f.Path, i+1, p.Args[i].Text, err)
		}
		exprs[i] = e
	}
	if len(spec.Args) == 0 {
		out := make([]uprobe.FetchArg, len(p.Args))
		for i := range p.Args {
			out[i] = uprobe.FetchArg{Text: "$arg" + strconv.Itoa(i+1), Name: "arg" + strconv.Itoa(i+1),
				Type: usdtType(&p.Args[i]), Expr: exprs[i]}
		}
		return out, nil
	}
	out := make([]uprobe.FetchArg, len(spec.Args))
	for i := range spec.Args {
		a := spec.Args[i]
		typed := strings.Contains(a.Text, ":")
		if a.Expr.Op == uprobe.OpArgN {
			n := int(a.Expr.Imm)
			if n >= 1 && n <= len(p.Args) {
				switch {
				case a.Type.Kind == uprobe.String:
					a.Expr = &uprobe.Expr{Op: uprobe.OpDeref, Inner: exprs[n-1]}
				case !typed:
					a.Type = usdtType(&p.Args[n-1])
					a.Expr = exprs[n-1]
				case p.Args[n-1].HighByte && a.Type.Len == 0:
					// $argN:s8 of %ah is %ah signed, not %al: the
					// high byte taken out, the type's sign kept.
					a.Type = highByte(a.Type.Kind)
					a.Expr = exprs[n-1]
				default:
					a.Expr = exprs[n-1]
				}
				out[i] = a
				continue
			}
		}
		e, err := substArgs(a.Expr, exprs)
		if err != nil {
			pos := a.Pos + max(0, strings.Index(a.Text, "$arg"))
			return nil, &uprobe.Error{Text: spec.Text, Pos: pos, Msg: fmt.Sprintf("USDT probe %s:%s has %d arguments: %v", p.Provider, p.Name, len(p.Args), err)}
		}
		a.Expr = e
		out[i] = a
	}
	return out, nil
}

// substArgs returns e with each $argN replaced by exprs[N-1].
func substArgs(e *uprobe.Expr, exprs []*uprobe.Expr) (*uprobe.Expr, error) {
	if e == nil {
		return nil, nil
	}
	if e.Op == uprobe.OpArgN {
		n := int(e.Imm)
		if n < 1 || n > len(exprs) {
			return nil, fmt.Errorf("$arg%d is not one of them", n)
		}
		return exprs[n-1], nil
	}
	inner, err := substArgs(e.Inner, exprs)
	if err != nil || inner == e.Inner {
		return e, err
	}
	c := *e
	c.Inner = inner
	return &c, nil
}

// usdtType is the fetch type of an SDT argument: its size, signed or not.
func usdtType(a *elfsym.USDTArg) uprobe.Type {
	if a.HighByte {
		k := uprobe.Unsigned
		if a.Signed {
			k = uprobe.Signed
		}
		return highByte(k)
	}
	if a.Signed {
		return uprobe.Type{Kind: uprobe.Signed, Size: a.Size}
	}
	return uprobe.Type{Kind: uprobe.Unsigned, Size: a.Size}
}

// highByte is the type of %ah..%dh, bits 8..15 of the register: the
// kernel's bitfield b8@8/64, or, signed (-1@%ah), the same bits
// sign-extended, which only the ptrace backend reads (the kernel's
// bitfields are unsigned).
func highByte(k uprobe.TypeKind) uprobe.Type {
	if k != uprobe.Signed {
		k = uprobe.Unsigned
	}
	return uprobe.Type{Kind: k, Size: 8, BitWidth: 8, BitOffset: 8}
}

// usdtExpr is the fetch expression of an SDT argument at probe p: its
// value before the type's truncation.
func usdtExpr(f *elfsym.File, p *elfsym.USDT, a *elfsym.USDTArg) (*uprobe.Expr, error) {
	reg := func(name string) (arch.Reg, error) {
		r, ok := arch.RegByName(name)
		if !ok {
			return 0, fmt.Errorf("register %s has no fetch-arg name", name)
		}
		return r, nil
	}
	switch a.Kind {
	case elfsym.USDTImm:
		return &uprobe.Expr{Op: uprobe.OpImm, Imm: a.Disp}, nil
	case elfsym.USDTReg:
		r, err := reg(a.Reg)
		if err != nil {
			return nil, err
		}
		return &uprobe.Expr{Op: uprobe.OpReg, Reg: r}, nil
	}
	// Memory. A symbol ("counter(%rip)", or absolute "counter") is an
	// address in the file: @+OFF, OFF counted as the kernel counts it,
	// from where the probed instruction's file offset is mapped.
	if a.Sym != "" {
		if a.Index != "" || a.Reg != "" && a.Reg != "rip" {
			return nil, fmt.Errorf("a symbol with a base or index register is not supported")
		}
		v, ok := f.DataSymbol(a.Sym)
		if !ok {
			return nil, fmt.Errorf("symbol %q is not in the file's symbol tables", a.Sym)
		}
		v += uint64(a.Disp)
		return &uprobe.Expr{Op: uprobe.OpFileOffset, Imm: int64(v - (p.Vaddr - p.Offset))}, nil
	}
	if a.Reg == "rip" {
		return nil, fmt.Errorf("a numeric %%rip-relative operand has no meaning outside an instruction")
	}
	var base *uprobe.Expr
	if a.Reg != "" {
		r, err := reg(a.Reg)
		if err != nil {
			return nil, err
		}
		base = &uprobe.Expr{Op: uprobe.OpReg, Reg: r}
	}
	if a.Index != "" {
		r, err := reg(a.Index)
		if err != nil {
			return nil, err
		}
		base = &uprobe.Expr{Op: uprobe.OpIndexed, Inner: base, Reg: r, Imm: int64(a.Scale)}
	}
	if base == nil {
		return &uprobe.Expr{Op: uprobe.OpAddr, Imm: a.Disp}, nil
	}
	return &uprobe.Expr{Op: uprobe.OpDeref, Imm: a.Disp, Inner: base}, nil
}
