// Package tracefs is the kernel backend's plumbing over the kernel's
// tracefs: finding and mounting it, what its README says the kernel
// supports, the lines of uprobe_events and kprobe_events, error_log and
// its caret, the instances (buffers of their own) and their trace_pipe,
// the lines trace_pipe prints, and the removal of what dead sessions left
// behind (docs/DESIGN.md §7). Package kernel builds its Session on it.
//
// Everything tracefs writes goes through Write: *_events files are only
// ever appended to (O_APPEND), since a truncating open of one removes the
// probes of every user of the machine.
package tracefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Default tracefs locations, in the order Open tries them.
const (
	// Path is where tracefs is mounted on current systems, and where
	// Open mounts it when nothing is there.
	Path = "/sys/kernel/tracing"
	// DebugfsPath is the older location, an automount inside debugfs.
	DebugfsPath = "/sys/kernel/debug/tracing"
)

// Files of tracefs that define probes and count their hits.
const (
	UprobeEvents  = "uprobe_events"
	KprobeEvents  = "kprobe_events"
	UprobeProfile = "uprobe_profile"
	KprobeProfile = "kprobe_profile"
)

// magic is TRACEFS_MAGIC of <linux/magic.h>: the f_type statfs reports
// for a tracefs mount.
const magic = 0x74726163

// ErrNoTracefs is wrapped by Open when no tracefs can be found or
// mounted.
var ErrNoTracefs = errors.New("tracefs is not available")

// Tracefs is an opened tracefs mount.
type Tracefs struct {
	// Root is the tracefs directory, e.g. /sys/kernel/tracing.
	Root string
	// Features is what the kernel supports, from its README and the
	// files present.
	Features Features
	// Mounted reports that Open mounted tracefs at Root itself. The
	// mount is left in place: other users may rely on it by then.
	Mounted bool
}

// Open finds tracefs: /sys/kernel/tracing if tracefs is mounted there,
// else mounted there by us when the directory exists and we are root,
// else /sys/kernel/debug/tracing. It reads the README to fill in
// Features. Errors wrap ErrNoTracefs when no tracefs is found.
func Open() (*Tracefs, error) {
	return open(Path, DebugfsPath)
}

// open is Open with its two places as parameters.
func open(primary, fallback string) (*Tracefs, error) {
	if isTracefs(primary) {
		return OpenAt(primary)
	}
	var mountErr error
	if st, err := os.Stat(primary); err == nil && st.IsDir() && unix.Geteuid() == 0 {
		mountErr = unix.Mount("nodev", primary, "tracefs", 0, "")
		if mountErr == nil {
			t, err := OpenAt(primary)
			if t != nil {
				t.Mounted = true
			}
			return t, err
		}
	}
	// Looking inside debugfs's "tracing" triggers its automount.
	if _, err := os.Stat(filepath.Join(fallback, "README")); err == nil && isTracefs(fallback) {
		return OpenAt(fallback)
	}
	if mountErr != nil {
		return nil, fmt.Errorf("mount tracefs at %s: %v: %w", primary, mountErr, ErrNoTracefs)
	}
	if unix.Geteuid() != 0 {
		return nil, fmt.Errorf("tracefs is not mounted at %s or %s, and mounting it needs root: %w", primary, fallback, ErrNoTracefs)
	}
	return nil, fmt.Errorf("no tracefs at %s or %s: %w", primary, fallback, ErrNoTracefs)
}

// OpenAt opens the tracefs mounted at root (tests, or a tracefs mounted
// elsewhere). It reads the README to fill in Features.
func OpenAt(root string) (*Tracefs, error) {
	readme, err := os.ReadFile(filepath.Join(root, "README"))
	if err != nil {
		return nil, fmt.Errorf("read the tracefs README: %v: %w", err, ErrNoTracefs)
	}
	t := &Tracefs{Root: root, Features: ParseFeatures(string(readme))}
	// The README lists what the kernel was built with; the files are
	// what this mount offers (they are missing on a tracefs of a
	// kernel without the option even if a README says otherwise).
	f := &t.Features
	f.UprobeEvents = f.UprobeEvents && Exists(t.Path(UprobeEvents))
	f.KprobeEvents = f.KprobeEvents && Exists(t.Path(KprobeEvents))
	f.DynamicEvents = f.DynamicEvents && Exists(t.Path("dynamic_events"))
	f.ErrorLog = Exists(t.Path("error_log"))
	f.Instances = Exists(t.Path("instances"))
	return t, nil
}

func isTracefs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == magic
}

// Exists reports whether path exists.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Path joins elements under the tracefs root.
func (t *Tracefs) Path(elem ...string) string {
	return filepath.Join(append([]string{t.Root}, elem...)...)
}

// Write writes data to a tracefs file in one write, opened write-only
// with the extra flags: os.O_APPEND for *_events files (a truncating open
// of those removes every definition of every user), os.O_TRUNC for the
// files that hold one value (enable, options/..., set_event_pid).
func Write(path, data string, flags int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flags, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(data))
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}
