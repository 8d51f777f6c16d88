// Package privs tells when a program exec'd under ptrace does not get the
// privileges its file would give it: the kernel ignores set-user-ID,
// set-group-ID and file capabilities on an exec traced by a tracer
// without CAP_SYS_PTRACE (security/commoncap.c, cap_bprm_creds_from_file:
// with LSM_UNSAFE_PTRACE and !ptracer_capable the ids stay the caller's and
// the capabilities do not grow). So the program runs without them, and its
// behaviour and output can differ from an untraced run, with no error.
package privs

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Creds are the credentials a program runs with after its exec (for a
// program about to be launched, the launcher's, which it inherits).
type Creds struct {
	Euid, Egid int
	// CapPrm is the permitted capability set, CapBnd the bounding set
	// (an exec gets no file capability outside it).
	CapPrm, CapBnd uint64
	// NoNewPrivs: the process has no_new_privs, under which the kernel
	// grants nothing on exec, traced or not.
	NoNewPrivs bool
}

// Self is the calling process's Creds.
func Self() Creds {
	c, err := Of(os.Getpid())
	if err != nil {
		return Creds{Euid: unix.Geteuid(), Egid: unix.Getegid(), CapBnd: ^uint64(0)}
	}
	return c
}

// Of reads the Creds of process pid from /proc/PID/status.
func Of(pid int) (Creds, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Creds{}, err
	}
	var c Creds
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) > 1:
			c.Euid, _ = strconv.Atoi(f[1])
		case k == "Gid" && len(f) > 1:
			c.Egid, _ = strconv.Atoi(f[1])
		case k == "CapPrm" && len(f) > 0:
			c.CapPrm, _ = strconv.ParseUint(f[0], 16, 64)
		case k == "CapBnd" && len(f) > 0:
			c.CapBnd, _ = strconv.ParseUint(f[0], 16, 64)
		case k == "NoNewPrivs" && len(f) > 0:
			c.NoNewPrivs = f[0] == "1"
		}
	}
	return c, nil
}

// TracerCapable reports whether the calling process has CAP_SYS_PTRACE in
// its effective set: then the kernel grants a traced exec what the file
// gives.
func TracerCapable() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[unix.CAP_SYS_PTRACE/32].Effective&(1<<(unix.CAP_SYS_PTRACE%32)) != 0
}

// Lost returns a warning when the file at path would give a program
// exec'd with creds c privileges it does not get under a tracer without
// CAP_SYS_PTRACE, else "". It matters only where an untraced exec would
// change them: not when the file's owner or group already is c's euid or
// egid, not for capabilities c already has or that its bounding set
// lacks, not under no_new_privs or on
// a nosuid mount (the kernel ignores them then anyway), and set-group-ID
// only with group execute (without it the bit means mandatory locking).
// For a program that has exec'd already, c are the creds it got: the
// same as before the exec when the kernel ignored the file's.
func Lost(path string, c Creds) string {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || c.NoNewPrivs {
		return ""
	}
	var fs unix.Statfs_t
	if unix.Statfs(path, &fs) == nil && fs.Flags&unix.ST_NOSUID != 0 {
		return ""
	}
	suid := st.Mode&unix.S_ISUID != 0 && int(st.Uid) != c.Euid
	sgid := st.Mode&unix.S_ISGID != 0 && st.Mode&unix.S_IXGRP != 0 && int(st.Gid) != c.Egid
	caps := FileCaps(path) & c.CapBnd &^ c.CapPrm
	if !suid && !sgid && caps == 0 {
		return ""
	}
	var what []string
	if suid {
		what = append(what, fmt.Sprintf("set-user-ID (owner uid %d)", st.Uid))
	}
	if sgid {
		what = append(what, fmt.Sprintf("set-group-ID (group gid %d)", st.Gid))
	}
	if suid || sgid {
		what[len(what)-1] += fmt.Sprintf(", mode %s (%04o)", lsMode(st.Mode), st.Mode&0o7777)
	}
	if caps != 0 {
		what = append(what, "has file capabilities ("+CapNames(caps)+")")
	}
	text := strings.Join(what, " and ")
	if suid || sgid {
		text = "is " + text
	}
	const by = "on exec under ptrace by a tracer without CAP_SYS_PTRACE"
	switch {
	case caps == 0:
		return fmt.Sprintf("%s %s: the kernel ignores set-user-ID and set-group-ID %s, so it runs as uid %d gid %d here and may behave differently than untraced", path, text, by, c.Euid, c.Egid)
	case !suid && !sgid:
		return fmt.Sprintf("%s %s: the kernel ignores file capabilities %s, so it runs without them here and may behave differently than untraced", path, text, by)
	}
	return fmt.Sprintf("%s %s: the kernel ignores set-user-ID, set-group-ID and file capabilities %s, so it runs as uid %d gid %d without them here and may behave differently than untraced", path, text, by, c.Euid, c.Egid)
}

// FileCaps returns the permitted set of the file capabilities of path
// (xattr security.capability, struct vfs_cap_data), 0 for none.
func FileCaps(path string) uint64 {
	b := make([]byte, 24)
	n, err := unix.Getxattr(path, "security.capability", b)
	if err != nil || n < 12 {
		return 0
	}
	b = b[:n]
	const revMask = 0xff000000
	perm := uint64(binary.LittleEndian.Uint32(b[4:]))
	if rev := binary.LittleEndian.Uint32(b) & revMask; rev != 0x01000000 && n >= 20 {
		perm |= uint64(binary.LittleEndian.Uint32(b[12:])) << 32
	}
	return perm
}

// CapNames names the capabilities of set, as capabilities(7) spells them.
func CapNames(set uint64) string {
	var names []string
	for c := 0; c < 64; c++ {
		if set&(1<<uint(c)) != 0 {
			names = append(names, CapName(c))
		}
	}
	return strings.Join(names, ", ")
}

// CapName is the name of capability c, as capabilities(7) spells it.
func CapName(c int) string {
	if c < len(capNames) {
		return capNames[c]
	}
	return fmt.Sprintf("capability %d", c)
}

var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// lsMode renders the permission bits of a regular file the way ls -l
// does: -rwsr-xr-x.
func lsMode(mode uint32) string {
	b := []byte("-rwxrwxrwx")
	for i := range 9 {
		if mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	special := func(bit uint32, at int, set, noExec byte) {
		if mode&bit == 0 {
			return
		}
		if b[at] == '-' {
			b[at] = noExec
		} else {
			b[at] = set
		}
	}
	special(unix.S_ISUID, 3, 's', 'S')
	special(unix.S_ISGID, 6, 's', 'S')
	special(unix.S_ISVTX, 9, 't', 'T')
	return string(b)
}
