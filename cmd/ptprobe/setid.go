package main

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// setIDWarning returns a warning for a program that is set-user-ID or
// set-group-ID and would lose that under ptprobe, else "".
//
// Under ptrace the kernel does not honour set-user-ID and set-group-ID
// on exec unless the tracer has CAP_SYS_PTRACE (security/commoncap.c,
// cap_bprm_creds_from_file: with LSM_UNSAFE_PTRACE and
// !ptracer_capable, euid and egid stay the caller's). So a setuid
// program (passwd, su) traced by an ordinary user runs with that user's
// ids, and its behaviour and output can differ from an untraced run,
// with no error. It matters only where an untraced exec would change
// the ids: not for a tracer with CAP_SYS_PTRACE (root), not when the
// file's owner or group already is the euid or egid, not under
// no_new_privs or on a nosuid mount (the kernel ignores the bits then
// anyway), and set-group-ID only with group execute (without it the bit
// means mandatory locking).
func setIDWarning(path string) string {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return "" // the launch reports what is wrong with the file
	}
	suid := st.Mode&unix.S_ISUID != 0 && int(st.Uid) != unix.Geteuid()
	sgid := st.Mode&unix.S_ISGID != 0 && st.Mode&unix.S_IXGRP != 0 && int(st.Gid) != unix.Getegid()
	if !suid && !sgid {
		return ""
	}
	if nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil && nnp == 1 {
		return ""
	}
	var fs unix.Statfs_t
	if unix.Statfs(path, &fs) == nil && fs.Flags&unix.ST_NOSUID != 0 {
		return ""
	}
	if hasCapability(unix.CAP_SYS_PTRACE) {
		return ""
	}
	var what []string
	if suid {
		what = append(what, fmt.Sprintf("set-user-ID (owner uid %d)", st.Uid))
	}
	if sgid {
		what = append(what, fmt.Sprintf("set-group-ID (group gid %d)", st.Gid))
	}
	return fmt.Sprintf("%s is %s, mode %s (%04o): the kernel ignores set-user-ID and set-group-ID on exec under ptrace by a tracer without CAP_SYS_PTRACE, so it runs as uid %d gid %d here and may behave differently than untraced",
		path, strings.Join(what, " and "), lsMode(st.Mode), st.Mode&0o7777, unix.Geteuid(), unix.Getegid())
}

// hasCapability reports whether capability c is in this process's
// effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
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
