package elfsym

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxRootLinks is how many symbolic links a path may go through, as the
// kernel's path walk allows (MAXSYMLINKS).
const maxRootLinks = 40

// ProcessRoot returns the directory through which this process sees the
// files of process pid as pid sees them: "" when pid has this process's
// own mount namespace and root directory (its paths are ours), else
// "/proc/PID/root" (a process in a container, or chrooted). What cannot
// be read (the process is gone, or ours to read is not its /proc) is
// taken as ours: opening its files fails later with the reason.
func ProcessRoot(pid int) string {
	proc := fmt.Sprintf("/proc/%d", pid)
	theirs, err1 := os.Readlink(proc + "/ns/mnt")
	ours, err2 := os.Readlink("/proc/self/ns/mnt")
	if err1 == nil && err2 == nil && theirs != ours {
		return proc + "/root"
	}
	var a, b unix.Stat_t
	if unix.Stat(proc+"/root", &a) == nil && unix.Stat("/", &b) == nil && (a.Dev != b.Dev || a.Ino != b.Ino) {
		return proc + "/root"
	}
	return ""
}

// InRoot returns the path, in this process's namespace, of the file that
// path p names for a process whose root is root (ProcessRoot): p with its
// symbolic links resolved as that process resolves them — an absolute
// link from its root, ".." never above it — prefixed by root. A root of
// "" is this process's own: p with its links resolved
// (filepath.EvalSymlinks). A relative p is taken from root.
//
// The links must be resolved here: through /proc/PID/root the kernel
// resolves an absolute link from the reader's root, not the process's,
// and so would name a file of this process's namespace.
func InRoot(root, p string) (string, error) {
	if root == "" {
		return filepath.EvalSymlinks(p)
	}
	r, err := resolveInRoot(root, p)
	if err != nil {
		return "", err
	}
	return root + r, nil
}

// resolveInRoot returns p with its links resolved inside root, as the
// process whose root it is sees it ("/usr/lib/x", without root).
func resolveInRoot(root, p string) (string, error) {
	done := "" // resolved so far, without links; "" is "/"
	rest := p
	links := 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			if i := strings.LastIndexByte(done, '/'); i >= 0 {
				done = done[:i]
			}
			continue
		}
		next := done + "/" + comp
		fi, err := os.Lstat(root + next)
		if err != nil {
			return "", fmt.Errorf("elfsym: %s in the root %s: %w", p, root, unwrapPath(err))
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxRootLinks {
			return "", fmt.Errorf("elfsym: %s in the root %s: %w", p, root, unix.ELOOP)
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return "", fmt.Errorf("elfsym: %s in the root %s: %w", p, root, unwrapPath(err))
		}
		if strings.HasPrefix(target, "/") {
			done = ""
		}
		if rest != "" {
			target += "/" + rest
		}
		rest = target
	}
	if done == "" {
		done = "/"
	}
	return done, nil
}

// unwrapPath is the error of a *PathError without its path (which holds
// the root's prefix; the caller names the path as the process sees it).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
