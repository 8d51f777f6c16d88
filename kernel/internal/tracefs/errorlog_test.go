package tracefs

import (
	"os"
	"syscall"
	"testing"
)

// errorLog is error_log as 6.18 wrote it for three refused definitions.
const errorLog = `[ 1701.441427] trace_uprobe: error: Invalid register name
  Command: p:tgx/push /tmp/kx/probes:0x1250 a=%di:s64 b=%si:s64 c=%fs_base
                                                                  ^
[ 1701.692316] trace_uprobe: error: Invalid register name
  Command: p:tgx/push /tmp/kx/probes:0x1250 a=%di:s64 b=%ds
                                                        ^
[ 1702.603089] trace_uprobe: error: $arg* can be used only on function entry or exit
  Command: p:tgx/push /tmp/kx/probes:0x1250 a=$arg1
                                              ^
`

func TestParseErrorLog(t *testing.T) {
	es := parseErrorLog(errorLog)
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(es), es)
	}
	e := es[1]
	if e.msg != "Invalid register name" || e.command != "p:tgx/push /tmp/kx/probes:0x1250 a=%di:s64 b=%ds" || e.pos != 45 {
		t.Errorf("entry %+v", e)
	}
	if e.command[e.pos:] != "%ds" {
		t.Errorf("caret at %q, want %%ds", e.command[e.pos:])
	}
	if es[2].msg != "$arg* can be used only on function entry or exit" || es[2].command[es[2].pos:] != "$arg1" {
		t.Errorf("entry %+v", es[2])
	}
}

func TestKernelErrorFromLog(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileNew(dir+"/error_log", errorLog); err != nil {
		t.Fatal(err)
	}
	tfs := &Tracefs{Root: dir}
	// The words of the line as the kernel joins them: single spaces.
	ke := tfs.Refused("uprobe_events", "p:tgx/push  /tmp/kx/probes:0x1250 a=%di:s64 b=%ds", syscall.EINVAL)
	if ke.Msg != "Invalid register name" || ke.Pos != 45 || ke.Err != syscall.EINVAL {
		t.Errorf("%+v", ke)
	}
	want := "trace_uprobe: error: Invalid register name\n" +
		"  Command: p:tgx/push /tmp/kx/probes:0x1250 a=%di:s64 b=%ds\n" +
		"                                                        ^"
	if ke.Caret() != want {
		t.Errorf("Caret:\n%s\nwant\n%s", ke.Caret(), want)
	}
	ke = tfs.Refused("uprobe_events", "p:x/y /bin/true:0x10", syscall.ENOENT)
	if ke.Msg != "" || ke.Pos != -1 || ke.Log != "" {
		t.Errorf("no entry: %+v", ke)
	}
}

func writeFileNew(path, data string) error {
	return os.WriteFile(path, []byte(data), 0o600)
}
