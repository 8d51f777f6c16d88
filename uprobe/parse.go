package uprobe

import (
	"math"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/arch"
)

// Limits of the grammar. They are the kernel's, so that a spec ptprobe
// accepts is not refused by tracefs for being too big.
const (
	// maxArgs is MAX_TRACE_ARGS.
	maxArgs = 128
	// maxNameLen is MAX_EVENT_NAME_LEN-1: the longest group or event name.
	maxNameLen = 63
	// maxArgNameLen is MAX_ARG_NAME_LEN.
	maxArgNameLen = 32
	// maxDeref is how many memory accesses (+OFFS(...), @ADDR, @+OFFS) one
	// fetch-arg may make: the kernel compiles an arg into at most
	// FETCH_INSN_MAX (16) instructions, of which the base fetch and the
	// terminator take two.
	maxDeref = 14
	// maxArrayLen is MAX_ARRAY_LEN.
	maxArrayLen = 64
	// maxStackN is PARAM_MAX_STACK on x86-64 (THREAD_SIZE / 8).
	maxStackN = 2048
	// maxArgN bounds $argN as the kernel does (PARAM_MAX_STACK); which
	// N a probed function has depends on its ABI (Spec.Bind).
	maxArgN = maxStackN
	// maxActiveMax is KRETPROBE_MAXACTIVE_MAX.
	maxActiveMax = 4096
	// maxKprobeOffset: the kernel refuses symbol offsets above UINT_MAX.
	maxKprobeOffset = math.MaxUint32
)

// Error messages. Where the kernel has a message for the same problem
// (trace_probe.h, ERRORS) it is used verbatim, so that ptprobe and the
// kernel's error_log read alike.
const (
	errNoSpec        = "Probe point is not specified"
	errDelete        = "Deleting events is not supported by ptprobe"
	errNoGroup       = "Group name is not specified"
	errGroupTooLong  = "Group name is too long"
	errBadGroup      = "Group name must follow the same rules as C identifiers"
	errNoEvent       = "Event name is not specified"
	errEventTooLong  = "Event name is too long"
	errBadEvent      = "Event name must follow the same rules as C identifiers"
	errNoColon       = "Probe point must be PATH:OFFSET or PATH:SYMBOL[+OFFS]"
	errNoFile        = "File name is not specified"
	errBadLibrary    = "Invalid library name (give the path of other files)"
	errBadSuffix     = "Invalid probed address suffix"
	errRefCtr        = "A reference counter offset follows a file offset, not a symbol"
	errBadRefCtr     = "Invalid reference counter offset"
	errRefCtrBrace   = "Reference counter brace is not closed"
	errRefCtrSuffix  = "Reference counter has wrong suffix"
	errUSDTForm      = "USDT probe point must be usdt:PATH|LIB:PROVIDER:NAME"
	errUSDTReturn    = "A USDT probe has no return"
	errBadUSDTName   = "Invalid USDT provider or probe name"
	errQuote         = "Unterminated quote"
	errBadOffs       = "Invalid uprobe offset"
	errNoSymbol      = "Symbol is not specified"
	errBadSymbol     = "Unknown symbol syntax"
	errSymOffs       = "Offset is not a number"
	errBadRetprobe   = "Retprobe address must be an function entry"
	errNoFentryArgs  = "$arg* can be used only on function entry or exit"
	errTooManyArgs   = "Too many arguments are specified"
	errArgNameLong   = "Argument name is too long"
	errNoArgName     = "Argument name is not specified"
	errBadArgName    = "Argument name must follow the same rules as C identifiers"
	errUsedArgName   = "This argument name is already used"
	errNoArgBody     = "No argument expression"
	errBadType       = "Unknown type is specified"
	errBadString     = "String accepts only memory argument"
	errCommType      = "$comm and immediate-string only accepts string type"
	errRetvalOnProbe = "$retval is not available on probe"
	errBadStackNum   = "Invalid stack number"
	errBadArgNum     = "Invalid argument number"
	errBadVar        = "Invalid $-variable specified" // the kernel spells it "valiable"
	errBadReg        = "Invalid register name"
	errBadMemAddr    = "Invalid memory address"
	errBadFileOffs   = "Invalid file offset value"
	errSymOnUprobe   = "Symbol is not available with uprobe"
	errTooManyOps    = "Dereference is too much nested"
	errDerefBrace    = "Dereference needs a brace"
	errBadDerefOffs  = "Invalid dereference offset"
	errDerefOpen     = "Dereference brace is not closed"
	errCommDeref     = "$comm can not be dereferenced"
	errBadFetchArg   = "Invalid fetch argument"
	errBadImm        = "Invalid immediate value"
	errArrayOpen     = "Array is not closed"
	errArraySuffix   = "Array has wrong suffix"
	errBadArrayNum   = "Invalid array size"
	errArrayTooBig   = "Array number is too big"
	errBadBitfield   = "Invalid bitfield"
	errImmStrOpen    = "String is not closed with '\"'"
	errBadLine       = "Invalid source line number"

	// Of kernel probe specs only.
	errBadCommand   = "Probe definition must be started with 'p' or 'r'"
	errMaxactType   = "Maxactive is only for function exit"
	errBadMaxact    = "Invalid maxactive number"
	errMaxactBig    = "Maxactive is too big"
	errBadAddr      = "Invalid probed address or symbol"
	errUprobeTarget = "This is a uprobe spec (PATH:OFFSET): use uprobe_events"
	errFileOnKprobe = "File offset is not available with kprobe"
)

// reservedArgNames are the field names every probe event already has; an
// argument called so would clash with them in the event's format (the
// kernel's reserved_field_names).
var reservedArgNames = [...]string{
	"common_type", "common_flags", "common_preempt_count", "common_pid",
	"common_tgid", "__probe_ip", "__probe_ret_ip", "__probe_func",
}

// Parse parses one probe spec (see Spec). Errors are *Error with the byte
// position of the problem in text.
//
// The grammar is the kernel's uprobe_events grammar with ptprobe's
// extensions: PATH:SYMBOL[+OFFS] and LIB:SYMBOL[+OFFS] targets (LIB has no
// '/'), an optional leading command (then "p"), and the $argN fetch-arg
// (N = 1..6, the SysV integer argument registers). Numbers are read as the
// kernel's kstrtoul does: 0x-prefixed hex, 0-prefixed octal, else decimal.
// A PATH is split from its target at the last ':', as the kernel does; a
// LIB ends at the first ':' and is made of the bytes of library file
// names only (letters, digits, "._-+"), so that a garbled spec such as
// "lig(%di):string" is refused with a caret rather than taken for a
// library. "GRP/" with no event name keeps the default name, as the
// kernel's "p[:[GRP/][EVENT]]" does (so 6.x tracefs READMEs write it, and
// 6.18 names "p:g/ /bin/true:0" g/p_true_0x0; 4.19's README wanted an
// event name).
//
// Defaults:
//   - group: DefaultGroup;
//   - event name of a symbol target: the symbol with every byte outside
//     [A-Za-z0-9_] replaced by '_' (and '_' prepended if it would start
//     with a digit), then "_0x<hex>" when the offset is not zero, then
//     "__return" for return probes ("malloc", "main_0x10",
//     "malloc__return"); the symbol part is shortened if needed to keep
//     the name within the kernel's 63 bytes;
//   - event name of an offset target: the kernel's "p_<base>_0x<hex>",
//     base being the file's (or library's) base name cut at its first '.',
//     '-' or '_' ("/usr/lib/x86_64-linux-gnu/libc.so.6:0x98930" is
//     "p_libc_0x98930"), 'p' for return probes too, as the kernel does;
//   - fetch-arg names: "argN", N the 1-based position;
//   - fetch type: DefaultType, String for $comm.
func Parse(text string) (*Spec, error) {
	p := parser{text: text}
	return p.parse()
}

// ParseKprobe parses one kernel probe definition in the kernel's
// kprobe_events grammar (see Spec) into a Spec with Kernel set. Errors
// are *Error with the byte position of the problem in text, in the
// kernel's words.
//
// The names and fetch-args are parsed as Parse parses them, with the
// kernel probes' own forms: @SYM[+|-OFFS] (OpSymbol, the address of a
// kernel data symbol), the "+u" dereference of user memory (Expr.User)
// and the "ustring" type (Type.User); @+OFFSET (a file offset) is
// refused, as the kernel refuses it. Newer kernel-only forms (\imm, BTF
// argument names, arrays, bitfields, symbol/symstr types) are not parsed.
//
// Defaults: the group is DefaultGroup (as for uprobe specs, where the
// kernel would use "kprobes"); the event is the kernel's "p_KSYM_OFFS"
// ("r_" for return probes, OFFS in decimal) with ':' and '.' made '_',
// or "p_0xADDR" for an address (the kernel prints a hashed pointer
// there; ptprobe's kernel backend names its events explicitly anyway).
func ParseKprobe(text string) (*Spec, error) {
	p := parser{text: text, kernel: true}
	return p.parse()
}

type parser struct {
	text string
	// kernel: the kprobe_events grammar (ParseKprobe), not uprobe_events.
	kernel bool
}

// token is one whitespace-separated word of the spec and its position.
type token struct {
	s   string
	pos int
}

func (p *parser) err(pos int, msg string) *Error {
	return &Error{Text: p.text, Pos: pos, Msg: msg}
}

// isSpace is the kernel's isspace, by which argv_split cuts commands.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func tokenize(text string) []token {
	var toks []token
	for i := 0; i < len(text); {
		for i < len(text) && isSpace(text[i]) {
			i++
		}
		start := i
		quoted := false
		for i < len(text) && (quoted || !isSpace(text[i])) {
			// A quoted symbol (PATH:"ns::f(int, char)") may hold
			// white space; a quote opens only after a ':'.
			if text[i] == '"' && (quoted || i > 0 && text[i-1] == ':') {
				quoted = !quoted
			}
			i++
		}
		if i > start {
			toks = append(toks, token{text[start:i], start})
		}
	}
	return toks
}

// isCommand reports whether the first word is a "p" or "r" command rather
// than a probe point: "p", "r", "p:..." or "r:...". A library called "p"
// or "r" can still be probed by writing the command.
func isCommand(w string) bool {
	if len(w) == 0 || (w[0] != 'p' && w[0] != 'r') {
		return false
	}
	return len(w) == 1 || w[1] == ':'
}

func (p *parser) parse() (*Spec, error) {
	toks := tokenize(p.text)
	if len(toks) == 0 {
		return nil, p.err(len(p.text), errNoSpec)
	}
	s := &Spec{Text: p.text, Group: DefaultGroup, Kernel: p.kernel}
	var err *Error
	if p.kernel {
		toks, err = p.kprobeHead(s, toks)
	} else {
		toks, err = p.uprobeHead(s, toks)
	}
	if err != nil {
		return nil, err
	}
	if len(toks) > maxArgs {
		return nil, p.err(toks[maxArgs].pos, errTooManyArgs)
	}
	if len(toks) > 0 {
		s.Args = make([]FetchArg, 0, len(toks))
	}
	for i, t := range toks {
		a, err := p.fetchArg(s, i, t)
		if err != nil {
			return nil, err
		}
		s.Args = append(s.Args, a)
	}
	if p.kernel && s.Symbol != "" && s.Offset > maxFentryOffset {
		// The kernel takes $argN only on a function's entry
		// (kprobe_on_func_entry): offset 0, or on x86 with IBT up
		// to the 4 bytes of its endbr64, which only the kernel can
		// tell; past them, never.
		for i := range s.Args {
			a := &s.Args[i]
			for e := a.Expr; e != nil; e = e.Inner {
				if e.Op == OpArgN {
					return nil, s.argErr(a, errNoFentryArgs)
				}
			}
		}
	}
	return s, nil
}

// maxFentryOffset is the largest offset from a kernel symbol that the
// kernel may count as the function's entry (x86's endbr64 with IBT).
const maxFentryOffset = 4

// uprobeHead parses the command, names and target of a uprobe spec, and
// returns the words after them: the fetch-args.
func (p *parser) uprobeHead(s *Spec, toks []token) ([]token, *Error) {
	t := toks[0]
	switch {
	case isCommand(t.s):
		if t.s[0] == 'r' {
			s.Kind = Return
		}
		if len(t.s) > 1 {
			if err := p.eventName(s, t.s[2:], t.pos+2); err != nil {
				return nil, err
			}
		}
		toks = toks[1:]
	case t.s[0] == '-':
		return nil, p.err(t.pos, errDelete)
	}
	if len(toks) == 0 {
		return nil, p.err(len(p.text), errNoSpec)
	}
	if err := p.target(s, toks[0]); err != nil {
		return nil, err
	}
	if s.Event == "" {
		s.Event = defaultEvent(s)
	}
	return toks[1:], nil
}

// kprobeHead parses the command (with its maximum of active return
// probes), names and target of a kernel probe spec, and returns the
// words after them: the fetch-args. The command is not optional here:
// kernel symbols are no file names to tell it from.
func (p *parser) kprobeHead(s *Spec, toks []token) ([]token, *Error) {
	cmd := toks[0]
	switch cmd.s[0] {
	case 'p':
	case 'r':
		s.Kind = Return
	case '-':
		return nil, p.err(cmd.pos, errDelete)
	default:
		return nil, p.err(cmd.pos, errBadCommand)
	}
	head, name, hasName := strings.Cut(cmd.s[1:], ":")
	if head != "" {
		if !isDigit(head[0]) {
			return nil, p.err(cmd.pos, errBadCommand)
		}
		if s.Kind != Return {
			return nil, p.err(cmd.pos+1, errMaxactType)
		}
		n, ok := parseUint(head)
		switch {
		case !ok || n == 0:
			return nil, p.err(cmd.pos+1, errBadMaxact)
		case n > maxActiveMax:
			return nil, p.err(cmd.pos+1, errMaxactBig)
		}
		s.MaxActive = int(n)
	}
	if hasName {
		if err := p.eventName(s, name, cmd.pos+len(cmd.s)-len(name)); err != nil {
			return nil, err
		}
	}
	if len(toks) < 2 {
		return nil, p.err(len(p.text), errNoSpec)
	}
	if err := p.kernelTarget(s, toks[1]); err != nil {
		return nil, err
	}
	if s.Event == "" {
		s.Event = defaultKprobeEvent(s)
	}
	return toks[2:], nil
}

// eventName parses "[GRP/]EVENT" (or "GRP/", keeping the default event
// name) at pos.
func (p *parser) eventName(s *Spec, w string, pos int) *Error {
	if slash := strings.IndexByte(w, '/'); slash >= 0 {
		grp := w[:slash]
		switch {
		case grp == "":
			return p.err(pos, errNoGroup)
		case len(grp) > maxNameLen:
			return p.err(pos, errGroupTooLong)
		case !isIdent(grp):
			return p.err(pos, errBadGroup)
		}
		s.Group = grp
		w = w[slash+1:]
		pos += slash + 1
		if w == "" {
			return nil
		}
	}
	switch {
	case w == "":
		return p.err(pos, errNoEvent)
	case len(w) > maxNameLen:
		return p.err(pos, errEventTooLong)
	case !isIdent(w):
		return p.err(pos, errBadEvent)
	}
	s.Event = w
	return nil
}

// target parses PATH:OFFSET[(REF_CTR_OFFSET)], PATH:SYMBOL[+OFFS],
// LIB:OFFSET[(REF_CTR_OFFSET)] or LIB:SYMBOL[+OFFS], any of them with
// "%return", or a USDT probe usdt:PATH|LIB:PROVIDER:NAME.
//
// A PATH (a '/' before the target) is split from an offset at the last
// ':', as the kernel splits it, and from a symbol at the first ':' after
// its last '/' (so that C++ names keep their "::"); it may hold any byte:
// it names a file, whose existence is checked later. A LIB has no '/'
// and ends at the first ':' (so that a ':' later, as in a garbled spec,
// is refused in the target); it may only hold the bytes library file
// names are made of. A symbol may be a C++ name ("ns::Foo::bar",
// "over(int)"), quoted when it holds white space or bytes of the
// grammar ('"ns::f(int, char)"'), and a glob ("str*"), which
// resolve.Expand turns into one probe per match (docs/DESIGN.md §9).
func (p *parser) target(s *Spec, t token) *Error {
	if rest, ok := strings.CutPrefix(t.s, "usdt:"); ok {
		return p.usdtTarget(s, rest, t.pos+len("usdt:"))
	}
	last := strings.LastIndexByte(t.s, ':')
	if last < 0 {
		return p.err(t.pos, errNoColon)
	}
	colon := last
	slash := strings.LastIndexByte(t.s[:last], '/')
	if q := strings.Index(t.s, ":\""); q >= 0 {
		// PATH:"SYMBOL": the symbol is what the quotes hold.
		colon = q
		slash = strings.LastIndexByte(t.s[:q], '/')
	}
	isPath := slash >= 0
	switch {
	case !isPath:
		colon = strings.IndexByte(t.s, ':')
	case colon == last && (last+1 >= len(t.s) || !isDigit(t.s[last+1])):
		// A symbol: the first ':' after the path's last '/'.
		colon = slash + strings.IndexByte(t.s[slash:], ':')
	}
	if file, line, ok := srcLine(t.s, colon, last, isPath); ok {
		// PATH:FILE:LINE, a source line, or PATH:FUNC:+N, a line of
		// a function (docs/DESIGN.md §10).
		colon = len(t.s) - len(file) - len(line) - 2
		s.Path = t.s[:colon]
		if line[0] == '+' {
			if i := badSymbolByte(file); i >= 0 {
				return p.err(t.pos+colon+1+i, errBadSymbol)
			}
			s.SrcFunc, line = file, line[1:]
		} else {
			s.SrcFile = file
		}
		if !isPath {
			if i := badLibraryByte(s.Path); i >= 0 {
				return p.err(t.pos+i, errBadLibrary)
			}
		}
		n, ok := parseDecimal(line)
		if !ok || (n == 0 && s.SrcFunc == "") || n > math.MaxInt32 {
			return p.err(t.pos+len(t.s)-len(line), errBadLine)
		}
		s.SrcLine = int(n)
		return nil
	}
	if colon == 0 {
		return p.err(t.pos, errNoFile)
	}
	s.Path = t.s[:colon]
	if !isPath {
		if i := badLibraryByte(s.Path); i >= 0 {
			return p.err(t.pos+i, errBadLibrary)
		}
	}
	rest, pos := t.s[colon+1:], t.pos+colon+1
	if rest != "" && isDigit(rest[0]) {
		return p.offsetTarget(s, rest, pos)
	}
	// SYMBOL[+OFFS][%return], the symbol perhaps quoted.
	var sym, tail string
	tpos := pos
	if rest != "" && rest[0] == '"' {
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return p.err(pos, errQuote)
		}
		sym, tail, tpos = rest[1:end+1], rest[end+2:], pos+end+2
		if sym == "" {
			return p.err(pos, errNoSymbol)
		}
		if tail != "" && tail[0] != '+' && tail[0] != '%' {
			return p.err(tpos, errBadSymbol)
		}
	} else {
		// The symbol's bytes are checked first, so that a garbled name
		// is refused at its first bad byte rather than at a '(' or '%'
		// inside it.
		n := strings.IndexAny(rest, "+%")
		if n < 0 {
			n = len(rest)
		}
		if i := badSymbolByte(rest[:n]); i >= 0 {
			if rest[i] == '(' && isRefCtr(rest[i:n]) {
				return p.err(pos+i, errRefCtr)
			}
			return p.err(pos+i, errBadSymbol)
		}
		if i := strings.LastIndexByte(rest[:n], '('); i >= 0 && isRefCtr(rest[i:n]) {
			return p.err(pos+i, errRefCtr)
		}
		if i := strings.IndexByte(rest[n:], '('); i >= 0 {
			return p.err(pos+n+i, errRefCtr)
		}
		sym, tail, tpos = rest[:n], rest[n:], pos+n
	}
	if i := strings.IndexByte(tail, '%'); i >= 0 {
		if tail[i:] != "%return" {
			return p.err(tpos+i, errBadSuffix)
		}
		s.Kind = Return
		tail = tail[:i]
	}
	if sym == "" {
		if tail == "" {
			return p.err(pos, errBadOffs)
		}
		return p.err(pos, errNoSymbol)
	}
	s.Symbol = sym
	if tail != "" { // "+OFFS"
		off, ok := parseUint(tail[1:])
		if !ok {
			return p.err(tpos+1, errSymOffs)
		}
		if off != 0 && s.Kind == Return {
			// A return probe hooks the return address pushed by the
			// call; only a function's first instruction has it at (%sp).
			return p.err(tpos+1, errBadRetprobe)
		}
		s.Offset = off
	}
	return nil
}

// offsetTarget parses OFFSET[%return][(REF_CTR_OFFSET)] at pos, with the
// kernel's checks in the kernel's order (trace_uprobe.c): the reference
// counter's braces first, then the suffix, then the offset.
func (p *parser) offsetTarget(s *Spec, rest string, pos int) *Error {
	if lp := strings.IndexByte(rest, '('); lp >= 0 {
		rp := strings.IndexByte(rest[lp:], ')')
		switch {
		case rp < 0:
			return p.err(pos+len(rest), errRefCtrBrace)
		case lp+rp+1 != len(rest):
			return p.err(pos+lp+rp+1, errRefCtrSuffix)
		}
		ref, ok := parseUint(rest[lp+1 : lp+rp])
		if !ok {
			return p.err(pos+lp+1, errBadRefCtr)
		}
		s.RefCtr = ref
		rest = rest[:lp]
	}
	if i := strings.IndexByte(rest, '%'); i >= 0 {
		if rest[i:] != "%return" {
			return p.err(pos+i, errBadSuffix)
		}
		s.Kind = Return
		rest = rest[:i]
	}
	off, ok := parseUint(rest)
	if !ok {
		return p.err(pos, errBadOffs)
	}
	s.Offset = off
	return nil
}

// usdtTarget parses the PATH|LIB:PROVIDER:NAME of a USDT target at pos.
// PROVIDER and NAME may be globs; PATH is split from them at the last two
// ':'.
func (p *parser) usdtTarget(s *Spec, rest string, pos int) *Error {
	if s.Kind == Return {
		return p.err(pos, errUSDTReturn)
	}
	n := strings.LastIndexByte(rest, ':')
	if n < 0 {
		return p.err(pos, errUSDTForm)
	}
	pr := strings.LastIndexByte(rest[:n], ':')
	if pr <= 0 {
		return p.err(pos, errUSDTForm)
	}
	s.USDT = true
	s.Path, s.Provider, s.Symbol = rest[:pr], rest[pr+1:n], rest[n+1:]
	if strings.IndexByte(s.Path, '/') < 0 {
		if i := badLibraryByte(s.Path); i >= 0 {
			return p.err(pos+i, errBadLibrary)
		}
	}
	for _, w := range []struct {
		s   string
		pos int
	}{{s.Provider, pos + pr + 1}, {s.Symbol, pos + n + 1}} {
		if w.s == "" {
			return p.err(w.pos, errUSDTForm)
		}
		for i := 0; i < len(w.s); i++ {
			if c := w.s[i]; !isAlpha(c) && !isDigit(c) && c != '_' && !isGlobByte(c) {
				return p.err(w.pos+i, errBadUSDTName)
			}
		}
	}
	return nil
}

// isGlobByte reports whether c is a glob metacharacter (path.Match's).
func isGlobByte(c byte) bool { return c == '*' || c == '?' || c == '[' || c == ']' }

// IsGlob reports whether the spec's symbol (or USDT provider or name) is a
// pattern that resolve.Expand expands into the probes it matches.
func (s *Spec) IsGlob() bool {
	return strings.ContainsAny(s.Symbol, "*?[") || strings.ContainsAny(s.Provider, "*?[")
}

// srcLine splits a PATH:FILE:LINE target whose first colon, after the
// path or library name, is at colon and whose last is at last: LINE is
// decimal, FILE a name with a '.' ("main.c", "src/x.go").
func srcLine(w string, colon, last int, isPath bool) (file, line string, ok bool) {
	line = w[last+1:]
	rel := strings.HasPrefix(line, "+")
	if d := strings.TrimPrefix(line, "+"); d == "" || !isDigit(d[0]) || strings.HasPrefix(d, "0x") {
		return "", "", false
	}
	before := w[:last]
	if isPath {
		// The path ends at the last ':' before FILE: one after the
		// last '/' of the path.
		c := strings.LastIndexByte(before, ':')
		if c < 0 || c < strings.LastIndexByte(before[:c+1], '/') {
			return "", "", false
		}
		file = before[c+1:]
	} else {
		if colon == last {
			return "", "", false
		}
		file = w[colon+1 : last]
	}
	if file == "" || !rel && !strings.Contains(file, ".") {
		return "", "", false
	}
	return file, line, true
}

// isGoMethod reports whether the '(', '*' or ')' at i of sym is part of
// a Go method name, "main.(*T).Method", as Go names its symbols.
func isGoMethod(sym string, i int) bool {
	for from := 0; ; {
		open := strings.Index(sym[from:], ".(*")
		if open < 0 {
			return false
		}
		open += from
		end := strings.IndexByte(sym[open:], ')')
		if end < 0 {
			return false
		}
		end += open
		if i > open && i <= end && end > open+3 && end+1 < len(sym) && sym[end+1] == '.' {
			return true
		}
		from = end
	}
}

// kernelTarget parses a kernel probe's [MOD:]KSYM[+OFFS][%return] or
// KADDR.
func (p *parser) kernelTarget(s *Spec, t token) *Error {
	if addr, ok := parseUint(t.s); ok {
		s.Addr = addr
		return nil
	}
	if strings.IndexByte(t.s, '/') >= 0 && strings.IndexByte(t.s, ':') >= 0 {
		return p.err(t.pos, errUprobeTarget)
	}
	w := t.s
	if i := strings.IndexByte(w, '%'); i >= 0 {
		if w[i:] != "%return" {
			return p.err(t.pos+i, errBadSuffix)
		}
		s.Kind = Return
		w = w[:i]
	}
	sym := w
	if i := strings.IndexAny(w, "+-"); i >= 0 {
		sym = w[:i]
		off, ok := parseUint(w[i+1:])
		if !ok || w[i] == '-' && off != 0 || off > maxKprobeOffset {
			return p.err(t.pos, errBadAddr)
		}
		s.Offset = off
	}
	if mod, rest, ok := strings.Cut(sym, ":"); ok {
		if !isKsym(mod) {
			return p.err(t.pos, errBadAddr)
		}
		s.Module, sym = mod, rest
	}
	if !isKsym(sym) {
		return p.err(t.pos, errBadAddr)
	}
	s.Symbol = sym
	if s.Kind == Return && s.Offset != 0 {
		return p.err(t.pos, errBadRetprobe)
	}
	return nil
}

// isKsym reports whether w can be a kernel symbol or module name: C
// identifier bytes and '.' (compiler suffixes: "foo.isra.0", "bar.cold").
func isKsym(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(isAlpha(c) || c == '_' || c == '.' || i > 0 && isDigit(c)) {
			return false
		}
	}
	return w != ""
}

// isRefCtr reports whether w is the kernel's "(REF_CTR_OFFSET)" suffix: a
// number in parentheses, ending the target.
func isRefCtr(w string) bool {
	if w == "" {
		return false
	}
	inner, ok := strings.CutSuffix(w[1:], ")")
	if !ok {
		return false
	}
	_, ok = parseUint(inner)
	return ok
}

// badLibraryByte returns the index of the first byte of a library name
// (LIB of LIB:SYMBOL, a file name without '/') that no library file name
// has, or -1. Library names are made of letters, digits and "._-+"
// ("libstdc++.so.6", "ld-linux-x86-64.so.2", "libpython3.11.so.1.0");
// '(', '%', '=', '$', ':' and the like are pieces of fetch-args or of
// another target, not of a library name. A file of another name can be
// probed by its path.
func badLibraryByte(lib string) int {
	for i := 0; i < len(lib); i++ {
		c := lib[i]
		if !isAlpha(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' && c != '+' {
			return i
		}
	}
	return -1
}

// badSymbolByte returns the index of the first byte of sym that cannot be
// in an unquoted symbol name, or -1. Symbols are C-like names that may
// also contain '.' and '$' (compiler-generated "foo.cold", "foo$plt"),
// '@' after the first byte (versioned "memcpy@GLIBC_2.2.5", as
// elfsym.Lookup takes), glob bytes ("str*"), and what C++ names are made
// of: "::" (a single ':' is refused: a garbled target), a balanced
// parameter list of type names ("over(int)", "f(char const*, long)" when
// quoted), template brackets, '~'. A '(' that opens something else (a
// fetch-arg's "(%di)") is the bad byte.
func badSymbolByte(sym string) int {
	depth, angle, open := 0, 0, -1
	for i := 0; i < len(sym); i++ {
		c := sym[i]
		switch {
		case isAlpha(c) || c == '_' || c == '.' || c == '$' || isGlobByte(c) || c == '~':
		case i > 0 && (isDigit(c) || c == '@'):
		case (c == '(' || c == '*' || c == ')') && isGoMethod(sym, i):
		case c == ':' && i+1 < len(sym) && sym[i+1] == ':':
			i++
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == ',' || c == '&':
			if depth == 0 && angle == 0 {
				return i
			}
		case c == '(' && i > 0:
			if depth == 0 {
				open = i
			}
			depth++
		case c == ')' && depth > 0:
			depth--
		default:
			if depth > 0 {
				return open
			}
			return i
		}
	}
	if depth > 0 {
		return open
	}
	return -1
}

// fetchArg parses the i-th fetch-arg, [NAME=]FETCHARG[:TYPE].
func (p *parser) fetchArg(s *Spec, i int, t token) (FetchArg, *Error) {
	a := FetchArg{Text: t.s, Pos: t.pos, Type: DefaultType}
	body, bpos := t.s, t.pos
	if eq := strings.IndexByte(t.s, '='); eq >= 0 {
		switch {
		case eq > maxArgNameLen:
			return a, p.err(t.pos, errArgNameLong)
		case eq == 0:
			return a, p.err(t.pos, errNoArgName)
		}
		a.Name = t.s[:eq]
		body, bpos = t.s[eq+1:], t.pos+eq+1
	} else {
		a.Name = "arg" + strconv.Itoa(i+1)
	}
	if !isIdent(a.Name) {
		return a, p.err(t.pos, errBadArgName)
	}
	for _, r := range reservedArgNames {
		if a.Name == r {
			return a, p.err(t.pos, errUsedArgName)
		}
	}
	for j := range s.Args {
		if s.Args[j].Name == a.Name {
			return a, p.err(t.pos, errUsedArgName)
		}
	}
	if body == "" {
		return a, p.err(bpos, errNoArgBody)
	}

	// The type is checked first, as the kernel does.
	expr, typ, tpos := body, "", -1
	if c := strings.IndexByte(body, ':'); c >= 0 {
		expr, typ, tpos = body[:c], body[c+1:], bpos+c+1
		tt, err := p.parseFullType(typ, tpos)
		if err != nil {
			return a, err
		}
		a.Type, a.Typed = tt, true
	}
	if expr == "" {
		return a, p.err(bpos, errNoArgBody)
	}
	e, err := p.expr(s, expr, bpos, 0)
	if err != nil {
		return a, err
	}
	a.Expr = e
	if e.Op == OpName && !strings.Contains(t.s[:len(t.s)-len(body)], "=") {
		// Named after the variable path, as perf probe does: "p->x" is
		// p_x (docs/DESIGN.md §10).
		a.Name = nameArgReplacer.Replace(strings.TrimLeft(e.Sym, "*$"))
		for j := range s.Args {
			if s.Args[j].Name == a.Name {
				return a, p.err(t.pos, errUsedArgName)
			}
		}
	}
	switch {
	case (e.Op == OpComm || e.Op == OpImmString) && tpos < 0:
		a.Type = Type{Kind: String}
	case (e.Op == OpComm || e.Op == OpImmString) && a.Type.Kind != String:
		return a, p.err(tpos, errCommType)
	case a.Type.Len > 0 && !e.Op.isMemory() && e.Op != OpName && !(s.USDT && e.Op == OpArgN):
		// The kernel's check and words: an array is read from memory.
		return a, p.err(tpos, errBadString)
	case a.Type.Kind == String && !a.Type.Sym && !e.Op.isMemory() && e.Op != OpComm && e.Op != OpImmString && e.Op != OpName && !(s.USDT && e.Op == OpArgN):
		// A USDT probe's $argN:string is the string its argument
		// points to (resolve.Expand).
		return a, p.err(tpos, errBadString)
	}
	return a, nil
}

// parseFullType parses a fetch type at pos: a type name, a bitfield
// b<width>@<offset>/<container>, or either as an array TYPE[N], with the
// kernel's checks and messages (traceprobe_parse_probe_arg_body).
func (p *parser) parseFullType(t string, pos int) (Type, *Error) {
	n := 0
	if lb := strings.IndexByte(t, '['); lb >= 0 {
		rb := strings.IndexByte(t[lb:], ']')
		switch {
		case rb < 0:
			return Type{}, p.err(pos+len(t), errArrayOpen)
		case lb+rb+1 != len(t):
			return Type{}, p.err(pos+lb+rb+1, errArraySuffix)
		}
		v, ok := parseUint(t[lb+1 : lb+rb])
		switch {
		case !ok || v == 0:
			return Type{}, p.err(pos+lb+1, errBadArrayNum)
		case v > maxArrayLen:
			return Type{}, p.err(pos+lb+1, errArrayTooBig)
		}
		n, t = int(v), t[:lb]
	}
	var tt Type
	if strings.HasPrefix(t, "b") && len(t) > 1 && isDigit(t[1]) {
		// The kernel looks the container up first ("/24" is an
		// unknown type), then checks the field.
		sl := strings.LastIndexByte(t, '/')
		if c := t[sl+1:]; sl < 0 || c != "8" && c != "16" && c != "32" && c != "64" {
			return Type{}, p.err(pos, errBadType)
		}
		var ok bool
		if tt, ok = parseBitfield(t); !ok {
			return Type{}, p.err(pos, errBadBitfield)
		}
	} else {
		var ok bool
		if tt, ok = p.parseType(t); !ok {
			return Type{}, p.err(pos, errBadType)
		}
	}
	if n > 0 && tt.Sym {
		// An array of names: not a type the kernel's README lists.
		return Type{}, p.err(pos, errBadType)
	}
	tt.Len = n
	return tt, nil
}

// parseBitfield parses b<width>@<offset>/<container>, the container 8, 16,
// 32 or 64 bits and the field inside it (the kernel's parse_probe_bitfield).
func parseBitfield(t string) (Type, bool) {
	at := strings.IndexByte(t, '@')
	sl := strings.IndexByte(t, '/')
	if at < 0 || sl < at {
		return Type{}, false
	}
	w, ok1 := parseDecimal(t[1:at])
	o, ok2 := parseDecimal(t[at+1 : sl])
	c, ok3 := parseDecimal(t[sl+1:])
	if !ok1 || !ok2 || !ok3 || c != 8 && c != 16 && c != 32 && c != 64 || w == 0 || w+o > c {
		return Type{}, false
	}
	return Type{Kind: Unsigned, Size: int(c / 8), BitWidth: int(w), BitOffset: int(o)}, true
}

// parseType parses a fetch type name. "ustring" is the kernel's name for a
// string in user memory, which is all a uprobe can read: in a uprobe spec
// it is String, in a kernel probe's a String with User set.
func (p *parser) parseType(t string) (Type, bool) {
	switch t {
	case "string":
		return Type{Kind: String}, true
	case "ustring":
		return Type{Kind: String, User: p.kernel}, true
	case "symstr":
		return Type{Kind: String, Sym: true}, true
	case "char":
		return Type{Kind: Char, Size: 1}, true
	}
	if len(t) < 2 {
		return Type{}, false
	}
	var k TypeKind
	switch t[0] {
	case 'u':
		k = Unsigned
	case 's':
		k = Signed
	case 'x':
		k = Hex
	default:
		return Type{}, false
	}
	switch t[1:] {
	case "8":
		return Type{Kind: k, Size: 1}, true
	case "16":
		return Type{Kind: k, Size: 2}, true
	case "32":
		return Type{Kind: k, Size: 4}, true
	case "64":
		return Type{Kind: k, Size: 8}, true
	}
	return Type{}, false
}

// isMemory reports whether the node reads memory, which is what the
// string type needs (it takes the node's address, not its value).
func (op Op) isMemory() bool {
	return op == OpDeref || op == OpAddr || op == OpFileOffset || op == OpSymbol
}

// expr parses one fetch expression at pos; depth is the number of memory
// accesses enclosing it.
func (p *parser) expr(s *Spec, w string, pos, depth int) (*Expr, *Error) {
	if w == "" {
		return nil, p.err(pos, errBadFetchArg)
	}
	switch w[0] {
	case '%':
		r, ok := arch.RegByName(w[1:])
		if !ok {
			return nil, p.err(pos, errBadReg)
		}
		return &Expr{Op: OpReg, Reg: r}, nil

	case '@':
		if depth >= maxDeref {
			return nil, p.err(pos, errTooManyOps)
		}
		switch {
		case len(w) > 1 && isDigit(w[1]):
			v, ok := parseUint(w[1:])
			if !ok {
				return nil, p.err(pos, errBadMemAddr)
			}
			return &Expr{Op: OpAddr, Imm: int64(v)}, nil
		case len(w) > 1 && w[1] == '+':
			if p.kernel {
				return nil, p.err(pos, errFileOnKprobe)
			}
			v, ok := parseUint(w[2:])
			if !ok || v > math.MaxInt64 {
				return nil, p.err(pos, errBadFileOffs)
			}
			return &Expr{Op: OpFileOffset, Imm: int64(v)}, nil
		case p.kernel:
			return p.symbol(w[1:], pos)
		}
		return nil, p.err(pos, errSymOnUprobe)

	case '$':
		return p.variable(s, w[1:], pos)

	case '\\':
		// \IMM and \"STR", as the kernel's str_to_immediate and
		// parse_probe_arg read them.
		if len(w) > 1 && w[1] == '"' {
			if len(w) < 3 || w[len(w)-1] != '"' {
				return nil, p.err(pos+len(w), errImmStrOpen)
			}
			str := w[2 : len(w)-1]
			if strings.IndexByte(str, '"') >= 0 {
				return nil, p.err(pos+1+strings.IndexByte(str, '"'), errImmStrOpen)
			}
			return &Expr{Op: OpImmString, Sym: str}, nil
		}
		neg := len(w) > 1 && w[1] == '-'
		num := w[1:]
		if neg {
			num = w[2:]
		}
		v, ok := parseSigned(neg, num)
		if !ok {
			return nil, p.err(pos+1, errBadImm)
		}
		return &Expr{Op: OpImm, Imm: v}, nil

	case '+', '-':
		if depth >= maxDeref {
			return nil, p.err(pos, errTooManyOps)
		}
		lp := strings.IndexByte(w, '(')
		if lp < 0 {
			return nil, p.err(pos, errDerefBrace)
		}
		num := w[1:lp]
		user := len(num) > 0 && num[0] == 'u'
		if user {
			num = num[1:] // "+u8(...)": user memory
		}
		off, ok := parseSigned(w[0] == '-', num)
		if !ok {
			return nil, p.err(pos, errBadDerefOffs)
		}
		rp := strings.LastIndexByte(w, ')')
		if rp < lp {
			return nil, p.err(pos+len(w), errDerefOpen)
		}
		if rp != len(w)-1 {
			// The kernel ignores what follows the last ')'; it is
			// more likely a typo than meant, so refuse it.
			return nil, p.err(pos+rp+1, errBadFetchArg)
		}
		inner, err := p.expr(s, w[lp+1:rp], pos+lp+1, depth+1)
		if err != nil {
			return nil, err
		}
		if inner.Op == OpComm {
			return nil, p.err(pos, errCommDeref)
		}
		// A uprobe reads user memory only: "+u" is "+" there.
		return &Expr{Op: OpDeref, Imm: off, Inner: inner, User: user && p.kernel}, nil
	}
	if !p.kernel && depth == 0 && isNamePath(w) {
		// A variable of the debug information, bound by resolve.
		return &Expr{Op: OpName, Sym: w}, nil
	}
	return nil, p.err(pos, errBadFetchArg)
}

// nameArgReplacer names a variable path's fetch-arg: "p->x" is p_x,
// "arr[3]" arr_3.
var nameArgReplacer = strings.NewReplacer("->", "_", ".", "_", "[", "_", "]", "")

// isNamePath reports whether w is a variable path of the debug
// information: an identifier, then members ".f" or "->f" and indexes
// "[N]", with any number of leading '*' (docs/DESIGN.md §10).
func isNamePath(w string) bool {
	for len(w) > 0 && w[0] == '*' {
		w = w[1:]
	}
	n := identLen(w)
	if n == 0 {
		return false
	}
	for w = w[n:]; w != ""; {
		switch {
		case w[0] == '.' || strings.HasPrefix(w, "->"):
			w = w[1:]
			if w[0] == '>' {
				w = w[1:]
			}
			n := identLen(w)
			if n == 0 {
				return false
			}
			w = w[n:]
		case w[0] == '[':
			end := strings.IndexByte(w, ']')
			if end < 2 {
				return false
			}
			if _, ok := parseDecimal(w[1:end]); !ok {
				return false
			}
			w = w[end+1:]
		default:
			return false
		}
	}
	return true
}

// identLen is the length of the C identifier w starts with.
func identLen(w string) int {
	if w == "" || !(isAlpha(w[0]) || w[0] == '_') {
		return 0
	}
	n := 1
	for n < len(w) && (isAlpha(w[n]) || isDigit(w[n]) || w[n] == '_') {
		n++
	}
	return n
}

// symbol parses the SYM[+|-OFFS] of a kernel probe's @SYM[+|-OFFS] at pos
// (the '@'), as the kernel's traceprobe_split_symbol_offset splits it.
// The symbol ends where the expression does: before the ')' of an
// enclosing dereference or the type's ':', so it has no MOD: prefix, as
// in the kernel.
func (p *parser) symbol(ref string, pos int) (*Expr, *Error) {
	sym, off := ref, int64(0)
	if j := strings.IndexAny(ref, "+-"); j >= 0 {
		sym = ref[:j]
		v, ok := parseUint(ref[j+1:])
		if !ok || v > math.MaxInt64 {
			return nil, p.err(pos, errBadMemAddr)
		}
		off = int64(v)
		if ref[j] == '-' {
			off = -off
		}
	}
	if !isKsym(sym) {
		return nil, p.err(pos, errBadMemAddr)
	}
	return &Expr{Op: OpSymbol, Sym: sym, Imm: off}, nil
}

// variable parses a $-variable, name without the '$' at pos.
func (p *parser) variable(s *Spec, name string, pos int) (*Expr, *Error) {
	switch {
	case name == "retval":
		if s.Kind != Return {
			return nil, p.err(pos, errRetvalOnProbe)
		}
		return &Expr{Op: OpRetval}, nil
	case name == "stack":
		return &Expr{Op: OpStack}, nil
	case strings.HasPrefix(name, "stack") && isDigit(name[5]):
		n, ok := parseDecimal(name[5:])
		if !ok || n > maxStackN {
			return nil, p.err(pos, errBadStackNum)
		}
		return &Expr{Op: OpStackN, Imm: int64(n)}, nil
	case name == "comm" || name == "COMM":
		return &Expr{Op: OpComm}, nil
	case name == "params" && !p.kernel:
		// Every parameter of the function, from the debug information
		// (resolve expands it, docs/DESIGN.md §10).
		return &Expr{Op: OpName, Sym: "$params"}, nil
	case strings.HasPrefix(name, "arg"):
		n, ok := parseDecimal(name[3:])
		if !ok || n < 1 || n > uint64(maxArgN) {
			return nil, p.err(pos, errBadArgNum)
		}
		return &Expr{Op: OpArgN, Imm: int64(n)}, nil
	}
	return nil, p.err(pos, errBadVar)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isIdent reports whether w is a C identifier, the kernel's is_good_name.
func isIdent(w string) bool {
	if w == "" || !(isAlpha(w[0]) || w[0] == '_') {
		return false
	}
	for i := 1; i < len(w); i++ {
		if c := w[i]; !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// parseUint parses w as kstrtoul(w, 0) does: "0x"/"0X" hex, a leading 0
// octal, else decimal; all of w, without sign, no overflow.
func parseUint(w string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X'):
		base, w = 16, w[2:]
	case len(w) > 1 && w[0] == '0':
		base, w = 8, w[1:]
	}
	return parseDigits(w, base)
}

// parseDecimal parses w as decimal digits only.
func parseDecimal(w string) (uint64, bool) { return parseDigits(w, 10) }

func parseDigits(w string, base uint64) (uint64, bool) {
	if w == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(w); i++ {
		c := w[i]
		var d uint64
		switch {
		case isDigit(c):
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base || v > (math.MaxUint64-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// parseSigned parses the magnitude w (kstrtoul syntax) of a number whose
// sign was already read, within int64.
func parseSigned(neg bool, w string) (int64, bool) {
	v, ok := parseUint(w)
	switch {
	case !ok:
		return 0, false
	case neg && v <= 1<<63:
		return int64(-v), true // -(1<<63) wraps to itself: MinInt64
	case !neg && v <= math.MaxInt64:
		return int64(v), true
	}
	return 0, false
}

// defaultEvent names a probe whose spec does not, see Parse.
func defaultEvent(s *Spec) string {
	if s.SrcFunc != "" {
		// FUNC:+N: "work_L3".
		base := sanitize(s.SrcFunc)
		suffix := "_L" + strconv.Itoa(s.SrcLine)
		if len(base)+len(suffix) > maxNameLen {
			base = base[:maxNameLen-len(suffix)]
		}
		return base + suffix
	}
	if s.SrcFile != "" {
		// perf probe's FUNC_L42, with the file's name: "main_c_L42".
		base := sanitize(s.SrcFile[strings.LastIndexByte(s.SrcFile, '/')+1:])
		if isDigit(base[0]) {
			base = "_" + base
		}
		suffix := "_L" + strconv.Itoa(s.SrcLine)
		if len(base)+len(suffix) > maxNameLen {
			base = base[:maxNameLen-len(suffix)]
		}
		return base + suffix
	}
	if s.Symbol != "" {
		base := sanitize(s.Symbol)
		if isDigit(base[0]) {
			base = "_" + base
		}
		var suffix []byte
		if s.Offset != 0 {
			suffix = append(suffix, "_0x"...)
			suffix = strconv.AppendUint(suffix, s.Offset, 16)
		}
		if s.Kind == Return {
			suffix = append(suffix, "__return"...)
		}
		if len(base)+len(suffix) > maxNameLen {
			base = base[:maxNameLen-len(suffix)]
		}
		return base + string(suffix)
	}
	// The kernel's rule (trace_uprobe.c): kbasename, cut at the first of
	// ".-_", into "%c_%s_0x%lx" with 'p', truncated to the name buffer.
	base := s.Path[strings.LastIndexByte(s.Path, '/')+1:]
	if i := strings.IndexAny(base, ".-_"); i >= 0 {
		base = base[:i]
	}
	name := "p_" + sanitize(base) + "_0x" + strconv.FormatUint(s.Offset, 16)
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	return name
}

// DefaultEvent is the event name Parse gives spec when it names none
// (see Parse); resolve.Expand names the probes a pattern expands to with
// it.
func DefaultEvent(spec *Spec) string { return defaultEvent(spec) }

// defaultKprobeEvent names a kernel probe as the kernel does
// (trace_kprobe.c): "%c_%s_%ld" with ':' and '.' made '_', cut to the name
// buffer.
func defaultKprobeEvent(s *Spec) string {
	c := "p"
	if s.Kind == Return {
		c = "r"
	}
	var name string
	if s.Symbol == "" {
		name = c + "_0x" + strconv.FormatUint(s.Addr, 16)
	} else {
		sym := s.Symbol
		if s.Module != "" {
			sym = s.Module + ":" + sym
		}
		name = c + "_" + sym + "_" + strconv.FormatUint(s.Offset, 10)
	}
	b := []byte(name)
	for i, ch := range b {
		if ch == ':' || ch == '.' {
			b[i] = '_'
		}
	}
	if len(b) > maxNameLen {
		b = b[:maxNameLen]
	}
	return string(b)
}

// kprobeTarget is a kernel probe's target: "[MOD:]KSYM+0xOFF",
// "[MOD:]KSYM" or "0xKADDR".
func (s *Spec) kprobeTarget() string {
	if s.Symbol == "" {
		return "0x" + strconv.FormatUint(s.Addr, 16)
	}
	t := s.Symbol
	if s.Module != "" {
		t = s.Module + ":" + t
	}
	if s.Offset != 0 {
		t += "+0x" + strconv.FormatUint(s.Offset, 16)
	}
	return t
}

// sanitize replaces each byte outside [A-Za-z0-9_] by '_'.
func sanitize(w string) string {
	b := []byte(w)
	for i, c := range b {
		if !isAlpha(c) && !isDigit(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

// String renders the spec canonically in the kernel's grammar:
//
//	p:GRP/EVENT PATH:TARGET NAME=EXPR:TYPE ...
//
// ("r:" for return probes), every default written out, so that the text
// means the same to Parse and, for offset targets without ptprobe's
// extensions, to the kernel. Symbol targets are kept as symbols. A kernel
// probe is written as kprobe_events takes it, and means the same to
// ParseKprobe:
//
//	p:GRP/EVENT [MOD:]KSYM+0xOFFS NAME=EXPR:TYPE ...
//
// with "r[MAXACTIVE]:" for return probes, also those written with
// %return (which kernels before 5.11 do not know), and "0xKADDR" for an
// address.
func (s *Spec) String() string {
	var b strings.Builder
	if s.Kind == Return {
		b.WriteByte('r')
		if s.Kernel && s.MaxActive > 0 {
			b.WriteString(strconv.Itoa(s.MaxActive))
		}
	} else {
		b.WriteByte('p')
	}
	b.WriteByte(':')
	b.WriteString(s.Group)
	b.WriteByte('/')
	b.WriteString(s.Event)
	b.WriteByte(' ')
	b.WriteString(s.Target())
	for i := range s.Args {
		b.WriteByte(' ')
		b.WriteString(s.Args[i].String())
	}
	return b.String()
}

// String renders the fetch-arg canonically, "NAME=EXPR:TYPE".
func (a *FetchArg) String() string {
	b := []byte(a.Name)
	b = append(b, '=')
	b = a.Expr.appendText(b)
	b = append(b, ':')
	b = append(b, a.Type.String()...)
	return string(b)
}

// String renders the expression in the kernel's fetch-arg syntax.
func (e *Expr) String() string { return string(e.appendText(nil)) }

func (e *Expr) appendText(b []byte) []byte {
	if e == nil {
		return append(b, "<nil>"...)
	}
	switch e.Op {
	case OpReg:
		return append(append(b, '%'), e.Reg.KernelName()...)
	case OpAddr:
		return strconv.AppendUint(append(b, "@0x"...), uint64(e.Imm), 16)
	case OpFileOffset:
		return strconv.AppendUint(append(b, "@+0x"...), uint64(e.Imm), 16)
	case OpDeref:
		if e.Imm >= 0 {
			b = append(b, '+')
		} else {
			b = append(b, '-')
		}
		if e.User {
			b = append(b, 'u')
		}
		// The magnitude as unsigned: -MinInt64 is not an int64.
		mag := uint64(e.Imm)
		if e.Imm < 0 {
			mag = -mag
		}
		b = strconv.AppendUint(b, mag, 10)
		b = append(b, '(')
		b = e.Inner.appendText(b)
		return append(b, ')')
	case OpStack:
		return append(b, "$stack"...)
	case OpStackN:
		return strconv.AppendInt(append(b, "$stack"...), e.Imm, 10)
	case OpRetval:
		return append(b, "$retval"...)
	case OpComm:
		return append(b, "$comm"...)
	case OpArgN, OpEntryReg:
		return strconv.AppendInt(append(b, "$arg"...), e.Imm, 10)
	case OpImm:
		return strconv.AppendInt(append(b, '\\'), e.Imm, 10)
	case OpImmString:
		return append(append(append(b, '\\', '"'), e.Sym...), '"')
	case OpIndexed:
		b = append(b, '(')
		if e.Inner != nil {
			b = e.Inner.appendText(b)
		}
		b = append(append(b, ",%"...), e.Reg.KernelName()...)
		return append(strconv.AppendInt(append(b, ','), e.Imm, 10), ')')
	case OpSymbol:
		b = append(append(b, '@'), e.Sym...)
		if e.Imm > 0 {
			b = append(b, '+')
		}
		if e.Imm != 0 {
			b = strconv.AppendInt(b, e.Imm, 10)
		}
		return b
	case OpName:
		return append(b, e.Sym...)
	}
	return append(b, "<bad op>"...)
}

// Equal reports whether s and t define the same probe: the same kind,
// names, target and fetch-args, however they were written (Text fields
// are ignored). Parse(s.String()) is Equal to s.
func (s *Spec) Equal(t *Spec) bool {
	if s.Kind != t.Kind || s.Group != t.Group || s.Event != t.Event ||
		s.Kernel != t.Kernel || s.Path != t.Path || s.Module != t.Module ||
		s.Symbol != t.Symbol || s.Offset != t.Offset || s.Addr != t.Addr ||
		s.SrcFile != t.SrcFile || s.SrcLine != t.SrcLine || s.SrcFunc != t.SrcFunc ||
		s.MaxActive != t.MaxActive || s.RefCtr != t.RefCtr || s.USDT != t.USDT || s.Provider != t.Provider || len(s.Args) != len(t.Args) {
		return false
	}
	for i := range s.Args {
		a, b := &s.Args[i], &t.Args[i]
		if a.Name != b.Name || !a.Type.sameFetch(b.Type) || !a.Expr.Equal(b.Expr) || !a.Len.Equal(b.Len) {
			return false
		}
	}
	return true
}

// sameFetch reports whether t and u fetch the same: the names an Enum
// gives the values are how they print, not what is fetched, and have no
// text in a spec.
func (t Type) sameFetch(u Type) bool {
	t.Enum, u.Enum = nil, nil
	return t == u
}

// Equal reports whether e and f are the same expression.
func (e *Expr) Equal(f *Expr) bool {
	for e != nil && f != nil {
		if e.Op != f.Op || e.Imm != f.Imm || e.Sym != f.Sym || e.User != f.User ||
			((e.Op == OpReg || e.Op == OpEntryReg || e.Op == OpIndexed) && e.Reg != f.Reg) {
			return false
		}
		e, f = e.Inner, f.Inner
	}
	return e == nil && f == nil
}
