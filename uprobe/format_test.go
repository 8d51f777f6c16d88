package uprobe

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestValueAppendText(t *testing.T) {
	tests := []struct {
		v    Value
		want string
	}{
		{Value{Name: "a", Type: Type{Kind: Unsigned, Size: 8}, U: 1<<64 - 1}, "a=18446744073709551615"},
		{Value{Name: "a", Type: Type{Kind: Unsigned, Size: 1}, U: 0x1ff}, "a=255"}, // masked to the size
		{Value{Name: "a", Type: Type{Kind: Signed, Size: 8}, U: 1 << 63}, "a=-9223372036854775808"},
		{Value{Name: "a", Type: Type{Kind: Signed, Size: 2}, U: 0x8000}, "a=-32768"}, // not yet sign-extended
		{Value{Name: "a", Type: Type{Kind: Signed, Size: 4}, U: 0x7fffffff}, "a=2147483647"},
		{Value{Name: "a", Type: Type{Kind: Hex, Size: 8}, U: 0}, "a=0x0"},
		{Value{Name: "a", Type: Type{Kind: Hex, Size: 8}, U: 0xDEADbeef}, "a=0xdeadbeef"},
		{Value{Name: "a", Type: Type{Kind: Hex, Size: 4}, U: 0xffffffff00000010}, "a=0x10"},
		{Value{Name: "s", Type: Type{Kind: String}, S: "hi there"}, `s="hi there"`},
		{Value{Name: "s", Type: Type{Kind: String}, S: ""}, `s=""`},
		{Value{Name: "s", Type: Type{Kind: String}, S: "q\"\n\xff"}, "s=\"q\"\n\xff\""},
		{Value{Name: "s", Type: Type{Kind: String}, Fault: true}, "s=(fault)"},
		{Value{Name: "s", Type: Type{Kind: String}, S: "abc", Truncated: true}, `s="abc"...`}, // cut at MaxStringLen
		{Value{Name: "n", Type: Type{Kind: Unsigned, Size: 4}, Fault: true, U: 5}, "n=(fault)"},
		{Value{Name: "z"}, "z=0"}, // the zero Type is a u with no size: 64 bits
		{Value{Name: "c", Type: Type{Kind: Signed, Size: 4, Enum: colors}, U: 5}, "c=GREEN"},
		{Value{Name: "c", Type: Type{Kind: Signed, Size: 4, Enum: colors}, U: 0xffffffff}, "c=NEG"}, // sign-extended first
		{Value{Name: "c", Type: Type{Kind: Signed, Size: 4, Enum: colors}, U: 7}, "c=7"},            // no enumerator: the number
		{Value{Name: "c", Type: Type{Kind: Signed, Size: 4, Enum: colors, Len: 3}, Elems: []uint64{0, 5, 9}}, "c={RED,GREEN,9}"},
		{Value{Name: "xs", Type: Type{Kind: Signed, Size: 8, Len: 2}, Slice: true, Count: 2, Elems: []uint64{1, 1<<64 - 1}}, "xs=[2]{1,-1}"},
		{Value{Name: "xs", Type: Type{Kind: Signed, Size: 8, Len: 2}, Slice: true, Count: 5, Elems: []uint64{1, 2}}, "xs=[5]{1,2,...}"},
		{Value{Name: "xs", Type: Type{Kind: Signed, Size: 8, Len: 2}, Slice: true}, "xs=[0]{}"},
		{Value{Name: "ws", Type: Type{Kind: String, Len: 2}, Slice: true, Count: 3, Strs: []string{"a", ""}}, `ws=[3]{"a","",...}`},
	}
	for _, tt := range tests {
		if got := string(tt.v.AppendText([]byte(nil))); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.v, got, tt.want)
		}
		if got := string(tt.v.AppendText([]byte("x "))); got != "x "+tt.want {
			t.Errorf("%+v appended: %q", tt.v, got)
		}
	}
}

// colors is a C enum of the debug information.
var colors = &Enum{Name: "enum color", Vals: []Enumerator{{"RED", 0}, {"GREEN", 5}, {"NEG", -1}}}

// TestSliceJSON: a Go slice is {"len":N,"elems":[...]}.
func TestSliceJSON(t *testing.T) {
	ev := Event{Group: "g", Name: "e", Args: []Value{
		{Name: "xs", Type: Type{Kind: Hex, Size: 8, Len: 8}, Slice: true, Count: 9, Elems: []uint64{1, 2}},
		{Name: "ws", Type: Type{Kind: String, Len: 8}, Slice: true, Count: 1, Strs: []string{"w\""}},
		{Name: "n", Type: Type{Kind: String, Len: 8}, Slice: true}}}
	got := string(ev.AppendJSON(nil))
	if want := `"args":{"xs":{"len":9,"elems":["0x1","0x2"]},"ws":{"len":1,"elems":["w\""]},"n":{"len":0,"elems":[]}}`; !strings.Contains(got, want) {
		t.Errorf("%s\nwant %s", got, want)
	}
}

// TestEnumJSON: an enum's value is its enumerator's name in JSON too, a
// number when it has none.
func TestEnumJSON(t *testing.T) {
	typ := Type{Kind: Signed, Size: 4, Enum: colors}
	ev := Event{Group: "g", Name: "e", Args: []Value{{Name: "a", Type: typ, U: 5}, {Name: "b", Type: typ, U: 7}}}
	got := string(ev.AppendJSON(nil))
	if !strings.Contains(got, `"args":{"a":"GREEN","b":7}`) {
		t.Errorf("%s: want a as \"GREEN\" and b as 7", got)
	}
	if got := string(ev.Args[0].AppendJSON(nil)); got != `"GREEN"` {
		t.Errorf("Value.AppendJSON: %s", got)
	}
	if typ.String() != "s32" {
		t.Errorf("an enum is written %s, want the kernel's integer type s32", typ)
	}
}

var (
	entryEvent = Event{
		TimeNS: 12345_678901_234, PID: 1230, TID: 1234, CPU: 1, Comm: "ls",
		Group: "ptprobe", Name: "malloc", Kind: Entry, IP: 0x7f12a4e98930,
		Args: []Value{{Name: "size", Type: DefaultType, U: 0x10}},
	}
	returnEvent = Event{
		TimeNS: 5_000000_999, PID: 77, TID: 78, CPU: 12, Comm: "a-very-long-comm",
		Group: "g", Name: "open__return", Kind: Return, IP: 0x401000, RetIP: 0x401234,
		Args: []Value{
			{Name: "ret", Type: Type{Kind: Signed, Size: 4}, U: 0xffffffffffffffff},
			{Name: "path", Type: Type{Kind: String}, S: "/etc/passwd"},
			{Name: "flags", Type: Type{Kind: Unsigned, Size: 4}, U: 0x80000},
			{Name: "bad", Type: Type{Kind: String}, Fault: true},
			{Name: "bad2", Type: Type{Kind: Hex, Size: 8}, Fault: true},
		},
	}
)

func TestEventAppendText(t *testing.T) {
	tests := []struct {
		e    *Event
		want string
	}{
		{&entryEvent, "              ls-1234    [001] 12345.678901: malloc: (0x7f12a4e98930) size=0x10\n"},
		{&returnEvent, `a-very-long-comm-78      [012] 5.000001: open__return: (0x401234 <- 0x401000) ret=-1 path="/etc/passwd" flags=524288 bad=(fault) bad2=(fault)` + "\n"},
		{&Event{Comm: "x", TID: 1234567, CPU: 123, Name: "e", IP: 1}, "               x-1234567 [123] 0.000000: e: (0x1)\n"},
		{&Event{Comm: "x", TID: 12345678, CPU: 1234, Name: "e", TimeNS: 999_999_500, IP: 1}, "               x-12345678 [1234] 1.000000: e: (0x1)\n"},
		{&Event{Comm: "", TID: 1, CPU: -1, Name: "e", TimeNS: 999_999_499}, "                -1       [-01] 0.999999: e: (0x0)\n"},
	}
	for _, tt := range tests {
		got := string(tt.e.AppendText(nil))
		if got != tt.want {
			t.Errorf("AppendText:\n got %q\nwant %q", got, tt.want)
		}
	}
}

func TestEventAppendJSON(t *testing.T) {
	got := string(entryEvent.AppendJSON(nil))
	want := `{"time_ns":12345678901234,"pid":1230,"tid":1234,"comm":"ls","probe":"ptprobe/malloc","ip":"0x7f12a4e98930","args":{"size":"0x10"}}` + "\n"
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	got = string(returnEvent.AppendJSON(nil))
	want = `{"time_ns":5000000999,"pid":77,"tid":78,"comm":"a-very-long-comm","probe":"g/open__return","ip":"0x401000","retip":"0x401234","args":{"ret":-1,"path":"/etc/passwd","flags":524288,"bad":null,"bad2":null}}` + "\n"
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	cut := Event{Group: "g", Name: "e", Args: []Value{
		{Name: "a", Type: Type{Kind: String}, S: "x", Truncated: true},
		{Name: "b", Type: Type{Kind: String}, S: "y"},
		{Name: "c", Type: Type{Kind: String}, S: "z", Truncated: true},
	}}
	got = string(cut.AppendJSON(nil))
	want = `{"time_ns":0,"pid":0,"tid":0,"comm":"","probe":"g/e","ip":"0x0","args":{"a":"x","b":"y","c":"z"},"truncated":["a","c"]}` + "\n"
	if got != want {
		t.Errorf("AppendJSON of cut strings:\n got %s\nwant %s", got, want)
	}
	empty := Event{Group: "g", Name: "e"}
	if got := string(empty.AppendJSON([]byte("prefix\n"))); got != "prefix\n"+`{"time_ns":0,"pid":0,"tid":0,"comm":"","probe":"g/e","ip":"0x0","args":{}}`+"\n" {
		t.Errorf("empty event: %s", got)
	}
}

// jsonEvent is what a consumer decodes an AppendJSON line into.
type jsonEvent struct {
	TimeNS uint64         `json:"time_ns"`
	PID    int            `json:"pid"`
	TID    int            `json:"tid"`
	Comm   string         `json:"comm"`
	Probe  string         `json:"probe"`
	IP     string         `json:"ip"`
	RetIP  *string        `json:"retip"`
	Args   map[string]any `json:"args"`
}

func TestEventJSONValid(t *testing.T) {
	weird := []string{
		"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\x7f\t\n\r\b\f",
		"\xff\xfe invalid", "trunc \xe2\x82", "ok é ü 日本 🙂", "\u2028\u2029",
		"<script>&amp;", strings.Repeat("\x80", 10), "mixed\xc3\x28bad",
	}
	for _, s := range weird {
		e := Event{
			TimeNS: 1, PID: 2, TID: 3, Comm: s, Group: "g", Name: "e", Kind: Return, IP: 4, RetIP: 5,
			Args: []Value{
				{Name: "s", Type: Type{Kind: String}, S: s},
				{Name: "u", Type: Type{Kind: Unsigned, Size: 8}, U: 1<<64 - 1},
				{Name: "i", Type: Type{Kind: Signed, Size: 1}, U: 0x80},
				{Name: "x", Type: Type{Kind: Hex, Size: 2}, U: 0xabcd},
			},
		}
		line := e.AppendJSON(nil)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Errorf("%q: not one line: %q", s, line)
		}
		if !json.Valid(line) {
			t.Errorf("%q: invalid JSON %s", s, line)
			continue
		}
		var je jsonEvent
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&je); err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		// encoding/json's own rendering of s, decoded, is the reference:
		// both replace invalid UTF-8 by U+FFFD.
		ref, _ := json.Marshal(s)
		var want string
		json.Unmarshal(ref, &want)
		if je.Comm != want || je.Args["s"] != want {
			t.Errorf("%q: comm %q, s %q, want %q", s, je.Comm, je.Args["s"], want)
		}
		if je.Probe != "g/e" || je.IP != "0x4" || je.RetIP == nil || *je.RetIP != "0x5" || je.TimeNS != 1 || je.PID != 2 || je.TID != 3 {
			t.Errorf("%q: %+v", s, je)
		}
		if je.Args["u"] != json.Number("18446744073709551615") || je.Args["i"] != json.Number("-128") || je.Args["x"] != "0xabcd" {
			t.Errorf("%q: args %v", s, je.Args)
		}
	}
}

func TestFormatAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = returnEvent.AppendText(buf[:0]) }); n != 0 {
		t.Errorf("AppendText: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = returnEvent.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON: %v allocs", n)
	}
}
