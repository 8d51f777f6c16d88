package elfsym

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// ErrNoLibrary is wrapped by Libraries.Find when no library of the name
// exists where the program's dynamic linker would look.
var ErrNoLibrary = errors.New("no library")

// maxClosure bounds the DT_NEEDED closure of a program: real programs
// load tens to a few hundred libraries, and a malformed or hostile file
// must not make the walk endless.
const maxClosure = 4096

// maxSuggestionChecks bounds how many close names are checked to exist
// before they are suggested (each check opens a file).
const maxSuggestionChecks = 12

// LibraryEnv says where one program finds its libraries.
type LibraryEnv struct {
	// Program is the path of the program: the file to be launched, or
	// /proc/PID/exe of a running one; "" for none. The libraries of its
	// DT_NEEDED closure, found as its dynamic linker finds them, are
	// its own, and the DT_RUNPATH and DT_RPATH directories of the
	// closure are searched too, for the libraries it may dlopen.
	Program string
	// LDLibraryPath is the program's LD_LIBRARY_PATH (not ptprobe's: a
	// tracer's environment need not be its program's).
	LDLibraryPath string
	// Mapped are the files a running process has mapped (-p PID): the
	// libraries it has loaded, whatever the paths it loaded them from.
	// They are paths of this process's namespace (see Root), or the
	// paths the process maps them at with MappedAt saying where they
	// are opened.
	Mapped []string
	// MappedAt maps a path of Mapped to the path of this process's
	// namespace to open it at, when that is another: under Root, or
	// /proc/PID/map_files/ for a file deleted since it was mapped.
	MappedAt map[string]string
	// Root is the directory through which this process sees the
	// program's files as the program sees them (ProcessRoot: a process
	// in another mount namespace, such as a container's), "" for this
	// process's own. Program, LDLibraryPath, the cache, ld.so.conf, the
	// default directories and the closure's RPATH/RUNPATH are the
	// program's paths, looked up under Root with their symbolic links
	// resolved as the program resolves them; Find returns paths of this
	// process's namespace (under Root) (docs/DESIGN.md §2).
	Root string
}

// Libraries finds the libraries a program may load, by the names a user
// writes in "LIB:SYMBOL" (see MatchLibrary). It looks, in order, at:
//
//   - the files of LibraryEnv.Mapped;
//   - the program's DT_NEEDED closure, each library found as the dynamic
//     linker finds it: the DT_RPATH of the object that needs it and of
//     that object's loaders (unless it has a DT_RUNPATH), LD_LIBRARY_PATH,
//     its DT_RUNPATH, /etc/ld.so.cache, the default directories; $ORIGIN
//     is expanded, entries with other dynamic string tokens ($LIB,
//     $PLATFORM, whose values are the linker's own) are skipped;
//   - the directories of LD_LIBRARY_PATH;
//   - the x86-64 entries of /etc/ld.so.cache (read here, in the new
//     "glibc-ld.so.cache1.1", old "ld.so-1.7.0" or compat layout);
//   - the directories of /etc/ld.so.conf and its includes, the default
//     directories (/lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu,
//     /lib64, /usr/lib64, /lib, /usr/lib), then the DT_RUNPATH and
//     DT_RPATH directories of the closure.
//
// A library the program loads only through a path it computes, or
// through the RUNPATH of another program it execs, is not found: probe it
// by its path. A Libraries is safe for concurrent use.
type Libraries struct {
	env    LibraryEnv
	ldPath []string // LD_LIBRARY_PATH
	// cache is /etc/ld.so.cache's x86-64 entries; cacheFile its path, ""
	// when it could not be read (then only directories are searched).
	cache     []ldCacheEntry
	cacheFile string
	// objects are the mapped files, then the program's closure.
	objects []libObject
	// dirs are searched after the cache, in order.
	dirs []string
	// listings are the file names of each directory searched, read
	// once, under mu.
	mu       sync.Mutex
	listings map[string][]string
}

// libObject is a file of a program's address space.
type libObject struct {
	path   string // the path it was found at
	soname string // DT_SONAME, "" if none
	// ours: the file is opened at open, a path of this process's
	// namespace (LibraryEnv.Mapped), not at the program's path.
	ours bool
	open string
}

// libSystem is where the system keeps its libraries; tests point it at
// files of their own.
type libSystem struct {
	cache string   // the dynamic linker's cache
	conf  string   // ld.so.conf
	dirs  []string // the default directories
}

func systemLibraries() libSystem {
	return libSystem{cache: "/etc/ld.so.cache", conf: "/etc/ld.so.conf", dirs: defaultLibraryDirs[:]}
}

// NewLibraries reads what env and the system say about where libraries
// are: the cache, the configuration and the program's closure. What
// cannot be read (no cache, an unreadable program) is skipped; Find then
// searches the rest.
func NewLibraries(env LibraryEnv) *Libraries {
	return newLibraries(env, systemLibraries())
}

func newLibraries(env LibraryEnv, sys libSystem) *Libraries {
	l := &Libraries{env: env, ldPath: splitPathList(env.LDLibraryPath), listings: make(map[string][]string)}
	if data, err := readLimited(l.hostOf(sys.cache), maxLDCache); err == nil {
		if entries, err := parseLDCache(data); err == nil {
			l.cache, l.cacheFile = entries, env.Root+sys.cache
		}
	}
	seen := make(map[string]bool)
	for _, p := range env.Mapped {
		if seen[p] {
			continue
		}
		seen[p] = true
		open := p
		if at, ok := env.MappedAt[p]; ok {
			open = at
		}
		if di, err := readDynInfo(open); err == nil {
			l.objects = append(l.objects, libObject{path: p, soname: di.soname, ours: true, open: open})
		}
	}
	var closureDirs []string
	if env.Program != "" {
		closureDirs = l.addClosure(env.Program, sys.dirs)
	}
	l.dirs = dedupDirs(append(append(append([]string(nil), ldSoConf(env.Root, sys.conf, 0)...), sys.dirs...), closureDirs...))
	return l
}

// Find returns the path (symlinks resolved) of the x86-64 ELF library
// named name, as MatchLibrary names libraries, or a path (with '/') to
// one. When there is none, the error wraps ErrNoLibrary, says where it
// looked, and suggests the closest names of the libraries it saw.
func (l *Libraries) Find(name string) (string, error) {
	if p, ok := l.find(name); ok {
		return p, nil
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("elfsym: %w %s: not an x86-64 ELF file that can be opened", ErrNoLibrary, name)
	}
	var where []string
	if len(l.env.Mapped) > 0 {
		where = append(where, "the files the process maps")
	}
	if l.env.Program != "" {
		where = append(where, "the libraries "+l.env.Program+" needs")
	}
	if len(l.ldPath) > 0 {
		where = append(where, "LD_LIBRARY_PATH ("+strings.Join(l.ldPath, ":")+")")
	}
	if l.cacheFile != "" {
		where = append(where, l.cacheFile)
	}
	where = append(where, strings.Join(l.dirs, ", "))
	if bad := l.rejected(name); len(bad) > 0 {
		return "", fmt.Errorf("elfsym: %w %q on this system: %s %s the name but not an x86-64 ELF file that can be opened; searched %s", ErrNoLibrary, name, strings.Join(bad, ", "), map[bool]string{false: "has", true: "have"}[len(bad) > 1], strings.Join(where, ", "))
	}
	return "", fmt.Errorf("elfsym: %w %q on this system%s; searched %s", ErrNoLibrary, name, didYouMean(l.suggest(name)), strings.Join(where, ", "))
}

// rejected lists the files of the search directories (LD_LIBRARY_PATH's,
// then the system's) that match name but are no x86-64 ELF file that
// can be opened: what a search that found nothing passed over, for its
// error to name.
func (l *Libraries) rejected(name string) []string {
	var bad []string
	for _, d := range append(append([]string(nil), l.ldPath...), l.dirs...) {
		for _, n := range l.list(d) {
			p := filepath.Join(d, n)
			if MatchLibrary(name, p, "") {
				if _, ok := l.openable(p); !ok {
					bad = append(bad, l.env.Root+p)
				}
			}
		}
	}
	return bad
}

func (l *Libraries) find(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if strings.Contains(name, "/") {
		return l.openable(name)
	}
	for _, o := range l.objects {
		if MatchLibrary(name, o.path, o.soname) {
			if o.ours {
				if p, ok := l.openableOurs(o.open); ok {
					return p, true
				}
			} else if p, ok := l.openable(o.path); ok {
				return p, true
			}
		}
	}
	if p, ok := l.searchDirs(name, l.ldPath); ok {
		return p, true
	}
	var cands []ldCacheEntry
	for _, e := range l.cache {
		if MatchLibrary(name, e.path, e.name) {
			cands = append(cands, e)
		}
	}
	// As in a directory: the exact name first, then soname-like ones.
	sort.SliceStable(cands, func(i, j int) bool {
		return candidateRank(name, cands[i].name) < candidateRank(name, cands[j].name)
	})
	for _, e := range cands {
		if p, ok := l.openable(e.path); ok {
			return p, true
		}
	}
	return l.searchDirs(name, l.dirs)
}

// suggest returns up to maxSuggestions names of existing libraries
// closest to name by edit distance: stems ("libc") for a stem, file names
// ("libc.so.6") for a name with ".so". The program's own libraries come
// first among equally close ones, and "libNAME" before all for a NAME
// without the prefix.
func (l *Libraries) suggest(name string) []string {
	full := strings.Contains(name, ".so")
	query := strings.ToLower(name)
	bound := suggestBound(len(name))
	var cands []candidate
	// "c" or "pthread" as a linker's -l takes them.
	if !strings.HasPrefix(name, "lib") {
		cands = append(cands, candidate{name: "lib" + name, rank: 0, preferred: true})
	}
	consider := func(n string, own bool) {
		if !full {
			stem, ok := soStem(n)
			if !ok {
				return
			}
			n = stem
		}
		if n == name || n == "" {
			return
		}
		if d := editDistance(query, strings.ToLower(n), bound); d <= bound {
			cands = append(cands, candidate{name: n, rank: d, preferred: own})
		}
	}
	for _, o := range l.objects {
		consider(filepath.Base(o.path), true)
		consider(o.soname, true)
	}
	for _, e := range l.cache {
		consider(e.name, false)
	}
	for _, dirs := range [][]string{l.ldPath, l.dirs} {
		for _, d := range dirs {
			for _, n := range l.list(d) {
				consider(n, false)
			}
		}
	}
	var out []string
	for i, c := range rankCandidates(cands) {
		if len(out) == maxSuggestions || i == maxSuggestionChecks {
			break
		}
		if _, ok := l.find(c.name); ok {
			out = append(out, c.name)
		}
	}
	return out
}

// list returns the names of the files of directory d, read once.
func (l *Libraries) list(d string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if names, ok := l.listings[d]; ok {
		return names
	}
	var names []string
	if ents, err := os.ReadDir(l.hostOf(d)); err == nil {
		for _, e := range ents {
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	l.listings[d] = names
	return names
}

// searchDirs looks for name in the directories, in order. In a directory,
// names are matched on the base name (the soname is not read): the exact
// name first, then soname-like names ("libc.so.6" before "libc.so", which
// is often a linker script), shortest first. A candidate must open as an
// x86-64 ELF file.
func (l *Libraries) searchDirs(name string, dirs []string) (string, bool) {
	seen := make(map[string]bool)
	for _, d := range dirs {
		real, err := l.real(d)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		var cands []string
		for _, n := range l.list(d) {
			if MatchLibrary(name, filepath.Join(d, n), "") {
				cands = append(cands, n)
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
			if p, ok := l.openable(filepath.Join(d, c)); ok {
				return p, true
			}
		}
	}
	return "", false
}

// loadReq is an object of the closure to read: where it was found and
// the DT_RPATH directories of its loaders, nearest first.
type loadReq struct {
	path    string
	origin  string // $ORIGIN: the directory of path
	loaders []string
}

// addClosure adds the objects of program's DT_NEEDED closure (and its
// interpreter) to l.objects, breadth first as the dynamic linker loads
// them, and returns their DT_RUNPATH and DT_RPATH directories.
func (l *Libraries) addClosure(program string, sysDirs []string) []string {
	program = scriptInterpreter(program, l.hostOf)
	// The dynamic linker takes the program's $ORIGIN from
	// /proc/self/exe, which has its symlinks resolved.
	real, err := l.real(program)
	if err != nil {
		return nil
	}
	queue := []loadReq{{path: program, origin: filepath.Dir(real)}}
	seen := map[string]bool{real: true}
	var extra []string
	for len(queue) > 0 && len(seen) <= maxClosure {
		req := queue[0]
		queue = queue[1:]
		di, err := readDynInfo(l.hostOf(req.path))
		if err != nil {
			continue
		}
		l.objects = append(l.objects, libObject{path: req.path, soname: di.soname})
		rpath := expandOrigin(di.rpath, req.origin)
		runpath := expandOrigin(di.runpath, req.origin)
		extra = append(append(extra, runpath...), rpath...)
		// With a DT_RUNPATH an object's (and its loaders') DT_RPATH is
		// not used.
		var dirs, loaders []string
		if len(di.runpath) == 0 {
			loaders = append(append(loaders, rpath...), req.loaders...)
			dirs = append(dirs, loaders...)
		}
		dirs = append(append(dirs, l.ldPath...), runpath...)
		next := di.needed
		if di.interp != "" {
			next = append([]string{di.interp}, next...)
		}
		for _, n := range next {
			p, ok := l.resolveNeeded(n, dirs, sysDirs)
			if !ok {
				continue
			}
			r, err := l.real(p)
			if err != nil || seen[r] {
				continue
			}
			seen[r] = true
			queue = append(queue, loadReq{path: p, origin: filepath.Dir(p), loaders: loaders})
		}
	}
	return extra
}

// maxScriptDepth is how many "#!" interpreters execve follows (the
// kernel's limit is 4 nested levels).
const maxScriptDepth = 4

// scriptInterpreter returns the program execve really runs for path: the
// interpreter named on the "#!" line of a script (of a script...), or
// path itself. host maps a path to the file to open (Libraries.hostOf).
func scriptInterpreter(path string, host func(string) string) string {
	for i := 0; i < maxScriptDepth; i++ {
		f, err := os.Open(host(path))
		if err != nil {
			return path
		}
		var b [256]byte
		n, _ := io.ReadFull(f, b[:])
		f.Close()
		line, _, _ := strings.Cut(string(b[:n]), "\n")
		rest, ok := strings.CutPrefix(line, "#!")
		if !ok {
			return path
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return path
		}
		path = fields[0]
	}
	return path
}

// resolveNeeded finds the file of a DT_NEEDED name as the dynamic linker
// does: a name with '/' is a path; else the first x86-64 ELF file of that
// exact name in dirs, the cache, then the default directories.
func (l *Libraries) resolveNeeded(name string, dirs, sysDirs []string) (string, bool) {
	if strings.Contains(name, "/") {
		return name, isX8664ELF(l.hostOf(name))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isX8664ELF(l.hostOf(p)) {
			return p, true
		}
	}
	for _, e := range l.cache {
		if e.name == name && isX8664ELF(l.hostOf(e.path)) {
			return e.path, true
		}
	}
	for _, d := range sysDirs {
		if p := filepath.Join(d, name); isX8664ELF(l.hostOf(p)) {
			return p, true
		}
	}
	return "", false
}

// expandOrigin splits DT_RPATH/DT_RUNPATH strings into directories with
// $ORIGIN replaced by origin. Empty entries (the current directory, which
// is the tracee's, not ptprobe's) and entries with other dynamic string
// tokens are dropped.
func expandOrigin(list []string, origin string) []string {
	var out []string
	for _, s := range list {
		for _, d := range strings.Split(s, ":") {
			d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
			if d == "" || strings.Contains(d, "$") {
				continue
			}
			out = append(out, filepath.Clean(d))
		}
	}
	return out
}

// dynInfo is what the dynamic linker reads of an object to load its
// dependencies.
type dynInfo struct {
	soname                 string
	needed, rpath, runpath []string
	interp                 string // PT_INTERP
}

// readDynInfo reads the dynamic section of the x86-64 ELF file at path.
// debug/elf has panicked on malformed input in the past; the recover
// turns that into an error.
func readDynInfo(path string) (di dynInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("elfsym: %s: malformed ELF file (parser panic: %v)", path, r)
		}
	}()
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return di, fmt.Errorf("elfsym: %s: %w", path, ErrNotELF)
	}
	ef, err := elf.Open(path)
	if err != nil {
		return di, fmt.Errorf("elfsym: %s: %w", path, err)
	}
	defer ef.Close()
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 || ef.Data != elf.ELFDATA2LSB {
		return di, fmt.Errorf("elfsym: %s: not an x86-64 ELF file", path)
	}
	if s, _ := ef.DynString(elf.DT_SONAME); len(s) > 0 {
		di.soname = s[0]
	}
	di.needed, _ = ef.DynString(elf.DT_NEEDED)
	di.rpath, _ = ef.DynString(elf.DT_RPATH)
	di.runpath, _ = ef.DynString(elf.DT_RUNPATH)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(io.LimitReader(p.Open(), maxInterp))
			di.interp, _, _ = strings.Cut(string(b), "\x00")
			break
		}
	}
	return di, nil
}

// isX8664ELF reports whether path is a regular file with the ELF header
// of an x86-64 object, reading only the header.
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
	return string(h[:4]) == elf.ELFMAG && elf.Class(h[elf.EI_CLASS]) == elf.ELFCLASS64 &&
		elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2LSB && elf.Machine(uint16(h[18])|uint16(h[19])<<8) == elf.EM_X86_64
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// splitPathList splits LD_LIBRARY_PATH as ld.so does, at ':' and ';'.
// Empty entries mean the current directory to ld.so; a tracer's current
// directory is not the tracee's, so they are skipped.
func splitPathList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ';' })
}

// dedupDirs cleans the directories and drops repeated ones, keeping the
// first.
func dedupDirs(dirs []string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, d := range dirs {
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// real is p, a path as the program sees it, with its symbolic links
// resolved as the program resolves them (LibraryEnv.Root).
func (l *Libraries) real(p string) (string, error) {
	if l.env.Root == "" {
		return filepath.EvalSymlinks(p)
	}
	return resolveInRoot(l.env.Root, p)
}

// hostOf is the path in this process's namespace of the file the program
// calls p; p under the root as it is when it cannot be resolved (opening
// it then fails).
func (l *Libraries) hostOf(p string) string {
	if r, err := l.real(p); err == nil {
		return l.env.Root + r
	}
	return l.env.Root + p
}

// openable is openableELF for a path as the program sees it; the path
// returned is of this process's namespace.
func (l *Libraries) openable(p string) (string, bool) {
	r, err := l.real(p)
	if err != nil || !isX8664ELF(l.env.Root+r) {
		return "", false
	}
	return l.env.Root + r, true
}

// openableOurs is openableELF for a path of this process's namespace
// (LibraryEnv.Mapped, MappedAt): under another root, or through /proc,
// its links are not resolved, since they may lead through
// /proc/PID/root, whose target read as a link is the process's root as
// a path of ours, or be /proc/PID/map_files/, whose targets are names
// only. A mapped file's path has no links to resolve: the kernel wrote
// it resolved.
func (l *Libraries) openableOurs(p string) (string, bool) {
	if l.env.Root == "" && !strings.HasPrefix(p, "/proc/") {
		return openableELF(p)
	}
	return p, isX8664ELF(p)
}
