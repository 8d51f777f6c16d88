package kernel

import (
	"math"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/uprobe"
)

// Limits of the kprobe grammar, the kernel's (trace_probe.h, trace_kprobe.c).
const (
	// maxEventNameLen is MAX_EVENT_NAME_LEN-1: the longest group or
	// event name.
	maxEventNameLen = 63
	// maxActiveMax is KRETPROBE_MAXACTIVE_MAX.
	maxActiveMax = 4096
	// maxKprobeOffset: the kernel refuses symbol offsets above UINT_MAX.
	maxKprobeOffset = math.MaxUint32
)

// Error messages of the kprobe grammar, verbatim from the kernel's
// trace_probe.h where it has one for the problem.
const (
	errKNoSpec       = "Probe point is not specified"
	errKDelete       = "Deleting events is not supported by ptprobe"
	errKBadCommand   = "Probe definition must be started with 'p' or 'r'"
	errKMaxactType   = "Maxactive is only for function exit"
	errKBadMaxact    = "Invalid maxactive number"
	errKMaxactBig    = "Maxactive is too big"
	errKNoGroup      = "Group name is not specified"
	errKGroupTooLong = "Group name is too long"
	errKBadGroup     = "Group name must follow the same rules as C identifiers"
	errKNoEvent      = "Event name is not specified"
	errKEventTooLong = "Event name is too long"
	errKBadEvent     = "Event name must follow the same rules as C identifiers"
	errKBadAddr      = "Invalid probed address or symbol"
	errKBadSuffix    = "Invalid probed address suffix"
	errKRetprobe     = "Retprobe address must be an function entry"
	errKUprobe       = "This is a uprobe spec (PATH:OFFSET): use uprobe_events"
	errKFileOffs     = "File offset is not available with kprobe"
	errKBadMemAddr   = "Invalid memory address"
)

// KprobeSpec is a parsed kernel probe definition in the kernel's
// kprobe_events grammar:
//
//	p[:[GRP/]EVENT] [MOD:]KSYM[+OFFS]|KADDR [FETCHARGS]
//	r[MAXACTIVE][:[GRP/]EVENT] [MOD:]KSYM[+0] [FETCHARGS]
//	p[:[GRP/]EVENT] [MOD:]KSYM[+0]%return [FETCHARGS]
//
// Fetch-args are those of uprobe specs (see uprobe.Parse) plus the
// kernel-only @SYM[+|-OFFS] (a data symbol's address) and the "u" mark of a
// user-memory dereference (+u8(%si)) and the "ustring" type, which Line
// keeps; @+OFFSET (a file offset) is refused, as the kernel does.
// Newer kernel-only forms (\imm, BTF argument names, arrays, bitfields,
// symbol/symstr types) are not parsed.
type KprobeSpec struct {
	Text string // the definition as written
	Kind uprobe.Kind
	// MaxActive is the r[MAXACTIVE] count of return-probe instances the
	// kernel preallocates; 0 leaves the kernel's default.
	MaxActive int
	Group     string // uprobe.DefaultGroup when not given
	Event     string // defaulted as the kernel does, see ParseKprobe
	Module    string // MOD of MOD:KSYM, "" for vmlinux
	Symbol    string // KSYM, "" when the place is KADDR
	Offset    uint64 // +OFFS from Symbol, bytes
	Addr      uint64 // KADDR, when Symbol is ""
	Args      []KprobeArg
}

// KprobeArg is one fetch-arg of a KprobeSpec.
type KprobeArg struct {
	// FetchArg is the argument as uprobe's parser reads it. When Symbol
	// is set, the innermost node of Expr is an OpAddr with Imm 0 that
	// stands for the symbol's address plus SymbolOffset.
	uprobe.FetchArg
	// Symbol is the data symbol of an @SYM[+|-OFFS] fetch-arg, "" if none.
	Symbol string
	// SymbolOffset is the +|-OFFS after Symbol, bytes.
	SymbolOffset int64
	// Body is the fetch expression as written, without "NAME=" and
	// ":TYPE". Line writes it back as is: it holds what Expr cannot
	// ("+u" user-memory dereferences, the symbol).
	Body string
	// TypeName is the type as written ("ustring" and "string" are both
	// uprobe.String), "" when omitted.
	TypeName string
}

// Probe is the probe's full name, "GROUP/EVENT".
func (k *KprobeSpec) Probe() string { return k.Group + "/" + k.Event }

// ParseKprobe parses one kprobe_events definition (see KprobeSpec).
// Errors are *uprobe.Error with the byte position of the problem, in the
// kernel's words where it has them.
//
// Defaults: the group is uprobe.DefaultGroup (as for ptprobe's uprobe
// specs, where the kernel would use "kprobes"); the event is the kernel's
// "p_KSYM_OFFS" ("r_" for return probes, OFFS in decimal) with ':' and '.'
// made '_', or "p_0xADDR" for an address (the kernel prints a hashed
// pointer there; ptprobe always names its events explicitly anyway).
func ParseKprobe(text string) (*KprobeSpec, error) {
	p := kparser{text: text}
	return p.parse()
}

type kparser struct{ text string }

func (p *kparser) err(pos int, msg string) *uprobe.Error {
	return &uprobe.Error{Text: p.text, Pos: pos, Msg: msg}
}

// word is a whitespace-separated word of the definition and its position.
type word struct {
	s   string
	pos int
}

// words splits the definition as the kernel's argv_split does.
func words(text string) []word {
	var ws []word
	for _, w := range uprobe.Words(text) {
		ws = append(ws, word{w.Text, w.Pos})
	}
	return ws
}

func (p *kparser) parse() (*KprobeSpec, error) {
	ws := words(p.text)
	if len(ws) == 0 {
		return nil, p.err(len(p.text), errKNoSpec)
	}
	k := &KprobeSpec{Text: p.text, Group: uprobe.DefaultGroup}
	cmd := ws[0]
	switch cmd.s[0] {
	case 'p':
	case 'r':
		k.Kind = uprobe.Return
	case '-':
		return nil, p.err(cmd.pos, errKDelete)
	default:
		return nil, p.err(cmd.pos, errKBadCommand)
	}
	head := cmd.s[1:]
	name := ""
	hasName := false
	if i := strings.IndexByte(head, ':'); i >= 0 {
		head, name, hasName = cmd.s[1:1+i], cmd.s[2+i:], true
	}
	if head != "" {
		if !isDigit(head[0]) {
			return nil, p.err(cmd.pos, errKBadCommand)
		}
		if k.Kind != uprobe.Return {
			return nil, p.err(cmd.pos+1, errKMaxactType)
		}
		n, ok := parseKUint(head)
		switch {
		case !ok || n == 0:
			return nil, p.err(cmd.pos+1, errKBadMaxact)
		case n > maxActiveMax:
			return nil, p.err(cmd.pos+1, errKMaxactBig)
		}
		k.MaxActive = int(n)
	}
	if hasName {
		if err := p.eventName(k, name, cmd.pos+len(cmd.s)-len(name)); err != nil {
			return nil, err
		}
	}
	if len(ws) < 2 {
		return nil, p.err(len(p.text), errKNoSpec)
	}
	if err := p.place(k, ws[1]); err != nil {
		return nil, err
	}
	if k.Event == "" {
		k.Event = defaultKprobeEvent(k)
	}
	if len(ws) > 2 {
		if err := p.args(k, ws[2:]); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// eventName parses "[GRP/]EVENT" (or "GRP/", keeping the default event
// name) at pos.
func (p *kparser) eventName(k *KprobeSpec, w string, pos int) *uprobe.Error {
	if slash := strings.IndexByte(w, '/'); slash >= 0 {
		grp := w[:slash]
		switch {
		case grp == "":
			return p.err(pos, errKNoGroup)
		case len(grp) > maxEventNameLen:
			return p.err(pos, errKGroupTooLong)
		case !isIdent(grp):
			return p.err(pos, errKBadGroup)
		}
		k.Group = grp
		w, pos = w[slash+1:], pos+slash+1
		if w == "" {
			return nil
		}
	}
	switch {
	case w == "":
		return p.err(pos, errKNoEvent)
	case len(w) > maxEventNameLen:
		return p.err(pos, errKEventTooLong)
	case !isIdent(w):
		return p.err(pos, errKBadEvent)
	}
	k.Event = w
	return nil
}

// place parses [MOD:]KSYM[+OFFS][%return] or KADDR.
func (p *kparser) place(k *KprobeSpec, w word) *uprobe.Error {
	if addr, ok := parseKUint(w.s); ok {
		k.Addr = addr
		return nil
	}
	if strings.IndexByte(w.s, '/') >= 0 && strings.IndexByte(w.s, ':') >= 0 {
		return p.err(w.pos, errKUprobe)
	}
	s := w.s
	if i := strings.IndexByte(s, '%'); i >= 0 {
		if s[i:] != "%return" {
			return p.err(w.pos+i, errKBadSuffix)
		}
		k.Kind = uprobe.Return
		s = s[:i]
	}
	sym := s
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		sym = s[:i]
		neg := s[i] == '-'
		off, ok := parseKUint(s[i+1:])
		if !ok || neg && off != 0 || off > maxKprobeOffset {
			return p.err(w.pos, errKBadAddr)
		}
		k.Offset = off
	}
	if c := strings.IndexByte(sym, ':'); c >= 0 {
		k.Module, sym = sym[:c], sym[c+1:]
		if k.Module == "" || !isKsym(k.Module) {
			return p.err(w.pos, errKBadAddr)
		}
	}
	if sym == "" || !isKsym(sym) {
		return p.err(w.pos, errKBadAddr)
	}
	k.Symbol = sym
	if k.Kind == uprobe.Return && k.Offset != 0 {
		return p.err(w.pos, errKRetprobe)
	}
	return nil
}

// isKsym reports whether s can be a kernel symbol or module name: C
// identifier bytes and '.' (compiler suffixes: "foo.isra.0", "bar.cold").
func isKsym(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlpha(c) || c == '_' || c == '.' || i > 0 && isDigit(c)) {
			return false
		}
	}
	return s != ""
}

// args parses the fetch-args with uprobe's parser. An @SYM[+|-OFFS] base,
// which uprobe specs do not have, is first replaced by "@0…0" of the
// same length, so that every position uprobe's parser reports is still a
// position in the text as written; the symbol is kept in the KprobeArg.
func (p *kparser) args(k *KprobeSpec, ws []word) error {
	masked := []byte(p.text)
	type symRef struct {
		sym string
		off int64
	}
	syms := make([]symRef, len(ws))
	for i, w := range ws {
		// Only the expression holds a base: not the name before the
		// first '=', nor the type after the next ':'.
		from := strings.IndexByte(w.s, '=') + 1
		to := len(w.s)
		if c := strings.IndexByte(w.s[from:], ':'); c >= 0 {
			to = from + c
		}
		at := strings.IndexByte(w.s[from:to], '@')
		if at < 0 {
			continue
		}
		at += from
		if at+1 >= len(w.s) {
			continue
		}
		c := w.s[at+1]
		if isDigit(c) {
			continue // @ADDR
		}
		if c == '+' {
			return p.err(w.pos+at, errKFileOffs)
		}
		// The symbol runs to the ')' closing a dereference, or the
		// type's ':' (so no MOD: prefix, as in the kernel).
		end := len(w.s)
		if j := strings.IndexAny(w.s[at:], "):"); j >= 0 {
			end = at + j
		}
		ref := w.s[at+1 : end]
		sym, off := ref, int64(0)
		if j := strings.IndexAny(ref, "+-"); j >= 0 {
			sym = ref[:j]
			v, ok := parseKUint(ref[j+1:])
			if !ok || v > math.MaxInt64 {
				return p.err(w.pos+at, errKBadMemAddr)
			}
			off = int64(v)
			if ref[j] == '-' {
				off = -off
			}
		}
		if !isKsym(sym) {
			return p.err(w.pos+at, errKBadMemAddr)
		}
		syms[i] = symRef{sym, off}
		for j := at + 1; j < end; j++ {
			masked[w.pos+j] = '0'
		}
	}
	fas, err := uprobe.ParseFetchArgs(string(masked), ws[0].pos, k.Kind)
	if err != nil {
		if e, ok := err.(*uprobe.Error); ok {
			e.Text = p.text
		}
		return err
	}
	k.Args = make([]KprobeArg, len(fas))
	for i := range fas {
		a := KprobeArg{FetchArg: fas[i], Symbol: syms[i].sym, SymbolOffset: syms[i].off}
		a.Text = ws[i].s
		// As the kernel does: the name ends at the first '=', the type
		// starts after the next ':'.
		body := ws[i].s
		if eq := strings.IndexByte(body, '='); eq >= 0 {
			body = body[eq+1:]
		}
		if c := strings.IndexByte(body, ':'); c >= 0 {
			body, a.TypeName = body[:c], body[c+1:]
		}
		a.Body = body
		if usesFileOffset(a.Expr) {
			return p.err(ws[i].pos, errKFileOffs)
		}
		k.Args[i] = a
	}
	return nil
}

func usesFileOffset(e *uprobe.Expr) bool {
	for ; e != nil; e = e.Inner {
		if e.Op == uprobe.OpFileOffset {
			return true
		}
	}
	return false
}

// defaultKprobeEvent names a probe as the kernel does (trace_kprobe.c):
// "%c_%s_%ld" with ':' and '.' made '_', cut to the name buffer.
func defaultKprobeEvent(k *KprobeSpec) string {
	c := "p"
	if k.Kind == uprobe.Return {
		c = "r"
	}
	var name string
	if k.Symbol == "" {
		name = c + "_0x" + strconv.FormatUint(k.Addr, 16)
	} else {
		sym := k.Symbol
		if k.Module != "" {
			sym = k.Module + ":" + sym
		}
		name = c + "_" + sym + "_" + strconv.FormatUint(k.Offset, 10)
	}
	b := []byte(name)
	for i, ch := range b {
		if ch == ':' || ch == '.' {
			b[i] = '_'
		}
	}
	if len(b) > maxEventNameLen {
		b = b[:maxEventNameLen]
	}
	return string(b)
}

// Line renders the definition as a kprobe_events line, every default
// written out: "p:GRP/EVENT [MOD:]KSYM+OFFS NAME=BODY:TYPE ...", "r[N]:"
// for return probes (also when written with %return, which older kernels
// do not know), "0xADDR" for an address.
func (k *KprobeSpec) Line() string { return KprobeLine(k, k.Group, k.Event) }

// KprobeLine renders k as a kprobe_events line under the given group and
// event names (a Session's kernel names for the user's probe).
func KprobeLine(k *KprobeSpec, group, event string) string {
	return kprobeLine(k, group, event, "")
}

// kprobeLine is KprobeLine with extra fetch-args written before k's
// (" NAME=FETCHARG:TYPE...", or "").
func kprobeLine(k *KprobeSpec, group, event, extra string) string {
	var b strings.Builder
	if k.Kind == uprobe.Return {
		b.WriteByte('r')
		if k.MaxActive > 0 {
			b.WriteString(strconv.Itoa(k.MaxActive))
		}
	} else {
		b.WriteByte('p')
	}
	b.WriteByte(':')
	b.WriteString(group)
	b.WriteByte('/')
	b.WriteString(event)
	b.WriteByte(' ')
	if k.Symbol == "" {
		b.WriteString("0x")
		b.WriteString(strconv.FormatUint(k.Addr, 16))
	} else {
		if k.Module != "" {
			b.WriteString(k.Module)
			b.WriteByte(':')
		}
		b.WriteString(k.Symbol)
		if k.Offset != 0 {
			b.WriteString("+0x")
			b.WriteString(strconv.FormatUint(k.Offset, 16))
		}
	}
	b.WriteString(extra)
	for i := range k.Args {
		a := &k.Args[i]
		b.WriteByte(' ')
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.Body)
		b.WriteByte(':')
		if a.TypeName != "" {
			b.WriteString(a.TypeName)
		} else {
			b.WriteString(a.Type.String())
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isIdent reports whether w is a valid event or group name.
func isIdent(w string) bool { return uprobe.IsGoodName(w) }

// parseKUint parses w as the kernel's kstrtoul(w, 0).
func parseKUint(w string) (uint64, bool) { return uprobe.ParseKernelUint(w) }
