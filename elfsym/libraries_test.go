package elfsym

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptprobe/ptprobe/internal/testprog"
)

// ldconfig returns the path of the system's ldconfig, or skips the test.
func ldconfig(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("ldconfig"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ldconfig", "/sbin/ldconfig"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("needs ldconfig: not found")
	return ""
}

// ldconfigPrint returns the x86-64 entries of a cache file as
// `ldconfig -p -C FILE` prints them, in its order:
//
//	libz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
func ldconfigPrint(t *testing.T, cache string) []ldCacheEntry {
	t.Helper()
	out, err := exec.Command(ldconfig(t), "-p", "-C", cache).Output()
	if err != nil {
		t.Fatalf("ldconfig -p -C %s: %v", cache, err)
	}
	var entries []ldCacheEntry
	for _, l := range strings.Split(string(out), "\n") {
		// Entries are indented; the first and last lines say how many
		// there are and which ldconfig made them.
		l, ok := strings.CutPrefix(l, "\t")
		if !ok {
			continue
		}
		name, rest, ok := strings.Cut(l, " (")
		if !ok {
			t.Fatalf("ldconfig -p line %q", l)
		}
		flags, path, ok := strings.Cut(rest, ") => ")
		if !ok {
			t.Fatalf("ldconfig -p line %q", l)
		}
		if flags == "libc6,x86-64" || strings.HasPrefix(flags, "libc6,x86-64,") {
			entries = append(entries, ldCacheEntry{name, path})
		}
	}
	return entries
}

// TestLDCacheSystem reads this machine's /etc/ld.so.cache as ldconfig
// prints it: every x86-64 entry, in order.
func TestLDCacheSystem(t *testing.T) {
	needFile(t, "/etc/ld.so.cache")
	data, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseLDCache(data)
	if err != nil {
		t.Fatal(err)
	}
	want := ldconfigPrint(t, "/etc/ld.so.cache")
	if len(want) == 0 {
		t.Fatal("ldconfig -p lists no x86-64 library")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLDCache: %d entries, ldconfig -p: %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
}

// TestLDCacheFormats makes caches in the three layouts with ldconfig (-c
// new, old, compat), with a directory of a library of the test's own, and
// reads each as ldconfig prints it. ldconfig runs as nobody when the test
// is root: it then cannot touch the system's own files.
func TestLDCacheFormats(t *testing.T) {
	ldc := ldconfig(t)
	dir := t.TempDir()
	_, lib := testprog.BuildRunpath(t, dir, false)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ld.so.conf")
	if err := os.WriteFile(conf, []byte(filepath.Dir(lib)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		for _, p := range []string{dir, filepath.Dir(dir), out} {
			if err := os.Chmod(p, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, format := range []string{"new", "old", "compat"} {
		t.Run(format, func(t *testing.T) {
			cache := filepath.Join(out, "ld.so.cache."+format)
			// -X: no symlinks made; -i: the auxiliary cache is not read.
			cmd := exec.Command(ldc, "-X", "-i", "-c", format, "-C", cache, "-f", conf)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
			}
			data, err := os.ReadFile(cache)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseLDCache(data)
			if err != nil {
				t.Fatal(err)
			}
			want := ldconfigPrint(t, cache)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseLDCache: %d entries, ldconfig -p: %d\n got %v\nwant %v", len(got), len(want), got, want)
			}
			mine := ldCacheEntry{testprog.PluginSoname, lib}
			found := false
			for _, e := range got {
				found = found || e == mine
			}
			if !found {
				t.Errorf("the test's library %v is not in the cache: %v", mine, got)
			}
		})
	}
}

// TestLDCacheMalformed: truncated and corrupted caches are errors or
// fewer entries, never a panic or a read beyond the data.
func TestLDCacheMalformed(t *testing.T) {
	needFile(t, "/etc/ld.so.cache")
	data, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5, 17, 20, 47, 48, 49, 100, len(data) / 2, len(data) - 1} {
		if n > len(data) {
			continue
		}
		if _, err := parseLDCache(data[:n]); err == nil && n < ldCacheNewHeader+ldCacheNewEntry {
			t.Errorf("%d bytes of the cache parsed without error", n)
		}
	}
	// Every byte of the header and the first entries set to 0xff in turn.
	for i := 0; i < min(len(data), ldCacheNewHeader+4*ldCacheNewEntry); i++ {
		c := append([]byte(nil), data...)
		c[i] = 0xff
		parseLDCache(c)
	}
	if _, err := parseLDCache([]byte("garbage that is no cache at all")); !errors.Is(err, errBadLDCache) {
		t.Errorf("garbage: %v", err)
	}
}

// lddClosure returns the real paths of the libraries ldd says prog
// loads (its interpreter included, the vDSO not).
func lddClosure(t *testing.T, prog string) []string {
	t.Helper()
	needTool(t, "ldd")
	cmd := exec.Command("ldd", prog)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", prog, err)
	}
	var paths []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if _, after, ok := strings.Cut(l, "=> "); ok {
			l = after
		}
		if p, _, ok := strings.Cut(l, " ("); ok && strings.HasPrefix(p, "/") {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, real)
		}
	}
	sort.Strings(paths)
	return paths
}

// TestClosureAsLdd: the DT_NEEDED closure of system programs and of a
// program that finds its library through its DT_RUNPATH or DT_RPATH
// ($ORIGIN/lib) is what ldd (the dynamic linker itself) loads.
func TestClosureAsLdd(t *testing.T) {
	dir := t.TempDir()
	runpath, _ := testprog.BuildRunpath(t, filepath.Join(dir, "runpath"), false)
	rpath, _ := testprog.BuildRunpath(t, filepath.Join(dir, "rpath"), true)
	progs := []string{runpath, rpath}
	for _, p := range []string{"/bin/ls", "/bin/sh", "/usr/bin/python3", "/usr/bin/git"} {
		if _, err := os.Stat(p); err == nil {
			progs = append(progs, p)
		}
	}
	for _, prog := range progs {
		l := NewLibraries(LibraryEnv{Program: prog})
		var got []string
		for _, o := range l.objects[1:] { // [0] is the program
			real, err := filepath.EvalSymlinks(o.path)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, real)
		}
		sort.Strings(got)
		if want := lddClosure(t, prog); !reflect.DeepEqual(got, want) {
			t.Errorf("closure of %s:\n got %q\nldd %q", prog, got, want)
		}
	}
}

// TestLibrariesFind: a library the program finds only through its own
// DT_RUNPATH or DT_RPATH, its LD_LIBRARY_PATH, or a running process's
// mappings is found by every name MatchLibrary accepts; without those it
// is no library, with an error that says where it looked.
func TestLibrariesFind(t *testing.T) {
	dir := t.TempDir()
	for _, rpath := range []bool{false, true} {
		prog, lib := testprog.BuildRunpath(t, filepath.Join(dir, map[bool]string{false: "runpath", true: "rpath"}[rpath]), rpath)
		for _, env := range []LibraryEnv{
			{Program: prog},
			{LDLibraryPath: "/nonexistent:" + filepath.Dir(lib)},
			{Mapped: []string{"/nonexistent/libx.so", lib}},
		} {
			l := NewLibraries(env)
			for _, name := range []string{"libptplugin", "libptplugin.so", "libptplugin.so.1", lib} {
				if p, err := l.Find(name); err != nil || p != lib {
					t.Errorf("%+v: Find(%q) = %q, %v; want %s", env, name, p, err, lib)
				}
			}
		}
		_, err := NewLibraries(LibraryEnv{Program: "/bin/true"}).Find("libptplugin")
		if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), `"libptplugin"`) ||
			!strings.Contains(err.Error(), "/bin/true") || !strings.Contains(err.Error(), "/etc/ld.so.cache") {
			t.Errorf("Find(libptplugin) for /bin/true: %v", err)
		}
	}
	l := NewLibraries(LibraryEnv{Program: "/bin/true"})
	for _, name := range []string{"libc", "libc.so.6", "libc.so", "ld-linux-x86-64.so.2"} {
		if _, err := l.Find(name); err != nil {
			t.Errorf("Find(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "c", "lib", "/nonexistent/libc.so.6", "/etc/passwd"} {
		if p, err := l.Find(name); !errors.Is(err, ErrNoLibrary) {
			t.Errorf("Find(%q) = %q, %v; want ErrNoLibrary", name, p, err)
		}
	}
	// A file of the name that is no ELF file is named in the error.
	fake := filepath.Join(dir, "libptfake.so")
	if err := os.WriteFile(fake, []byte("not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewLibraries(LibraryEnv{LDLibraryPath: dir}).Find("libptfake")
	if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), fake+" has the name but not an x86-64 ELF file") {
		t.Errorf("Find(libptfake) with a non-ELF %s on LD_LIBRARY_PATH: %v", fake, err)
	}
}

// TestLibrariesSuggest: an unknown library name gets the closest names of
// existing libraries, the program's own first, quickly.
func TestLibrariesSuggest(t *testing.T) {
	dir := t.TempDir()
	prog, _ := testprog.BuildRunpath(t, dir, false)
	l := NewLibraries(LibraryEnv{Program: prog})
	for _, tc := range []struct{ name, first string }{
		{"libcc", "libc"},
		{"LIBC", "libc"},
		{"lbic", "libc"},
		{"c", "libc"},
		{"libc.so.7", "libc.so.6"},
		{"libptplugn", "libptplugin"},
		{"libno_such_library_xyz", ""},
		{"zzzzzzzzzzzzzz", ""},
	} {
		t0 := time.Now()
		_, err := l.Find(tc.name)
		took := time.Since(t0)
		if !errors.Is(err, ErrNoLibrary) {
			t.Errorf("Find(%q) = %v, want ErrNoLibrary", tc.name, err)
			continue
		}
		msg := err.Error()
		t.Logf("%v: %s", took, msg)
		if tc.first == "" {
			if strings.Contains(msg, "did you mean") {
				t.Errorf("Find(%q) suggests something: %s", tc.name, msg)
			}
			continue
		}
		if !strings.Contains(msg, "(did you mean "+tc.first+"?)") && !strings.Contains(msg, "(did you mean "+tc.first+", ") {
			t.Errorf("Find(%q) does not suggest %s first: %s", tc.name, tc.first, msg)
		}
		if _, after, _ := strings.Cut(msg, "did you mean "); strings.Count(strings.SplitN(after, "?", 2)[0], ",") > 2 {
			t.Errorf("Find(%q): more than 3 suggestions: %s", tc.name, msg)
		}
	}
}

// TestLDCacheSeeds: the fuzz seeds parse to what they were made of; a
// compat cache is read through its new part, as glibc reads it.
func TestLDCacheSeeds(t *testing.T) {
	entries := []ldCacheEntry{{"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}, {"libz.so.1", "/lib/libz.so.1"}}
	for _, tc := range []struct {
		name string
		data []byte
		want []ldCacheEntry
	}{
		{"new", seedLDCacheNew(entries), entries},
		{"old", seedLDCacheOld(entries), entries},
		{"compat", seedLDCacheCompat(entries), entries},
	} {
		if got, err := parseLDCache(tc.data); err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
