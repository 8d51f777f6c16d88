package uprobe

// ParseFetchArgs parses the fetch-arguments of a probe definition that is
// not a uprobe spec (the kernel backend's kprobe_events lines): the
// whitespace-separated words of text from byte start on, each
// [NAME=]FETCHARG[:TYPE], with the rules, defaults and limits of Parse
// (names "argN" by position, DefaultType, String for $comm, at most the
// kernel's 128 args). kind says whether $retval is allowed.
//
// Errors are *Error whose Text is the whole of text and whose Pos is a
// byte position in it, so that a caller's caret points into the line the
// user wrote. A nil slice is returned when text has no word from start.
func ParseFetchArgs(text string, start int, kind Kind) ([]FetchArg, error) {
	if start < 0 || start > len(text) {
		return nil, &Error{Text: text, Pos: len(text), Msg: errBadFetchArg}
	}
	p := parser{text: text}
	s := &Spec{Text: text, Kind: kind}
	toks := tokenize(text[start:])
	if len(toks) > maxArgs {
		return nil, p.err(start+toks[maxArgs].pos, errTooManyArgs)
	}
	for i := range toks {
		toks[i].pos += start
		a, err := p.fetchArg(s, i, toks[i])
		if err != nil {
			return nil, err
		}
		s.Args = append(s.Args, a)
	}
	return s.Args, nil
}

// IsGoodName reports whether w is a valid event or group name: a C
// identifier, the kernel's is_good_name.
func IsGoodName(w string) bool { return isIdent(w) }

// ParseKernelUint parses w as the kernel's kstrtoul(w, 0) does: "0x" hex,
// a leading 0 octal, else decimal; all of w, without sign or overflow.
func ParseKernelUint(w string) (uint64, bool) { return parseUint(w) }

// Word is a whitespace-separated word of a probe definition and its byte
// position in the definition.
type Word struct {
	Text string
	Pos  int
}

// Words splits a probe definition into words the way the kernel's
// argv_split does (at isspace characters).
func Words(text string) []Word {
	toks := tokenize(text)
	ws := make([]Word, len(toks))
	for i, t := range toks {
		ws[i] = Word{Text: t.s, Pos: t.pos}
	}
	return ws
}
