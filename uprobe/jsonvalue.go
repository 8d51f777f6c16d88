package uprobe

import "strconv"

// AppendJSONString appends s as a JSON string literal, as AppendJSON
// writes strings (for other writers of events: aggregations, trace files).
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }

// AppendJSON appends the value as AppendJSON writes it in "args": u and s
// types as numbers, x types as "0x.." strings, strings as JSON strings,
// an array as [...], a Go slice as {"len":N,"elems":[...]}, a faulted
// fetch as null.
func (v *Value) AppendJSON(b []byte) []byte {
	switch {
	case v.Fault:
		return append(b, "null"...)
	case v.Slice:
		// {"len":N,"elems":[...]}: the first elements, at most
		// Type.Len of them.
		b = append(b, `{"len":`...)
		b = strconv.AppendUint(b, v.Count, 10)
		b = append(b, `,"elems":[`...)
		for i, u := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONScalar(b, u, v.Type)
		}
		for i, s := range v.Strs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return append(b, "]}"...)
	case v.Type.Len > 0:
		// An array, of strings (string[N]) or of scalars.
		b = append(b, '[')
		for i, s := range v.Strs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		for i, u := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONScalar(b, u, v.Type)
		}
		return append(b, ']')
	case v.Type.Kind == String:
		return appendJSONString(b, v.S)
	case v.Type.Enum != nil:
		return appendJSONScalar(b, v.U, v.Type)
	case v.Type.Kind == Signed:
		return strconv.AppendInt(b, int64(signExtend(v.U, v.Type.Size)), 10)
	case v.Type.Kind == Hex:
		b = append(b, `"0x`...)
		b = strconv.AppendUint(b, v.U&sizeMask(v.Type.Size), 16)
		return append(b, '"')
	}
	return strconv.AppendUint(b, v.U&sizeMask(v.Type.Size), 10)
}
