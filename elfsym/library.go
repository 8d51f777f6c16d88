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

// SearchLibrary looks for a library named as in MatchLibrary where the
// dynamic linker of a program without libraries of its own would find it
// (ptprobe's LD_LIBRARY_PATH, /etc/ld.so.cache, the directories of
// /etc/ld.so.conf and its includes, /lib/x86_64-linux-gnu,
// /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, /usr/lib) and
// returns its path, preferring the real file (symlinks resolved). ok is
// false when none is found. Libraries searches for one program, with
// its own libraries.
func SearchLibrary(name string) (path string, ok bool) {
	return NewLibraries(LibraryEnv{LDLibraryPath: os.Getenv("LD_LIBRARY_PATH")}).find(name)
}

// LibraryDirs returns the directories SearchLibrary searches, in order,
// without duplicates: LD_LIBRARY_PATH, /etc/ld.so.conf (and its includes),
// then the defaults.
func LibraryDirs() []string {
	return libraryDirs(os.Getenv("LD_LIBRARY_PATH"), "/etc/ld.so.conf")
}

func libraryDirs(ldLibraryPath, conf string) []string {
	dirs := splitPathList(ldLibraryPath)
	dirs = append(dirs, ldSoConf("", conf, 0)...)
	dirs = append(dirs, defaultLibraryDirs[:]...)
	return dedupDirs(dirs)
}

// ldSoConf returns the directories listed in an ld.so.conf file: one or
// more per line (separated by blanks, commas or colons), "#" comments,
// "include GLOB" (relative to the including file's directory), "hwcap"
// lines ignored. root is the program's root (LibraryEnv.Root): path and
// the directories are the program's paths.
func ldSoConf(root, path string, depth int) []string {
	if depth > maxConfDepth {
		return nil
	}
	host := path
	if root != "" {
		r, err := resolveInRoot(root, path)
		if err != nil {
			return nil
		}
		host = root + r
	}
	data, err := os.ReadFile(host)
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
				matches, _ := filepath.Glob(root + pat)
				sort.Strings(matches)
				for _, m := range matches {
					dirs = append(dirs, ldSoConf(root, strings.TrimPrefix(m, root), depth+1)...)
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

// searchLibrary looks for name in dirs only (see Libraries.searchDirs),
// or opens it when it is a path.
func searchLibrary(name string, dirs []string) (string, bool) {
	if name == "" {
		return "", false
	}
	if strings.Contains(name, "/") {
		return openableELF(name)
	}
	l := &Libraries{listings: make(map[string][]string)}
	return l.searchDirs(name, dirs)
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

// openableELF resolves symlinks in p and reports whether the file is an
// x86-64 ELF file (by its header: Open, later, reads the rest).
func openableELF(p string) (string, bool) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil || !isX8664ELF(real) {
		return "", false
	}
	return real, true
}
