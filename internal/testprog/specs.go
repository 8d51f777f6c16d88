package testprog

import (
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ValidSpecs are well-formed library specs of the kind users write, for
// MutateSpecs.
var ValidSpecs = []string{
	"libc:malloc size=%di:u64",
	"r libc:malloc ptr=$retval",
	"p:g/e libc:strlen s=+0(%di):string",
	"libc:calloc%return",
	"r:g/ libc:calloc $retval:s64",
	"p:a/b libc.so.6:memcpy@GLIBC_2.14 n=%dx:u64",
	"libc.so:free p=%di",
	"libpthread:pthread_create f=%dx",
	"libm:sin",
	"libz:inflate strm=%di",
	"ld-linux-x86-64.so.2:_dl_debug_state",
	"libc:0x98930 a=$arg1 b=+8($stack):u32",
}

// specAlphabet is what mutations insert: the bytes specs are made of.
const specAlphabet = "abcdeilmnoprstuxz0123456789_:%()+-=$@/. \t"

// MutateSpecs returns n mutations of specs, each one to three random
// edits (a byte replaced, inserted, deleted or doubled, two swapped, a
// piece moved), from a fixed seed so that a failure can be replayed.
func MutateSpecs(seed uint64, n int, specs []string) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]string, 0, n)
	for len(out) < n {
		b := []byte(specs[r.IntN(len(specs))])
		for k := 1 + r.IntN(3); k > 0 && len(b) > 1; k-- {
			i := r.IntN(len(b))
			switch r.IntN(6) {
			case 0:
				b[i] = specAlphabet[r.IntN(len(specAlphabet))]
			case 1:
				b = append(b[:i], append([]byte{specAlphabet[r.IntN(len(specAlphabet))]}, b[i:]...)...)
			case 2:
				b = append(b[:i], b[i+1:]...)
			case 3:
				b = append(b[:i+1], b[i:]...)
			case 4:
				if i+1 < len(b) {
					b[i], b[i+1] = b[i+1], b[i]
				}
			case 5:
				// A piece of the spec elsewhere: a fetch-arg
				// that became the target, a target cut short.
				j := i + r.IntN(len(b)-i)
				piece := append([]byte(nil), b[i:j]...)
				rest := append(b[:i:i], b[j:]...)
				at := r.IntN(len(rest) + 1)
				b = append(rest[:at:at], append(piece, rest[at:]...)...)
			}
		}
		out = append(out, string(b))
	}
	return out
}

// LibraryExists reports whether a library called name exists on this
// system, by the names ptprobe accepts ("libc", "libc.so", "libc.so.6"):
// some x86-64 ELF file of `ldconfig -p` or of dirs is called so, or so
// followed by ".so" or by '.' and more. It is the tests' own look-up,
// independent of elfsym's: ldconfig reads the cache.
func LibraryExists(t testing.TB, name string, dirs []string) bool {
	t.Helper()
	if name == "" || strings.Contains(name, "/") {
		return false
	}
	named := func(file string) bool {
		for _, n := range []string{name, name + ".so"} {
			if rest, ok := strings.CutPrefix(file, n); ok && (rest == "" || rest[0] == '.') && (n != name || rest == "" || strings.HasSuffix(name, ".so")) {
				return true
			}
		}
		return false
	}
	var paths []string
	ldc, err := exec.LookPath("ldconfig")
	if err != nil {
		ldc = "/sbin/ldconfig"
	}
	if out, err := exec.Command(ldc, "-p").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			l, ok := strings.CutPrefix(l, "\t")
			if !ok {
				continue
			}
			file, rest, _ := strings.Cut(l, " (")
			_, path, _ := strings.Cut(rest, " => ")
			if strings.Contains(rest, "x86-64") && (named(file) || named(filepath.Base(path))) {
				paths = append(paths, path)
			}
		}
	}
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if named(e.Name()) {
				paths = append(paths, filepath.Join(d, e.Name()))
			}
		}
	}
	for _, p := range paths {
		if isX8664ELF(p) {
			return true
		}
	}
	return false
}

// isX8664ELF reads the ELF header of path.
func isX8664ELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	// ELFCLASS64, ELFDATA2LSB, EM_X86_64 (62).
	return string(h[:4]) == "\x7fELF" && h[4] == 2 && h[5] == 1 && h[18] == 62 && h[19] == 0
}
