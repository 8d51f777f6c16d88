package elfsym

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// defaultLibraryDirs are searched after LD_LIBRARY_PATH and ld.so.conf, in
// the order of the x86-64 Debian/Fedora dynamic linkers.
var defaultLibraryDirs = [...]string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64",
	"/lib", "/usr/lib",
}

// maxConfDepth bounds nested "include" directives of ld.so.conf (an
// include loop must not recurse forever).
const maxConfDepth = 8

// MatchLibrary reports whether name, as a user writes a library in
// "LIB:SYMBOL" ("libc", "libc.so.6", "libz", "libpthread.so.0"), designates
// the library at path with the given soname: equal to the soname or the
// base name, or equal to the base name up to ".so" (and "libc" for
// "libc.so.6", also with the "lib" prefix omitted: "c" is not accepted).
//
// Also accepted: the stem with ".so" ("libc.so" for "libc.so.6"), the same
// rules applied to the soname (so "libc" designates a file named
// "libc-2.31.so" whose soname is "libc.so.6"), and a name containing "/"
// equal to path after filepath.Clean (compare such paths by FileID when
// symlinks matter).
func MatchLibrary(name, path, soname string) bool {
	if name == "" {
		return false
	}
	if strings.Contains(name, "/") {
		return path != "" && filepath.Clean(name) == filepath.Clean(path)
	}
	base := ""
	if path != "" {
		base = filepath.Base(path)
	}
	for _, c := range [...]string{soname, base} {
		if c == "" {
			continue
		}
		if name == c {
			return true
		}
		if stem, ok := soStem(c); ok && (name == stem || name == stem+".so") {
			return true
		}
	}
	return false
}

// soStem returns the part of a library file name before ".so" (followed
// by the end or a '.'): "libc" for "libc.so.6", "libstdc++" for
// "libstdc++.so.6.0.30".
func soStem(s string) (string, bool) {
	for i := 0; ; {
		j := strings.Index(s[i:], ".so")
		if j < 0 {
			return "", false
		}
		k := i + j
		if rest := s[k+3:]; rest == "" || rest[0] == '.' {
			return s[:k], k > 0
		}
		i = k + 3
	}
}

// SearchLibrary looks for a library named as in MatchLibrary in the
// directories the dynamic linker searches by default on this system
// (LD_LIBRARY_PATH, the directories of /etc/ld.so.conf and its includes,
// /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64,
// /lib, /usr/lib) and returns its path, preferring the real file
// (symlinks resolved). ok is false when none is found.
//
// Directories are searched in that order. In a directory, names are
// matched on the base name (the soname is not read): the exact name first,
// then soname-like names ("libc.so.6" before "libc.so", which is often a
// linker script), shortest first. A candidate must open as an x86-64 ELF
// file.
func SearchLibrary(name string) (path string, ok bool) {
	return searchLibrary(name, LibraryDirs())
}

// LibraryDirs returns the directories SearchLibrary searches, in order,
// without duplicates: LD_LIBRARY_PATH, /etc/ld.so.conf (and its includes),
// then the defaults.
func LibraryDirs() []string {
	return libraryDirs(os.Getenv("LD_LIBRARY_PATH"), "/etc/ld.so.conf")
}

func libraryDirs(ldLibraryPath, conf string) []string {
	var dirs []string
	// Empty entries mean the current directory to ld.so; a tracer's
	// current directory is not the tracee's, so they are skipped.
	for _, d := range strings.FieldsFunc(ldLibraryPath, func(r rune) bool { return r == ':' || r == ';' }) {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, ldSoConf(conf, 0)...)
	dirs = append(dirs, defaultLibraryDirs[:]...)
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// ldSoConf returns the directories listed in an ld.so.conf file: one or
// more per line (separated by blanks, commas or colons), "#" comments,
// "include GLOB" (relative to the including file's directory), "hwcap"
// lines ignored.
func ldSoConf(path string, depth int) []string {
	if depth > maxConfDepth {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == ',' || r == ':' || r == '\r'
		})
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "include":
			for _, pat := range fields[1:] {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(filepath.Dir(path), pat)
				}
				matches, _ := filepath.Glob(pat)
				sort.Strings(matches)
				for _, m := range matches {
					dirs = append(dirs, ldSoConf(m, depth+1)...)
				}
			}
		case "hwcap":
		default:
			for _, d := range fields {
				if filepath.IsAbs(d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return dirs
}

func searchLibrary(name string, dirs []string) (string, bool) {
	if name == "" {
		return "", false
	}
	if strings.Contains(name, "/") {
		return openableELF(name)
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		real, err := filepath.EvalSymlinks(d)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		var cands []string
		for _, e := range ents {
			if !e.IsDir() && MatchLibrary(name, filepath.Join(d, e.Name()), "") {
				cands = append(cands, e.Name())
			}
		}
		sort.Slice(cands, func(i, j int) bool {
			ri, rj := candidateRank(name, cands[i]), candidateRank(name, cands[j])
			if ri != rj {
				return ri < rj
			}
			if len(cands[i]) != len(cands[j]) {
				return len(cands[i]) < len(cands[j])
			}
			return cands[i] < cands[j]
		})
		for _, c := range cands {
			if p, ok := openableELF(filepath.Join(d, c)); ok {
				return p, true
			}
		}
	}
	return "", false
}

// candidateRank orders the files of one directory matching name: the
// exact name, then "stem.so.N..." (what a soname looks like), then the
// rest ("stem.so", a development symlink or linker script).
func candidateRank(name, base string) int {
	if base == name {
		return 0
	}
	if stem, ok := soStem(base); ok && len(base) > len(stem)+3 {
		return 1
	}
	return 2
}

// openableELF resolves symlinks in p and reports whether the file opens
// as an x86-64 ELF file.
func openableELF(p string) (string, bool) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", false
	}
	f, err := Open(real)
	if err != nil {
		return "", false
	}
	f.Close()
	return real, true
}
