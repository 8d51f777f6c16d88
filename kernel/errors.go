package kernel

import (
	"errors"

	"github.com/ptprobe/ptprobe/kernel/internal/tracefs"
)

// ErrNoTracefs is wrapped by NewSession (and Backend.Run) when no tracefs
// can be found or mounted.
var ErrNoTracefs = tracefs.ErrNoTracefs

// ErrKprobesUnsupported is wrapped by AddKprobe on kernels without
// kprobe_events.
var ErrKprobesUnsupported = errors.New("this kernel has no kprobe_events (it was built without CONFIG_KPROBE_EVENTS): kernel probes are not supported")

// ErrUprobesUnsupported is wrapped by AddUprobe on kernels without
// uprobe_events.
var ErrUprobesUnsupported = errors.New("this kernel has no uprobe_events (it was built without CONFIG_UPROBE_EVENTS): the kernel backend cannot probe programs")

// KernelError is a definition the kernel refused, returned by AddUprobe
// and AddKprobe (use errors.As): the file and line written, the write's
// error (Err, which it wraps: EINVAL, ENOENT...) and, when error_log has
// an entry for the line, the kernel's message (Msg), the byte position of
// its caret in Line (Pos, -1 when unknown) and the entry as the kernel
// wrote it (Log). Caret renders it as error_log does, with the caret under
// the problem.
type KernelError = tracefs.KernelError

// SessionPrefix starts the names of the tracefs instance and the event
// group of every Session: SessionPrefix + "<pid>", then "<pid>_<n>" for
// further sessions of one process. A session's leftovers in tracefs (of a
// killed process) are recognized, and removed by the next session, by
// this name.
const SessionPrefix = tracefs.SessionPrefix
