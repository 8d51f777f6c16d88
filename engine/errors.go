package engine

import "errors"

// Errors that arming and attaching wrap, for errors.Is.
var (
	// ErrPermission: the kernel refuses to let ptprobe trace the
	// process (Attach says why).
	ErrPermission = errors.New("not permitted to trace the process")
	// ErrBreakpointThere: the probed instruction already holds an int3
	// (a debugger's, or a kernel uprobe's).
	ErrBreakpointThere = errors.New("the instruction already holds an int3")
	// ErrTextMismatch: the program's text is not the file's (it was
	// changed in memory); nothing is armed there.
	ErrTextMismatch = errors.New("the text in memory differs from the file")
	// ErrNoSlotSpace: no address range within ±2 GiB of the probed code
	// is free for a slot region.
	ErrNoSlotSpace = errors.New("no room for a slot region near the code")
	// ErrDuplicateName: a probe of that GROUP/EVENT exists already.
	ErrDuplicateName = errors.New("a probe has that name already")
)
