// Command vminit is the /init of the throwaway VM of
// scripts/kernel-vm-test.sh: built static (CGO_ENABLED=0), it is the
// first and only process of an initramfs booted by qemu. It mounts proc,
// sysfs, devtmpfs and tracefs, runs the kernel package's test binary with
// PTPROBE_IN_VM=1 and prints its exit status on the serial console in
// one marker line, since qemu's own exit status cannot carry it:
//
//	PTPROBE_VM_RESULT exit=N
//
// then reboots, which makes qemu (started with -no-reboot) exit.
//
// Settings come from the kernel command line, which the kernel passes on
// to init as environment variables (NAME=VALUE words it does not know):
//
//	ptprobe_test=PATH       the test binary (default /kernel.test)
//	ptprobe_dir=DIR         its working directory (default /kernel)
//	ptprobe_run=REGEXP      its -test.run (default ^TestVM)
//	ptprobe_timeout=SECONDS how long it may run before it is killed (default 100)
//
// Everything else the tests need they find through environment variables
// set here: PTPROBE_IN_VM=1 and PTPROBE_VM_PROBES (the static uprobe
// target, /bin/probes).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// resultMarker starts the line that reports the test binary's exit
// status; the script looks for it in the serial log.
const resultMarker = "PTPROBE_VM_RESULT"

func main() {
	code := run()
	fmt.Printf("\n%s exit=%d\n", resultMarker, code)
	os.Stdout.Sync()
	unix.Sync()
	// With -no-reboot qemu exits on a reboot. Should the reboot fail,
	// init exits and the kernel panics, and with panic=-1 it reboots.
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	time.Sleep(5 * time.Second)
	os.Exit(1)
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run sets the machine up, runs the tests and returns the exit status to
// report: the test binary's, or 120+ for problems of the VM itself.
func run() int {
	mounts := []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tracefs", "/sys/kernel/tracing", "tracefs"},
	}
	var errs []string
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, fmt.Sprintf("mkdir %s: %v", m.dir, err))
			continue
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			errs = append(errs, fmt.Sprintf("mount %s on %s: %v", m.fstype, m.dir, err))
		}
	}
	// The initramfs has no /dev/console, so the kernel could not give
	// init one: take it from devtmpfs now.
	if fd, err := unix.Open("/dev/console", unix.O_RDWR, 0); err == nil {
		for i := 0; i < 3; i++ {
			unix.Dup2(fd, i)
		}
		if fd > 2 {
			unix.Close(fd)
		}
	}
	for _, e := range errs {
		fmt.Printf("vminit: %s\n", e)
	}
	os.MkdirAll("/tmp", 0o1777)

	var uts unix.Utsname
	unix.Uname(&uts)
	// A line of its own: the firmware's last line has no newline.
	fmt.Printf("\nvminit: kernel %s %s\n", unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Version[:]))
	if len(errs) > 0 {
		return 121
	}

	bin := getenv("ptprobe_test", "/kernel.test")
	dir := getenv("ptprobe_dir", "/kernel")
	runRE := getenv("ptprobe_run", "^TestVM")
	secs, err := strconv.Atoi(getenv("ptprobe_timeout", "100"))
	if err != nil || secs <= 0 {
		fmt.Printf("vminit: bad ptprobe_timeout %q\n", os.Getenv("ptprobe_timeout"))
		return 122
	}
	args := []string{"-test.v", "-test.count=1", "-test.run", runRE,
		"-test.timeout", strconv.Itoa(max(secs-10, 10)) + "s"}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.Env = []string{
		"PATH=/bin",
		"HOME=/tmp",
		"TMPDIR=/tmp",
		"PTPROBE_IN_VM=1",
		"PTPROBE_VM_PROBES=/bin/probes",
	}
	fmt.Printf("vminit: running %s %s (in %s, at most %d s)\n", bin, strings.Join(args, " "), dir, secs)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Printf("vminit: %v\n", err)
		return 123
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Duration(secs) * time.Second):
		fmt.Printf("vminit: the tests ran longer than %d s: killed\n", secs)
		cmd.Process.Kill()
		<-done
		return 124
	}
	fmt.Printf("vminit: the tests ran %.1f s\n", time.Since(start).Seconds())
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Printf("vminit: the tests were killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Printf("vminit: %v\n", err)
	return 125
}
