package tracefs

import (
	"errors"
	"fmt"
	"syscall"
)

// kernelErrnos names the error numbers the kernel uses internally
// (include/linux/errno.h) that sometimes leak to userspace from tracefs
// writes. Go's syscall package knows no text for them, so an error would
// otherwise say only "errno 524".
var kernelErrnos = map[syscall.Errno]string{
	512: "ERESTARTSYS",
	513: "ERESTARTNOINTR",
	514: "ERESTARTNOHAND",
	515: "ENOIOCTLCMD",
	516: "ERESTART_RESTARTBLOCK",
	517: "EPROBE_DEFER",
	518: "EOPENSTALE",
	519: "ENOPARAM",
	521: "EBADHANDLE",
	522: "ENOTSYNC",
	523: "EBADCOOKIE",
	524: "ENOTSUPP",
	525: "ETOOSMALL",
	526: "ESERVERFAULT",
	527: "EBADTYPE",
	528: "EJUKEBOX",
	529: "EIOCBQUEUED",
	530: "ERECALLCONFLICT",
}

// errnoError is an errno with its meaning spelled out for the user.
type errnoError struct {
	errno syscall.Errno
	text  string
}

func (e *errnoError) Error() string { return e.text }
func (e *errnoError) Unwrap() error { return e.errno }

// explainEnable returns err with a kernel-internal errno named and
// explained, as it comes from enabling an event; other errors as they are.
func explainEnable(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	name, internal := kernelErrnos[errno]
	if !internal {
		return err
	}
	text := fmt.Sprintf("errno %d (%s, an error number internal to the kernel)", int(errno), name)
	if errno == 524 {
		// arch_uprobe_analyze_insn refuses the instruction (x86: an
		// opcode or prefix its decoder does not take, such as cli, hlt or
		// lock), or prepare_uprobe finds an int3 there already. The
		// kernel decodes only when a process maps the file, which the
		// kernel backend makes sure of before enabling.
		text = "errno 524 (ENOTSUPP, \"operation not supported\", an error number internal to the kernel: its uprobes cannot probe the instruction at that address)"
	}
	return &errnoError{errno: errno, text: text}
}
