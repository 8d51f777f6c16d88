package resolve

import (
	"strings"
	"testing"

	"github.com/ptprobe/ptprobe/uprobe"
)

// TestKernelSpecRefused: a kernel probe has no file; resolving it is an
// error, not an attempt to open "".
func TestKernelSpecRefused(t *testing.T) {
	spec, err := uprobe.ParseKprobe("p:k/read vfs_read")
	if err != nil {
		t.Fatal(err)
	}
	r := New(nil)
	defer r.Close()
	if _, err := r.Resolve(spec); err == nil || !strings.Contains(err.Error(), "kernel probe") {
		t.Errorf("Resolve(%q) = %v, want an error saying it is a kernel probe", spec.Text, err)
	}
}
