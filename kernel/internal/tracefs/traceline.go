package tracefs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ptprobe/ptprobe/uprobe"
)

// EventInfo is what parsing a trace_pipe line needs to know about the
// event it names: the user's names and the probe's kind and fetch-args.
type EventInfo struct {
	Group, Name string // the user's GROUP/EVENT
	Kind        uprobe.Kind
	Args        []ArgInfo
	// CommArg: the first of Args is CommArgName, the thread's name
	// recorded at the hit, which becomes the event's Comm rather than
	// one of its Args.
	CommArg bool
	// Events counts the events of the probe Pipe.Read delivered.
	Events atomic.Uint64
}

// CommArgName is the fetch-arg the kernel backend adds to every probe to
// record the thread's name ($comm) at the hit. The comm column of
// trace_pipe comes from a cache of 128 pid-to-name entries read when the
// line is printed: after a busy moment it shows "<...>", and after an
// exec the new name for the old program's events.
const CommArgName = "__ptprobe_comm"

// CommArg is the fetch-arg CommArgName=$comm:string.
func CommArg() uprobe.FetchArg {
	return uprobe.FetchArg{Name: CommArgName, Type: uprobe.Type{Kind: uprobe.String}, Expr: &uprobe.Expr{Op: uprobe.OpComm}}
}

// ArgInfo is a fetch-arg as trace_pipe prints it: "name=value".
type ArgInfo struct {
	Name string
	Type uprobe.Type
}

// errIncomplete reports a line that ends inside a string argument: the
// kernel prints strings as they are, so a string with a newline continues
// on the next line.
var errIncomplete = errors.New("line ends inside a string argument")

// errUnknownEvent is wrapped for lines of events that are not the
// session's.
var errUnknownEvent = errors.New("not an event of this session")

// LineError is a trace_pipe line that could not be parsed.
type LineError struct {
	Line string
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("trace_pipe line %q: %s", e.Line, e.Msg) }

// parseTraceLine parses one trace_pipe entry (possibly several lines
// joined by '\n', see errIncomplete) into ev:
//
//	comm-tid     (tgid) [cpu] flags secs.usecs: event: (0xip) name=value ...
//	comm-tid     [cpu] secs.usecs: event: (0xretip <- 0xfunc) name=value ...
//
// comm is right-aligned in 16 columns; the tgid column is there with the
// record-tgid option ("(-------)" when the kernel does not know it: then
// ev.PID is 0), the flags column with irq-info. Kprobe events show
// symbols, "(sym+0x4/0x10 <ffffffff81000004>)" with the sym-addr option;
// the address is taken from the <...>, 0 without it. lookup maps a kernel
// event name to its info; nil means the event is not the session's.
//
// Values: u types in decimal, s types in signed decimal, x types as 0x..,
// strings within double quotes with their bytes as they are, "(fault)"
// for a failed fetch. A string containing `" next=` is ambiguous; the
// first reading with which the rest of the line parses wins.
func parseTraceLine(line string, lookup func(kname string) *EventInfo, ev *uprobe.Event) error {
	bad := func(format string, a ...any) error {
		return &LineError{Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	*ev = uprobe.Event{Args: ev.Args[:0]}

	// comm-tid
	p := -1
	if len(line) > 17 && line[16] == '-' && isDigit(line[17]) {
		p = 16
	} else {
		p = findCommEnd(line)
	}
	if p < 0 {
		return bad("no comm-pid column")
	}
	ev.Comm = strings.TrimLeft(line[:p], " ")
	i := p + 1
	j := i
	for j < len(line) && isDigit(line[j]) {
		j++
	}
	tid, err := strconv.Atoi(line[i:j])
	if err != nil {
		return bad("bad pid %q", line[i:j])
	}
	ev.TID = tid
	i = skipSpaces(line, j)

	// (tgid)
	if i < len(line) && line[i] == '(' {
		end := strings.IndexByte(line[i:], ')')
		if end < 0 {
			return bad("tgid column not closed")
		}
		t := strings.TrimSpace(line[i+1 : i+end])
		if n, err := strconv.Atoi(t); err == nil {
			ev.PID = n
		} else if strings.Trim(t, "-") != "" {
			return bad("bad tgid %q", t)
		}
		i = skipSpaces(line, i+end+1)
	}

	// [cpu]
	if i >= len(line) || line[i] != '[' {
		return bad("no [cpu] column")
	}
	end := strings.IndexByte(line[i:], ']')
	if end < 0 {
		return bad("[cpu] column not closed")
	}
	cpu, err := strconv.Atoi(line[i+1 : i+end])
	if err != nil {
		return bad("bad cpu %q", line[i+1:i+end])
	}
	ev.CPU = cpu
	i = skipSpaces(line, i+end+1)

	// [flags] secs.usecs:
	tok, next := nextToken(line, i)
	ts, ok := parseTimestamp(tok)
	if !ok {
		tok, next = nextToken(line, skipSpaces(line, next))
		if ts, ok = parseTimestamp(tok); !ok {
			return bad("no timestamp")
		}
	}
	ev.TimeNS = ts
	i = skipSpaces(line, next)

	// event:
	colon := strings.IndexByte(line[i:], ':')
	if colon <= 0 {
		return bad("no event name")
	}
	kname := line[i : i+colon]
	info := lookup(kname)
	if info == nil {
		return fmt.Errorf("trace_pipe line %q: event %q: %w", line, kname, errUnknownEvent)
	}
	ev.Group, ev.Name, ev.Kind = info.Group, info.Name, info.Kind
	i += colon + 1
	if i < len(line) && line[i] == ' ' {
		i++
	}

	// (ip) or (retip <- func)
	if i >= len(line) || line[i] != '(' {
		return bad("no (ip) column")
	}
	end = strings.IndexByte(line[i:], ')')
	if end < 0 {
		return bad("(ip) column not closed")
	}
	addrs := line[i+1 : i+end]
	if info.Kind == uprobe.Return {
		ret, fn, ok := strings.Cut(addrs, " <- ")
		if !ok {
			return bad("return probe without \"<-\"")
		}
		ev.RetIP, ev.IP = parseIP(ret), parseIP(fn)
	} else {
		ev.IP = parseIP(addrs)
	}
	rest := line[i+end+1:]

	if len(info.Args) == 0 {
		if strings.TrimSpace(rest) != "" {
			return bad("unexpected text after the address: %q", rest)
		}
		return nil
	}
	if !strings.HasPrefix(rest, " ") {
		return bad("no arguments")
	}
	vals, err := parseArgs(rest[1:], info.Args, ev.Args[:0])
	if err == errIncomplete {
		return err
	}
	if err != nil {
		return bad("%v", err)
	}
	if info.CommArg {
		c := vals[0]
		vals = append(vals[:0], vals[1:]...)
		if !c.Fault {
			ev.Comm = c.S
		}
	}
	ev.Args = vals
	return nil
}

// findCommEnd finds the '-' between comm and tid when comm is not in its
// usual 16 columns: the first "-DIGITS " followed by "(" or "[".
func findCommEnd(line string) int {
	for i := 0; i < len(line); i++ {
		if line[i] != '-' || i+1 >= len(line) || !isDigit(line[i+1]) {
			continue
		}
		j := i + 1
		for j < len(line) && isDigit(line[j]) {
			j++
		}
		if j < len(line) && line[j] == ' ' {
			k := skipSpaces(line, j)
			if k < len(line) && (line[k] == '(' || line[k] == '[') {
				return i
			}
		}
	}
	return -1
}

func skipSpaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// nextToken returns the word of s at i and the index after it.
func nextToken(s string, i int) (string, int) {
	j := i
	for j < len(s) && s[j] != ' ' {
		j++
	}
	return s[i:j], j
}

// parseTimestamp parses "secs.usecs:" (nanosecond clocks, printed in
// microseconds) or "count:" (other clocks, printed raw) into nanoseconds
// (raw counts as they are).
func parseTimestamp(tok string) (uint64, bool) {
	t, ok := strings.CutSuffix(tok, ":")
	if !ok || t == "" {
		return 0, false
	}
	secs, usecs, dot := strings.Cut(t, ".")
	s, err := strconv.ParseUint(secs, 10, 64)
	if err != nil {
		return 0, false
	}
	if !dot {
		return s, true
	}
	if len(usecs) != 6 {
		return 0, false
	}
	u, err := strconv.ParseUint(usecs, 10, 64)
	if err != nil {
		return 0, false
	}
	return s*1e9 + u*1e3, true
}

// parseIP parses an address as trace_pipe prints it: "0x55d4c3a01139"
// (uprobes), "sym+0x4/0x10 <ffffffff81000004>" (kprobes with sym-addr),
// "0" for a null address; 0 when there is no number (a bare symbol).
func parseIP(s string) uint64 {
	s = strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		v, _ := strconv.ParseUint(h, 16, 64)
		return v
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		v, _ := strconv.ParseUint(s[i+1:len(s)-1], 16, 64)
		return v
	}
	return 0
}

const faultText = "(fault)"

// parseArgs parses "name=value name=value ..." for args, appending to
// vals. A string value ends at a '"' followed by " NEXT=" (or the end of
// the text for the last arg); where there are several such places the
// first one with which the rest parses is taken.
func parseArgs(s string, args []ArgInfo, vals []uprobe.Value) ([]uprobe.Value, error) {
	a := args[0]
	last := len(args) == 1
	v, ok := strings.CutPrefix(s, a.Name+"=")
	if !ok {
		return nil, fmt.Errorf("argument %s: expected %q", a.Name, a.Name+"=")
	}
	val := uprobe.Value{Name: a.Name, Type: a.Type}
	sep := ""
	if !last {
		sep = " " + args[1].Name + "="
	}
	// continueAt parses the rest after a value that ends at v[k:].
	continueAt := func(k int) ([]uprobe.Value, error) {
		out := append(vals, val)
		if last {
			if k != len(v) {
				return nil, fmt.Errorf("argument %s: unexpected text %q after the value", a.Name, v[k:])
			}
			return out, nil
		}
		if !strings.HasPrefix(v[k:], " ") {
			return nil, fmt.Errorf("argument %s: no argument %s after it", a.Name, args[1].Name)
		}
		return parseArgs(v[k+1:], args[1:], out)
	}

	if strings.HasPrefix(v, faultText) {
		k := len(faultText)
		if last && k == len(v) || !last && strings.HasPrefix(v[k:], sep) {
			val.Fault = true
			out, err := continueAt(k)
			if err == nil || err == errIncomplete {
				return out, err
			}
			val.Fault = false
		}
	}

	if a.Type.Kind == uprobe.String && a.Type.Len > 0 {
		return parseStrings(v, a, &val, continueAt)
	}
	if a.Type.Kind == uprobe.String {
		if !strings.HasPrefix(v, `"`) {
			return nil, fmt.Errorf("argument %s: string without its opening quote", a.Name)
		}
		if last {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) {
				return nil, errIncomplete
			}
			val.S = v[1 : len(v)-1]
			return append(vals, val), nil
		}
		end := `"` + sep
		found := false
		var firstErr error
		for from := 1; ; {
			k := strings.Index(v[from:], end)
			if k < 0 {
				break
			}
			k += from
			found = true
			val.S = v[1:k]
			out, err := continueAt(k + 1)
			if err == nil {
				return out, nil
			}
			if err == errIncomplete {
				return nil, err
			}
			if firstErr == nil {
				firstErr = err
			}
			from = k + 1
		}
		if !found {
			return nil, errIncomplete
		}
		return nil, firstErr
	}

	if a.Type.Len > 0 {
		// {e1,e2,...}: no white space inside, chars are '%c' bytes.
		if !strings.HasPrefix(v, "{") {
			return nil, fmt.Errorf("argument %s: array without its '{'", a.Name)
		}
		val.Elems = make([]uint64, 0, a.Type.Len)
		k := 1
		for i := 0; i < a.Type.Len; i++ {
			if i > 0 {
				if k >= len(v) || v[k] != ',' {
					return nil, errIncomplete
				}
				k++
			}
			n, u, err := parseElem(v[k:], a.Type)
			if err != nil {
				return nil, fmt.Errorf("argument %s element %d: %v", a.Name, i, err)
			}
			val.Elems = append(val.Elems, u)
			k += n
		}
		if k >= len(v) || v[k] != '}' {
			return nil, errIncomplete
		}
		return continueAt(k + 1)
	}
	if a.Type.Kind == uprobe.Char {
		// '%c': the byte itself, whatever it is.
		if len(v) < 3 || v[0] != '\'' || v[2] != '\'' {
			return nil, fmt.Errorf("argument %s: char %q is not 'c'", a.Name, v)
		}
		val.U = uint64(v[1])
		return continueAt(3)
	}
	k := strings.IndexByte(v, ' ')
	if k < 0 {
		k = len(v)
	}
	u, err := parseValue(v[:k], a.Type)
	if err != nil {
		return nil, fmt.Errorf("argument %s: %v", a.Name, err)
	}
	val.U = u
	return continueAt(k)
}

// parseElem parses one element of an array at the start of s, returning
// its length in s and its value.
func parseElem(s string, t uprobe.Type) (int, uint64, error) {
	if t.Kind == uprobe.Char {
		if len(s) < 3 || s[0] != '\'' || s[2] != '\'' {
			return 0, 0, fmt.Errorf("char %q is not 'c'", s)
		}
		return 3, uint64(s[1]), nil
	}
	k := strings.IndexAny(s, ",}")
	if k < 0 {
		return 0, 0, errIncomplete
	}
	u, err := parseValue(s[:k], t)
	return k, u, err
}

// parseValue parses an integer as the kernel prints its type: u in
// decimal, s in signed decimal (sign-extended into the result), x as 0x...
func parseValue(s string, t uprobe.Type) (uint64, error) {
	bits := t.Size * 8
	if bits <= 0 || bits > 64 {
		bits = 64
	}
	switch t.Kind {
	case uprobe.Signed:
		v, err := strconv.ParseInt(s, 10, bits)
		return uint64(v), err
	case uprobe.Hex:
		h, ok := strings.CutPrefix(s, "0x")
		if !ok {
			return 0, fmt.Errorf("hex value %q without 0x", s)
		}
		return strconv.ParseUint(h, 16, bits)
	}
	return strconv.ParseUint(s, 10, bits)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseStrings parses a string array as the kernel prints it,
// {"s1","s2",...}, into val.Strs, then the rest of the line (continueAt,
// after the '}'). A string may hold any byte, `","` and `"}` too: each
// way of cutting the text into Len strings is tried, leftmost first,
// until the rest of the line parses.
func parseStrings(v string, a ArgInfo, val *uprobe.Value, continueAt func(int) ([]uprobe.Value, error)) ([]uprobe.Value, error) {
	if !strings.HasPrefix(v, `{"`) {
		return nil, fmt.Errorf("argument %s: string array without its '{\"'", a.Name)
	}
	n := a.Type.Len
	var try func(from int, strs []string) ([]uprobe.Value, error)
	try = func(from int, strs []string) ([]uprobe.Value, error) {
		end := `","`
		if len(strs) == n-1 {
			end = `"}`
		}
		var firstErr error
		for k := from; k <= len(v); {
			i := strings.Index(v[k:], end)
			if i < 0 {
				break
			}
			i += k
			next := append(strs[:len(strs):len(strs)], v[from:i])
			var out []uprobe.Value
			var err error
			if len(next) == n {
				val.Strs = next
				out, err = continueAt(i + len(end))
			} else {
				out, err = try(i+len(end), next)
			}
			if err == nil {
				return out, nil
			}
			if firstErr == nil && err != errIncomplete {
				firstErr = err
			}
			k = i + 1
		}
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, errIncomplete
	}
	return try(2, nil)
}
