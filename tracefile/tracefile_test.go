package tracefile

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

func mustParse(t *testing.T, s string) *uprobe.Spec {
	t.Helper()
	spec, err := uprobe.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestChromePairs: without a backend's duration (the kernel's returns
// carry none), a return is paired with its thread's latest entry of the
// same function; an entry left open is an instant at Close.
func TestChromePairs(t *testing.T) {
	entry := mustParse(t, "p:g/f /bin/true:f n=%di:s64")
	ret := mustParse(t, "r:g/fr /bin/true:f rv=$retval:s64")
	var out bytes.Buffer
	c := NewChrome(&out, []*uprobe.Spec{entry, ret})
	s64 := uprobe.Type{Kind: uprobe.Signed, Size: 8}
	ev := func(spec *uprobe.Spec, t uint64, tid int, name string, v uint64) *uprobe.Event {
		return &uprobe.Event{TimeNS: t, PID: 1, TID: tid, Comm: "x\"y", Group: spec.Group, Name: spec.Event, Kind: spec.Kind, Args: []uprobe.Value{{Name: name, Type: s64, U: v}}}
	}
	c.Add(ev(entry, 1000, 1, "n", 2))
	c.Add(ev(entry, 2000, 1, "n", 1))
	c.Add(ev(entry, 2500, 2, "n", 7)) // another thread, never returns
	c.Add(ev(ret, 3500, 1, "rv", 1))
	c.Add(ev(ret, 9000, 1, "rv", 2))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents []struct {
			Name, Ph string
			Ts, Dur  float64
			Tid      int
			Args     map[string]any
		}
	}
	if err := json.Unmarshal(out.Bytes(), &tr); err != nil {
		t.Fatalf("%v:\n%s", err, out.Bytes())
	}
	var got []string
	for _, e := range tr.TraceEvents {
		switch e.Ph {
		case "X":
			got = append(got, e.Name+" "+jsonText(e.Ts)+"+"+jsonText(e.Dur)+" n="+jsonText(e.Args["n"])+" rv="+jsonText(e.Args["rv"]))
		case "i":
			got = append(got, "instant "+e.Name)
		case "M":
			got = append(got, e.Name+" "+e.Args["name"].(string))
		}
	}
	want := "process_name x\"y; thread_name x\"y; thread_name x\"y; f 2+1.5 n=1 rv=1; f 1+8 n=2 rv=2; instant /bin/true:f (no return)"
	if strings.Join(got, "; ") != want {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "; "), want)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFolded(t *testing.T) {
	f := NewFolded()
	f.Add([]string{"leaf", "mid", "main"})
	f.Add([]string{"leaf", "mid", "main"})
	f.Add([]string{"a b;c", "main"})
	f.Add(nil)
	var out bytes.Buffer
	f.WriteTo(&out)
	if want := "main;a_b_c 1\nmain;mid;leaf 2\n"; out.String() != want {
		t.Errorf("folded %q, want %q", out.String(), want)
	}
}
