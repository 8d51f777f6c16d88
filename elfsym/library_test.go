package elfsym

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMatchLibrary(t *testing.T) {
	for _, tc := range []struct {
		name, path, soname string
		want               bool
	}{
		{"libc", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", true},
		{"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", true},
		{"libc.so", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", true},
		{"libcrypto", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", false},
		{"libc", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "libcrypto.so.3", false},
		{"c", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", false},
		{"libc.so.7", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", false},
		{"libz", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "libz.so.1", true},
		{"libz", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "", true},
		{"libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "libz.so.1", true},
		{"libstdc++", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "libstdc++.so.6", true},
		{"libstdc++", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "", true},
		{"libpthread.so.0", "/lib/x86_64-linux-gnu/libpthread.so.0", "libpthread.so.0", true},
		{"libc", "/lib/libc-2.31.so", "libc.so.6", true},
		{"libc-2.31", "/lib/libc-2.31.so", "libc.so.6", true},
		{"libsolv", "/usr/lib/libsolv.so.1", "", true},
		{"lib", "/usr/lib/libsolv.so.1", "", false},
		{"libc", "/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "libc_malloc_debug.so.0", false},
		{"ld-linux-x86-64", "/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", true},
		{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", true},
		{"/lib/x86_64-linux-gnu//libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "", true},
		{"/lib/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", false},
		{"", "/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", false},
		{"libc", "", "", false},
		{"ls", "/usr/bin/ls", "", true},
	} {
		if got := MatchLibrary(tc.name, tc.path, tc.soname); got != tc.want {
			t.Errorf("MatchLibrary(%q, %q, %q) = %v, want %v", tc.name, tc.path, tc.soname, got, tc.want)
		}
	}
}

func TestSearchLibraryLibc(t *testing.T) {
	needFile(t, libcPath)
	want, err := filepath.EvalSymlinks(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"libc", "libc.so.6", "libc.so"} {
		p, ok := SearchLibrary(name)
		if !ok || filepath.Base(p) != "libc.so.6" {
			t.Errorf("SearchLibrary(%q) = %q, %v; want a libc.so.6", name, p, ok)
			continue
		}
		if !sameFile(p, want) {
			t.Errorf("SearchLibrary(%q) = %q, not the file of %s", name, p, want)
		}
	}
	for _, name := range []string{"libno_such_library_xyz", "c", ""} {
		if p, ok := SearchLibrary(name); ok {
			t.Errorf("SearchLibrary(%q) = %q", name, p)
		}
	}
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// TestSearchLibraryPreference builds a directory with a linker script
// "libfoo.so", a symlink "libfoo.so.1" to a real ELF library and a
// non-ELF "libfoo.so.1.0": the symlink's target is found.
func TestSearchLibraryPreference(t *testing.T) {
	needFile(t, libcPath)
	real, err := filepath.EvalSymlinks(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	empty := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("libfoo.so", "/* GNU ld script */\nGROUP ( libfoo.so.1 )\n")
	write("libfoo.so.1.0", "not an ELF file")
	write("libfoobar.so.1", "not an ELF file either")
	if err := os.Symlink(real, filepath.Join(dir, "libfoo.so.1")); err != nil {
		t.Fatal(err)
	}
	if p, ok := searchLibrary("libfoo", []string{empty, "/nonexistent/dir", dir}); !ok || p != real {
		t.Errorf("searchLibrary(libfoo) = %q, %v; want %q", p, ok, real)
	}
	if p, ok := searchLibrary("libfoobar", []string{dir}); ok {
		t.Errorf("searchLibrary(libfoobar) = %q: a non-ELF file", p)
	}
	if p, ok := searchLibrary(filepath.Join(dir, "libfoo.so.1"), nil); !ok || p != real {
		t.Errorf("searchLibrary(path) = %q, %v", p, ok)
	}
}

func TestLibraryDirs(t *testing.T) {
	dir := t.TempDir()
	confd := filepath.Join(dir, "ld.so.conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, text string) {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "ld.so.conf")
	write(conf, "# comment\n/opt/a/lib  # trailing comment\ninclude ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/opt/b/lib,/opt/c/lib\n")
	write(filepath.Join(confd, "1-x.conf"), "/opt/x/lib\n\n")
	// An include loop must end.
	write(filepath.Join(confd, "2-loop.conf"), "/opt/loop\ninclude "+conf+"\n")
	got := libraryDirs("/env/one::/env/two;/opt/a/lib", conf)
	if len(got) < 8 {
		t.Fatalf("libraryDirs = %q", got)
	}
	wantPrefix := []string{"/env/one", "/env/two", "/opt/a/lib", "/opt/x/lib", "/opt/loop"}
	if !reflect.DeepEqual(got[:len(wantPrefix)], wantPrefix) {
		t.Errorf("libraryDirs = %q, want prefix %q", got, wantPrefix)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d] {
			t.Errorf("duplicate %q in %q", d, got)
		}
		seen[d] = true
	}
	for _, d := range append([]string{"/opt/b/lib", "/opt/c/lib"}, defaultLibraryDirs[:]...) {
		if !seen[d] {
			t.Errorf("%q missing from %q", d, got)
		}
	}
	// The system's own configuration.
	sys := LibraryDirs()
	if len(sys) < len(defaultLibraryDirs) {
		t.Errorf("LibraryDirs() = %q", sys)
	}
}
