package kernel

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// TestEnableNamesRefusedProbe: when the kernel refuses to enable a probe
// (a uprobe on cli: the kernel's x86 instruction decoder refuses it with
// ENOTSUPP, errno 524, once a process maps the file), the error names that
// probe, not the group, and says what errno 524 means; the program never
// runs and nothing is left enabled or defined.
func TestEnableNamesRefusedProbe(t *testing.T) {
	t.Parallel()
	tfs := requireTracefs(t)
	dir := t.TempDir()
	prog := testprog.Build(t, dir, "probes", testprog.PIE...)
	for _, c := range []struct {
		name    string
		refused []string
		want    string
	}{
		{"one", []string{"p:t/refused " + prog + ":refused_func"}, "kernel: the kernel refused to enable probe t/refused (\"p:t/refused " + prog + ":refused_func\", defined as "},
		{"two", []string{"p:t/refused " + prog + ":refused_func", "p:t/again " + prog + ":refused_func"}, "kernel: the kernel refused to enable 2 of the 3 probes:\n  t/refused ("},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSession(t, tfs, nil)
			addSpecs(t, s, append([]string{"p:t/push " + prog + ":push_func"}, c.refused...)...)
			out, err := os.Create(dir + "/out-" + c.name)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			c2 := &collector{}
			_, err = runArgv(s, []string{prog, "3"}, out, c2.add)
			if err == nil {
				t.Fatal("run enabled a probe on cli")
			}
			msg := err.Error()
			for _, want := range []string{c.want, prog + ":0x", `errno 524 (ENOTSUPP, "operation not supported", an error number internal to the kernel: its uprobes cannot probe the instruction at that address)`} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "t/push") {
				t.Errorf("error %q names the probe the kernel took", msg)
			}
			if !errors.Is(err, syscall.Errno(524)) {
				t.Errorf("error %q does not wrap errno 524", msg)
			}
			if b, _ := os.ReadFile(out.Name()); len(b) != 0 || len(c2.evs) != 0 {
				t.Errorf("the program ran: output %q, %d events", b, len(c2.evs))
			}
			for _, p := range s.probes {
				if b, err := os.ReadFile(s.inst.Path("events", s.inst.Name, p.kname, "enable")); err != nil || strings.TrimSpace(string(b)) != "0" {
					t.Errorf("%s left enabled (%q, %v)", p.kname, b, err)
				}
			}
		})
	}
}
