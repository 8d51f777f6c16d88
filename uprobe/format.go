package uprobe

import (
	"strconv"
	"unicode/utf8"
)

// AppendText appends the value as trace_pipe prints it, "name=value":
// u8..u64 in decimal, s8..s64 in signed decimal, x8..x64 as 0x%x, strings
// within double quotes with their bytes as they are (as the kernel prints
// them), followed by "..." when the string was longer than MaxStringLen
// and cut (where the kernel prints "(fault)"), an enum's value as its
// enumerator's name (its number when none has it), and "(fault)" for a
// failed fetch.
func (v Value) AppendText(b []byte) []byte {
	b = append(b, v.Name...)
	b = append(b, '=')
	if v.Fault {
		return append(b, "(fault)"...)
	}
	if v.Slice {
		// Its length, then its first elements as the kernel prints
		// an array, "..." after the last when there are more:
		// [10]{0,1,2,3,4,5,6,7,...}.
		b = append(b, '[')
		b = strconv.AppendUint(b, v.Count, 10)
		b = append(b, "]{"...)
		n := len(v.Elems)
		for i, u := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendScalar(b, u, v.Type)
		}
		if v.Type.Kind == String {
			n = len(v.Strs)
			for i, s := range v.Strs {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = append(b, s...)
				b = append(b, '"')
			}
		}
		if uint64(n) < v.Count {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, "..."...)
		}
		return append(b, '}')
	}
	if v.Type.Len > 0 && v.Type.Kind == String {
		// As the kernel prints a string array: {"a","b"}.
		b = append(b, '{')
		for i, s := range v.Strs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		}
		b = append(b, '}')
		if v.Truncated {
			b = append(b, "..."...)
		}
		return b
	}
	if v.Type.Len > 0 {
		// As the kernel prints an array: {a,b,c}.
		b = append(b, '{')
		for i, u := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendScalar(b, u, v.Type)
		}
		return append(b, '}')
	}
	switch v.Type.Kind {
	case String:
		b = append(b, '"')
		b = append(b, v.S...)
		b = append(b, '"')
		if v.Truncated {
			b = append(b, "..."...)
		}
		return b
	}
	return appendScalar(b, v.U, v.Type)
}

// appendScalar appends an integer of type t as trace_pipe prints it; a
// char is its byte in single quotes, as the kernel's '%c' prints it.
func appendScalar(b []byte, u uint64, t Type) []byte {
	if name, ok := enumName(u, t); ok {
		return append(b, name...)
	}
	switch t.Kind {
	case Signed:
		return strconv.AppendInt(b, int64(signExtend(u, t.Size)), 10)
	case Hex:
		return strconv.AppendUint(append(b, "0x"...), u&sizeMask(t.Size), 16)
	case Char:
		return append(b, '\'', byte(u), '\'')
	}
	return strconv.AppendUint(b, u&sizeMask(t.Size), 10)
}

// enumName is the enumerator's name of u, an integer of type t, when t
// is an enum with one for it.
func enumName(u uint64, t Type) (string, bool) {
	if t.Enum == nil {
		return "", false
	}
	v := int64(u & sizeMask(t.Size))
	if t.Kind == Signed {
		v = int64(signExtend(u, t.Size))
	}
	return t.Enum.Lookup(v)
}

// AppendText appends the event as one trace_pipe line with its newline:
//
//	comm-tid     [cpu] secs.usecs: event: (0xip) name=value ...
//
// comm right-aligned in 16 columns, tid left-aligned in 7, the CPU in 3
// digits and the time in microseconds, rounded as the kernel's ns2usecs
// does. Return probes show "(0xretip <- 0xfunc)": the address returned
// to, then the function's, in the kernel's order (print_uprobe_event
// prints vaddr[1], the return address, before vaddr[0], the function).
// Unlike trace_pipe there is no irq-info column (d.h.) — a ptrace stop
// has none to show.
func (e *Event) AppendText(b []byte) []byte {
	for i := len(e.Comm); i < 16; i++ {
		b = append(b, ' ')
	}
	b = append(b, e.Comm...)
	b = append(b, '-')
	start := len(b)
	b = strconv.AppendInt(b, int64(e.TID), 10)
	for i := len(b) - start; i < 7; i++ {
		b = append(b, ' ')
	}
	b = append(b, " ["...)
	b = appendPadded(b, int64(e.CPU), 3)
	b = append(b, "] "...)
	usecs := (e.TimeNS + 500) / 1000
	b = strconv.AppendUint(b, usecs/1e6, 10)
	b = append(b, '.')
	b = appendPadded(b, int64(usecs%1e6), 6)
	b = append(b, ": "...)
	b = append(b, e.Name...)
	b = append(b, ": (0x"...)
	if e.Kind == Return {
		b = strconv.AppendUint(b, e.RetIP, 16)
		b = append(b, " <- 0x"...)
	}
	b = strconv.AppendUint(b, e.IP, 16)
	b = append(b, ')')
	for i := range e.Args {
		b = append(b, ' ')
		b = e.Args[i].AppendText(b)
	}
	return append(b, '\n')
}

// appendPadded appends v in decimal zero-padded to width, as %0*d does.
func appendPadded(b []byte, v int64, width int) []byte {
	if v < 0 {
		b = append(b, '-')
		width--
		v = -v
	}
	var d [20]byte
	s := strconv.AppendUint(d[:0], uint64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// AppendJSON appends the event as one JSON object with its newline:
//
//	{"time_ns":N,"pid":N,"tid":N,"comm":"..","probe":"GROUP/EVENT","ip":"0x..","args":{"name":value,...}}
//
// Return probes have "retip":"0x.." after "ip". Args keep their order:
// u and s types as numbers, x types as "0x.." strings (as trace_pipe
// shows them), strings as JSON strings, an enum's value as its
// enumerator's name (a string; a number when none has it) and faulted
// args as null. Bytes of
// a string that are not UTF-8 become U+FFFD, as encoding/json makes them.
// Strings cut at MaxStringLen bytes are named in "truncated":["name",...]
// after "args", present only when there is one.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"time_ns":`...)
	b = strconv.AppendUint(b, e.TimeNS, 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(e.PID), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(e.TID), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, e.Comm)
	b = append(b, `,"probe":`...)
	b = append(b, '"')
	b = appendJSONChars(b, e.Group)
	b = append(b, '/')
	b = appendJSONChars(b, e.Name)
	b = append(b, '"')
	b = append(b, `,"ip":"0x`...)
	b = strconv.AppendUint(b, e.IP, 16)
	if e.Kind == Return {
		b = append(b, `","retip":"0x`...)
		b = strconv.AppendUint(b, e.RetIP, 16)
	}
	b = append(b, '"')
	if e.Kind == Return && e.DurationNS != 0 {
		b = append(b, `,"duration_ns":`...)
		b = strconv.AppendUint(b, e.DurationNS, 10)
	}
	b = append(b, `,"args":{`...)
	for i := range e.Args {
		v := &e.Args[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v.Name)
		b = append(b, ':')
		switch {
		case v.Fault:
			b = append(b, "null"...)
		case v.Slice:
			b = v.AppendJSON(b)
		case v.Type.Len > 0 && v.Type.Kind == String:
			b = append(b, '[')
			for i, s := range v.Strs {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, s)
			}
			b = append(b, ']')
		case v.Type.Len > 0:
			b = append(b, '[')
			for i, u := range v.Elems {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONScalar(b, u, v.Type)
			}
			b = append(b, ']')
		case v.Type.Kind == Char || v.Type.Enum != nil:
			b = appendJSONScalar(b, v.U, v.Type)
		case v.Type.Kind == String:
			b = appendJSONString(b, v.S)
		case v.Type.Kind == Signed:
			b = strconv.AppendInt(b, int64(signExtend(v.U, v.Type.Size)), 10)
		case v.Type.Kind == Hex:
			b = append(b, `"0x`...)
			b = strconv.AppendUint(b, v.U&sizeMask(v.Type.Size), 16)
			b = append(b, '"')
		default:
			b = strconv.AppendUint(b, v.U&sizeMask(v.Type.Size), 10)
		}
	}
	b = append(b, '}')
	first := true
	for i := range e.Args {
		if !e.Args[i].Truncated || e.Args[i].Fault {
			continue
		}
		if first {
			b = append(b, `,"truncated":[`...)
			first = false
		} else {
			b = append(b, ',')
		}
		b = appendJSONString(b, e.Args[i].Name)
	}
	if !first {
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal: quotes, backslashes
// and control bytes escaped, invalid UTF-8 replaced by U+FFFD and U+2028,
// U+2029 escaped, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars appends s escaped for the inside of a JSON string.
func appendJSONChars(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendJSONScalar appends an integer of type t as JSON: a number, a
// "0x..." string for hex types, a one-byte string for a char, an
// enumerator's name as a string.
func appendJSONScalar(b []byte, u uint64, t Type) []byte {
	if name, ok := enumName(u, t); ok {
		return appendJSONString(b, name)
	}
	switch t.Kind {
	case Signed:
		return strconv.AppendInt(b, int64(signExtend(u, t.Size)), 10)
	case Hex:
		b = append(b, `"0x`...)
		b = strconv.AppendUint(b, u&sizeMask(t.Size), 16)
		return append(b, '"')
	case Char:
		return appendJSONString(b, string([]byte{byte(u)}))
	}
	return strconv.AppendUint(b, u&sizeMask(t.Size), 10)
}
