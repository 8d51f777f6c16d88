package tracefs

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

var (
	s64    = uprobe.Type{Kind: uprobe.Signed, Size: 8}
	s8     = uprobe.Type{Kind: uprobe.Signed, Size: 1}
	u8     = uprobe.Type{Kind: uprobe.Unsigned, Size: 1}
	u16    = uprobe.Type{Kind: uprobe.Unsigned, Size: 2}
	x8     = uprobe.Type{Kind: uprobe.Hex, Size: 1}
	x32    = uprobe.Type{Kind: uprobe.Hex, Size: 4}
	x64    = uprobe.Type{Kind: uprobe.Hex, Size: 8}
	strTyp = uprobe.Type{Kind: uprobe.String}
)

// testEvents are the events the trace_pipe lines below name.
var testEvents = map[string]*EventInfo{
	"push": {Group: "t", Name: "push", Args: []ArgInfo{{"a", s64}, {"b", s64}, {"s", strTyp}}},
	"mid":  {Group: "t", Name: "mid", Kind: uprobe.Return, Args: []ArgInfo{{"v", s64}}},
	"ts":   {Group: "t", Name: "ts", Args: []ArgInfo{{"i", s64}, {"s", strTyp}, {"x", x32}, {"b", u8}}},
	"ti":   {Group: "t", Name: "ti", Args: []ArgInfo{{"a", s8}, {"b", x8}, {"c", u16}, {"d", x64}}},
	"last": {Group: "t", Name: "last", Args: []ArgInfo{{"i", s64}, {"s", strTyp}}},
	"bare": {Group: "g", Name: "bare"},
	"kp":   {Group: "k", Name: "kp", Args: []ArgInfo{{"x", x64}}},
	"kr":   {Group: "k", Name: "kr", Kind: uprobe.Return},
	"cm":   {Group: "c", Name: "cm", CommArg: true, Args: []ArgInfo{{CommArgName, strTyp}, {"a", s64}}},
	"cm0":  {Group: "c", Name: "cm0", CommArg: true, Args: []ArgInfo{{CommArgName, strTyp}}},
	"sa":   {Group: "t", Name: "sa", Args: []ArgInfo{{"ns", strs2}, {"b", u8}}},
	"sl":   {Group: "t", Name: "sl", Args: []ArgInfo{{"ns", strs2}}},
}

var strs2 = uprobe.Type{Kind: uprobe.String, Len: 2}

func testLookup(k string) *EventInfo { return testEvents[k] }

func TestParseTraceLine(t *testing.T) {
	for _, tc := range []struct {
		line      string
		want      uprobe.Event
		roundTrip bool
	}{
		{
			// Lines as 6.18 prints them, with record-tgid and irq-info.
			line: "          probes-24540   (  24540) [000] DBZff  1705.569205: push: (0x55b72d4aa250) a=1 b=2 s=(fault)",
			want: uprobe.Event{TimeNS: 1705569205000, PID: 24540, TID: 24540, CPU: 0, Comm: "probes", Group: "t", Name: "push", IP: 0x55b72d4aa250,
				Args: []uprobe.Value{{Name: "a", Type: s64, U: 1}, {Name: "b", Type: s64, U: 2}, {Name: "s", Type: strTyp, Fault: true}}},
		},
		{
			line: "          probes-24540   (  24540) [001] DBZff  1705.569244: mid: (0x55b72d4aa0af <- 0x55b72d4aa26c) v=-1",
			want: uprobe.Event{TimeNS: 1705569244000, PID: 24540, TID: 24540, CPU: 1, Comm: "probes", Group: "t", Name: "mid", Kind: uprobe.Return, IP: 0x55b72d4aa26c, RetIP: 0x55b72d4aa0af,
				Args: []uprobe.Value{{Name: "v", Type: s64, U: ^uint64(0)}}},
		},
		{
			// Without the tgid and irq-info columns.
			line: "         strings-25667   [001] 1938.938275: ti: (0x55b7bc94d260) a=-2 b=0xfe c=65534 d=0xfffffffffffffffe",
			want: uprobe.Event{TimeNS: 1938938275000, TID: 25667, CPU: 1, Comm: "strings", Group: "t", Name: "ti", IP: 0x55b7bc94d260,
				Args: []uprobe.Value{{Name: "a", Type: s8, U: ^uint64(1)}, {Name: "b", Type: x8, U: 0xfe}, {Name: "c", Type: u16, U: 65534}, {Name: "d", Type: x64, U: 0xfffffffffffffffe}}},
			roundTrip: true,
		},
		{
			// A string that holds what looks like the next argument.
			line: `         strings-25667   (  25660) [001] DBZff  1938.938180: ts: (0x55b7bc94d250) i=2 s="quote" x="y" x=0x746f7571 b=113`,
			want: uprobe.Event{TimeNS: 1938938180000, PID: 25660, TID: 25667, CPU: 1, Comm: "strings", Group: "t", Name: "ts", IP: 0x55b7bc94d250,
				Args: []uprobe.Value{{Name: "i", Type: s64, U: 2}, {Name: "s", Type: strTyp, S: `quote" x="y`}, {Name: "x", Type: x32, U: 0x746f7571}, {Name: "b", Type: u8, U: 113}}},
		},
		{
			// A string with a newline (joined entry), an empty string.
			line: "         strings-25667   (-------) [001] DBZff  1938.938191: ts: (0x55b7bc94d250) i=3 s=\"new\nline\" x=0xa77656e b=110",
			want: uprobe.Event{TimeNS: 1938938191000, TID: 25667, CPU: 1, Comm: "strings", Group: "t", Name: "ts", IP: 0x55b7bc94d250,
				Args: []uprobe.Value{{Name: "i", Type: s64, U: 3}, {Name: "s", Type: strTyp, S: "new\nline"}, {Name: "x", Type: x32, U: 0xa77656e}, {Name: "b", Type: u8, U: 110}}},
		},
		{
			line: `    a-b c  d-e-7   [000] 10.000001: last: (0x1) i=0 s=""`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "a-b c  d-e", Group: "t", Name: "last", IP: 1,
				Args: []uprobe.Value{{Name: "i", Type: s64}, {Name: "s", Type: strTyp}}},
		},
		{
			line: `           <...>-7       [000] ..... 10.000001: last: (0x1) i=0 s="a" s="b"`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "<...>", Group: "t", Name: "last", IP: 1,
				Args: []uprobe.Value{{Name: "i", Type: s64}, {Name: "s", Type: strTyp, S: `a" s="b`}}},
		},
		{
			line: "  a_very_long_comm-123456  [003] d.... 1.000000: bare: (0x401000)",
			want: uprobe.Event{TimeNS: 1e9, TID: 123456, CPU: 3, Comm: "a_very_long_comm", Group: "g", Name: "bare", IP: 0x401000},
		},
		{
			// Kprobe lines show symbols; with sym-addr the address too.
			line: "             cat-1234    [000] d.... 5.500000: kp: (vfs_read+0x4/0x1a0 <ffffffff81234564>) x=0x10",
			want: uprobe.Event{TimeNS: 5500000000, TID: 1234, Comm: "cat", Group: "k", Name: "kp", IP: 0xffffffff81234564,
				Args: []uprobe.Value{{Name: "x", Type: x64, U: 0x10}}},
		},
		{
			line: "             cat-1234    [000] d.... 5.500000: kr: (ksys_read+0x6b/0xf0 <ffffffff8120006b> <- vfs_read <ffffffff81234560>)",
			want: uprobe.Event{TimeNS: 5500000000, TID: 1234, Comm: "cat", Group: "k", Name: "kr", Kind: uprobe.Return, IP: 0xffffffff81234560, RetIP: 0xffffffff8120006b},
		},
		{
			// The comm recorded at the hit wins over the comm
			// column, a cache that may have lost it.
			line: `           <...>-7       [000] ..... 10.000001: cm: (0x1) __ptprobe_comm="my "prog" a=" a=5`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: `my "prog" a=`, Group: "c", Name: "cm", IP: 1,
				Args: []uprobe.Value{{Name: "a", Type: s64, U: 5}}},
		},
		{
			// A string array as 6.18 prints string[2].
			line: `              ft-7       [000] 10.000001: sa: (0x1) ns={"a","b"} b=3`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "ft", Group: "t", Name: "sa", IP: 1,
				Args: []uprobe.Value{{Name: "ns", Type: strs2, Strs: []string{"a", "b"}}, {Name: "b", Type: u8, U: 3}}},
			roundTrip: true,
		},
		{
			// Strings that hold the separators: the leftmost cut.
			line: `              ft-7       [000] 10.000001: sl: (0x1) ns={"x"}","y","z"}`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "ft", Group: "t", Name: "sl", IP: 1,
				Args: []uprobe.Value{{Name: "ns", Type: strs2, Strs: []string{`x"}`, `y","z`}}}},
		},
		{
			line: `              ft-7       [000] 10.000001: sa: (0x1) ns=(fault) b=3`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "ft", Group: "t", Name: "sa", IP: 1,
				Args: []uprobe.Value{{Name: "ns", Type: strs2, Fault: true}, {Name: "b", Type: u8, U: 3}}},
		},
		{
			line: `           <...>-7       [000] ..... 10.000001: cm0: (0x1) __ptprobe_comm=(fault)`,
			want: uprobe.Event{TimeNS: 10000001000, TID: 7, Comm: "<...>", Group: "c", Name: "cm0", IP: 1},
		},
	} {
		var ev uprobe.Event
		if err := parseTraceLine(tc.line, testLookup, &ev); err != nil {
			t.Errorf("parseTraceLine(%q): %v", tc.line, err)
			continue
		}
		if len(ev.Args) == 0 {
			ev.Args = nil
		}
		if !reflect.DeepEqual(ev, tc.want) {
			t.Errorf("parseTraceLine(%q):\n got %+v\nwant %+v", tc.line, ev, tc.want)
		}
		// Without the tgid and irq-info columns, which AppendText
		// does not have, and names the same for the user and the
		// kernel, the event prints back as the kernel printed it.
		if tc.roundTrip {
			if got := string(ev.AppendText(nil)); got != tc.line+"\n" {
				t.Errorf("AppendText:\n got %q\nwant %q", got, tc.line+"\n")
			}
		}
	}
}

func TestParseTraceLineErrors(t *testing.T) {
	var ev uprobe.Event
	for _, line := range []string{
		"",
		"garbage",
		"          probes-24540   [000] 1705.569205: push (0x1) a=1 b=2 s=\"x\"",
		"          probes-24540   [000] 1705.569205: push: 0x1 a=1 b=2 s=\"x\"",
		"          probes-24540   [000] 1705.569205: push: (0x1) a=1 b=2",
		"          probes-24540   [000] 1705.569205: push: (0x1) a=x b=2 s=\"x\"",
		"          probes-24540   [000] 1705.569205: mid: (0x1) v=1",
		"          probes-24540   [000] 1705.569205: ti: (0x1) a=-2 b=254 c=1 d=0x1",
		"          probes-24540   [000] 1705.569205: ti: (0x1) a=-200 b=0x1 c=1 d=0x1",
		"          probes-24540   [000] 1705.56920: push: (0x1) a=1 b=2 s=\"x\"",
	} {
		err := parseTraceLine(line, testLookup, &ev)
		var le *LineError
		if !errors.As(err, &le) {
			t.Errorf("parseTraceLine(%q) = %v, want a *LineError", line, err)
		}
	}
	// Not one of the session's events.
	err := parseTraceLine("          probes-24540   [000] 1705.569205: other: (0x1)", testLookup, &ev)
	if !errors.Is(err, errUnknownEvent) {
		t.Errorf("unknown event: %v", err)
	}
	// Strings cut by a newline.
	for _, line := range []string{
		"          probes-1   [000] 1.000000: push: (0x1) a=1 b=2 s=\"new",
		"          probes-1   [000] 1.000000: ts: (0x1) i=1 s=\"new",
		"          probes-1   [000] 1.000000: last: (0x1) i=1 s=\"",
		// It may be a string with a newline: the next line tells.
		"          probes-24540   [000] 1705.569205: push: (0x1) a=1 b=2 s=\"x\" junk",
	} {
		if err := parseTraceLine(line, testLookup, &ev); err != errIncomplete {
			t.Errorf("parseTraceLine(%q) = %v, want errIncomplete", line, err)
		}
	}
}

// TestLineReader feeds trace_pipe output in pieces, as reads return it:
// lines cut anywhere, strings with newlines, bad lines in between.
func TestLineReader(t *testing.T) {
	text := "" +
		"         strings-25667   [001] 1.000001: last: (0x1) i=1 s=\"one\"\n" +
		"         strings-25667   [001] 1.000002: last: (0x1) i=2 s=\"two\nlines\"\n" +
		"this is not an event\n" +
		"         strings-25667   [001] 1.000003: last: (0x1) i=3 s=\"three\n\nlines\"\n" +
		"         strings-25667   [001] 1.000004: other: (0x1)\n" +
		"         strings-25667   [001] 1.000005: ts: (0x1) i=5 s=\"a\nb\" x=0x1 b=1\n" +
		"         strings-25667   [001] 1.000006: last: (0x1) i=6 s=\"" + strings.Repeat("x\n", 300) + "\"\n" +
		"         strings-25667   [001] 1.000007: last: (0x1) i=7 s=\"unterminated\n"
	for _, chunk := range []int{1, 7, 64, len(text)} {
		var got []string
		var warnings []error
		lr := lineReader{lookup: testLookup, tgids: map[int]tgidOf{}, bad: func(err error) { warnings = append(warnings, err) },
			fn: func(ev *uprobe.Event) error {
				got = append(got, ev.Args[1].S)
				return nil
			}}
		for i := 0; i < len(text); i += chunk {
			if err := lr.feed([]byte(text[i:min(i+chunk, len(text))]), false); err != nil {
				t.Fatal(err)
			}
		}
		if err := lr.feed(nil, true); err != nil {
			t.Fatal(err)
		}
		want := []string{"one", "two\nlines", "three\n\nlines", "a\nb", strings.Repeat("x\n", 300)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunks of %d: strings %q, want %q", chunk, got, want)
		}
		if len(warnings) != 3 {
			t.Errorf("chunks of %d: %d bad lines (%v), want 3", chunk, len(warnings), warnings)
		}
	}
}
