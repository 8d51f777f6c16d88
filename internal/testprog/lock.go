package testprog

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// SystemProbes serializes the tests that probe the machine's own files
// (libc, /bin/ls) with ptrace against those that put kernel uprobes on
// them. A kernel uprobe is an int3 in every process that maps the file,
// so a ptrace test probing the same instruction in its own program meanwhile
// finds the kernel's int3 there and rightly refuses to arm it. go test
// runs the packages' test binaries in parallel, so the lock is a flock
// on a file of the system's temporary directory: kernel tests take it
// exclusively, ptrace tests shared. It is released when t ends.
func SystemProbes(t testing.TB, kernel bool) {
	t.Helper()
	unlock, err := LockSystemProbes(kernel)
	if err != nil {
		t.Fatalf("system probes lock: %v", err)
	}
	t.Cleanup(unlock) // closing the file releases the lock
}

// LockSystemProbes is SystemProbes for code without a testing.TB (an
// Example): it returns the function that releases the lock.
func LockSystemProbes(kernel bool) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "ptprobe-tests-system-probes.lock"), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if kernel {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// KernelUprobes skips tests of the kernel backend where it cannot run,
// saying why, and returns where tracefs is mounted.
func KernelUprobes(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: kernel uprobes through tracefs need root")
	}
	// Where the kernel backend finds it (it mounts it at the first when
	// nothing is there, and so do the kernel package's tests).
	for _, root := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(root, "README")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "uprobe_events")); err != nil {
			t.Skipf("skipped: this kernel has no uprobe_events (CONFIG_UPROBE_EVENTS)")
		}
		return root
	}
	t.Skip("skipped: no tracefs mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing")
	return ""
}
