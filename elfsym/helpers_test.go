package elfsym

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

const libcPath = "/lib/x86_64-linux-gnu/libc.so.6"

// needTool skips the test when a command-line tool it compares against is
// not installed.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s: not found in PATH", name)
	}
}

// needFile skips the test when a system file it reads is absent.
func needFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("needs %s: %v", path, err)
	}
}

// run runs a tool and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	return runTool(t, false, name, args...)
}

// runTool runs a tool; with lenient, a failure exit status is only
// logged (readelf --debug-dump=frames exits 1 on libc without saying why,
// after printing every frame).
func runTool(t *testing.T, lenient bool, name string, args ...string) string {
	t.Helper()
	needTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil && lenient {
		t.Logf("%s %s: %v (ignored)", name, strings.Join(args, " "), err)
	} else if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

func hex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("parse hex %q: %v", s, err)
	}
	return v
}

// readelfLoads returns the PT_LOAD headers as `readelf -lW` prints them.
func readelfLoads(t *testing.T, path string) []Segment {
	t.Helper()
	var segs []Segment
	sc := bufio.NewScanner(strings.NewReader(run(t, "readelf", "-lW", path)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] != "LOAD" {
			continue
		}
		// LOAD Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align;
		// the flags may be "R E" (two fields).
		s := Segment{Offset: hex(t, f[1]), Vaddr: hex(t, f[2]), Filesz: hex(t, f[4]), Memsz: hex(t, f[5])}
		flags := strings.Join(f[6:len(f)-1], "")
		if strings.Contains(flags, "R") {
			s.Flags |= 4
		}
		if strings.Contains(flags, "W") {
			s.Flags |= 2
		}
		if strings.Contains(flags, "E") {
			s.Flags |= 1
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 {
		t.Fatalf("readelf -lW %s: no LOAD header", path)
	}
	return segs
}

// execOffset computes off = vaddr - p_vaddr + p_offset through the
// executable LOAD header of readelf's output.
func execOffset(t *testing.T, segs []Segment, vaddr uint64) uint64 {
	t.Helper()
	for _, s := range segs {
		if s.Flags&1 != 0 && vaddr >= s.Vaddr && vaddr < s.Vaddr+s.Filesz {
			return vaddr - s.Vaddr + s.Offset
		}
	}
	t.Fatalf("address %#x: in no executable LOAD header of readelf", vaddr)
	return 0
}

// nmSym is a line of nm -S output.
type nmSym struct {
	value, size uint64
	typ         string
	name        string // as printed, with @VERSION
}

// nm runs nm with args (-S is added) and returns its defined symbols.
func nm(t *testing.T, args ...string) []nmSym {
	t.Helper()
	var out []nmSym
	for _, line := range strings.Split(run(t, "nm", append([]string{"-S"}, args...)...), "\n") {
		f := strings.Fields(line)
		switch len(f) {
		case 3: // value type name (no size)
			out = append(out, nmSym{value: hex(t, f[0]), typ: f[1], name: f[2]})
		case 4:
			out = append(out, nmSym{value: hex(t, f[0]), size: hex(t, f[1]), typ: f[2], name: f[3]})
		}
	}
	return out
}
