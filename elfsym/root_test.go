package elfsym

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInRoot resolves links inside a root as a process with that root
// resolves them: an absolute link from the root (not from ours), ".."
// never above it, a link loop refused.
func TestInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/x86_64-linux-gnu/libz.so.1.2"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"lib":                                "usr/lib",                           // relative
		"usr/lib/x86_64-linux-gnu/libz.so.1": "/lib/x86_64-linux-gnu/libz.so.1.2", // absolute: from the root
		"etc/up":                             "../../../../..",                    // climbs to the root only
		"loop":                               "/loop",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1.2"},
		{"lib/./x86_64-linux-gnu/../x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1.2"},
		{"/etc/up/usr/lib", "/usr/lib"},
		{"/../../etc", "/etc"},
		{"/", "/"},
	} {
		got, err := InRoot(root, c.in)
		if err != nil || got != root+c.want {
			t.Errorf("InRoot(%s, %q) = %q, %v; want %q", root, c.in, got, err, root+c.want)
		}
	}
	for _, bad := range []string{"/loop", "/nothing/here", "/usr/lib/x86_64-linux-gnu/libz.so.1.2/x"} {
		if got, err := InRoot(root, bad); err == nil {
			t.Errorf("InRoot(%s, %q) = %q, want an error", root, bad, got)
		}
	}
	// A root of "" is ours.
	if got, err := InRoot("", filepath.Join(root, "lib")); err != nil || got != filepath.Join(root, "usr/lib") {
		t.Errorf(`InRoot("", %s/lib) = %q, %v`, root, got, err)
	}
	if r := ProcessRoot(os.Getpid()); r != "" {
		t.Errorf("ProcessRoot of this process = %q, want \"\"", r)
	}
}
