package tracefs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ptprobe/ptprobe/uprobe"
)

// formatField is a field of an event's format file:
//
//	field:s64 a;	offset:16;	size:8;	signed:1;
type formatField struct {
	typ    string // "s64", "u32", "__data_loc char[]"
	name   string
	size   int // bytes
	signed bool
	array  bool // "u32 name[]": size is all the elements'
}

// parseFormat returns the fields of a format file after the common_*
// fields and the probe's own __probe_* fields: the fetch-args, in order.
func parseFormat(text string) ([]formatField, error) {
	var fields []formatField
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		rest, ok := strings.CutPrefix(l, "field:")
		if !ok {
			continue
		}
		decl, attrs, _ := strings.Cut(rest, ";")
		decl = strings.TrimSpace(decl)
		sp := strings.LastIndexAny(decl, " \t")
		if sp < 0 {
			return nil, fmt.Errorf("bad format field %q", l)
		}
		f := formatField{typ: strings.TrimSpace(decl[:sp]), name: decl[sp+1:]}
		if n, ok := strings.CutSuffix(f.name, "[]"); ok {
			// An array: "u8 arr[]", its size all of its elements'.
			f.name, f.array = n, true
		}
		for _, a := range strings.Split(attrs, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(a), ":")
			switch k {
			case "size":
				f.size, _ = strconv.Atoi(v)
			case "signed":
				f.signed = v == "1"
			}
		}
		if strings.HasPrefix(f.name, "common_") || strings.HasPrefix(f.name, "__probe_") {
			continue
		}
		fields = append(fields, f)
	}
	return fields, nil
}

// CheckFormat checks that the kernel made the event with the fetch-args
// we meant, from the text of its format file: same names, in order, with
// the sizes and signedness of their types. A mismatch is a rendering bug,
// which would make every value read back wrong.
func CheckFormat(format string, args []ArgInfo) error {
	fields, err := parseFormat(format)
	if err != nil {
		return err
	}
	return checkFields(fields, args)
}

func checkFields(fields []formatField, args []ArgInfo) error {
	if len(fields) != len(args) {
		return fmt.Errorf("the kernel's event has %d fields, the probe %d fetch-args", len(fields), len(args))
	}
	for i, a := range args {
		f := fields[i]
		if f.name != a.Name {
			return fmt.Errorf("field %d is %q, the fetch-arg %q", i, f.name, a.Name)
		}
		if a.Type.Kind == uprobe.String {
			if !strings.Contains(f.typ, "char[]") {
				return fmt.Errorf("field %s has type %q, not a string", f.name, f.typ)
			}
			continue
		}
		size := a.Type.Size
		if a.Type.Len > 0 {
			size *= a.Type.Len
		}
		if f.size != size || f.array != (a.Type.Len > 0) || f.signed != (a.Type.Kind == uprobe.Signed) {
			return fmt.Errorf("field %s is %q (size %d, signed %v), the fetch-arg's type %s", f.name, f.typ, f.size, f.signed, a.Type)
		}
	}
	return nil
}
