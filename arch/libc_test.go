package arch

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The tests in this file decode the machine's real libc: hand-written
// tables test what their author thought of, libc tests what compilers and
// glibc's assembly actually emit (AVX2/EVEX string functions, CET, TSX,
// pkeys, x87).

// libcPath is the library the tests decode. PTPROBE_ARCH_ELF names another
// x86-64 ELF file to run the same checks on (libcrypto and libstdc++ are
// good ones: hand-written AVX-512 and CET code).
var libcPath = "/lib/x86_64-linux-gnu/libc.so.6"

func init() {
	if p := os.Getenv("PTPROBE_ARCH_ELF"); p != "" {
		libcPath = p
	}
}

type libcFunc struct {
	name string
	addr uint64 // link-time virtual address
	code []byte
}

type libcImage struct {
	text     []byte // the executable PT_LOAD segment, file contents
	textAddr uint64 // its p_vaddr
	funcs    []libcFunc
}

// bytesAt returns the file bytes at link-time address addr (up to 15).
func (l *libcImage) bytesAt(addr uint64) []byte {
	if addr < l.textAddr || addr >= l.textAddr+uint64(len(l.text)) {
		return nil
	}
	b := l.text[addr-l.textAddr:]
	if len(b) > MaxInstLen {
		b = b[:MaxInstLen]
	}
	return b
}

var (
	libcOnce sync.Once
	libc     *libcImage
	libcErr  error
)

// loadLibc reads libc's executable segment and its .dynsym functions (one
// per address, the aliases dropped), sorted by address.
func loadLibc(t testing.TB) *libcImage {
	t.Helper()
	libcOnce.Do(func() { libc, libcErr = readLibc(libcPath) })
	if errors.Is(libcErr, os.ErrNotExist) {
		t.Skipf("no libc at %s: the real-code tests need a glibc x86-64 system", libcPath)
	}
	if libcErr != nil {
		t.Fatal(libcErr)
	}
	return libc
}

func readLibc(path string) (*libcImage, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, os.ErrNotExist
	}
	img := &libcImage{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			img.text = make([]byte, p.Filesz)
			if _, err := p.ReadAt(img.text, 0); err != nil {
				return nil, err
			}
			img.textAddr = p.Vaddr
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	seen := map[uint64]bool{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || seen[s.Value] {
			continue
		}
		if s.Value < img.textAddr || s.Value+s.Size > img.textAddr+uint64(len(img.text)) {
			continue
		}
		seen[s.Value] = true
		off := s.Value - img.textAddr
		img.funcs = append(img.funcs, libcFunc{s.Name, s.Value, img.text[off : off+s.Size]})
	}
	sort.Slice(img.funcs, func(i, j int) bool { return img.funcs[i].addr < img.funcs[j].addr })
	return img, nil
}

// TestLibcFunctions decodes every .dynsym function of libc linearly from
// its start to its size: every instruction must decode, or be refused with
// a reason.
func TestLibcFunctions(t *testing.T) {
	img := loadLibc(t)
	var n, fnOK int
	classes := map[Class]int{}
	reasons := map[string]int{}
	for _, fn := range img.funcs {
		ok := true
		for pc := 0; pc < len(fn.code); {
			inst, err := Decode(fn.code[pc:])
			n++
			if err != nil {
				if !errors.Is(err, ErrUndecodable) || inst.Class != ClassRefuse || inst.Reason == "" {
					t.Errorf("%s+%#x: error %v with class %v reason %q", fn.name, pc, err, inst.Class, inst.Reason)
				}
				t.Logf("%s+%#x: %v", fn.name, pc, err)
				reasons[inst.Reason]++
				ok = false
				break // the rest of the function is out of sync
			}
			classes[inst.Class]++
			if inst.Class == ClassRefuse {
				if inst.Reason == "" {
					t.Errorf("%s+%#x: %v refused without a reason", fn.name, pc, inst)
				}
				reasons[inst.Reason]++
			} else if inst.Reason != "" {
				t.Errorf("%s+%#x: %v is %v with reason %q", fn.name, pc, inst, inst.Class, inst.Reason)
			}
			if inst.Len <= 0 || inst.Len != len(inst.Bytes) || !bytes.Equal(inst.Bytes, fn.code[pc:pc+inst.Len]) {
				t.Fatalf("%s+%#x: Len %d, Bytes % x", fn.name, pc, inst.Len, inst.Bytes)
			}
			pc += inst.Len
		}
		if ok {
			fnOK++
		}
	}
	t.Logf("%d functions, %d fully decoded; %d instructions: %d relocate, %d emulate, %d refuse",
		len(img.funcs), fnOK, n, classes[ClassRelocate], classes[ClassEmulate], classes[ClassRefuse])
	for r, c := range reasons {
		t.Logf("  %5d × %s", c, r)
	}
	if fnOK < len(img.funcs)*99/100 {
		t.Errorf("only %d of %d functions decode completely", fnOK, len(img.funcs))
	}
}

// objdumpLine is one instruction of objdump -d -w output.
var objdumpLine = regexp.MustCompile(`^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t(.*)$`)

type objdumpInst struct {
	addr uint64
	enc  []byte
	text string
}

// objdumpAll disassembles all of libc's code with objdump (a fraction of
// a second) and returns every instruction it shows.
func objdumpAll(t *testing.T) []objdumpInst {
	t.Helper()
	path, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("objdump (binutils) is not installed: cannot compare lengths and rip-relative operands with it")
	}
	out, err := exec.Command(path, "-d", "-w", libcPath).Output()
	if err != nil {
		t.Fatalf("objdump -d -w %s: %v", libcPath, err)
	}
	var insts []objdumpInst
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := objdumpLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		addr, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := hex.DecodeString(strings.ReplaceAll(m[2], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, objdumpInst{addr, enc, m[3]})
	}
	if len(insts) < 1000 {
		t.Fatalf("objdump shows only %d instructions: output format not understood", len(insts))
	}
	return insts
}

// objdumpPrefixOnly reports whether objdump printed only prefixes, as it
// does before bytes it cannot combine with them.
func objdumpPrefixOnly(text string) bool {
	for _, w := range strings.Fields(text) {
		switch {
		case strings.HasPrefix(w, "rex"), w == "data16", w == "addr32", w == "lock",
			w == "cs", w == "ds", w == "es", w == "ss", w == "fs", w == "gs",
			w == "rep", w == "repz", w == "repnz", w == "bnd", w == "notrack":
		default:
			return false
		}
	}
	return true
}

// TestLibcObjdump decodes every instruction objdump finds in libc, at the
// address objdump found it, and checks the length and the rip-relative
// operand against objdump's.
func TestLibcObjdump(t *testing.T) {
	img := loadLibc(t)
	insts := objdumpAll(t)
	var n, undec, rip int
	classes := map[Class]int{}
	for _, o := range insts {
		if strings.Contains(o.text, "(bad)") {
			continue
		}
		code := img.bytesAt(o.addr)
		if code == nil {
			continue
		}
		n++
		if objdumpPrefixOnly(o.text) || strings.HasPrefix(o.text, ".byte") {
			continue // objdump could not decode past a prefix: data in the code
		}
		inst, err := Decode(code)
		if err != nil {
			undec++
			t.Logf("%#x: objdump %q: %v", o.addr, o.text, err)
			continue
		}
		if o.enc[0] == 0x9B && inst.Len == 1 && len(o.enc) > 1 {
			// objdump shows fwait and the x87 instruction after it as
			// one (fstcw is fwait; fnstcw): the processor runs two.
			rest, err := Decode(code[1:])
			if err != nil || 1+rest.Len != len(o.enc) {
				t.Errorf("%#x: fwait and %q (%v) are not objdump's %q", o.addr, rest, err, o.text)
			}
			continue
		}
		if inst.Class == ClassRefuse && inst.Flow != FlowNone && inst.Flow != FlowOther && code[0] == 0x66 {
			continue // 66 jmp: rel32 for x86asm (Intel), rel16 for objdump (AMD); refused
		}
		if inst.Len != len(o.enc) {
			t.Errorf("%#x: %q is %d bytes, objdump %q is %d", o.addr, inst, inst.Len, o.text, len(o.enc))
			continue
		}
		orip := strings.Contains(o.text, "(%rip)") || strings.Contains(o.text, "(%eip)")
		if inst.RIPRel != orip {
			t.Errorf("%#x: %q RIPRel %v, objdump %q", o.addr, inst, inst.RIPRel, o.text)
		}
		if inst.RIPRel {
			rip++
		}
		classes[inst.Class]++
	}
	t.Logf("%d instructions compared with objdump, %d rip-relative, %d undecodable; %d relocate, %d emulate, %d refuse",
		n, rip, undec, classes[ClassRelocate], classes[ClassEmulate], classes[ClassRefuse])
}
