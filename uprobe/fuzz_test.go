package uprobe

import (
	"encoding/json"
	"errors"
	"testing"
)

// fuzzThread is a small address space for FuzzParse to fetch from:
// registers point into two mapped pages of pointers and text.
func fuzzThread() *fakeThread {
	f := newFake()
	f.base = 0x1000
	for a := uint64(0x1000); a < 0x3000; a += 8 {
		f.write64(a, 0x1000+(a*7)%0x2000) // pointers back into the pages
	}
	f.write(0x2800, []byte("a string\x00"))
	f.regs.Rdi, f.regs.Rsi, f.regs.Rsp, f.regs.Rax = 0x1000, 0x2800, 0x1800, 0x2ff8
	return f
}

// FuzzParse checks that Parse never panics, that its errors are *Error
// with a position inside the text, and that an accepted spec's canonical
// String parses back to an equal spec that renders the same.
func FuzzParse(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzParse; these few keep the
	// target useful when that directory is missing.
	f.Add("p:grp/ev /bin/ls:0x10 a=+0(%di):string b=$stack1:s32")
	f.Add("r libc:malloc $retval")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q): error %T %v, want *Error", text, err, err)
			}
			if e.Pos < 0 || e.Pos > len(text) || e.Text != text || e.Msg == "" {
				t.Fatalf("Parse(%q): bad error %+v", text, e)
			}
			_ = e.Caret()
			return
		}
		if s.Text != text {
			t.Fatalf("Parse(%q).Text = %q", text, s.Text)
		}
		if !isIdent(s.Group) || !isIdent(s.Event) || len(s.Group) > maxNameLen || len(s.Event) > maxNameLen {
			t.Fatalf("Parse(%q): bad names %q/%q", text, s.Group, s.Event)
		}
		if len(s.Args) > maxArgs {
			t.Fatalf("Parse(%q): %d args", text, len(s.Args))
		}
		checkRoundTrip(t, s)

		// The accepted spec's args evaluate and format without panics,
		// into valid JSON.
		e := Event{Group: s.Group, Name: s.Event, Kind: s.Kind, Comm: "fuzz"}
		e.Args = s.FetchArgs(fuzzThread(), nil)
		_ = e.AppendText(nil)
		if line := e.AppendJSON(nil); !json.Valid(line) {
			t.Fatalf("Parse(%q): invalid JSON %s", text, line)
		}
	})
}
