package resolve

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ptprobe/ptprobe/elfsym"
	"github.com/ptprobe/ptprobe/uprobe"
)

// Replaced says why a path probe (spec, resolved to the file id) is not
// on what process pid runs, when that is so: the process maps an
// executable file at the spec's path that is another file, the one at the
// path having been replaced (a package upgrade renames a new file over
// the old one) or deleted since it was mapped. A probe applies to a file
// by device and inode (docs/DESIGN.md §2), so it will not fire there. The
// error names the file the process runs, which a probe can name
// (/proc/PID/exe for its executable). nil when nothing is amiss, or for a
// library name, whose mappings are matched by name.
func Replaced(pid int, spec *uprobe.Spec, id elfsym.FileID) error {
	if spec.Kernel || spec.IsLibrary() {
		return nil
	}
	maps, err := elfsym.ReadMaps(pid)
	if err != nil {
		return nil
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	for _, m := range maps {
		path := strings.TrimSuffix(m.Path, " (deleted)")
		if !m.Exec() || m.Inode == 0 || filepath.Clean(spec.Path) != path || m.ID() == id {
			continue
		}
		running := fmt.Sprintf("/proc/%d/map_files/%x-%x (root only)", pid, m.Start, m.End)
		if m.Path == exe {
			running = fmt.Sprintf("/proc/%d/exe", pid)
		}
		return fmt.Errorf("probe %q is not armed: %s is not the file process %d runs at that path: it maps %s (device %d:%d, inode %d) and the path names another file now (inode %d); the file it runs is %s",
			spec.Text, spec.Path, pid, m.Path, unix.Major(m.Dev), unix.Minor(m.Dev), m.Inode, id.Ino, running)
	}
	return nil
}
