// Package kernel is ptprobe's kernel backend: it runs the same probe specs
// as the ptrace engine through the kernel's own dynamic events (tracefs
// uprobe_events, and kprobe_events where the kernel has them), reads the
// hits back from trace_pipe and turns them into the same uprobe.Event, so
// that `ptprobe compare` can diff the two backends.
//
// Backend runs a program with probes as a backend.Backend. Session is the
// probes of one run: NewSession, AddUprobe and AddKprobe, Enable, Events,
// Close. The tracefs plumbing is in kernel/internal/tracefs.
//
// Design (docs/DESIGN.md §7):
//   - tracefs is found at /sys/kernel/tracing (mounted there when absent
//     and we are root), else /sys/kernel/debug/tracing; what the kernel
//     supports is read from its README, never guessed from its version.
//   - Event definitions are global, so every Session names its events
//     explicitly in a group of its own (SessionPrefix + "<pid>", "_<n>"
//     appended for further sessions of one process) and maps the user's
//     GROUP/EVENT to kernel event names and back.
//   - Buffers are not global: each Session makes a tracefs instance of the
//     same name, enables its events only there and reads only that
//     instance's trace_pipe, so concurrent runs, parallel tests and other
//     tracing users never see (or steal) each other's events.
//   - *_events files are only ever appended to (O_APPEND): a truncating
//     write removes every probe of every user. Removal is "-:GRP/EVENT"
//     after the event is disabled.
//   - Write errors carry the kernel's error_log message and caret
//     (KernelError).
//   - Sessions left behind by dead processes are removed on start.
//
// kernel never imports the ptrace engine; it resolves specs to file
// offsets with package resolve, as the engine does.
//
// What `compare` will see differ from the ptrace engine, because the
// kernel does it so (measured on 6.18):
//   - a failed memory read of an integer fetch-arg prints the value 0,
//     not "(fault)"; only strings show "(fault)";
//   - a string longer than 4095 bytes is "(fault)" when no string arg
//     follows it; otherwise the kernel copies a cut of it into the room
//     of the string args after it, which then show "(fault)" (the engine
//     cuts it at 4095 bytes);
//   - event times are CLOCK_MONOTONIC with microsecond resolution
//     (trace_pipe prints microseconds), CPU is the CPU of the hit;
//   - Session.Hits counts the hits of every process, before the pid
//     filter (Backend counts the events it read back instead);
//   - $argN is rendered as its SysV register: uprobe_events refuses $argN
//     ("$arg* can be used only on function entry or exit") although the
//     README lists it;
//   - %ds, %es, %fs, %gs, %fs_base and %gs_base, which ptrace has, are
//     not registers the kernel's fetch-args know.
//
// Each probe also records $comm in a hidden first fetch-arg, so that an
// event's Comm is the thread's name at the hit, as the engine reports it,
// rather than trace_pipe's comm column (a small cache read when the line
// is printed, which shows "<...>" after a busy moment).
package kernel
