package uprobe

import (
	"fmt"
	"strings"
)

// SpecOptions describe a probe for Build: what a spec's text says, field
// by field. Zero values are the defaults Parse gives.
type SpecOptions struct {
	Kind Kind
	// Group and Event name the probe; "" gives DefaultGroup and the
	// default event name of Parse.
	Group, Event string
	// Path is a file path (with a '/') or a library name ("libc").
	Path string
	// Symbol is the probed function; "" makes Offset a file offset.
	Symbol string
	// Offset is the file offset, or the offset from Symbol's start.
	Offset uint64
	// Args are fetch-args as a spec writes them: "size=%di:u64",
	// "+0(%si):string".
	Args []string
}

// Build makes the Spec that o describes, with the same defaults, checks
// and errors as Parse: it writes the spec's text and parses it, so that a
// probe made in Go and one written on a command line are the same probe.
// Errors are *Error, positions in the Spec's Text.
func Build(o SpecOptions) (*Spec, error) {
	var b strings.Builder
	if o.Kind == Return {
		b.WriteByte('r')
	} else {
		b.WriteByte('p')
	}
	if o.Group != "" || o.Event != "" {
		b.WriteByte(':')
		if o.Group != "" {
			b.WriteString(o.Group)
			b.WriteByte('/')
		}
		b.WriteString(o.Event)
	}
	if o.Path == "" || strings.ContainsAny(o.Path, " \t\n\v\f\r") {
		return nil, fmt.Errorf("probe path %q: must be a file path or a library name, without white space", o.Path)
	}
	b.WriteByte(' ')
	b.WriteString(o.Path)
	b.WriteByte(':')
	switch {
	case o.Symbol == "":
		fmt.Fprintf(&b, "0x%x", o.Offset)
	case o.Offset != 0:
		fmt.Fprintf(&b, "%s+0x%x", o.Symbol, o.Offset)
	default:
		b.WriteString(o.Symbol)
	}
	for _, a := range o.Args {
		if a == "" || strings.ContainsAny(a, " \t\n\v\f\r") {
			return nil, fmt.Errorf("fetch-arg %q: must be one word", a)
		}
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return Parse(b.String())
}
