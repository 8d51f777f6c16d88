package uprobe

import "testing"

// TestBuild: a spec built in Go equals the one parsed from its text, with
// the same defaults and the same errors.
func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		o    SpecOptions
		text string
	}{
		{SpecOptions{Path: "libc", Symbol: "malloc", Args: []string{"size=%di:u64"}}, "libc:malloc size=%di:u64"},
		{SpecOptions{Kind: Return, Path: "/bin/ls", Symbol: "main", Args: []string{"$retval"}}, "r /bin/ls:main $retval"},
		{SpecOptions{Group: "g", Event: "e", Path: "/bin/ls", Offset: 0x10}, "p:g/e /bin/ls:0x10"},
		{SpecOptions{Group: "g", Path: "/bin/ls", Symbol: "main", Offset: 4}, "p:g/ /bin/ls:main+4"},
	} {
		got, err := Build(tc.o)
		if err != nil {
			t.Errorf("Build(%+v): %v", tc.o, err)
			continue
		}
		want, err := Parse(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("Build(%+v) = %s, want %s", tc.o, got, want)
		}
	}
	if _, err := Build(SpecOptions{Path: "libc", Symbol: "malloc", Args: []string{"%zz"}}); err == nil {
		t.Error("Build with a bad register: no error")
	} else if e, ok := err.(*Error); !ok || e.Msg != errBadReg {
		t.Errorf("Build with a bad register: %v, want %q", err, errBadReg)
	}
}
